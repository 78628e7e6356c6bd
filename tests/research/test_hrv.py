"""HRV features: known answers on synthetic RR series, R-peak detection on MIT-BIH record 100, fallbacks."""
import numpy as np
import pytest
import wfdb

from hypertiny_keras.data.mitbih import read_beats
from hypertiny_research.hrv import FEATURE_NAMES, NUM_FEATURES, detect_r_peaks, hrv_features, hrv_features_from_rr

FS_RR = 4.0
T = np.arange(1200) / FS_RR  # 5 minutes at 4 Hz, as Apnea-ECG `rr` windows


def _named(row):
    return dict(zip(FEATURE_NAMES, row))


def test_sixteen_named_features():
    assert NUM_FEATURES == 16 and len(set(FEATURE_NAMES)) == 16


def test_constant_rr_gives_known_values():
    features, fallback = hrv_features_from_rr(np.full((3, 1200, 1), 0.8), FS_RR, return_fallback=True)
    assert features.shape == (3, 16) and not fallback.any()
    f = _named(features[0])
    assert f["mean_rr_ms"] == pytest.approx(800.0)
    assert f["mean_hr_bpm"] == pytest.approx(75.0)
    for name in ("sdnn_ms", "rmssd_ms", "pnn50", "pnn20", "range_rr_ms", "total_power_ms2", "sd1_ms", "sd2_ms"):
        assert f[name] == pytest.approx(0.0, abs=1e-6), name


@pytest.mark.parametrize("freq,band", [(0.1, "lf"), (0.25, "hf")])
def test_sinusoidal_rr_puts_its_power_in_the_right_band(freq, band):
    amplitude = 0.05  # s -> power amplitude^2 / 2 = 1250 ms^2
    f = _named(hrv_features_from_rr((0.8 + amplitude * np.sin(2 * np.pi * freq * T))[None], FS_RR)[0])
    other = "hf" if band == "lf" else "lf"
    assert f[f"{band}_power_ms2"] == pytest.approx(1250.0, rel=0.05)
    assert f[f"{other}_power_ms2"] < 0.01 * f[f"{band}_power_ms2"]
    assert f["lf_nu"] == pytest.approx(1.0 if band == "lf" else 0.0, abs=0.01)
    assert f["mean_rr_ms"] == pytest.approx(800.0, rel=0.01)
    assert f["sdnn_ms"] == pytest.approx(1000 * amplitude / np.sqrt(2), rel=0.1)
    assert f["sd2_ms"] > 0 and f["sd1_ms"] > 0


def _spikes(times_s, fs=360.0, seconds=3.0):
    """A flat trace with a narrow QRS-like Gaussian pulse (10 ms wide) at each time."""
    t = np.arange(int(seconds * fs)) / fs
    return sum((np.exp(-0.5 * ((t - c) / 0.01) ** 2) for c in times_s), np.zeros_like(t))


def test_windows_with_fewer_than_three_beats_fall_back_to_zeros_never_nan():
    cases = np.stack([_spikes([]), _spikes([1.0]), _spikes([0.8, 1.6]), _spikes([0.6, 1.4, 2.2]),
                      np.random.default_rng(0).normal(size=1080)])
    features, fallback = hrv_features(cases[..., None], fs=360.0, return_fallback=True)
    assert np.isfinite(features).all()
    np.testing.assert_array_equal(fallback[:4], [True, True, True, False])
    np.testing.assert_array_equal(features[fallback], 0.0)
    assert _named(features[3])["mean_rr_ms"] == pytest.approx(800.0, abs=3)
    assert _named(features[3])["mean_hr_bpm"] == pytest.approx(75.0, abs=0.5)
    short, short_fallback = hrv_features_from_rr(np.full((1, 6), 1.5), FS_RR, return_fallback=True)
    assert short_fallback.all() and not short.any()


def test_r_peaks_match_mitbih_record_100_annotations(data_root):
    """>= 95% of annotated beats have a detected R peak within 50 ms, and few detections are spurious."""
    fs, window = 360, 1800  # 5 s windows
    ecg = wfdb.rdrecord(str(data_root / "mitdb" / "100"), channels=[0]).p_signal[:, 0]
    beats, _, _ = read_beats(data_root / "mitdb", "100")
    tolerance, margin = int(0.05 * fs), int(0.1 * fs)  # beats cut by a window edge are not scored
    matched = total = spurious = 0
    windows = ecg[: len(ecg) // window * window].reshape(-1, window)
    for i, w in enumerate(windows):
        start = i * window
        peaks = detect_r_peaks((w - w.mean()) / w.std(), fs) + start
        inside = beats[(beats >= start + margin) & (beats < start + window - margin)]
        if len(peaks):
            matched += int((np.abs(inside[:, None] - peaks[None]).min(1) <= tolerance).sum())
            scored = peaks[(peaks >= start + margin) & (peaks < start + window - margin)]
            spurious += int((np.abs(scored[:, None] - beats[None]).min(1) > tolerance).sum())
        total += len(inside)
    assert total > 2000
    assert matched / total >= 0.95
    assert spurious / total <= 0.05
    features, fallback = hrv_features(windows[:40], fs, return_fallback=True)
    assert not fallback.any() and np.isfinite(features).all()
    assert 600 < np.median(features[:, FEATURE_NAMES.index("mean_rr_ms")]) < 1000  # record 100: ~75 bpm
