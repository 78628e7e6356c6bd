"""Quickstart figures: bytes by role, arena, accuracy and host invoke-time ratio of the frozen and boot files.

Runs `hypertiny_keras.cli.quickstart.run_quickstart` with its defaults
(per-tensor FULLY_CONNECTED weight scales, what every TFLM runs) and once more
with per-channel ones (`dense_per_tensor=False`, TFLM 2024-09 or newer), and
writes `benchmarks/results/quickstart.{json,md,png}`; the tables are the
default's, the per-channel run gives what that choice buys.

    .venv/bin/python benchmarks/quickstart.py [--keep DIR]

`--keep DIR` keeps the default run's files in DIR (DIR/per_channel the other's).
"""
from __future__ import annotations

import json
import pathlib
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hypertiny_keras.cli.quickstart import run_quickstart  # noqa: E402
from hypertiny_keras.device.runtime import invoke_ratio, io_quantization  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
COMMAND = ".venv/bin/python benchmarks/quickstart.py"


def _markdown(report: dict) -> str:
    frozen, boot = report["exports"]["frozen"], report["exports"]["boot"]
    ratio = report["host_invoke_ratio"]
    roles = [r for r in boot["bytes_by_role"] if boot["bytes_by_role"][r] or frozen["bytes_by_role"][r]]
    lines = [
        "# Quickstart model: frozen vs boot",
        "",
        f"Command: `{COMMAND}` (seed {report['seed']}, {report['epochs']} epochs, synthetic ECG beats "
        f"from `hypertiny_keras.data.synthetic`, {report['data']['test']} test windows). "
        "Arena figures come from the 64-bit host build of TFLM (`tflite-micro` wheel); a 32-bit MCU needs less. "
        "Device figures (instructions, 32-bit arena): `arduino_libraries.md` for these per-tensor files, "
        "`device.md` for the per-channel ones (`--dense-per-channel`).",
        "",
        "| bytes | frozen | boot |",
        "|---|---:|---:|",
    ]
    lines += [f"| {r} | {frozen['bytes_by_role'][r]:,} | {boot['bytes_by_role'][r]:,} |" for r in roles]
    lines += [
        f"| **file** | **{frozen['file_bytes']:,}** | **{boot['file_bytes']:,}** |",
        f"| TFLM arena (host) | {frozen['arena_bytes']:,} | {boot['arena_bytes']:,} |",
        f"| of which generated kernels | {frozen['generated_weight_ram_bytes']:,} | "
        f"{boot['generated_weight_ram_bytes']:,} |",
        "",
        f"Host TFLM invoke time, boot / frozen: {ratio['median']:.3f} (min {ratio['min']:.3f}, max {ratio['max']:.3f} "
        f"over {ratio['rounds']} interleaved rounds; "
        f"medians {ratio['model_us']:.0f} / {ratio['reference_us']:.0f} us). "
        "A host figure; the emulated Cortex-M4's instruction counts are in device.md.",
        "",
        f"Quickstart wall time (training, two exports with verification, TFLM/LiteRT test runs): "
        f"{report['wall_time_s']:.0f} s, after TensorFlow's import.",
        "",
        "| accuracy (test) | per-tensor FC scales (default) | per-channel FC scales |",
        "|---|---:|---:|",
    ]
    other = report.get("per_channel", {})
    lines += [f"| {k} | {v:.4f} | {other.get('accuracy', {}).get(k, float('nan')):.4f} |"
              for k, v in report["accuracy"].items()]
    if other:
        lines += [
            "",
            f"Per-channel FULLY_CONNECTED weight scales (`--dense-per-channel`, the converter's choice; TFLM "
            "2024-09 or newer, not the Arduino libraries' 2023 snapshots): files of "
            f"{other['file_bytes']['frozen']:,} / "
            f"{other['file_bytes']['boot']:,} B (frozen / boot) against {frozen['file_bytes']:,} / "
            f"{boot['file_bytes']:,} B, same seed and training.",
        ]
    checks = report["test_set_checks"]
    packed = report["packed_bytes"]
    lines += [
        "",
        f"Boot vs frozen in TFLM on the test set: max {checks['boot_vs_frozen_tflm_max_steps']:.0f} output steps; "
        f"boot in TFLM vs LiteRT (reference kernels): max {checks['boot_tflm_vs_litert_max_steps']:.0f} steps, "
        f"{100 * checks['boot_tflm_vs_litert_exact_rate']:.2f}% identical.",
        "",
        f"Packed bytes (Eq. 6, 8-bit weights, 32-bit biases): {packed['total']['8']:,} with generated PW layers, "
        f"{packed['stored_twin']['8']:,} for the same model with stored PW kernels: generation "
        f"{'saves' if packed['saved']['8'] > 0 else 'costs'} {abs(packed['saved']['8']):,} bytes "
        "(dense heads hold d_h values per kernel value).",
    ]
    return "\n".join(lines) + "\n"


def _plot(report: dict, path: pathlib.Path) -> None:
    frozen, boot = report["exports"]["frozen"], report["exports"]["boot"]
    roles = [r for r in boot["bytes_by_role"] if boot["bytes_by_role"][r] or frozen["bytes_by_role"][r]]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    left = {"frozen": 0, "boot": 0}
    colors = plt.cm.tab10.colors
    for i, role in enumerate(roles):
        for name, export in (("frozen", frozen), ("boot", boot)):
            value = export["bytes_by_role"][role]
            ax.barh(name, value, left=left[name], color=colors[i % 10], label=role if name == "boot" else None)
            left[name] += value
    ax.set_xlabel("bytes in the .tflite file")
    ax.set_title("Quickstart model: where the bytes are")
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    keep = sys.argv[sys.argv.index("--keep") + 1] if "--keep" in sys.argv else None
    with tempfile.TemporaryDirectory() as scratch:
        out = keep or scratch
        report = run_quickstart(out, verbose=0)
        per_channel = run_quickstart(str(pathlib.Path(out) / "per_channel"), verbose=0, dense_per_tensor=False)
        report["per_channel"] = {
            "accuracy": per_channel["accuracy"],
            "file_bytes": {m: e["file_bytes"] for m, e in per_channel["exports"].items()},
        }
        with np.load(pathlib.Path(out) / "test_windows.npz") as saved:
            windows = saved["windows"]
        files = [pathlib.Path(out) / f"model_{m}_int8.tflite" for m in ("boot", "frozen")]
        report["host_invoke_ratio"] = invoke_ratio(*files, io_quantization(files[0].read_bytes())[0].quantize(windows))
    report["command"] = COMMAND
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quickstart.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "quickstart.md").write_text(_markdown(report))
    _plot(report, RESULTS / "quickstart.png")
    sys.stdout.write(_markdown(report))


if __name__ == "__main__":
    main()
