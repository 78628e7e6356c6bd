"""The index of every experiment's results next to the paper's figures: `benchmarks/results/README.md`.

Reads the model JSON files that the recipes wrote into each folder of `benchmarks/results/`.

    .venv/bin/python benchmarks/results_index.py
"""
import pathlib

from hypertiny_research.paper import write_index

if __name__ == "__main__":
    print(f"wrote {write_index(pathlib.Path(__file__).resolve().parent / 'results')}")
