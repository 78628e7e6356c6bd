"""Accuracy against the real `.tflite` bytes, over widths x pointwise parameterizations: the Pareto front.

`pareto(windows, ...)` trains every (variant, width, seed) of a grid on the
same separable 1-D backbone (`models.hypertiny_pw` / `stored_pw_twin`,
every block the same width), exports each to int8 (`export_tflite`: the
deployed file is the boot file for generated variants, the frozen file for
stored ones, both verified), scores the deployed file in TFLM on the test
split, and marks the variants on the front of bytes against the metric.
The figures are the written file's bytes (after the flatbuffer diet when
the export applies it), its host TFLM arena and the generated kernels it
keeps in RAM: what a user would flash, not a packed-byte estimate.

A variant `<name>+int4` / `<name>+lut4` is `<name>`'s own deployed file
re-written by a weight codec (`tflite.weight_codecs`): the peers int4 and
look-up tables, trained once with their base, scored again in TFLM.

    import hypertiny_keras as ht
    result = ht.pareto(windows, widths=(16, 32), variants=("stored", "lowrank"), seeds=(0, 1))
    ht.plot_pareto(result, "pareto.png")
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import tempfile
from collections.abc import Callable, Sequence
from typing import TextIO

import numpy as np


def _stored(input_shape, classes, widths, rank):
    from hypertiny_keras.models import stored_pw_twin

    return stored_pw_twin(input_shape, classes, widths=widths)


def _lowrank_stored(input_shape, classes, widths, rank):
    from hypertiny_keras.models import stored_pw_twin

    return stored_pw_twin(input_shape, classes, widths=widths, pw_rank=rank)


def _generated(head: str, head_rank: Callable[[int], int | None] = lambda rank: rank, **options):
    def build(input_shape, classes, widths, rank):
        from hypertiny_keras.models import hypertiny_pw

        return hypertiny_pw(input_shape, classes, widths=widths, head=head, rank=head_rank(rank), **options)

    return build


#: The cross-layer forms' generator: d_h = 2 (a bank of two left factors per shape, fewer than the three
#: generated layers of the default depth), linear so that no code's hidden vector is switched off.
_SMALL_GENERATOR = {"hidden_dim": 2, "generator_activation": "linear"}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One pointwise parameterization of the grid.

    Attributes:
        description: one line for tables.
        build: `build(input_shape, classes, widths, rank) -> keras.Model`.
        codec: a `tflite.weight_codecs` name applied to the deployed int8
            file of `trains` (the same trained model, so the pair differs only
            by the codec), or None.
        trains: the variant whose trained model and file this one uses
            (itself unless it is a codec of another).
        export_options: passed to the boot export (`export_tflite`), e.g.
            `{"init_weight_bits": 4}`.
    """

    description: str
    build: Callable
    codec: str | None = None
    trains: str | None = None
    export_options: dict = dataclasses.field(default_factory=dict)


#: Variant name -> `Variant`. Stored variants deploy the frozen file, generated ones the boot file;
#: `<variant>+<codec>` is that variant's deployed file re-written by a weight codec (see `_with_codecs`).
VARIANTS: dict[str, Variant] = {
    "stored": Variant("every 1x1 kernel stored int8 (the twin)", _stored),
    "lowrank_stored": Variant("PW2..PWL as two stored 1x1 convolutions C_in -> r -> C_out", _lowrank_stored),
    "lowrank": Variant("PW2..PWL generated at boot from rank-r factors U V", _generated("lowrank")),
    "kronecker": Variant("PW2..PWL generated at boot from r Kronecker factor pairs", _generated("kronecker")),
    "lowrank_shared": Variant("lowrank, cross-layer: U_l mixed by g(z_l) (d_h = 2) from a bank, V shared",
                              _generated("lowrank_shared", **_SMALL_GENERATOR)),
    "kronecker_shared": Variant("kronecker, cross-layer: A_l mixed by g(z_l) (d_h = 2) from a bank, B shared",
                                _generated("kronecker_shared", **_SMALL_GENERATOR)),
    "dense": Variant("the paper's dense heads (d_h = 16)", _generated("dense", lambda rank: None)),
    "factorized": Variant("the paper's factorized heads (basis rank 4)", _generated("factorized", lambda rank: 4)),
}
#: `<name>_w4`: the generated variant with its init subgraph's FULLY_CONNECTED weights packed int4
#: (`export_tflite(init_weight_bits=4)`: heads still solved exactly, factors what int4 gives).
VARIANTS.update({
    f"{name}_w4": Variant(f"{VARIANTS[name].description}; init-subgraph weights packed int4", VARIANTS[name].build,
                          export_options={"init_weight_bits": 4})
    for name in ("lowrank", "kronecker", "dense", "factorized")
})

#: What each codec does to a deployed file, for the variant descriptions.
CODEC_DESCRIPTIONS = {
    "int4": "every FULLY_CONNECTED/CONV_2D/DEPTHWISE_CONV_2D weight tensor int4 (per channel; FULLY_CONNECTED per "
            "tensor), packed; in a boot file this includes the init subgraph's factors and heads",
    "lut4": "weights with > 32 values per channel as 4-bit look-up tables (tflite_micro.compression, DECODE)",
}


def _with_codecs(variants: dict[str, Variant]) -> dict[str, Variant]:
    """`variants` and, for each and each codec, `<name>+<codec>` trained as `<name>` and re-written by the codec."""
    coded = {
        f"{name}+{codec}": Variant(f"{variant.description}; {text}", variant.build, codec=codec, trains=name)
        for name, variant in variants.items()
        for codec, text in CODEC_DESCRIPTIONS.items()
    }
    return {**variants, **coded}


VARIANTS = _with_codecs(VARIANTS)


def _trains(name: str) -> str:
    return VARIANTS[name].trains or name


@dataclasses.dataclass(frozen=True)
class ParetoSettings:
    """The grid's shared settings.

    Attributes:
        depth: pointwise layers (blocks) of the backbone, all `width` wide.
        rank: r of `lowrank`, `lowrank_stored` and `kronecker`.
        epochs, batch_size, patience: training (early stopping on validation macro-F1).
        smoothing: median-smoothing length in windows of binary tasks (1 = none).
        bootstrap: cluster-bootstrap resamples of each metric.
    """

    depth: int = 4
    rank: int = 2
    epochs: int = 6
    batch_size: int = 64
    patience: int | None = 3
    smoothing: int = 1
    bootstrap: int = 50


def _metric_name(windows) -> str:
    return "macro_f1" if len(windows.class_names) == 2 else "accuracy"


def pareto(
    windows,
    widths: Sequence[int] = (16, 32, 64),
    variants: Sequence[str] = ("stored", "lowrank_stored", "lowrank", "kronecker"),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    settings: ParetoSettings = ParetoSettings(),
    progress: bool | TextIO = True,
    workers: int | None = None,
    address: str | None = None,
    journal: str | pathlib.Path | None = None,
    retries: int = 2,
) -> dict:
    """Train, export and score every (variant, width, seed); return the points and the front.

    Every (trained variant, width, seed) is one task of `execution.run_tasks`:
    in this process one after another (the default), on this machine's cores
    (`workers=N`, a local Ray) or on a Ray cluster (`address=`). Each task
    seeds itself, so the points do not depend on where they ran (timings aside).

    Args:
        windows: a `data.Windows` with train/val/test splits (e.g. `load_mitbih`).
        widths: block widths to sweep (every pointwise layer of a model has it).
        variants: names of `VARIANTS`.
        seeds: training seeds of each (variant, width).
        settings: the grid's shared `ParetoSettings`.
        progress: a progress bar over the runs (on stderr, or on this stream).
        workers: run the grid on a local Ray with this many CPUs (one per run).
        address: run the grid on this Ray cluster (`"auto"`, `"host:6379"`, `"ray://host:10001"`).
        journal: a `.jsonl` file each finished run is written to as it arrives; a
            sweep re-run with it computes only the runs it does not hold (the grid
            may grow: new seeds, widths or variants are the only runs made).
        retries: re-runs of a run whose Ray worker died (killed, out of memory).

    Returns:
        JSON-ready `{"metric", "settings", "points", "summary", "frontier"}`:
        `points` one per run (variant, width, seed, `file_bytes` of the
        deployed `.tflite`, `arena_bytes` (64-bit host TFLM), `ram_bytes`
        (the arena: TFLM allocates the generated kernels, `generated_ram_bytes`,
        inside it, so they are not added again), the int8 TFLM test metric, or `error`
        when the export refused the model or the run failed); `summary` one per (variant,
        width) with the metric's mean and sd over seeds and the mean bytes;
        `frontier` the summary rows no other row beats on both bytes (fewer)
        and mean metric (higher).

    Raises:
        ValueError: for an unknown variant, an empty grid, a width < 1, or a
            journal written for other settings or windows.
    """
    from hypertiny_keras.execution import Journal, digest, run_tasks

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    if not widths or not variants or not seeds:
        raise ValueError("widths, variants and seeds must each name at least one value")
    if min(widths) < 1:
        raise ValueError(f"widths must be >= 1, got {list(widths)}")
    metric = _metric_name(windows)
    trained = list(dict.fromkeys(_trains(v) for v in variants))
    tasks = {}
    for base in trained:
        mine = tuple(v for v in variants if _trains(v) == base)
        for width in widths:
            for seed in seeds:
                tasks[f"{'+'.join(mine)} w{width} seed{seed}"] = (mine, width, seed)
    if journal is not None:
        journal = Journal(journal, {"pareto": dataclasses.asdict(settings), "windows": digest(
            windows.x, windows.y, windows.split, windows.record, windows.patient, windows.order,
            list(windows.class_names))})
    outcomes = run_tasks(pareto_run, tasks, (windows, settings), workers=workers, address=address, journal=journal,
                         retries=retries, progress=progress, desc="pareto runs")
    points = []
    for key, (mine, width, seed) in tasks.items():
        outcome = outcomes[key]
        if outcome["status"] == "done":
            points += outcome["result"]
        else:
            points += [{"variant": v, "width": width, "seed": seed, "error": f"run failed: {outcome['error']}"}
                       for v in mine]
    points.sort(key=lambda p: (list(variants).index(p["variant"]), p["width"], p["seed"]))
    summary = _summarize(points)
    return {
        "metric": metric,
        "settings": dataclasses.asdict(settings),
        "widths": list(widths),
        "variants": {v: VARIANTS[v].description for v in variants},
        "seeds": list(seeds),
        "points": points,
        "summary": summary,
        "frontier": frontier(summary),
    }


def pareto_run(windows, settings: ParetoSettings, variants: Sequence[str], width: int, seed: int) -> list[dict]:
    """One task of `pareto`: train `variants`' shared base at `width` with `seed`; one point per variant.

    `variants` all train the same model (a variant and its `+codec` files).
    Seeds Keras, NumPy and Python itself (through `run_model`), so the points
    are the same in any process.
    """
    from hypertiny_keras.sweeps.runner import ModelSpec, RunSettings, run_model

    base = _trains(variants[0])
    metric = _metric_name(windows)
    run_settings = RunSettings(
        epochs=settings.epochs, batch_size=settings.batch_size, patience=settings.patience,
        kernel=settings.smoothing, bootstrap=settings.bootstrap, packed_bits=(),
    )
    builder = VARIANTS[base].build
    block_widths = (width,) * settings.depth
    spec = ModelSpec(
        f"{base}_w{width}",
        lambda shape, classes: builder(shape, classes, block_widths, settings.rank),
        export_options=VARIANTS[base].export_options,
    )
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        result, _ = run_model(spec, windows, seed, run_settings, export_dir=tmp)
        for variant in variants:
            point = _point(result, variant, width, seed, metric)
            codec = VARIANTS[variant].codec
            if codec is not None and "error" not in point:
                deployed = pathlib.Path(tmp) / f"{spec.name}_seed{seed}_{point['deployed']}.tflite"
                point = _codec_point(point, codec, deployed, windows, run_settings, seed, metric)
            points.append(point)
    return points


def merge(result: dict, update: dict) -> dict:
    """`result` with the points of `update`'s grid (its variants x its widths) replaced by `update`'s.

    For adding or re-running variants or widths of a front without
    re-running the rest; summary and front are recomputed. Both must have
    the same metric, seeds and settings.

    Raises:
        ValueError: when the metric, seeds or settings differ.
    """
    for key in ("metric", "seeds", "settings"):
        if result[key] != update[key]:
            raise ValueError(f"cannot merge fronts with different {key}: {result[key]!r} vs {update[key]!r}")
    replaced = {(v, w) for v in update["variants"] for w in update["widths"]}
    variants = {**result["variants"], **update["variants"]}
    order = list(variants)
    points = [p for p in result["points"] if (p["variant"], p["width"]) not in replaced] + update["points"]
    points.sort(key=lambda p: (order.index(p["variant"]), p["width"], p["seed"]))
    summary = _summarize(points)
    return {**result, "widths": sorted(set(result["widths"]) | set(update["widths"])), "variants": variants,
            "points": points, "summary": summary, "frontier": frontier(summary)}


def recount_ram(result: dict) -> dict:
    """`result` with every point's `ram_bytes` re-counted from its recorded `arena_bytes`, summary recomputed.

    Fronts written before the generated kernels were known to live inside the
    arena added them a second time (`ram_bytes = arena + generated`); the
    arena alone is the RAM. The front (bytes vs metric) does not change.
    """
    points = [{**p, "ram_bytes": p["arena_bytes"]} if "arena_bytes" in p else p for p in result["points"]]
    summary = _summarize(points)
    return {**result, "points": points, "summary": summary, "frontier": frontier(summary)}


def _point(result: dict, variant: str, width: int, seed: int, metric: str) -> dict:
    exports = result["exports"]
    deployed = "boot" if "boot" in exports else "frozen"
    entry = exports.get(deployed, {})
    point = {"variant": variant, "width": width, "seed": seed, "deployed": deployed,
             "train_seconds": result["train_seconds"], "float_metric": result["float"]["metrics"][metric]["value"]}
    if "error" in entry or "int8_tflm" not in entry:
        return {**point, "error": entry.get("error", "not exported")}
    generated = int(entry["generated_weight_ram_bytes"])
    return {
        **point,
        "file_bytes": int(entry["file_bytes"]),
        "weight_bytes": _weight_bytes(entry["bytes_by_role"]),
        "arena_bytes": int(entry["arena_bytes"]),
        "generated_ram_bytes": generated,  # part of the arena (resource variables are persistent arena buffers)
        "ram_bytes": int(entry["arena_bytes"]),
        "metric": float(entry["int8_tflm"]["metrics"][metric]["value"]),
    }


def _weight_bytes(bytes_by_role: dict) -> int:
    """Bytes of a file's constant data: every role but the flatbuffer structure."""
    return int(sum(v for k, v in bytes_by_role.items() if k != "flatbuffer_overhead"))


def _codec_point(point: dict, codec: str, path: pathlib.Path, windows, settings, seed: int, metric: str) -> dict:
    """`point` (its deployed file's) re-measured on the file that `codec` makes of it: bytes, arena, TFLM metric.

    A boot file keeps its init subgraph; the generated kernels it holds in RAM
    are the same tensors, so `generated_ram_bytes` carries over (its RAM is the new arena, which holds them).
    """
    from hypertiny_keras.device.runtime import tflm_arena_bytes
    from hypertiny_keras.sweeps.runner import evaluate_file
    from hypertiny_keras.tflite import weight_codecs
    from hypertiny_keras.tflite.inspect import inspect_tflite

    try:
        data = weight_codecs.get(codec)(path.read_bytes())
    except ValueError as error:  # e.g. lut4 on a file with no filter large enough: no point of its own
        kept = ("variant", "width", "seed", "deployed", "train_seconds", "float_metric")
        return {**{k: point[k] for k in kept}, "codec": codec, "error": f"{codec}: {error}"}
    arena = tflm_arena_bytes(data)
    evaluation = evaluate_file(data, windows, settings, seed)
    return {
        **point,
        "codec": codec,
        "file_bytes": len(data),
        "weight_bytes": _weight_bytes(inspect_tflite(data)["bytes_by_role"]),
        "arena_bytes": arena,
        "ram_bytes": arena,
        "metric": float(evaluation["metrics"][metric]["value"]),
    }


def _summarize(points: list[dict]) -> list[dict]:
    rows = []
    for key in dict.fromkeys((p["variant"], p["width"]) for p in points):
        runs = [p for p in points if (p["variant"], p["width"]) == key and "metric" in p]
        failed = sum(1 for p in points if (p["variant"], p["width"]) == key and "metric" not in p)
        if not runs:
            rows.append({"variant": key[0], "width": key[1], "runs": 0, "failed": failed})
            continue
        values = np.array([p["metric"] for p in runs])
        rows.append({
            "variant": key[0],
            "width": key[1],
            "runs": len(runs),
            "failed": failed,
            "metric_mean": float(values.mean()),
            "metric_sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "file_bytes": int(round(np.mean([p["file_bytes"] for p in runs]))),
            "weight_bytes": int(round(np.mean([p["weight_bytes"] for p in runs]))),
            "ram_bytes": int(round(np.mean([p["ram_bytes"] for p in runs]))),
        })
    return rows


def frontier(summary: list[dict]) -> list[dict]:
    """Rows no other row beats: fewer or equal bytes with a higher mean, or fewer bytes with an equal one."""
    rows = [r for r in summary if r.get("runs")]
    front = [
        r for r in rows
        if not any(
            (o["file_bytes"] <= r["file_bytes"] and o["metric_mean"] > r["metric_mean"])
            or (o["file_bytes"] < r["file_bytes"] and o["metric_mean"] >= r["metric_mean"])
            for o in rows
        )
    ]
    chosen = ({"variant": r["variant"], "width": r["width"]} for r in front)
    return sorted(chosen, key=lambda r: (r["variant"], r["width"]))


def plot_pareto(result: dict, path: str | pathlib.Path, title: str = "") -> pathlib.Path:
    """Two panels as a PNG: the metric against `.tflite` bytes (front marked), RAM against flash bytes.

    Drawn on a `matplotlib.figure.Figure` of its own: the caller's pyplot state and backend are untouched.
    """
    import matplotlib
    from matplotlib.figure import Figure

    rows = [r for r in result["summary"] if r.get("runs")]
    on_front = {(r["variant"], r["width"]) for r in result["frontier"]}
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    # One colour per trained variant; its codec files share it, told apart by line and marker.
    families = list(dict.fromkeys(v.partition("+")[0] for v in variants))
    palette = matplotlib.colormaps["tab10" if len(families) <= 10 else "tab20"]
    colors = {f: palette(i % palette.N) for i, f in enumerate(families)}
    styles = {None: ("-", "o"), "int4": ("--", "s"), "lut4": (":", "^")}
    fig = Figure(figsize=(13, 5.6))
    left, right = fig.subplots(1, 2)
    for variant in variants:
        mine = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["width"])
        x = [r["file_bytes"] for r in mine]
        family, _, codec = variant.partition("+")  # `<trained variant>+<codec>` (see `_with_codecs`)
        color = colors[family]
        line, marker = styles.get(codec or None, ("-", "o"))
        left.errorbar(x, [r["metric_mean"] for r in mine], yerr=[r["metric_sd"] for r in mine], marker=marker,
                      linestyle=line, capsize=3, color=color, label=variant)
        for r in mine:
            left.annotate(str(r["width"]), (r["file_bytes"], r["metric_mean"]), textcoords="offset points",
                          xytext=(4, 4), fontsize=7)
            if (r["variant"], r["width"]) in on_front:
                left.scatter([r["file_bytes"]], [r["metric_mean"]], s=160, facecolors="none", edgecolors="k")
        right.plot(x, [r["ram_bytes"] for r in mine], marker=marker, linestyle=line, color=color, label=variant)
    for axis in (left, right):
        axis.set_xscale("log")
        axis.grid(alpha=0.3)
        axis.set_xlabel(".tflite file bytes (deployed file)")
    left.set_ylabel(f"int8 TFLM test {result['metric']} (mean +- sd over seeds)")
    left.set_title("accuracy vs flash (circled: on the front; labels: width)")
    right.set_ylabel("RAM bytes (host TFLM arena, generated kernels included)")
    right.set_title("RAM vs flash")
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04 + 0.035 * math.ceil(len(labels) / 6), 1, 1))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def markdown(result: dict, title: str, command: str) -> str:
    """The README of a front: the command, the table by (variant, width), the front, in plain numbers."""
    metric = result["metric"]
    on_front = {(r["variant"], r["width"]) for r in result["frontier"]}
    lines = [
        f"# {title}",
        "",
        f"Command: `{command}`",
        "",
        f"Every point is the deployed `.tflite` (boot file for generated variants, frozen file for stored "
        f"ones; `+int4` / `+lut4`: that file re-written by the weight codec, no retraining), scored in TFLM on the "
        f"test split: {metric}, mean +- sd over seeds {result['seeds']}. Backbone: "
        f"the separable 1-D CNN, {result['settings']['depth']} blocks of one width; rank r = "
        f"{result['settings']['rank']}; smoothing {result['settings']['smoothing']}. The largest sd over seeds "
        f"of any row is {spread(result['summary']):.3f}: means closer than that are not told apart. RAM bytes: the "
        f"64-bit host TFLM arena, which holds a boot file's generated kernels (not added again)."
        + (f" {result['ram_note']}" if result.get("ram_note") else ""),
        "",
        "| variant | width | runs | file bytes | weight bytes | RAM bytes | "
        f"{metric} | on the front |",
        "|---|---:|---:|---:|---:|---:|---|:-:|",
    ]
    for r in result["summary"]:
        if not r.get("runs"):
            lines.append(f"| {r['variant']} | {r['width']} | 0 ({r['failed']} refused) | | | | | |")
            continue
        lines.append(
            f"| {r['variant']} | {r['width']} | {r['runs']}"
            + (f" ({r['failed']} refused)" if r["failed"] else "")
            + f" | {r['file_bytes']:,} | {r['weight_bytes']:,} | {r['ram_bytes']:,} | "
            f"{r['metric_mean']:.3f} +- {r['metric_sd']:.3f} | "
            f"{'yes' if (r['variant'], r['width']) in on_front else ''} |"
        )
    lines += ["", "Variants:", ""] + [f"- `{k}`: {v}" for k, v in result["variants"].items()]
    return "\n".join(lines) + "\n"


def spread(summary: list[dict]) -> float:
    """The largest sd over seeds of any row (how far apart two means must be to mean anything)."""
    sds = [r["metric_sd"] for r in summary if r.get("runs", 0) > 1]
    return max(sds) if sds else math.nan
