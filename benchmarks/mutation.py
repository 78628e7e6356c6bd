"""Mutate exported `.tflite` files and count what every reader does with them.

A small HyperTinyPW model is trained on synthetic beats and exported twice
(`boot`: init subgraph, CALL_ONCE, resource variables; `frozen`). `--count`
seeded mutants of the two files (`hypertiny_keras.testing.mutation.mutate`: bit
flips, truncations, random bytes after the header, zeroed ranges, in turn)
go through `inspect_tflite`, `runtime.predict` (TFLM in its worker process)
and `export_arduino` (`hypertiny_keras.testing.mutation.check_mutant`), and a sample
through `hypertiny inspect` as a real process. Outcome classes: `ok`, a
one-line refusal naming the file (`ValueError`, `TFLMError`, `TFLMCrash`), or
`broken` (a broken promise). Writes `benchmarks/results/mutation.{json,md}`.

    .venv/bin/python benchmarks/mutation.py --count 1000
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from tqdm import tqdm

from hypertiny_keras.device import runtime
from hypertiny_keras.testing.mutation import KINDS, READERS, check_mutant, mutate
from hypertiny_keras.utils import quiet

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
LENGTH = 64
#: Longest one TFLM request may take, in seconds (a mutant can make TFLM loop forever).
TFLM_TIMEOUT_S = 10.0


def _originals(directory: pathlib.Path) -> dict[str, tuple[bytes, np.ndarray]]:
    """{synthesis: (file bytes, two input windows)} of a small trained model exported boot and frozen."""
    with quiet.silenced():
        import keras

        from hypertiny_keras import export_tflite, hypertiny_pw
        from hypertiny_keras.data.synthetic import make_beats

        x, y = make_beats(300, length=LENGTH, seed=5)
        keras.utils.set_random_seed(0)
        model = hypertiny_pw((LENGTH, 1), 2, widths=(8, 12), stem_filters=8, code_dim=4, hidden_dim=8)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        out = {}
        for synthesis in ("boot", "frozen"):
            path = directory / f"{synthesis}.tflite"
            export_tflite(model, x[:64], path, synthesis=synthesis, verify_samples=8)
            out[synthesis] = (path.read_bytes(), x[:2])
    return out


def _cli_inspect(path: pathlib.Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "hypertiny_keras.cli.main", "inspect", str(path)],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode == 0 and result.stdout.startswith("file: ") and not result.stderr:
        return "ok"
    lines = result.stderr.splitlines()
    if result.returncode == 2 and len(lines) == 1 and str(path) in lines[0] and not result.stdout:
        return "exit 2, one line"
    return f"broken: exit {result.returncode}, {len(lines)} lines on stderr"


def _markdown(report: dict) -> str:
    lines = [
        "# Mutated `.tflite` files through every reader",
        "",
        f"Command: `{report['command']}` ({report['count']} mutants of a {report['original_bytes']['boot']:,}-byte "
        f"boot file and a {report['original_bytes']['frozen']:,}-byte frozen file, seed {report['seed']}, "
        f"{report['minutes']:.1f} min on this 2-core machine). Each mutant goes through `inspect_tflite`, "
        "`runtime.predict` (TFLM in its worker process, 10 s timeout) and `export_arduino`; "
        f"{report['cli_count']} of them also through `hypertiny inspect` as a real process.",
        "",
        f"**Broken promises: {report['broken_total']}.**",
        "",
        "| reader | " + " | ".join(report["outcome_names"]) + " |",
        "|---|" + "---:|" * len(report["outcome_names"]),
    ]
    for reader, counts in report["by_reader"].items():
        lines.append(f"| {reader} | " + " | ".join(str(counts.get(o, 0)) for o in report["outcome_names"]) + " |")
    lines += ["", "| mutation kind | mutants | read by `inspect_tflite` | refused by it |", "|---|---:|---:|---:|"]
    for kind, counts in report["by_kind"].items():
        lines.append(f"| {kind} | {counts.get('mutants', 0)} | {counts.get('read', 0)} | {counts.get('refused', 0)} |")
    lines += ["", "`hypertiny inspect` as a process: " + ", ".join(f"{k} {v}" for k, v in report["cli"].items()) + "."]
    if report["broken"]:
        lines += ["", "Broken:", ""] + [f"- `{b['file']}` {b['reader']}: {b['outcome']}" for b in report["broken"][:50]]
    lines += [
        "",
        "`TFLMCrash` is TFLM dying (a signal) or hanging past the timeout inside the worker process: the call "
        "raises one line naming the file and the worker restarts; the Python process survives. `ValueError` is "
        "the flatbuffer reader's refusal before TFLM sees the file.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="mutants to make")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cli-count", type=int, default=40, help="mutants also run through `hypertiny inspect`")
    args = parser.parse_args()
    runtime.tflm_worker().timeout_s = TFLM_TIMEOUT_S
    rng = np.random.default_rng(args.seed)
    start = time.time()
    by_reader = {reader: collections.Counter() for reader in READERS}
    by_kind = {kind: collections.Counter() for kind in KINDS}
    cli, broken = collections.Counter(), []
    with tempfile.TemporaryDirectory() as directory:
        root = pathlib.Path(directory)
        originals = _originals(root)
        cli_every = max(1, args.count // max(1, args.cli_count))
        for index in tqdm(range(args.count), desc="mutants", unit="file"):
            kind, synthesis = KINDS[index % len(KINDS)], ("boot", "frozen")[(index // len(KINDS)) % 2]
            data, x = originals[synthesis]
            path = root / f"{index:04d}_{synthesis}_{kind}.tflite"
            path.write_bytes(mutate(data, kind, rng))
            outcomes = check_mutant(path, x, root / f"Sketch_{index:04d}")
            by_kind[kind]["mutants"] += 1
            by_kind[kind]["read" if outcomes["inspect"] == "ok" else "refused"] += 1
            for reader, outcome in outcomes.items():
                by_reader[reader]["broken" if outcome.startswith("broken") else outcome] += 1
                if outcome.startswith("broken"):
                    broken.append({"file": path.name, "reader": reader, "outcome": outcome})
            if index % cli_every == 0 and sum(cli.values()) < args.cli_count:
                outcome = _cli_inspect(path)
                cli["broken" if outcome.startswith("broken") else outcome] += 1
                if outcome.startswith("broken"):
                    broken.append({"file": path.name, "reader": "hypertiny inspect", "outcome": outcome})
            path.unlink()
    names = ["ok", "ValueError", "TFLMError", "TFLMCrash", "broken"]
    report = {
        "command": f".venv/bin/python benchmarks/mutation.py --count {args.count} --seed {args.seed}",
        "count": args.count,
        "seed": args.seed,
        "minutes": (time.time() - start) / 60,
        "original_bytes": {s: len(d) for s, (d, _) in originals.items()},
        "outcome_names": names,
        "by_reader": {r: dict(c) for r, c in by_reader.items()},
        "by_kind": {k: dict(c) for k, c in by_kind.items()},
        "cli_count": sum(cli.values()),
        "cli": dict(cli),
        "broken_total": len(broken),
        "broken": broken,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mutation.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "mutation.md").write_text(_markdown(report))
    print(f"{args.count} mutants: {len(broken)} broken; wrote {RESULTS / 'mutation.md'}")


if __name__ == "__main__":
    main()
