"""PTB-XL loader on the real 500-record subset (and broken copies in tmp_path)."""
import shutil

import numpy as np
import pytest
import wfdb

from hypertiny_keras.data import DataError, load_ptbxl, summarize


@pytest.fixture(scope="module")
def ptbxl(data_root):
    return data_root / "ptbxl"


@pytest.fixture(scope="module")
def first60(ptbxl):
    return load_ptbxl(ptbxl, max_records=60, zscore=False)


def test_windows_are_1000_samples_of_lead_ii(ptbxl, first60):
    assert first60.x.shape == (len(first60), 1000, 1)
    for i in (0, 17, len(first60) - 1):
        ecg_id = int(first60.record[i])
        rec = wfdb.rdrecord(str(ptbxl / "records100" / "00000" / f"{ecg_id:05d}_lr"))
        lead_ii = rec.p_signal[:, rec.sig_name.index("II")]
        np.testing.assert_allclose(first60.x[i, :, 0], lead_ii, rtol=1e-6)


def test_labels_of_known_records(first60):
    # ecg_id 1 is {'NORM': 100, 'LVOLT': 0, 'SR': 0} in ptbxl_database.csv: NORM only.
    assert first60.y[first60.record == "1"][0] == 0


def test_subset_counts_match_the_data_readme(ptbxl):
    w = load_ptbxl(ptbxl)
    s = summarize(w)
    assert s["total"]["class_counts"] == {"NORM": 290, "diagnostic": 198}
    assert w.meta["dropped"]["no_diagnostic"] == 12


def test_strat_fold_splits_are_patient_disjoint(first60):
    per = {s: set(first60.patient[first60.split == s]) for s in ("train", "val", "test")}
    assert all(per.values())
    assert not (per["train"] & per["val"] or per["train"] & per["test"] or per["val"] & per["test"])


def test_missing_record_file_names_it(ptbxl, tmp_path):
    shutil.copy(ptbxl / "ptbxl_database.csv", tmp_path)
    shutil.copy(ptbxl / "scp_statements.csv", tmp_path)
    with pytest.raises(DataError, match=r"00001_lr\.hea: missing"):
        load_ptbxl(tmp_path, max_records=5)


def test_corrupt_csv_row(ptbxl, tmp_path):
    shutil.copy(ptbxl / "scp_statements.csv", tmp_path)
    lines = (ptbxl / "ptbxl_database.csv").read_text().splitlines()
    lines[3] = lines[3].replace("{'", "{", 1)
    (tmp_path / "ptbxl_database.csv").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"ptbxl_database.csv:4: cannot parse"):
        load_ptbxl(tmp_path)
