"""The paper's reported test figures (Shaalan 2026), as references beside our results, and how our data differs.

Every figure here is quoted from the paper; none is an output of this package. The recipes put
`note(key)` into their results README, and `write_index` sets the paper's HyperTinyPW figure
next to ours for every experiment folder under `benchmarks/results/`.
"""
from __future__ import annotations

import dataclasses
import pathlib

from hypertiny_keras.utils.fileio import atomic_write
from hypertiny_research.report import flash_kb, kb, load_results, mean_std


@dataclasses.dataclass(frozen=True)
class Reference:
    """The paper's HyperTinyPW headline on one benchmark and what differs here.

    Attributes:
        metric: `"macro_f1"` or `"accuracy"` (the primary metric of the benchmark).
        value: the paper's HyperTinyPW figure for it (0..1).
        flash_kb: the paper's HyperTinyPW flash, kB.
        reported: the paper's figures for this benchmark, in words.
        ours: how our data, split or input differ from the paper's.
    """

    metric: str
    value: float
    flash_kb: float
    reported: str
    ours: str


REFERENCES = {
    "apnea_ecg": Reference(
        "macro_f1", 0.717, 225.5,
        "HyperTinyPW macro-F1 .717, AUC .832 (acc .739) at 225.5 kB on 18 s raw-ECG windows, 80/10/10 by record; "
        "RegularCNN .752/.842; TinySepCNN .666/.650; ResNet1D .658/.666; TinyVAE .644/.736; HRVFeat .500/.490",
        "RR-interval input (the .dat ECG files are not in ../shared/data) and the official split (x01..x35 "
        "answers as test), so the input and the split differ from the paper's; training is capped at 4,000 "
        "minutes for 6 epochs to fit 2 CPU cores",
    ),
    "mitbih": Reference(
        "macro_f1", 0.567, 225.3,
        "HyperTinyPW macro-F1 .567, AUC .962, accuracy .902 at 225.3 kB on AAMI V-vs-rest with a patient-wise split",
        "windows centred on each beat; the de Chazal folders use the inter-patient DS1/DS2 division, harder "
        "than the paper's patient-wise split (which `mitbih_paper` follows, 80/10/10 by seed); 5 s windows are "
        "resampled to 180 Hz and training is capped (see each folder) to fit 2 CPU cores. The 0.7 s beat "
        "folder is scored beat by beat; the 5 s-window folders median-smooth each score over 5 windows "
        "along the record, as for the other datasets, which erases isolated ectopic beats and caps macro-F1 "
        "near 0.6 for every model (the 0.7 s beat folder, smoothed so until 2026-12-03, had every model at 0.56-0.60)",
    ),
    "ptbxl": Reference(
        "macro_f1", 0.629, 225.5,
        "HyperTinyPW macro-F1 .629, AUC .876 at 225.5 kB on the full PTB-XL, folds 8/1/1; RegularCNN .629/.881; "
        "ResNet1D .623/.877; TinySepCNN .617/.868; TinyVAE .594/.807; HRVFeat .534/.717",
        "the 500-record subset in ../shared/data (488 records with a diagnostic statement; test = fold 10, "
        "64 records), so intervals are wide and the comparison is indicative only",
    ),
    "speech_commands": Reference(
        "accuracy", 0.962, 235.0,
        "HyperTinyPW 96.2% accuracy (234,853 params, <= 235 kB) on the official splits of the full dataset. "
        "For the DS-CNN rows, ARM's DS-CNN-S (MLPerf Tiny) int8 is 54,464 B at 93.35% on the full dataset with "
        "49 x 10 MFCC (frames x coefficients)",
        "only the official test set (3,518 of its clips) is available, split speaker-disjointly 80/10/10, so "
        "models train on about 2,800 clips: far less data. Our DS-CNN (`models.ds_cnn`, 4 blocks of width 64) "
        "reads 101 x 40 MFCC, 8x DS-CNN-S's input through the same stride-2 stem, so its activations (and its "
        "arena) are about 8x DS-CNN-S's",
    ),
}


def note(key: str) -> str:
    """The sentence a results README carries about the paper's figures for benchmark `key`."""
    ref = REFERENCES[key]
    return f"Paper (Shaalan 2026; references, not outputs): {ref.reported}. Here: {ref.ours}."


def _reference_key(folder_name: str) -> str | None:
    matches = [key for key in REFERENCES if folder_name.startswith(key)]
    return max(matches, key=len, default=None)


def _figure(result: dict | None, metric: str, source: str = "float") -> str:
    summary = result["summary"][source].get(metric) if result else None
    return f"{mean_std(summary)} (n={summary['n']})" if summary else "not run"


def _size(result: dict | None) -> str:
    return kb(flash_kb(result)) if result else ""


def write_index(root: str | pathlib.Path) -> pathlib.Path:
    """Write `root/README.md`: per experiment folder, our HyperTinyPW, stored twin and RegularCNN next to the paper.

    Reads the `<model>.json` files of every folder under `root` that holds them.
    """
    root = pathlib.Path(root)
    rows, differences = [], {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        results = {r["model"]: r for r in load_results(folder)}
        key = _reference_key(folder.name)
        if not results or key is None:
            continue
        ref = REFERENCES[key]
        hyper, twin, teacher = (results.get(m) for m in ("hypertiny_pw", "stored_pw_twin", "regular_cnn"))
        dataset = next(iter(results.values()))["dataset"]
        rows.append(
            f"| [{folder.name}]({folder.name}/README.md) | {dataset} | {ref.metric} | "
            f"{ref.value:.3f} at {ref.flash_kb:.1f} kB | {_figure(hyper, ref.metric)} at {_size(hyper)} kB | "
            f"{_figure(hyper, ref.metric, 'int8_tflm')} | {_figure(twin, ref.metric)} at {_size(twin)} kB | "
            f"{_figure(teacher, ref.metric)} at {_size(teacher)} kB |"
        )
        differences[key] = ref.ours
    lines = [
        "# Results: every experiment next to the paper",
        "",
        "Made by `.venv/bin/python benchmarks/results_index.py` from the JSON files of each folder (each "
        "folder's README names the recipe command that produced it). The paper's figures are references "
        "quoted from Shaalan 2026, not outputs of this package. Ours: mean ± std over seeds (n), float "
        "model unless marked int8 (the deployed file run in the host TFLM build).",
        "",
        "On a microcontroller: [device.md](device.md) (`benchmarks/device.py`) runs the quickstart and "
        "MIT-BIH files on an emulated Cortex-M4F: instructions per inference and of the synthesis, boot / "
        "frozen ratio, 32-bit arena, flash; [arduino_libraries.md](arduino_libraries.md) the quickstart on the two "
        "Arduino libraries' TFLM; [device_variants.md](device_variants.md) every parameterization of the Pareto "
        "grid (stored, int4, look-up tables, low rank, generated, int4 init weights) at width 64. Bytes against "
        "accuracy: [pareto/](pareto/README.md); where the bytes of a small file go: "
        "[flatbuffer_overhead.md](flatbuffer_overhead.md).",
        "",
        "| experiment | dataset | metric | paper HyperTinyPW | ours HyperTinyPW | ours HyperTinyPW int8 TFLM "
        "| ours stored-PW twin | ours RegularCNN |",
        "|---|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "## Where ours differ from the paper, and why",
        "",
        *[f"- **{key}**: {text}." for key, text in differences.items()],
        "- **bytes**: our HyperTinyPW (dense heads, d_h = 16) is the largest separable model in every table: "
        "each head stores d_h numbers per kernel value it generates, so it is larger than the stored-PW twin "
        "of the same backbone. The paper's headline compression compares HyperTinyPW with RegularCNN, "
        "which the Table 15 rows of each folder compute too; the twin column shows what generation "
        "itself costs.",
        "",
    ]
    path = root / "README.md"
    atomic_write(path, "\n".join(lines).encode())
    return path
