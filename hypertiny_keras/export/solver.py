"""The integer head solver: int8/int4 weights of a FULLY_CONNECTED whose outputs hit exact int8 targets.

The last init-subgraph step of a kind that solves for its target (`dense`,
`factorized`) is `w = FULLY_CONNECTED(x, head)` with a known int8 input `x`
(what the device computed for the step before) and a known int8 target `w`
(the filter the device must produce). `solve_head` picks the output
multiplier and `solve_step` the integer weights, so that TFLM's arithmetic
(`fixed_point`) gives the target wherever the weight range allows.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from hypertiny_keras.export import fixed_point

#: Largest |value| of a weight of `bits` bits in the init subgraph (symmetric).
WEIGHT_LEVELS = {8: 127, 4: 7}
_HEAD_HEADROOM = 100  # largest |weight| of a solved step before compensation, in int8 steps
_FINE = 0.999  # a solved step moves its output by at most this many steps per weight step
_MULTIPLIER_RETRIES = (1.0, 0.5, 2.0, 0.25, 4.0, 0.125, 8.0)
_REPAIR_PASSES = 3  # extra passes over the weights of rows the first pass left outside their target


def solve_step(real: np.ndarray, x: np.ndarray, targets: np.ndarray, multiplier, limit: int = 127) -> np.ndarray:
    """Weights in -limit..limit `(outputs, len(x))` whose FULLY_CONNECTED output on `x` equals `targets` where possible.

    Starts from `round(real)` and moves each row's accumulator to the
    accumulator that maps to its target (greedily, adjusting the weights
    that meet the largest inputs first: with a multiplier of at most
    `_FINE / min |x|` the last adjustment always lands when no weight
    saturates); rows still outside (saturated weights) get up to
    `_REPAIR_PASSES` more passes, smallest inputs first, and are then
    searched exhaustively over +-4 on the three weights that meet the
    smallest inputs.

    Args:
        real: the float weights in integer units `(outputs, len(x))`.
        x: the zero-point-centred int input `(len(x),)`.
        targets: the int8 outputs wanted `(outputs,)`.
        multiplier: TFLM's `(quantized multiplier, shift)` of the step.
        limit: largest |weight|.
    """
    head = np.clip(np.round(real), -limit, limit).astype(np.int64)
    low, high = fixed_point.accumulator_interval(targets, multiplier)
    q, shift = multiplier
    m = q * 2.0**shift / 2.0**31
    goal = np.clip(np.round(targets / m), low, high).astype(np.int64)
    order = [j for j in np.argsort(-np.abs(x), kind="stable") if x[j] != 0]
    for j in order:
        step = np.round((goal - head @ x) / x[j]).astype(np.int64)
        head[:, j] = np.clip(head[:, j] + step, -limit, limit)
    acc = head @ x
    missing = np.flatnonzero((acc < low) | (acc > high))
    for _ in range(_REPAIR_PASSES if missing.size else 0):
        # Saturated weights (likely with a narrow range such as int4's) leave rows short: move the other
        # weights of those rows, smallest inputs first, each by what it can still take.
        for j in order[::-1]:
            rows = missing[(acc[missing] < low[missing]) | (acc[missing] > high[missing])]
            if not rows.size:
                break
            step = np.round((goal[rows] - acc[rows]) / x[j]).astype(np.int64)
            moved = np.clip(head[rows, j] + step, -limit, limit)
            acc[rows] += (moved - head[rows, j]) * x[j]
            head[rows, j] = moved
        missing = np.flatnonzero((acc < low) | (acc > high))
        if not missing.size:
            break
    fine = order[-3:]
    if missing.size and fine:
        grid = np.stack(np.meshgrid(*[np.arange(-4, 5)] * len(fine), indexing="ij"), -1).reshape(-1, len(fine))
        candidates = acc[missing, None] + grid @ x[fine]  # (rows, combos)
        entries = head[missing][:, fine][:, None, :] + grid[None]  # (rows, combos, k)
        valid = (candidates >= low[missing, None]) & (candidates <= high[missing, None])
        valid &= np.all(np.abs(entries) <= limit, axis=-1)
        distance = np.where(valid, np.abs(candidates - goal[missing, None]), np.iinfo(np.int64).max)
        best = distance.argmin(1)
        solved = valid[np.arange(missing.size), best]
        rows = missing[solved]
        head[np.ix_(rows, fine)] = entries[solved, best[solved]]
    return head.astype(np.int8)


@dataclasses.dataclass
class HeadSolution:
    """A solved last step: its integer weights, their one scale, what the device computes, how many miss."""

    misses: int
    weight_scale: float
    head: np.ndarray  # int8 `(C_out * C_in, len(x))`, within the levels asked for
    synthesised: np.ndarray  # int8 `(C_out * C_in,)`, TFLM's output with these weights


def solve_head(real: np.ndarray, values: np.ndarray, zero_point: int, scale: float, target: np.ndarray,
               levels: int) -> HeadSolution:
    """The best head (fewest misses) over a few output multipliers, for weights in -levels..levels.

    Args:
        real: float weights in target steps per input step `(C_out * C_in, len(x))`.
        values: the step's int8 input as the device computes it `(len(x),)`.
        zero_point: its zero point.
        scale: its scale.
        target: the int8 filter wanted `(C_out * C_in,)`.
        levels: largest |weight| (`WEIGHT_LEVELS[bits]`).
    """
    x = values.astype(np.int64) - zero_point
    nonzero = np.abs(x[x != 0])
    candidates = [float(np.abs(real).max(initial=0.0)) / (_HEAD_HEADROOM * levels / WEIGHT_LEVELS[8])]
    if nonzero.size:
        candidates.append(_FINE / float(nonzero.min()))
    m = min(c for c in candidates if c > 0) if any(c > 0 for c in candidates) else 1.0
    best = None
    for factor in _MULTIPLIER_RETRIES:  # saturated weights can miss: try coarser and finer steps
        weight_scale = float(np.float32(m * factor / scale))
        multiplier = fixed_point.tflm_multiplier(scale, weight_scale, 1.0)
        real_int = real / float(np.float32(scale) * np.float32(weight_scale))
        head = solve_step(real_int, x, target, multiplier, levels)
        synthesised = fixed_point.fully_connected(values, zero_point, head, None, multiplier, 0)
        misses = int(np.sum(synthesised != target))
        if best is None or misses < best.misses:
            best = HeadSolution(misses, weight_scale, head, synthesised)
        if misses == 0:
            break
    return best
