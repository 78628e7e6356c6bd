"""The model suite of the recipes, by name, and the loop that runs it over seeds."""
from __future__ import annotations

import pathlib
from collections.abc import Callable

import keras
import numpy as np
from tqdm.auto import tqdm

from hypertiny_keras.data.windows import Windows
from hypertiny_keras.models import ds_cnn, hypertiny_pw, stored_pw_twin
from hypertiny_keras.sweeps.runner import ModelSpec, RunSettings, run_model, save_model_results
from hypertiny_research.baselines import (
    hrv_featnet,
    normalized_hrv_head,
    regular_cnn,
    resnet1d_small,
    tiny_separable_cnn,
)
from hypertiny_research.report import TEACHER, write_report
from hypertiny_research.ternary import ternary_separable_cnn
from hypertiny_research.vae import tiny_vae_head

#: Widths of the separable backbone shared by HyperTinyPW and its stored twin in the recipes.
WIDTHS = (32, 64, 64, 96)


def _hrv_deploy(model: keras.Model):
    """The int8 part of HRVFeatNet and the float normalization the device applies to the features first."""
    normalize = model.get_layer("features")
    return normalized_hrv_head(model), lambda x: keras.ops.convert_to_numpy(normalize(x))


def model_specs(hrv_inputs: Callable[[Windows], np.ndarray] | None = None) -> dict[str, ModelSpec]:
    """Every model a recipe can run, by name.

    `hrv_inputs(windows) -> (N, 16)` gives HRVFeatNet its HRV features (`features.hrv_features`
    of ECG windows, `hrv_features_from_rr` of RR series); a recipe without it cannot run HRVFeatNet.
    """
    return {
        "hypertiny_pw": ModelSpec(
            "hypertiny_pw",
            lambda shape, classes: hypertiny_pw(shape, classes, widths=WIDTHS, code_dim=6, hidden_dim=16),
            "HyperTinyPW: PW1 stored, PW2..PW4 generated (dense heads, d_z 6, d_h 16)",
        ),
        "hypertiny_pw_factorized": ModelSpec(
            "hypertiny_pw_factorized",
            lambda shape, classes: hypertiny_pw(
                shape, classes, widths=WIDTHS, code_dim=6, hidden_dim=16, head="factorized", rank=4
            ),
            "HyperTinyPW with factorized heads A_l B (rank 4)",
        ),
        "hypertiny_pw_small_code": ModelSpec(
            "hypertiny_pw_small_code",
            lambda shape, classes: hypertiny_pw(shape, classes, widths=WIDTHS, code_dim=4, hidden_dim=12),
            "ablation: d_z 4, d_h 12",
        ),
        "hypertiny_pw_groupnorm": ModelSpec(
            "hypertiny_pw_groupnorm",
            lambda shape, classes: hypertiny_pw(
                shape, classes, widths=WIDTHS, code_dim=6, hidden_dim=16, norm="group", name="hypertiny_pw_groupnorm"
            ),
            "ablation: GroupNorm(1) as the paper trains, instead of BatchNorm folded at export",
        ),
        "hypertiny_pw_kd": ModelSpec(
            "hypertiny_pw_kd",
            lambda shape, classes: hypertiny_pw(shape, classes, widths=WIDTHS, code_dim=6, hidden_dim=16),
            "HyperTinyPW distilled from RegularCNN (CE 0.3 + KD 0.7 at T = 2, as in the paper)",
            loss={"ce": 0.3, "kd": 0.7, "temperature": 2.0},
        ),
        TEACHER: ModelSpec(TEACHER, regular_cnn, "RegularCNN teacher: Conv1D 64/128/256/512/512, Dense 256"),
        "resnet1d_small": ModelSpec("resnet1d_small", resnet1d_small, "ResNet1DSmall (about 62 kB)"),
        "tiny_separable_cnn": ModelSpec("tiny_separable_cnn", tiny_separable_cnn, "TinySeparableCNN (about 14 kB)"),
        "tiny_vae_head": ModelSpec("tiny_vae_head", tiny_vae_head, "TinyVAEHead, latent mean at inference"),
        "ternary_separable_cnn": ModelSpec(
            "ternary_separable_cnn", ternary_separable_cnn, "TWN ternary separable CNN, 2-bit kernels"
        ),
        "hrv_featnet": ModelSpec(
            "hrv_featnet",
            lambda shape, classes: hrv_featnet(classes),
            "HRVFeatNet: 16 HRV features from R peaks -> linear (normalization in float on the device)",
            inputs=hrv_inputs,
            deploy=_hrv_deploy,
        ),
        "ds_cnn": ModelSpec(
            "ds_cnn",
            lambda shape, classes: ds_cnn(shape, classes, width=64, blocks=4, generated=False),
            "MLPerf Tiny DS-CNN (2-D over frames x coefficients, width 64, 4 blocks), every 1x1 stored",
        ),
        "ds_cnn_hypertiny": ModelSpec(
            "ds_cnn_hypertiny",
            lambda shape, classes: ds_cnn(shape, classes, width=64, blocks=4, generated=True, code_dim=6),
            "the DS-CNN with PW2..PW4 generated (dense heads, d_z 6, d_h 16)",
        ),
        "stored_pw_twin": ModelSpec(
            "stored_pw_twin",
            lambda shape, classes: stored_pw_twin(shape, classes, widths=WIDTHS),
            "the same backbone with every PW layer stored (ablation)",
        ),
    }


def subsample(windows: Windows, per_split: dict[str, int], seed: int) -> Windows:
    """At most `per_split[split]` random windows of each split (kept in temporal order)."""
    rng = np.random.default_rng(seed)
    keep = []
    for split, limit in per_split.items():
        idx = np.flatnonzero(windows.split == split)
        if len(idx) > limit:
            idx = np.sort(rng.choice(idx, limit, replace=False))
        keep.append(idx)
    return windows.take(np.concatenate(keep))


def _run_line(result: dict) -> str:
    metrics = result["float"]["metrics"]
    name = "macro_f1" if "macro_f1" in metrics else "accuracy"
    return (f"{result['model']} seed {result['seed']}: {name} {metrics[name]['value']:.3f} (float), "
            f"{result['flash_bytes']:,} B packed, {result['wall_seconds']:.0f} s")


def suite_run(windows: Windows, settings: RunSettings, export_dir, hrv_inputs, name: str, seed: int,
              teacher: str | None, keep_model: bool) -> dict:
    """One (model, seed) of the suite, an `execution.run_tasks` task: `{"result": run_model's JSON}`.

    `teacher` is the seed's trained teacher as a base64 `.keras` file (for KD and feature-matching
    models); `keep_model` adds this run's trained model the same way (`"model"`), for the teacher.
    """
    import base64
    import tempfile

    specs = model_specs(hrv_inputs)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "model.keras"
        teacher_model = None
        if teacher is not None:
            path.write_bytes(base64.b64decode(teacher))
            teacher_model = keras.saving.load_model(path)
        result, trained = run_model(specs[name], windows, seed, settings, export_dir, teacher_model)
        out = {"result": result}
        if keep_model:
            trained.save(path)
            out["model"] = base64.b64encode(path.read_bytes()).decode()
    return out


def run_suite(
    dataset: str,
    windows: Windows,
    models: list[str],
    seeds: list[int],
    settings: RunSettings,
    out_dir: str | pathlib.Path,
    command: str,
    notes: str = "",
    export_dir: str | pathlib.Path | None = None,
    hrv_inputs: Callable[[Windows], np.ndarray] | None = None,
    workers: int | None = None,
    address: str | None = None,
) -> pathlib.Path:
    """Run every model over every seed, write `<out_dir>/<model>.json` and the results README.

    Every (model, seed) is one `execution.run_tasks` task: in this process (the default), on a
    local Ray with `workers` CPUs, or on the Ray cluster at `address`; the teacher of distilled
    models runs first (with the models that need none), the distilled ones after it. Finished runs
    are journaled in `<out_dir>/suite.runs.jsonl`: the same command re-run computes only the rest. A run
    that fails is printed and left out of its model's JSON. The exported `.tflite` files are kept
    in `export_dir` when it is given (a shared path on a cluster); `hrv_inputs` as in `model_specs`.
    """
    import dataclasses

    from hypertiny_keras.execution import Journal, digest, run_tasks

    specs = model_specs(hrv_inputs)
    unknown = sorted(set(models) - set(specs))
    if unknown:
        raise ValueError(f"unknown models {unknown}; known: {sorted(specs)}")
    if "hrv_featnet" in models and hrv_inputs is None:
        raise ValueError("hrv_featnet needs HRV features, and this recipe gives none (its input is not ECG or RR)")
    out_dir = pathlib.Path(out_dir)
    chosen = [specs[name] for name in models]
    distilled = [spec.name for spec in chosen if spec.needs_teacher]
    first = ([TEACHER] if distilled else []) + [spec.name for spec in chosen
                                                if spec.name != TEACHER and not spec.needs_teacher]
    journal = Journal(out_dir / "suite.runs.jsonl", {
        "dataset": dataset, "settings": dataclasses.asdict(settings), "export_dir": str(export_dir),
        "windows": digest(windows.x, windows.y, windows.split, windows.record, windows.patient, windows.order,
                          list(windows.class_names))})
    shared = (windows, settings, export_dir, hrv_inputs)
    scale = {"workers": workers, "address": address, "journal": journal, "desc": dataset}
    outcomes = run_tasks(suite_run, {f"{name} seed{seed}": (name, seed, None, name == TEACHER and bool(distilled))
                                     for name in first for seed in seeds}, shared, **scale)
    teachers = {seed: outcomes[f"{TEACHER} seed{seed}"].get("result", {}).get("model") for seed in seeds
                if distilled}
    outcomes.update(run_tasks(suite_run, {f"{name} seed{seed}": (name, seed, teachers[seed], False)
                                          for name in distilled for seed in seeds if teachers[seed]}, shared,
                              **scale))
    for name in first + distilled:
        runs = []
        for seed in seeds:
            outcome = outcomes.get(f"{name} seed{seed}", {"status": "failed", "error": "its teacher failed"})
            if outcome["status"] == "done":
                runs.append(outcome["result"]["result"])
                tqdm.write(_run_line(runs[-1]))
            else:
                tqdm.write(f"{name} seed {seed}: failed: {outcome['error']}")
        if runs:
            save_model_results(out_dir / f"{name}.json", dataset, command, runs)
    return write_report(out_dir, dataset, notes)
