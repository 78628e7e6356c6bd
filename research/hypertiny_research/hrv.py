"""Heart-rate-variability features (the 16 inputs of `HRVFeatNet`), in numpy and scipy.

Two entry points:

- `hrv_features(windows, fs)`: ECG windows -> R peaks (`detect_r_peaks`) -> RR intervals -> features.
- `hrv_features_from_rr(rr_series, fs)`: evenly sampled RR series (RR tachograms, seconds, as
  `data.load_apnea_ecg(signal="rr")` returns them) -> beat sequence -> features.

The 16 features (`FEATURE_NAMES`, in this order; RR intervals in milliseconds):

- time domain (9): mean RR (ms), SDNN (ms), RMSSD (ms), pNN50 and pNN20 (fractions 0..1), mean
  and SD of the instantaneous heart rate (bpm), CVNN (SDNN / mean RR), RR range (max - min, ms);
- frequency domain (4): total (0-0.4 Hz), LF (0.04-0.15 Hz) and HF (0.15-0.4 Hz) power of the RR
  tachogram (ms^2; Welch, `TACHOGRAM_FS` Hz, Hann segments of up to 256 samples), LF n.u. =
  LF / (LF + HF) (bounded 0..1, unlike LF/HF);
- nonlinear (3): Poincare SD1, SD2 (ms) and SD1/SD2.

Short windows: the spectral resolution is `fs / segment length`, so a 5 s ECG window (20 tachogram
samples at 4 Hz) has no bin in the LF band and its LF power is 0; LF needs about 25 s or more.
Ratios with a zero denominator are 0.

Fallback: a window with fewer than `MIN_BEATS` (3) beats has too few intervals for the
successive-difference features; its 16 features are all 0 and it is flagged in the fallback mask
(`return_fallback=True`). No feature is ever NaN or infinite.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

FEATURE_NAMES = (
    "mean_rr_ms",
    "sdnn_ms",
    "rmssd_ms",
    "pnn50",
    "pnn20",
    "mean_hr_bpm",
    "std_hr_bpm",
    "cvnn",
    "range_rr_ms",
    "total_power_ms2",
    "lf_power_ms2",
    "hf_power_ms2",
    "lf_nu",
    "sd1_ms",
    "sd2_ms",
    "sd1_sd2_ratio",
)
NUM_FEATURES = len(FEATURE_NAMES)
#: Fewest beats (R peaks) a window needs for real features.
MIN_BEATS = 3
#: Rate (Hz) at which RR intervals from detected peaks are resampled for the spectrum.
TACHOGRAM_FS = 4.0
LF_BAND = (0.04, 0.15)  # Hz
HF_BAND = (0.15, 0.4)  # Hz
#: Detector: QRS pass band (Hz), integration window and refractory period (s), threshold.
QRS_BAND = (5.0, 15.0)
INTEGRATION_S = 0.15
REFRACTORY_S = 0.2
THRESHOLD_FRACTION = 0.3
#: RR values (s) the tachogram walk of `hrv_features_from_rr` is clipped to (30-300 bpm).
RR_CLIP_S = (0.2, 2.0)


def detect_r_peaks(ecg: np.ndarray, fs: float) -> np.ndarray:
    """R-peak positions (samples) in one ECG trace, by a simplified Pan-Tompkins detector.

    Steps: zero-phase Butterworth band-pass `QRS_BAND` (order 2) -> derivative -> square ->
    centred moving-window integration over `INTEGRATION_S` -> local maxima at least
    `REFRACTORY_S` apart and above `THRESHOLD_FRACTION` of the integrated signal's 99th
    percentile peak level -> each peak moved to the largest |band-passed| sample within half an
    integration window (the R apex, either polarity). One fixed threshold per trace instead of
    Pan-Tompkins' running signal/noise levels: windows are seconds long.

    Args:
        ecg: `(T,)` samples of one lead.
        fs: sampling rate in Hz.

    Returns:
        Increasing int64 sample indices `(B,)` (possibly empty).
    """
    ecg = np.asarray(ecg, np.float64).ravel()
    sos = signal.butter(2, QRS_BAND, btype="bandpass", fs=fs, output="sos")
    padlen = min(len(ecg) - 1, 3 * int(fs))
    if padlen < 1:
        return np.zeros(0, np.int64)
    band = signal.sosfiltfilt(sos, ecg - ecg.mean(), padlen=padlen)
    energy = np.gradient(band) ** 2
    half = max(1, int(round(INTEGRATION_S * fs / 2)))
    integrated = np.convolve(energy, np.ones(2 * half + 1) / (2 * half + 1), mode="same")
    if integrated.max() <= 0:
        return np.zeros(0, np.int64)
    candidates, _ = signal.find_peaks(integrated, distance=max(1, int(REFRACTORY_S * fs)))
    level = np.percentile(integrated[candidates], 99) if candidates.size else 0.0
    peaks = candidates[integrated[candidates] >= THRESHOLD_FRACTION * level]
    starts = np.maximum(peaks - half, 0)
    refined = [s + int(np.argmax(np.abs(band[s : p + half + 1]))) for s, p in zip(starts, peaks)]
    return np.unique(np.asarray(refined, np.int64))


def _band_power(freqs: np.ndarray, power: np.ndarray, band: tuple[float, float]) -> float:
    inside = (freqs >= band[0]) & (freqs < band[1])
    return float(np.trapezoid(power[inside], freqs[inside])) if inside.sum() > 1 else 0.0


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def _features(rr_s: np.ndarray, tachogram_s: np.ndarray, tachogram_fs: float) -> np.ndarray:
    """16 features from RR intervals `(K,)` (s) and an evenly sampled RR tachogram (s) at `tachogram_fs` Hz."""
    rr = rr_s * 1000.0
    diff = np.diff(rr)
    hr = 60000.0 / rr
    sdnn = float(rr.std())
    sdsd = float(diff.std())
    sd1 = np.sqrt(0.5) * sdsd
    sd2 = float(np.sqrt(max(2 * sdnn**2 - 0.5 * sdsd**2, 0.0)))
    tachogram = tachogram_s * 1000.0
    if len(tachogram) > 1:
        freqs, power = signal.welch(tachogram, fs=tachogram_fs, nperseg=min(len(tachogram), 256))
    else:
        freqs, power = np.zeros(1), np.zeros(1)
    lf, hf = _band_power(freqs, power, LF_BAND), _band_power(freqs, power, HF_BAND)
    values = [
        rr.mean(), sdnn, np.sqrt(np.mean(diff**2)), np.mean(np.abs(diff) > 50), np.mean(np.abs(diff) > 20),
        hr.mean(), hr.std(), _ratio(sdnn, rr.mean()), rr.max() - rr.min(),
        _band_power(freqs, power, (0.0, HF_BAND[1])), lf, hf, _ratio(lf, lf + hf),
        sd1, sd2, _ratio(sd1, sd2),
    ]
    return np.nan_to_num(np.asarray(values, np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _stack(per_window: list[np.ndarray | None], return_fallback: bool):
    out = np.zeros((len(per_window), NUM_FEATURES), np.float32)
    fallback = np.array([f is None for f in per_window], bool)
    for i, f in enumerate(per_window):
        if f is not None:
            out[i] = f
    return (out, fallback) if return_fallback else out


def _series(windows: np.ndarray) -> np.ndarray:
    windows = np.asarray(windows, np.float64)
    if windows.ndim == 3 and windows.shape[-1] == 1:
        windows = windows[..., 0]
    if windows.ndim != 2:
        raise ValueError(f"expected windows shaped (N, T) or (N, T, 1), got {windows.shape}")
    return windows


def hrv_features(windows: np.ndarray, fs: float, return_fallback: bool = False):
    """HRV features of ECG windows.

    Args:
        windows: `(N, T)` or `(N, T, 1)` single-lead ECG (any scale, e.g. z-scored).
        fs: sampling rate in Hz.
        return_fallback: also return the `(N,)` bool mask of windows with fewer than
            `MIN_BEATS` detected beats (their features are all 0).

    Returns:
        float32 `(N, 16)` in the order of `FEATURE_NAMES` (and the mask). RR intervals are
        resampled at `TACHOGRAM_FS` Hz (linear interpolation at the closing R peak) for the spectrum.
    """
    per_window = []
    for ecg in _series(windows):
        peaks = detect_r_peaks(ecg, fs)
        if len(peaks) < MIN_BEATS:
            per_window.append(None)
            continue
        rr = np.diff(peaks) / fs
        closing = peaks[1:] / fs
        grid = np.arange(closing[0], closing[-1] + 1e-9, 1.0 / TACHOGRAM_FS)
        per_window.append(_features(rr, np.interp(grid, closing, rr), TACHOGRAM_FS))
    return _stack(per_window, return_fallback)


def hrv_features_from_rr(rr_series: np.ndarray, fs: float, return_fallback: bool = False):
    """HRV features of evenly sampled RR series (tachograms).

    The beat sequence is rebuilt by walking the tachogram: from t = 0 the next beat comes after
    the RR value at t (linear interpolation, clipped to `RR_CLIP_S`), while it stays inside the
    window. Time-domain and nonlinear features use those intervals; the spectrum uses the series
    itself.

    Args:
        rr_series: `(N, T)` or `(N, T, 1)` RR values in seconds sampled at `fs` Hz.
        fs: sampling rate of the series in Hz (4 Hz for Apnea-ECG `rr` windows).
        return_fallback: also return the `(N,)` bool mask of windows with fewer than
            `MIN_BEATS` beats (fewer than 2 intervals); their features are all 0.

    Returns:
        float32 `(N, 16)` in the order of `FEATURE_NAMES` (and the mask).
    """
    series = np.clip(_series(rr_series), *RR_CLIP_S)
    n, length = series.shape
    duration = (length - 1) / fs
    rows = np.arange(n)
    t = np.zeros(n)
    steps = []
    while True:
        position = np.minimum(t * fs, length - 1)
        low = np.minimum(position.astype(np.int64), length - 2) if length > 1 else np.zeros(n, np.int64)
        frac = position - low
        rr = series[rows, low] * (1 - frac) + series[rows, np.minimum(low + 1, length - 1)] * frac
        inside = t + rr <= duration
        if not inside.any():
            break
        steps.append(np.where(inside, rr, np.nan))
        t = np.where(inside, t + rr, np.inf)
    walked = np.stack(steps, axis=1) if steps else np.full((n, 0), np.nan)
    per_window = []
    for row, intervals in zip(series, walked):
        intervals = intervals[np.isfinite(intervals)]
        per_window.append(_features(intervals, row, fs) if len(intervals) >= MIN_BEATS - 1 else None)
    return _stack(per_window, return_fallback)
