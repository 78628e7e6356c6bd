"""Apnea-ECG loader: RR mode on the real annotations, ECG mode on WFDB records written here."""
import numpy as np
import pytest
import wfdb

from hypertiny_keras.data import DataError, apnea_ecg, load_apnea_ecg

FIVE = ["a01", "a02", "b01", "c01", "x01"]


@pytest.fixture(scope="module")
def apnea(data_root):
    return data_root / "apnea-ecg"


@pytest.fixture(scope="module")
def rr(apnea):
    return load_apnea_ecg(apnea, signal="rr", records=FIVE, zscore=False)


def test_minute_label_totals_match_the_data_readme(apnea):
    totals = {"learning": np.zeros(2, int), "test": np.zeros(2, int)}
    records = apnea_ecg.list_records(apnea)
    assert len(records) == 70
    for r in records:
        totals["test" if r.startswith("x") else "learning"] += np.bincount(
            apnea_ecg.read_minute_labels(apnea, r)[1], minlength=2)
    assert totals["learning"].tolist() == [10531, 6514]
    assert totals["test"].tolist() == [10718, 6550]


def test_rr_windows_shape_range_and_splits(rr):
    assert rr.x.shape[1:] == (5 * 60 * 4, 1) and rr.fs == 4.0
    assert rr.x.min() >= 0.3 and rr.x.max() <= 2.0
    assert set(rr.record[rr.split == "test"]) == {"x01"}
    for r in FIVE:
        assert len(set(rr.split[rr.record == r])) == 1


def test_consecutive_minutes_share_their_overlap(rr):
    idx = np.flatnonzero(rr.record == "a01")
    minutes = rr.order[idx]
    pairs = np.flatnonzero(np.diff(minutes) == 1)
    assert len(pairs) > 400
    for p in pairs[:: 50]:
        np.testing.assert_allclose(rr.x[idx[p + 1], :-240, 0], rr.x[idx[p], 240:, 0])


def test_rr_matches_beat_count_of_the_qrs_file(apnea, rr):
    qrs = wfdb.rdann(str(apnea / "a02"), "qrs").sample / 100.0
    intervals = np.diff(qrs)
    checked = 0
    for i in np.flatnonzero(rr.record == "a02")[::10]:
        m = rr.order[i]
        near = (qrs[1:] > 60 * m - 3) & (qrs[1:] < 60 * (m + 1) + 3)
        if not np.all((intervals[near] >= 0.3) & (intervals[near] <= 2.0)):
            continue  # minutes with implausible intervals are interpolated, not counted
        centre = rr.x[i, 480:720, 0]  # the labelled minute inside the 2-minute context
        beats = np.sum((qrs >= 60 * m) & (qrs < 60 * (m + 1)))
        assert 60 / centre.mean() == pytest.approx(beats, rel=0.05)
        checked += 1
    assert checked >= 20


def test_labels_follow_the_apn_file(apnea, rr):
    ann = wfdb.rdann(str(apnea / "a01"), "apn")
    label_of_minute = dict(zip(ann.sample // 6000, np.array(ann.symbol) == "A"))
    idx = np.flatnonzero(rr.record == "a01")
    assert all(rr.y[i] == label_of_minute[rr.order[i]] for i in idx)


def write_ecg_copy(apnea, out, records, minutes=12):
    """WFDB records (.hea/.dat) of a synthetic ECG with the first `minutes` real labels."""
    rng = np.random.default_rng(0)
    signals = {}
    for r in records:
        n = minutes * 6000
        t = np.arange(n) / 100.0
        sig = np.sin(2 * np.pi * 1.2 * t) + 0.05 * rng.standard_normal(n)
        wfdb.wrsamp(r, fs=100, units=["mV"], sig_name=["ECG"], p_signal=sig[:, None],
                    fmt=["16"], write_dir=str(out))
        label_dir = out / "x-answers" if r.startswith("x") else out
        label_dir.mkdir(exist_ok=True)
        src = apnea / "x-answers" / r if r.startswith("x") else apnea / r
        ann = wfdb.rdann(str(src), "apn")
        keep = ann.sample < n
        wfdb.wrann(r, "apn", ann.sample[keep], np.array(ann.symbol)[keep], write_dir=str(label_dir))
        signals[r] = wfdb.rdrecord(str(out / r)).p_signal[:, 0]
    (out / "RECORDS").write_text("\n".join(records))
    return signals


def test_ecg_windows_on_written_records(apnea, tmp_path):
    records = ["a01", "a02", "a03", "b01", "c01", "x01"]
    signals = write_ecg_copy(apnea, tmp_path, records)
    w = load_apnea_ecg(tmp_path, signal="ecg", split="record", zscore=False)
    assert w.x.shape == (6 * 12 * 3, 1800, 1)
    labels = wfdb.rdann(str(apnea / "a02"), "apn").symbol[:12]
    idx = np.flatnonzero(w.record == "a02")
    for i in idx:
        minute, k = divmod(int(w.order[i]), 3)
        start = minute * 6000 + k * 1800
        np.testing.assert_allclose(w.x[i, :, 0], signals["a02"][start: start + 1800], rtol=1e-6)
        assert w.y[i] == (labels[minute] == "A")
    splits = {s: set(w.record[w.split == s]) for s in ("train", "val", "test")}
    assert sum(map(len, splits.values())) == 6 and all(splits.values())


def test_ecg_mode_without_dat_names_the_file(apnea):
    with pytest.raises(DataError, match=r"apnea-ecg/[abcx]\d\d\.dat: missing"):
        load_apnea_ecg(apnea, signal="ecg", records=FIVE)


def test_label_beyond_signal(apnea, tmp_path):
    write_ecg_copy(apnea, tmp_path, ["a01"])
    wfdb.wrann("a01", "apn", np.array([0, 6000, 90000]), np.array(["N", "A", "N"]), write_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"a01\.apn: annotation at sample 90000 is beyond"):
        apnea_ecg.read_minute_labels(tmp_path, "a01")
