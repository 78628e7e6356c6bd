"""MIT-BIH loader on the real PhysioNet files (and broken copies of them in tmp_path)."""
import shutil
import time

import numpy as np
import pytest
import wfdb

from hypertiny_keras.data import DataError, load_mitbih, mitbih, read_beats, summarize

RECORDS = ["100", "101", "103"]


@pytest.fixture(scope="module")
def mitdb(data_root):
    return data_root / "mitdb"


@pytest.fixture(scope="module")
def three(mitdb):
    return load_mitbih(mitdb, split="paper", records=RECORDS, zscore=False)


def copy_record(src, dst, record="100"):
    for ext in ("hea", "dat", "atr"):
        shutil.copy(src / f"{record}.{ext}", dst / f"{record}.{ext}")
    (dst / "RECORDS").write_text(record + "\n")


def test_record_100_beats(mitdb):
    sample, symbol, skipped = read_beats(mitdb, "100")
    assert len(sample) == 2273
    assert np.sum(mitbih.aami_labels(symbol, "v_vs_rest")) == 1
    assert skipped == {"+": 1}


def test_aami_v_share_over_all_48_records(mitdb):
    records = mitbih.list_records(mitdb)
    assert len(records) == 48
    labels = np.concatenate([mitbih.aami_labels(read_beats(mitdb, r)[1], "v_vs_rest") for r in records])
    assert 0.06 < labels.mean() < 0.08


def test_windows_are_centred_raw_lead_slices(mitdb, three):
    raw = wfdb.rdrecord(str(mitdb / "101"), channels=[0]).p_signal[:, 0]
    ann = wfdb.rdann(str(mitdb / "101"), "atr")
    idx = np.flatnonzero(three.record == "101")
    assert three.x.shape[1:] == (1800, 1)
    for i in idx[[0, len(idx) // 2, -1]]:
        c = three.order[i]
        assert c in ann.sample
        np.testing.assert_allclose(three.x[i, :, 0], raw[c - 900: c + 900], rtol=1e-6)


def test_edge_beats_are_dropped_and_counted(mitdb, three):
    n_edge = 0
    for r in RECORDS:
        s = read_beats(mitdb, r)[0]
        n_edge += int(np.sum((s < 900) | (s + 900 > 650000)))
    assert three.meta["dropped"]["edge"] == n_edge > 0
    beats = sum(len(read_beats(mitdb, r)[0]) for r in RECORDS)
    assert len(three) == beats - n_edge


def test_record_100_window_labels_have_its_single_v(three):
    assert three.y[three.record == "100"].sum() == 1


def test_paper_split_is_record_disjoint(three):
    per_split = {s: set(three.record[three.split == s]) for s in ("train", "val", "test")}
    assert all(per_split.values())
    assert not (per_split["train"] & per_split["val"] or per_split["train"] & per_split["test"]
                or per_split["val"] & per_split["test"])
    for rec in RECORDS:
        assert len(set(three.split[three.record == rec])) == 1


def test_dechazal_protocol_records(mitdb):
    assignment = mitbih.split_records(mitbih.list_records(mitdb), "dechazal", 0, 0.2, False)
    assert {r for r, s in assignment.items() if s == "test"} == set(mitbih.DS2)
    assert {r for r, s in assignment.items() if s != "test"} == set(mitbih.DS1)
    assert not set(mitbih.PACED_RECORDS) & set(assignment)
    assert len(set(mitbih.DS1) | set(mitbih.DS2) | set(mitbih.PACED_RECORDS)) == 48


def test_paper_split_keeps_patient_201_202_together(mitdb):
    for seed in range(10):
        a = mitbih.split_records(mitbih.list_records(mitdb), "paper", seed, 0.2, False)
        assert a["201"] == a["202"]


def test_tasks_and_resampling(mitdb):
    w = load_mitbih(mitdb, task="aami5", split="paper", records=RECORDS, fs=180.0, window_seconds=2.0)
    assert w.x.shape[1:] == (360, 1) and w.fs == 180.0
    assert w.class_names == ("N", "S", "V", "F", "Q")
    np.testing.assert_allclose(w.x.mean(axis=(1, 2)), 0, atol=1e-4)  # z-scored per window
    np.testing.assert_allclose(w.x.std(axis=(1, 2)), 1, atol=1e-3)
    binary = load_mitbih(mitdb, task="abnormal_vs_normal", split="paper", records=RECORDS,
                         fs=180.0, window_seconds=2.0)
    np.testing.assert_array_equal(binary.y, (w.y != 0).astype(int))


def test_cache_is_reused_and_faster(mitdb, tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERTINY_CACHE", str(tmp_path))
    t0 = time.perf_counter()
    first = load_mitbih(mitdb, split="paper", records=RECORDS, window_seconds=4.0)
    t1 = time.perf_counter()
    second = load_mitbih(mitdb, split="paper", records=RECORDS, window_seconds=4.0)
    t2 = time.perf_counter()
    assert len(list(tmp_path.iterdir())) == 1
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.record, second.record)
    assert (t1 - t0) >= 10 * (t2 - t1)
    load_mitbih(mitdb, split="paper", records=RECORDS, window_seconds=4.0, clip=3.0)
    assert len(list(tmp_path.iterdir())) == 2  # a changed parameter is a new entry


def test_tf_dataset_batches(three):
    ds = three.select("train").as_tf_dataset(batch_size=32, seed=1)
    x, y = next(iter(ds))
    assert x.shape == (32, 1800, 1) and y.shape == (32,)


def test_summary_counts(three):
    s = summarize(three)
    assert s["total"]["windows"] == len(three)
    assert sum(p["records"] for p in s["splits"].values()) == 3
    assert s["total"]["class_counts"]["V"] == int(three.y.sum())


def test_missing_directory():
    with pytest.raises(DataError, match="does not exist"):
        load_mitbih("/nonexistent/mitdb")


def test_missing_dat_names_the_file(mitdb, tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERTINY_CACHE", str(tmp_path / "cache"))
    for rec in RECORDS:
        copy_record(mitdb, tmp_path, rec)
    (tmp_path / "100.dat").unlink()
    with pytest.raises(DataError, match=r"100\.dat"):
        load_mitbih(tmp_path, split="paper", records=RECORDS)
    assert not (tmp_path / "cache").exists()


def test_missing_atr_names_the_file(mitdb, tmp_path):
    copy_record(mitdb, tmp_path)
    (tmp_path / "100.atr").unlink()
    with pytest.raises(DataError, match=r"100\.atr"):
        read_beats(tmp_path, "100")


def test_corrupt_header(mitdb, tmp_path):
    copy_record(mitdb, tmp_path)
    (tmp_path / "100.hea").write_text("100 2 three-hundred-sixty 650000\ngarbage\n")
    with pytest.raises(DataError, match=r"100\.hea: corrupt header"):
        read_beats(tmp_path, "100")


def test_annotation_beyond_signal(mitdb, tmp_path):
    copy_record(mitdb, tmp_path)
    wfdb.wrann("100", "atr", np.array([1000, 2000, 700000]), np.array(["N", "V", "N"]),
               write_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"100\.atr: annotation at sample 700000 is beyond"):
        read_beats(tmp_path, "100")


def test_nan_and_flat_windows_are_dropped_and_counted(mitdb, tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERTINY_CACHE", str(tmp_path / "cache"))
    for rec in RECORDS:
        copy_record(mitdb, tmp_path, rec)
    (tmp_path / "RECORDS").write_text("\n".join(RECORDS))
    record = wfdb.rdrecord(str(mitdb / "100"), physical=False)
    record.d_signal[:100_000, 0] = 7  # flat first ~4.6 minutes
    record.d_signal[300_000:300_010, 0] = -2048  # format 212's "invalid sample" value -> NaN
    record.wrsamp(write_dir=str(tmp_path), expanded=False)
    beats = read_beats(tmp_path, "100")[0]
    clean = load_mitbih(mitdb, split="paper", records=RECORDS)
    w = load_mitbih(tmp_path, split="paper", records=RECORDS)
    n_flat = int(np.sum((beats >= 900) & (beats + 900 <= 100_000)))
    n_nan = int(np.sum((beats + 900 > 300_000) & (beats - 900 < 300_010)))
    assert w.meta["dropped"]["flat"] == n_flat > 0
    assert w.meta["dropped"]["nan"] == n_nan > 0
    assert len(w) == len(clean) - n_flat - n_nan
    assert np.isfinite(w.x).all()


def test_empty_split_is_an_error(mitdb, tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERTINY_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="cannot fill"):
        load_mitbih(mitdb, split="paper", records=["100", "101"])
    assert not list(tmp_path.iterdir())
