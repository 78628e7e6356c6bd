"""The quickstart: train a small HyperTinyPW CNN on synthetic ECG beats, export, run in TFLM.

Offline and deterministic by seed. Writes to `out_dir`:
`model_frozen_int8.tflite`, `model_boot_int8.tflite` (each with its export
report as `.json`), `report.json` (everything printed), `model.keras` (the
trained Keras model) and `test_windows.npz` (16 test windows with labels,
for `hypertiny export --arduino`). With `personalize`, also `device.key` (a
new random HMAC key), `wearer.patch` (the code patch that personalizes the
boot file to a new synthetic wearer) and `model_wearer_int8.tflite` (the boot
file with that patch applied).
"""
from __future__ import annotations

import json
import os
import pathlib
import time

import keras
import numpy as np

from hypertiny_keras.cli.main import MIN_QUICKSTART_BEATS
from hypertiny_keras.data.synthetic import CLASS_NAMES, make_beats
from hypertiny_keras.device.runtime import predict
from hypertiny_keras.export import export_tflite
from hypertiny_keras.models import hypertiny_pw, stored_pw_twin
from hypertiny_keras.tflite.patch import make_patch, read_patch
from hypertiny_keras.training.personalize import codes_file, personalize
from hypertiny_keras.transforms.accounting import byte_table
from hypertiny_keras.utils.fileio import atomic_write

WINDOW = 256  # samples at 128 Hz = 2 s


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, -1) == y))


def run_quickstart(
    out_dir: str,
    seed: int = 0,
    epochs: int = 8,
    beats: int = 6000,
    verbose: int = 1,
    pool: str = "average_pool",
    dense_per_tensor: bool = True,
    personalize_wearer: bool = False,
) -> dict:
    """Train, export (frozen and boot), verify in TFLM and LiteRT, and report.

    Args:
        out_dir: output directory (created).
        seed: seed of the data and of the weights.
        epochs: training epochs (Keras progress bar when `verbose`), >= 1.
        beats: synthetic windows (80/10/10 train/validation/test), >= `MIN_QUICKSTART_BEATS`.
        verbose: 0 silent, 1 progress bars and the printed report.
        pool: the model's global pooling (`models.separable.POOLINGS`).
        dense_per_tensor: export the FULLY_CONNECTED weights with one scale
            per tensor (`export_tflite`; the default): what the Arduino
            libraries' 2023 TFLM computes, so the files run on every TFLM and
            `hypertiny export --arduino` takes them with its default library.
            False: one per output channel, for TFLM 2024-09 or newer.
        personalize_wearer: also adapt the codes of the boot file to a new
            synthetic wearer (other beats, sampled at half the rate: 300
            labelled windows adapt, 900 test) and write the patch
            (`wearer_patch`); a few seconds more.

    Returns:
        The report dict (also written to `out_dir/report.json`).
    """
    if int(epochs) < 1 or int(beats) < MIN_QUICKSTART_BEATS:
        raise ValueError(f"the quickstart needs epochs >= 1 and beats >= {MIN_QUICKSTART_BEATS}; got epochs={epochs}, "
                         f"beats={beats}")
    start = time.perf_counter()
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x, y = make_beats(beats, length=WINDOW, seed=seed)
    n_train, n_val = int(0.8 * beats), int(0.1 * beats)
    x_train, y_train = x[:n_train], y[:n_train]
    x_val, y_val = x[n_train : n_train + n_val], y[n_train : n_train + n_val]
    x_test, y_test = x[n_train + n_val :], y[n_train + n_val :]

    keras.utils.set_random_seed(seed)
    model = hypertiny_pw((WINDOW, 1), len(CLASS_NAMES), pool=pool)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        x_train, y_train, batch_size=64, epochs=epochs, validation_data=(x_val, y_val), verbose=verbose
    )
    model.save(out / "model.keras")
    np.savez(out / "test_windows.npz", windows=x_test[:16], labels=y_test[:16])

    exports = {
        mode: export_tflite(model, x_train[:300], out / f"model_{mode}_int8.tflite", synthesis=mode,
                            dense_per_tensor=dense_per_tensor)
        for mode in ("frozen", "boot")
    }
    files = {mode: (out / f"model_{mode}_int8.tflite").read_bytes() for mode in exports}
    tflm = {mode: predict(data, x_test, "tflm") for mode, data in files.items()}
    litert_boot = predict(files["boot"], x_test, "litert")
    step = exports["boot"].verification["output_step"]
    table = byte_table(model)
    report = {
        "seed": seed,
        "epochs": epochs,
        "pool": pool,
        "dense_per_tensor": dense_per_tensor,
        "data": {"source": "hypertiny_keras.data.synthetic.make_beats", "train": n_train, "val": n_val,
                 "test": len(y_test), "window_samples": WINDOW, "fs_hz": 128.0},
        "accuracy": {
            "keras_float": _accuracy(model.predict(x_test, verbose=0), y_test),
            "tflm_int8_frozen": _accuracy(tflm["frozen"], y_test),
            "tflm_int8_boot": _accuracy(tflm["boot"], y_test),
            "litert_int8_boot": _accuracy(litert_boot, y_test),
        },
        "test_set_checks": {
            "boot_tflm_vs_litert_max_steps": float(np.rint(np.abs(tflm["boot"] - litert_boot).max() / step)),
            "boot_tflm_vs_litert_exact_rate": float(np.mean(np.isclose(tflm["boot"], litert_boot))),
            "boot_vs_frozen_tflm_max_steps": float(np.rint(np.abs(tflm["boot"] - tflm["frozen"]).max() / step)),
        },
        "packed_bytes": table.to_dict(),
        "stored_pw_twin_packed_bytes_8bit": byte_table(
            stored_pw_twin((WINDOW, 1), len(CLASS_NAMES))
        ).total[8],
        "exports": {mode: r.to_dict() for mode, r in exports.items()},
        "wall_time_s": None,
    }
    if personalize_wearer:
        report["personalize"] = wearer_patch(model, files["boot"], (x_train[:300], y_train[:300]), out, seed)
    report["wall_time_s"] = time.perf_counter() - start
    atomic_write(out / "report.json", json.dumps(report, indent=2).encode())
    if verbose:
        print(format_report(report, table, exports))
    return report


def wearer_patch(model: keras.Model, boot: bytes, rehearsal: tuple, out: pathlib.Path, seed: int) -> dict:
    """Personalize `model`'s codes to a new synthetic wearer; write `device.key`, `wearer.patch` and the patched file.

    The wearer: 1,200 beats of another seed, sampled at half the rate (each
    second sample repeated: wider beats); the first 300 adapt, the rest test.
    Accuracies are of the int8 files in TFLM.
    """
    xs, ys = make_beats(1200, length=WINDOW, seed=seed + 7)
    xs = np.repeat(xs[:, ::2], 2, axis=1)
    adapt, test = slice(0, 300), slice(300, None)
    tuned = personalize(model, xs[adapt], ys[adapt], trainable="codes", rehearsal=rehearsal, seed=seed)
    mine = codes_file(boot, tuned)
    key = os.urandom(32)
    patch = make_patch(boot, mine, key, counter=1)
    atomic_write(out / "device.key", key, mode=0o600)  # secret: owner-only from its first byte
    atomic_write(out / "wearer.patch", patch)
    atomic_write(out / "model_wearer_int8.tflite", mine)
    accuracy = {name: _accuracy(predict(data, xs[test], "tflm"), ys[test])
                for name, data in (("global", boot), ("personalized", mine))}
    return {"wearer": "make_beats(seed + 7) at half the rate: 300 windows adapt, 900 test",
            "code_values": tuned.values, "patch_bytes": len(patch),
            "byte_split": read_patch(patch, key).byte_split(), "tflm_int8_accuracy": accuracy}


def format_report(report: dict, table, exports) -> str:
    """The quickstart's printed summary."""
    acc, checks = report["accuracy"], report["test_set_checks"]
    frozen, boot = exports["frozen"], exports["boot"]
    roles = [r for r in boot.bytes_by_role if boot.bytes_by_role[r] or frozen.bytes_by_role[r]]
    lines = ["", "== model bytes: packed (Eq. 4/6) ==", str(table), "",
             "== .tflite bytes by role ==", f"{'role':<20}{'frozen':>10}{'boot':>10}"]
    lines += [f"{r:<20}{frozen.bytes_by_role[r]:>10,}{boot.bytes_by_role[r]:>10,}" for r in roles]
    lines += [f"{'file':<20}{frozen.file_bytes:>10,}{boot.file_bytes:>10,}",
              f"{'TFLM arena (host)':<20}{frozen.arena_bytes:>10,}{boot.arena_bytes:>10,}",
              f"{' of it kernels':<20}{frozen.generated_weight_ram_bytes:>10,}{boot.generated_weight_ram_bytes:>10,}",
              "",
              f"== accuracy on {report['data']['test']} synthetic test beats ==",
              f"Keras float {acc['keras_float']:.4f} | TFLM int8 frozen {acc['tflm_int8_frozen']:.4f} | "
              f"TFLM int8 boot {acc['tflm_int8_boot']:.4f} | LiteRT int8 boot {acc['litert_int8_boot']:.4f}",
              "",
              "== TFLM == LiteRT (boot file, test set) ==",
              f"max difference {checks['boot_tflm_vs_litert_max_steps']:.0f} output step(s), "
              f"exact {100 * checks['boot_tflm_vs_litert_exact_rate']:.2f}%; boot vs frozen in TFLM: "
              f"max {checks['boot_vs_frozen_tflm_max_steps']:.0f} step(s)",
              "",
              str(frozen), str(boot)]
    if "personalize" in report:
        p = report["personalize"]
        lines += ["", "== a new wearer, codes only (wearer.patch, device.key) ==",
                  f"{p['code_values']} code values; patch {p['patch_bytes']} bytes ("
                  + ", ".join(f"{k} {v}" for k, v in p["byte_split"].items()) + "); TFLM int8 accuracy on the "
                  f"wearer: global {p['tflm_int8_accuracy']['global']:.4f} -> personalized "
                  f"{p['tflm_int8_accuracy']['personalized']:.4f}"]
    lines.append(f"\nwall time {report['wall_time_s']:.0f} s")
    return "\n".join(lines)
