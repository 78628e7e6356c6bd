"""Fuzz the export over many random architectures and count outcomes by class.

Each architecture (`hypertiny_keras.testing.fuzzing.random_architecture`, seeded
from `--seed`, its kernel generator drawn from every registered kind) is
exported with boot and with frozen synthesis (`check_export`); the outcome is
`exported` (boot == frozen bit for bit in TFLM, both files written; TFLM vs
LiteRT within 1 step on the main graph), `refused` (a clear error before
anything was written, by reason) or `broken` (any other outcome: a broken
promise).
Writes `benchmarks/results/<name>.{json,md}` (default `fuzz`).

    .venv/bin/python benchmarks/fuzz.py --count 2000
    .venv/bin/python benchmarks/fuzz.py --count 400 --heads lowrank_shared,kronecker_shared --name fuzz_shared
    .venv/bin/python benchmarks/fuzz.py --count 20000 --ray-address auto      # on a running Ray cluster

Each architecture is one `hypertiny_keras.execution.run_tasks` task (a local Ray
with `--workers` CPUs, a cluster, or `--workers 0`: this process); finished
architectures are journaled in `benchmarks/results/<name>.runs.jsonl`, so an
interrupted run re-run computes only the rest (and a larger `--count` only the
new ones).
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import time

import numpy as np

from hypertiny_keras.execution import Journal, run_tasks
from hypertiny_keras.testing.fuzzing import check_architecture, kinds, random_architecture

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="architectures to try")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2,
                        help="a local Ray with N CPUs; 0: in this process (the outcomes do not depend on it)")
    parser.add_argument("--ray-address", default=None, help="run on this Ray cluster (auto, host:6379, ray://...)")
    parser.add_argument("--heads", default=",".join(kinds()), help="comma-separated kernel generators drawn from")
    parser.add_argument("--name", default="fuzz", help="base name of the written files")
    args = parser.parse_args()
    heads = tuple(args.heads.split(","))
    unknown = sorted(set(heads) - set(kinds()))
    if unknown:
        parser.error(f"unknown heads {unknown}; choose from {list(kinds())}")
    rng = np.random.default_rng(args.seed)
    # Drawn up front: the same set for any --workers.
    architectures = [random_architecture(rng, heads) for _ in range(args.count)]
    outcomes, reasons, broken = collections.Counter(), collections.Counter(), []
    by_kind = collections.defaultdict(collections.Counter)
    start = time.time()
    RESULTS.mkdir(exist_ok=True)
    journal = Journal(RESULTS / f"{args.name}.runs.jsonl", {"seed": args.seed, "heads": list(heads)})
    outcomes_by_index = run_tasks(check_architecture, {str(i): (arch,) for i, arch in enumerate(architectures)},
                                  workers=None if args.ray_address or not args.workers else args.workers,
                                  address=args.ray_address, journal=journal, desc="architectures")
    checked = [o["result"] if o["status"] == "done" else ["broken", f"task failed: {o['error']}"]
               for o in outcomes_by_index.values()]
    for index, (arch, (outcome, detail)) in enumerate(zip(architectures, checked)):
        outcomes[outcome] += 1
        by_kind[f"{arch.dims}-D, {arch.head}"][outcome] += 1
        if outcome == "refused":
            reasons[detail] += 1
        elif outcome == "broken":
            broken.append({"index": index, "architecture": repr(arch), "detail": detail[:500]})
    seconds = time.time() - start
    command = (f".venv/bin/python benchmarks/fuzz.py --count {args.count} --seed {args.seed} --workers {args.workers} "
               f"--heads {','.join(heads)} --name {args.name}")
    result = {"command": command, "count": args.count, "seed": args.seed, "seconds": round(seconds, 1),
              "outcomes": dict(outcomes), "refusals": dict(reasons),
              "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())}, "broken": broken}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# Export fuzzing: random architectures",
        "",
        f"Command: `{command}` ({args.count:,} architectures in {seconds / 60:.1f} min on this 2-core machine). "
        f"Space: 1-D and 2-D inputs, widths 1-128, 1-4 generated layers, kernels {', '.join(heads)} (rank 1-5; "
        "factorized: its basis's), "
        "bias on/off, relu/relu6/tanh/none, generator relu/relu6/linear, BatchNorm after generated layers, "
        "residual Add, Functional/Sequential/nested sub-model; Glorot weights and random BatchNorm statistics. "
        "Each model is exported with boot and with frozen synthesis (32 verification samples each) and the two "
        "files are compared bit for bit in TFLM.",
        "",
        "| outcome | models |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {outcomes.get(k, 0):,} |" for k in ("exported", "refused", "broken")]
    lines += ["", "| architecture kind | exported | refused | broken |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v.get('exported', 0)} | {v.get('refused', 0)} | {v.get('broken', 0)} |"
              for k, v in sorted(by_kind.items())]
    if reasons:
        lines += ["", "Refusals (one clear error each, nothing written):", "", "| reason | models |", "|---|---:|"]
        lines += [f"| {reason} | {n} |" for reason, n in reasons.most_common()]
    if broken:
        lines += ["", "Broken promises:", ""] + [f"- #{b['index']}: {b['detail'][:200]}" for b in broken]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
