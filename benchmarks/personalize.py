"""Patient-adaptive MIT-BIH: one global model, personalized per record, scored as deployed int8 files in TFLM.

The protocol of patient-specific ECG papers (the AAMI EC57 learning period):
a global model is trained on DS1 beats (V vs rest, 0.7 s windows at 360 Hz,
de Chazal's inter-patient split, paced records excluded); for each of the 22
DS2 records the labelled beats of its first 5 minutes adapt the model and
the beats from minute 5 on are the test. Variants (`personalize(trainable=)`):
none (the global file), codes, codes+bias, bias, classifier, all. Every figure
is measured on the deployed int8 file in TFLM: for `codes`, the global boot
file with only its code bytes changed (`codes_file`, carried by a `tflite.patch`);
for the others, the personalized model re-exported (`export_tflite`, boot). The
threshold t* is tuned once, on DS1 validation beats scored by the global int8
file, and kept for every variant.

    .venv/bin/python benchmarks/personalize.py --seeds 0,1,2
    .venv/bin/python benchmarks/personalize.py --seeds 0 --records 208,213 --epochs 1   # a smoke run

Writes `benchmarks/results/personalize.{json,md,png}`; seeds already in the
JSON are kept (re-run with new seeds to add them).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hypertiny_keras.utils import quiet  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
VARIANTS = ("none", "codes", "codes+bias", "bias", "classifier", "all")
LEARNING_PERIOD_S = 300  # AAMI EC57: the first 5 minutes of a record may be used for training
FS = 360.0
KEY = bytes(range(32))  # a benchmark key: the patch bytes do not depend on it


def _v_scores(file: bytes, x) -> "np.ndarray":  # noqa: F821
    from hypertiny_keras.device.runtime import predict
    from hypertiny_keras.evaluation import softmax

    return softmax(predict(file, x))[:, 1]


def _pooled(y, scores, threshold: float) -> dict:
    from hypertiny_keras.evaluation import binary_metrics

    m = binary_metrics(y, scores, threshold)
    return {"v_sensitivity": m["recall_1"], "v_ppv": m["precision_1"], "v_f1": m["f1_1"], "macro_f1": m["macro_f1"]}


def _counts(y, scores, threshold: float) -> dict:
    import numpy as np

    pred = np.asarray(scores) >= threshold
    y = np.asarray(y) == 1
    return {"tp": int((pred & y).sum()), "fp": int((pred & ~y).sum()), "fn": int((~pred & y).sum()),
            "tn": int((~pred & ~y).sum())}


def _train_global(windows, seed: int, args):
    import keras
    import numpy as np

    from hypertiny_keras.models import hypertiny_pw

    train = np.flatnonzero(windows.split == "train")
    rng = np.random.default_rng(seed)
    train = rng.choice(train, min(args.max_train, len(train)), replace=False)
    x, y = windows.x[train], windows.y[train]
    keras.utils.set_random_seed(seed)
    model = hypertiny_pw(x.shape[1:], 2, widths=(32, 32, 32), code_dim=args.code_dim, hidden_dim=16)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    weights = np.where(y == 1, len(y) / (2 * max(1, (y == 1).sum())), len(y) / (2 * max(1, (y == 0).sum())))
    model.fit(x, y, sample_weight=weights, epochs=args.epochs, batch_size=64, verbose=0)
    return model, x, y


def _rehearsal(x, y, n: int, rng):
    """`n` training windows, half V and half not (so that a subject without V keeps the global decision)."""
    import numpy as np

    v, rest = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    chosen = np.concatenate([rng.choice(v, min(n // 2, len(v)), replace=False),
                             rng.choice(rest, n - min(n // 2, len(v)), replace=False)])
    return x[chosen], y[chosen]


def run_seed(windows, seed: int, args, work: pathlib.Path, bar=None) -> dict:
    import numpy as np
    from tqdm.auto import tqdm

    from hypertiny_keras.evaluation import tune_threshold
    from hypertiny_keras.export import ExportVerificationError, export_tflite
    from hypertiny_keras.tflite.patch import make_patch, patch_size
    from hypertiny_keras.training.personalize import codes_file, personalize, tuned_variables

    start = time.time()
    model, x_train, y_train = _train_global(windows, seed, args)
    base_path = work / f"global_{seed}.tflite"
    export_tflite(model, x_train[:256], base_path, synthesis="boot")
    base = base_path.read_bytes()
    val = np.flatnonzero(windows.split == "val")
    val = np.random.default_rng(seed).choice(val, min(4000, len(val)), replace=False)
    threshold, _ = tune_threshold(windows.y[val], _v_scores(base, windows.x[val]))
    rng = np.random.default_rng(1000 + seed)
    records = sorted(set(windows.record[windows.split == "test"]))
    if args.records:
        records = [r for r in records if r in args.records.split(",")]
    scores = {v: [] for v in VARIANTS}
    thresholds = {"t_star": threshold, "argmax": 0.5}
    labels, per_record, patch_bytes, values, refused = [], [], {}, {}, {v: 0 for v in VARIANTS}
    for record in tqdm(records, desc=f"seed {seed}: records", unit="record", file=bar):
        rows = np.flatnonzero(windows.record == record)
        adapt = rows[windows.order[rows] < LEARNING_PERIOD_S * FS]
        test = rows[windows.order[rows] >= LEARNING_PERIOD_S * FS]
        xa, ya, xt, yt = windows.x[adapt], windows.y[adapt], windows.x[test], windows.y[test]
        rehearsal = _rehearsal(x_train, y_train, args.rehearsal, rng)
        labels.append(yt)
        row = {"record": record, "adapt_beats": int(len(adapt)), "adapt_v": int(ya.sum()),
               "test_beats": int(len(test)), "test_v": int(yt.sum())}
        base_scores = _v_scores(base, xt)
        for variant in VARIANTS:
            file = base
            if variant != "none":
                result = personalize(model, xa, ya, trainable=variant, rehearsal=rehearsal, steps=args.steps,
                                     learning_rate=args.learning_rate, seed=seed)
                values[variant] = result.values
                if variant == "codes":
                    file = codes_file(base, result)
                    size = len(make_patch(base, file, KEY, 1)) if file != base else 0
                else:
                    path = work / f"{record}_{variant}.tflite"
                    try:
                        export_tflite(result.model, np.concatenate([xa, rehearsal[0]]), path, synthesis="boot",
                                      verify_samples=32)
                        file = path.read_bytes()
                    except ExportVerificationError:
                        refused[variant] += 1  # the device keeps the global model
                    tensors = [int(np.prod(v.shape)) * (4 if v.path.endswith(("bias", "beta")) else 1)
                               for v in tuned_variables(result.model, variant)]
                    size = len(file) if variant == "all" else patch_size(tensors)
                patch_bytes.setdefault(variant, []).append(size)
            s = base_scores if file is base else _v_scores(file, xt)
            scores[variant].append(s)
            row[variant] = {name: _counts(yt, s, t) for name, t in thresholds.items()}
        per_record.append(row)
    y = np.concatenate(labels)
    pooled = {name: {v: _pooled(y, np.concatenate(scores[v]), t) for v in VARIANTS} for name, t in thresholds.items()}
    return {
        "seed": seed, "threshold": threshold, "base_file_bytes": len(base), "pooled": pooled,
        "patch_bytes": {v: int(max(b)) for v, b in patch_bytes.items()},
        "values": values, "export_refused": refused, "per_record": per_record,
        "wall_time_s": round(time.time() - start, 1),
    }


def _summary(seeds: list[dict], threshold: str) -> dict:
    import numpy as np

    out = {}
    for variant in VARIANTS:
        pooled = [s["pooled"][threshold][variant] for s in seeds]
        out[variant] = {k: {"mean": float(np.mean([p[k] for p in pooled])), "sd": float(np.std([p[k] for p in pooled]))}
                        for k in pooled[0]}
        out[variant]["patch_bytes"] = max(s["patch_bytes"].get(variant, 0) for s in seeds)
        out[variant]["values"] = max(s["values"].get(variant, 0) for s in seeds)
    return out


def _table(s: dict) -> list[str]:
    lines = ["| adapted | values | patch bytes | V sensitivity | V +P | V F1 | macro-F1 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for variant in VARIANTS:
        r = s[variant]
        cells = [f"{r[k]['mean']:.3f} +- {r[k]['sd']:.3f}" for k in ("v_sensitivity", "v_ppv", "v_f1", "macro_f1")]
        lines.append(f"| {variant} | {r['values']:,} | {r['patch_bytes']:,} | " + " | ".join(cells) + " |")
    return lines


#: Published patient-specific results (references, not outputs), each checked in its paper's abstract.
PUBLISHED = [
    ("Malik et al. 2022, 1D Self-ONN (IEEE TBME; arXiv 2110.02215)",
     "VEB F1 0.937 (average), VEB accuracy 0.9904",
     "a whole compact network trained per patient with minimal common training data, AAMI recommendations, "
     "over the entire MIT-BIH database (not DS2 only), float, F1 an average (not pooled over beats as here)"),
]
UNVERIFIED = ("Kiranyaz et al. 2016 (1-D CNN, IEEE TBME 63(3)): the same per-patient protocol; its VEB figures "
              "could not be checked in the paper from here and are not quoted.")


def _markdown(result: dict) -> str:
    lines = [
        "# Patient-adaptive MIT-BIH: personalization as deployed int8 files",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{result['protocol']}",
        "",
        f"Seeds: {', '.join(str(x['seed']) for x in result['seeds'])}. Pooled over every DS2 test beat "
        "(after minute 5); V vs rest; mean +- sd over seeds; every figure from the int8 file in TFLM.",
        "",
        "At the argmax (V when its probability >= 0.5), every variant alike:",
        "",
        *_table(result["summary"]["argmax"]),
        "",
        "At t* tuned on DS1 validation beats with the global int8 file (kept for every variant; "
        "t* = " + ", ".join(f"{x['threshold']:.2f}" for x in result["seeds"]) + " by seed):",
        "",
        *_table(result["summary"]["t_star"]),
    ]
    lines += [
        "",
        "Patch bytes: `codes`, the largest code patch of any record (`tflite.patch`, header and 8-byte tag "
        "included); `bias`, `codes+bias`, `classifier`, the same format carrying the tuned tensors' stored bytes "
        "(int32 biases, int8 weights) as if their scales were held like the codes' (the re-exported files "
        "measured here re-derive their scales, so a real patch of them would be larger); `all`, the whole file.",
        "Export refusals (the device keeps the global model): "
        + "; ".join(f"seed {x['seed']}: " + (", ".join(f"{k} {v}" for k, v in x["export_refused"].items() if v)
                                              or "none") for x in result["seeds"]) + ".",
        "",
        "Published patient-specific figures (references from the papers, not measured here; their protocols "
        "differ from this one as stated):",
        "",
        *(f"- {who}: {figures}; {protocol}." for who, figures, protocol in PUBLISHED),
        f"- {UNVERIFIED}",
        "",
        "Per record (first seed, argmax): V beats detected / missed / false alarms on the test part.",
        "",
        "| record | adapt beats (V) | test beats (V) | " + " | ".join(VARIANTS) + " |",
        "|---|---:|---:|" + "---:|" * len(VARIANTS),
    ]
    for row in result["seeds"][0]["per_record"]:
        cells = [f"{row[v]['argmax']['tp']}/{row[v]['argmax']['fn']}/{row[v]['argmax']['fp']}" for v in VARIANTS]
        lines.append(f"| {row['record']} | {row['adapt_beats']} ({row['adapt_v']}) | {row['test_beats']} "
                     f"({row['test_v']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(result: dict, path: pathlib.Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for variant in VARIANTS[1:]:
        r = result["summary"]["argmax"][variant]
        ax.errorbar([max(r["patch_bytes"], 1)], [r["v_f1"]["mean"]], yerr=[r["v_f1"]["sd"]], marker="o", capsize=3,
                    label=variant)
    ax.axhline(result["summary"]["argmax"]["none"]["v_f1"]["mean"], color="k", linestyle=":",
               label="none (global model)")
    ax.axvline(51, color="grey", linestyle="--", linewidth=0.8, label="51 B (one LoRaWAN DR0 downlink)")
    ax.set_xscale("log")
    ax.set_xlabel("patch bytes (log)")
    ax.set_ylabel("pooled DS2 V F1 at the argmax (int8 file in TFLM)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--records", default="", help="comma-separated DS2 records (default: all 22)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--max-train", type=int, default=8000)
    parser.add_argument("--code-dim", type=int, default=8)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--rehearsal", type=int, default=256, help="training windows mixed into every step")
    parser.add_argument("--out", default=str(RESULTS / "personalize"))
    parser.add_argument("--report", action="store_true",
                        help="only write the Markdown and the plot again from the JSON (no training)")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    if args.report:
        result = json.loads(out.with_suffix(".json").read_text())
        out.with_suffix(".md").write_text(_markdown(result))
        _plot(result, out.with_suffix(".png"))
        print(out.with_suffix(".md").read_text())
        return
    with quiet.silenced():
        from hypertiny_keras.data import load_mitbih

    root = pathlib.Path(os.environ.get("HYPERTINY_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared"
                                       / "data"))
    windows = load_mitbih(root / "mitdb", task="v_vs_rest", split="dechazal", window_seconds=0.7)
    json_path = out.with_suffix(".json")
    done = json.loads(json_path.read_text()) if json_path.exists() else {"seeds": []}
    seeds = [s for s in done["seeds"] if str(s["seed"]) not in args.seeds.split(",")]
    bar = os.fdopen(os.dup(2), "w")  # the real stderr: the progress bar stays visible while the rest is silenced
    with tempfile.TemporaryDirectory(prefix="hypertiny-personalize-") as work, quiet.silenced():
        for seed in map(int, args.seeds.split(",")):
            seeds.append(run_seed(windows, seed, args, pathlib.Path(work), bar))
            seeds.sort(key=lambda s: s["seed"])
            result = {
                "command": " ".join([".venv/bin/python", "benchmarks/personalize.py", *sys.argv[1:]]),
                "protocol": (
                    f"MIT-BIH V vs rest, de Chazal DS1 (global model: hypertiny_pw widths 32, dense heads, "
                    f"d_z {args.code_dim}, d_h 16, {args.max_train} DS1 windows, {args.epochs} epochs, "
                    "class-weighted) -> 22 DS2 records; adapt on the beats of the first 5 min "
                    f"({args.steps} full-batch Adam steps at {args.learning_rate:g}, class-balanced, "
                    f"BatchNorm in inference mode, {args.rehearsal} class-balanced DS1 rehearsal windows, "
                    "early stopping on the last 25% of the adaptation beats); test on the beats from minute 5 "
                    "on; t* from DS1 validation on the global int8 file."
                ),
                "seeds": seeds,
                "summary": {name: _summary(seeds, name) for name in ("argmax", "t_star")},
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(result, indent=1))
            out.with_suffix(".md").write_text(_markdown(result))
            _plot(result, out.with_suffix(".png"))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
