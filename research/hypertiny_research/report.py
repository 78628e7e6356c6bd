"""Results README of a dataset: tables shaped like the paper's, a Pareto plot and a flash-budget chart.

Reads every `<model>.json` written by `runner.save_model_results` in one
folder and writes `README.md`, `pareto.png` and `budget.png` beside them.
"""
from __future__ import annotations

import json
import pathlib

from matplotlib.figure import Figure

#: Flash budgets of the "best model under budget" chart, in kB.
BUDGETS_KB = (32, 64, 128, 256)
TEACHER = "regular_cnn"


def mean_std(summary: dict) -> str:
    if not summary:
        return "n/a"
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def flash_kb(result: dict) -> float:
    return result["summary"]["flash_bytes"]["mean"] / 1000


def kb(value: float) -> str:
    """kB with one decimal, two below 1 kB (HRVFeatNet)."""
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def _primary(result: dict, source: str = "float") -> dict:
    metrics = result["summary"][source]
    return metrics.get("macro_f1") or metrics.get("accuracy") or {}


def load_results(folder: str | pathlib.Path) -> list[dict]:
    """Every model result JSON in `folder`, sorted by flash size."""
    results = [json.loads(p.read_text()) for p in sorted(pathlib.Path(folder).glob("*.json"))]
    # Model results only (a dict summary with flash bytes); other JSON, e.g. a Pareto front, is skipped.
    results = [r for r in results if isinstance(r.get("summary"), dict) and r["summary"].get("flash_bytes")]
    return sorted(results, key=flash_kb)


def _main_table(results: list[dict]) -> list[str]:
    lines = [
        "| model | flash kB (packed) | .tflite bytes | TFLM arena (host) | macro-F1 float | macro-F1 int8 TFLM "
        "| AUC float | accuracy float | seeds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r["summary"]
        lines.append(
            f"| {r['model']} | {kb(flash_kb(r))} | {s['tflite_bytes'].get('mean', 0):,.0f} | "
            f"{s['arena_bytes'].get('mean', 0):,.0f} | {mean_std(_primary(r))} | "
            f"{mean_std(_primary(r, 'int8_tflm'))} | {mean_std(s['float'].get('roc_auc', {}))} | "
            f"{mean_std(s['float'].get('accuracy', {}))} | {len(r['seeds'])} |"
        )
    return lines


def _compression_table(results: list[dict]) -> list[str]:
    teacher = next((r for r in results if r["model"] == TEACHER), None)
    if teacher is None or not _primary(teacher):
        return ["(no RegularCNN result: compression vs the teacher not computed)"]
    f1_teacher, kb_teacher = _primary(teacher)["mean"], flash_kb(teacher)
    lines = ["| model | compression vs RegularCNN | bytes saved | macro-F1 retention |", "|---|---:|---:|---:|"]
    for r in results:
        if r["model"] == TEACHER or not _primary(r):
            continue
        kb = flash_kb(r)
        lines.append(
            f"| {r['model']} | {kb_teacher / kb:.2f}x | {100 * (1 - kb / kb_teacher):.1f}% | "
            f"{100 * _primary(r)['mean'] / f1_teacher:.1f}% |"
        )
    return lines


#: Ablation pairs: (label, model, baseline model).
ABLATIONS = (
    ("KD on (vs off)", "hypertiny_pw_kd", "hypertiny_pw"),
    ("d_z/d_h 4/12 (vs 6/16)", "hypertiny_pw_small_code", "hypertiny_pw"),
    ("factorized heads (vs dense)", "hypertiny_pw_factorized", "hypertiny_pw"),
    ("stored PW twin (vs generated)", "stored_pw_twin", "hypertiny_pw"),
    ("GroupNorm(1) (vs BatchNorm)", "hypertiny_pw_groupnorm", "hypertiny_pw"),
)


def _ablation_tables(results: list[dict]) -> list[str]:
    by_name = {r["model"]: r for r in results}
    lines = ["| ablation | macro-F1 | baseline macro-F1 | flash kB | baseline flash kB |", "|---|---:|---:|---:|---:|"]
    for label, name, base in ABLATIONS:
        if name in by_name and base in by_name:
            a, b = by_name[name], by_name[base]
            lines.append(f"| {label} | {mean_std(_primary(a))} | {mean_std(_primary(b))} | "
                         f"{flash_kb(a):.1f} | {flash_kb(b):.1f} |")
    lines += ["", "Post-training packing of generator, heads and codes (no QAT):", "",
              "| model | bits | macro-F1 | packed kB |", "|---|---:|---:|---:|"]
    for r in results:
        for bits, summary in r["summary"].get("packed_macro_f1", {}).items():
            if summary:
                packed_kb = r["runs"][0]["packed"][bits]["bytes"] / 1000
                lines.append(f"| {r['model']} | {bits} | {mean_std(summary)} | {packed_kb:.1f} |")
    return lines


def _pareto_plot(results: list[dict], path: pathlib.Path, title: str) -> None:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    same_size = {}  # models of equal flash (e.g. with and without KD) get their labels stacked
    for r in results:
        primary = _primary(r)
        if not primary:
            continue
        ax.errorbar(flash_kb(r), primary["mean"], yerr=primary["std"], fmt="o", capsize=3)
        size = round(flash_kb(r), 1)
        stacked = same_size[size] = same_size.get(size, -1) + 1
        ax.annotate(r["model"], (flash_kb(r), primary["mean"]), fontsize=7, xytext=(4, 4 - 9 * stacked),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("flash, kB (packed, Eq. 6; ternary at 2 bits)")
    ax.set_ylabel("macro-F1 (float, mean ± std over seeds)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _budget_plot(results: list[dict], path: pathlib.Path, title: str) -> list[str]:
    best = []
    for budget in BUDGETS_KB:
        fitting = [r for r in results if flash_kb(r) <= budget and _primary(r)]
        winner = max(fitting, key=lambda r: _primary(r)["mean"], default=None)
        best.append((budget, winner))
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    labels = [f"{b} kB" for b, _ in best]
    values = [_primary(w)["mean"] if w else 0 for _, w in best]
    bars = ax.bar(labels, values, color="tab:blue")
    for bar, (_, winner) in zip(bars, best):
        ax.annotate(winner["model"] if winner else "none fits", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("best macro-F1 (float)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return [f"| {b} kB | {w['model'] if w else 'none fits'} | {mean_std(_primary(w)) if w else ''} |" for b, w in best]


def _wall_time(results: list[dict]) -> str:
    runs = [run for r in results for run in r["runs"]]
    total = sum(run["wall_seconds"] for run in runs)
    return (f"Wall time: {total / 60:.1f} min over {len(runs)} run(s) (the sum of each run's training, "
            "evaluation, export and TFLM time, on a 2-core machine).")


def write_report(folder: str | pathlib.Path, dataset: str, notes: str = "") -> pathlib.Path:
    """Write `README.md`, `pareto.png` and `budget.png` for the results in `folder`."""
    folder = pathlib.Path(folder)
    results = load_results(folder)
    if not results:
        raise ValueError(f"no model results in {folder}")
    _pareto_plot(results, folder / "pareto.png", f"{dataset}: macro-F1 vs flash")
    budget_rows = _budget_plot(results, folder / "budget.png", f"{dataset}: best model under a flash budget")
    commands = sorted({r["command"] for r in results})
    lines = [
        f"# {dataset}: results",
        "",
        "Produced by:",
        "",
        *[f"    {c}" for c in commands],
        "",
        notes,
        "",
        _wall_time(results),
        "",
        "## Models (Tables 1, 6-7 of the paper)",
        "",
        *_main_table(results),
        "",
        "Flash is Eq. 6 packed bytes of the Keras model at 8-bit weights (2-bit kernels for the ternary model; "
        "biases 32-bit); `.tflite` bytes "
        "and the arena are of the deployed file (boot for HyperTinyPW, frozen otherwise); the arena is "
        "the 64-bit host TFLM figure. Metrics: mean ± std over seeds; each run's 95% cluster-bootstrap "
        "intervals are in the JSON files.",
        "",
        "## Compression vs RegularCNN (Table 15)",
        "",
        *_compression_table(results),
        "",
        "## Ablations",
        "",
        *_ablation_tables(results),
        "",
        "## Best model under a flash budget",
        "",
        "| budget | model | macro-F1 |",
        "|---|---|---:|",
        *budget_rows,
        "",
        "![Pareto](pareto.png) ![budget](budget.png)",
        "",
    ]
    path = folder / "README.md"
    path.write_text("\n".join(lines))
    return path
