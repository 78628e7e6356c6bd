"""Embedded synthetic single-lead ECG beats (MLII-like) for the offline quickstart.

Each example is a window of ``length`` samples at ``fs`` Hz, in mV, centred on the
R peak of the beat being classified (index ``length // 2``) and containing parts of
its neighbours. Beats are sums of five Gaussian waves P, Q, R, S, T after ECGSYN:

    McSharry P.E., Clifford G.D., Tarassenko L., Smith L.A. (2003), "A dynamical
    model for generating synthetic electrocardiogram signals", IEEE Trans. Biomed.
    Eng. 50(3):289-294.

Wave times are close to ECGSYN's Table 1 angles at 60 bpm (``theta / 2 pi`` s:
P -0.17, T +0.25; here -0.16, +0.28), with Q and S moved in for a QRS of 80-100 ms;
widths and heights are typical lead-II values with ECGSYN's signs and order
(R > T > P). T moves with the square root of the preceding RR interval (Bazett).

Normal (sinus) beats have a P wave and a narrow QRS. Ectopic beats are premature
ventricular contractions: no P wave, wide QRS (mostly 140-180 ms), discordant
(inverted) T, premature coupling and a full compensatory pause. Label-preserving
hard cases: premature atrial beats (normal class: premature, altered P), records
whose sinus QRS is bundle-branch wide (110-160 ms), ectopic foci with a QRS of only
~120 ms, ectopic neighbours around normal beats, and R heights that overlap
between the classes.
"""
from __future__ import annotations

import math

import numpy as np

CLASS_NAMES = ("normal", "ectopic")

_NORMAL, _PVC, _PAC = 0, 1, 2
# Waves P, Q, R, S, T of a sinus and a ventricular beat: centre (s from the R peak),
# width sigma (s), height (x R height). T centres are for RR = 1 s.
_CENTRE = np.array([[-0.160, -0.028, 0.0, 0.030, 0.28],   # sinus
                    [0.0, -0.050, 0.0, 0.055, 0.30]])     # ventricular
_SIGMA = np.array([[0.022, 0.009, 0.011, 0.010, 0.045],
                   [0.022, 0.022, 0.028, 0.025, 0.070]])
_HEIGHT = np.array([[0.15, -0.12, 1.0, -0.25, 0.30],
                    [0.0, -0.25, 1.0, -0.50, -0.45]])
_RR_RANGE = (0.6, 1.2)  # s


def make_beats(n: int, *, length: int = 256, fs: float = 128.0,
               ectopic_fraction: float = 0.3, noise_std: float = 0.03,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthesise ``n`` labelled single-lead ECG beat windows.

    Args:
        n: number of windows.
        length: window length in samples (>= 32); the classified beat's R peak
            is at sample ``length // 2``.
        fs: sampling rate in Hz.
        ectopic_fraction: share of ectopic windows in [0, 1]; exactly
            ``round(n * ectopic_fraction)`` windows are ectopic, in random order.
        noise_std: standard deviation of the additive white noise in mV. A random
            gain (0.7-1.3), baseline wander (0.05-0.5 Hz, up to 0.3 mV) and, in one
            window in five, a 50/60 Hz hum (<= 0.03 mV) are always applied.
        seed: the same seed and arguments give bit-identical arrays.

    Returns:
        ``x``: float32, shape ``(n, length, 1)``, in mV.
        ``y``: int32, shape ``(n,)``, 0 = normal, 1 = ectopic (see ``CLASS_NAMES``).

    Raises:
        ValueError: on a non-positive ``n``, ``length < 32``, a non-positive or
            non-finite ``fs``, ``ectopic_fraction`` outside [0, 1], or a negative
            or non-finite ``noise_std``.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if length < 32:
        raise ValueError(f"length must be at least 32 samples, got {length}")
    if not (fs > 0 and math.isfinite(fs)):
        raise ValueError(f"fs must be a positive finite rate in Hz, got {fs}")
    if not 0.0 <= ectopic_fraction <= 1.0:
        raise ValueError(f"ectopic_fraction must be in [0, 1], got {ectopic_fraction}")
    if not (noise_std >= 0 and math.isfinite(noise_std)):
        raise ValueError(f"noise_std must be a finite value >= 0 mV, got {noise_std}")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) < round(n * ectopic_fraction)).astype(np.int32)

    # Beat slots -k..k around the classified beat (slot k), enough to cover the
    # window plus a trailing T wave at the fastest rhythm.
    k = math.ceil((length / fs / 2 + 0.6) / (_RR_RANGE[0] * 0.55)) + 1
    m = 2 * k + 1
    rr = np.clip(rng.uniform(*_RR_RANGE, (n, 1)) * (1 + 0.04 * rng.standard_normal((n, m))),
                 *_RR_RANGE)
    # Half of the records have ectopic neighbours, at a rate of up to 30 %.
    burden = rng.uniform(0, 0.3, (n, 1)) * (rng.random((n, 1)) < 0.5)
    kind = np.where(rng.random((n, m)) < burden, _PVC,
                    np.where(rng.random((n, m)) < 0.05, _PAC, _NORMAL))
    kind[:, k] = np.where(y == 1, _PVC, np.where(rng.random(n) < 0.15, _PAC, _NORMAL))
    coupling = np.where(kind == _PVC, rng.uniform(0.55, 0.85, (n, m)), rng.uniform(0.65, 0.9, (n, m)))

    # Interval before each beat: premature beats come early; after a PVC the sinus
    # rhythm resumes on time (full compensatory pause); after a PAC it is reset.
    interval = np.where(kind != _NORMAL, coupling * rr, rr)
    interval[:, 1:] += np.where(kind[:, :-1] == _PVC, (1 - coupling[:, :-1]) * rr[:, :-1], 0.0)
    onset = np.cumsum(interval, axis=1)
    onset -= onset[:, k:k + 1]

    # Per-record morphology (one sinus and one ventricular template), per-beat jitter.
    vent = (kind == _PVC).astype(np.intp)
    r_height = rng.uniform(0.5, 1.8, (n, 1)) * np.stack([np.ones(n), rng.uniform(0.6, 1.5, n)], axis=1)
    # QRS width factors; 15 % of records have a bundle-branch-like sinus QRS, half of
    # them with a discordant T.
    bbb = rng.random(n) < 0.15
    width = np.stack([np.where(bbb, rng.uniform(1.3, 1.9, n), rng.uniform(0.9, 1.15, n)),
                      rng.uniform(0.65, 1.05, n)], axis=1)
    shape = rng.uniform(0.7, 1.3, (n, 2, 5))
    shape[..., 2] = 1.0  # R heights come from r_height alone: R stays above any T
    shape[:, 0, 4] *= np.where(bbb & (rng.random(n) < 0.5), -1.0, 1.0)
    row = np.arange(n)[:, None]
    scale = width[row, vent][..., None]
    centre, sigma = _CENTRE[vent], _SIGMA[vent]
    centre[..., 1:4] *= scale
    sigma[..., 1:4] *= scale
    centre[..., 4] *= np.sqrt(interval)
    centre[..., 0] *= np.where(kind == _PAC, rng.uniform(0.8, 1.1, (n, m)), 1.0)
    height = (_HEIGHT[vent] * shape[row, vent] * r_height[row, vent][..., None]
              * rng.uniform(0.95, 1.05, (n, m, 1)))
    height[..., 0] *= np.where(kind == _PAC, rng.uniform(-0.6, 1.0, (n, m)), 1.0)

    t = (np.arange(length) - length // 2) / fs
    ecg = np.concatenate([_render(t, onset[i:i + 2048], centre[i:i + 2048], sigma[i:i + 2048],
                                  height[i:i + 2048]) for i in range(0, n, 2048)])
    wander = rng.uniform(0, 0.1, (n, 3, 1)) * np.sin(
        2 * np.pi * rng.uniform(0.05, 0.5, (n, 3, 1)) * t + rng.uniform(0, 2 * np.pi, (n, 3, 1)))
    hum = (rng.random((n, 1)) < 0.2) * rng.uniform(0.005, 0.03, (n, 1)) * np.sin(
        2 * np.pi * rng.choice([50.0, 60.0], (n, 1)) * t + rng.uniform(0, 2 * np.pi, (n, 1)))
    x = (rng.uniform(0.7, 1.3, (n, 1)) * ecg + wander.sum(axis=1) + hum
         + noise_std * rng.standard_normal((n, length)))
    return x.astype(np.float32)[..., None], y


def _render(t: np.ndarray, onset: np.ndarray, centre: np.ndarray, sigma: np.ndarray,
            height: np.ndarray) -> np.ndarray:
    """Sum the Gaussian waves of the beats that reach each window.

    ``t``: (length,) sample times in s; ``onset``: (rows, beats) R times in s;
    ``centre``, ``sigma``, ``height``: (rows, beats, 5) in s, s, mV. Returns (rows, length) mV.
    """
    seen = np.abs(onset) < t[-1] + 0.6  # a T wave ends < 0.6 s after its R peak
    first = np.concatenate([[0], np.cumsum(seen.sum(axis=1))[:-1]])
    beats = np.zeros((seen.sum(), len(t)))
    for c, s, h in zip(centre[seen].T, sigma[seen].T, height[seen].T):
        z = (t - (onset[seen] + c)[:, None]) / s[:, None]
        beats += h[:, None] * np.exp(-0.5 * z * z)
    return np.add.reduceat(beats, first)  # every window holds its own beat


def plot_examples(path: str, *, per_class: int = 3, seed: int = 0) -> None:
    """Save a PNG with ``per_class`` example windows of each class (time in s, mV)."""
    from matplotlib.figure import Figure

    fs = 128.0
    x, y = make_beats(64, fs=fs, seed=seed)
    t = (np.arange(x.shape[1]) - x.shape[1] // 2) / fs
    fig = Figure(figsize=(10, 2.2 * per_class), layout="constrained")
    axes = fig.subplots(per_class, 2, sharex=True)
    for label, name in enumerate(CLASS_NAMES):
        for ax, i in zip(axes[:, label], np.flatnonzero(y == label)):
            ax.plot(t, x[i, :, 0], lw=1)
            ax.axvline(0, color="0.7", lw=0.8, ls="--")
            ax.set_title(f"{name} (window {i})", fontsize=9)
            ax.set_ylabel("mV")
            ax.grid(alpha=0.3)
        axes[-1, label].set_xlabel("time from R peak (s)")
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    plot_examples("docs/img/synthetic_beats.png")
