"""The Pareto engine: every variant trains, exports (boot == frozen twin), scores in TFLM; the front is right."""
import json

import numpy as np
import pytest

import hypertiny_keras as ht
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.data.windows import Windows
from hypertiny_keras.sweeps.pareto_front import ParetoSettings, _summarize, frontier, markdown, merge

LENGTH = 128


def beat_windows(n_per_record=60, records=10, seed=0) -> Windows:
    x, y = make_beats(n_per_record * records, length=LENGTH, seed=seed)
    record = np.repeat([f"r{i:02d}" for i in range(records)], n_per_record)
    split = np.repeat(np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 2), n_per_record)
    return Windows(x=x, y=y.astype(np.int64), record=record, patient=record, split=split,
                   order=np.tile(np.arange(n_per_record), records).astype(np.int64),
                   class_names=("normal", "ectopic"), fs=128.0, meta={"source": "synthetic beats"})


def test_every_variant_is_a_verified_file_scored_in_tflm(tmp_path):
    settings = ParetoSettings(depth=2, rank=2, epochs=2, patience=None, bootstrap=5)
    result = ht.pareto(beat_windows(), widths=(8, 16), variants=("stored", "lowrank_stored", "lowrank", "kronecker"),
                       seeds=(0,), settings=settings, progress=False)
    json.dumps(result)
    points = {(p["variant"], p["width"]): p for p in result["points"]}
    assert len(points) == 8 and all("metric" in p for p in points.values()), result["points"]
    for (variant, width), p in points.items():
        assert p["deployed"] == ("boot" if variant in ("lowrank", "kronecker") else "frozen")
        assert 0.0 <= p["metric"] <= 1.0 and p["file_bytes"] > p["weight_bytes"] > 0
        assert p["ram_bytes"] == p["arena_bytes"]  # the arena holds the generated kernels (resource variables)
        assert (p["generated_ram_bytes"] > 0) == (variant in ("lowrank", "kronecker"))
    # A 16-wide block stores 256 PW values; rank-2 factors 64: the file shows it.
    assert points[("lowrank_stored", 16)]["weight_bytes"] < points[("stored", 16)]["weight_bytes"]
    front = {(r["variant"], r["width"]) for r in result["frontier"]}
    assert front and front <= set(points)
    ht.plot_pareto(result, tmp_path / "front.png", title="synthetic")
    assert (tmp_path / "front.png").stat().st_size > 10_000
    assert "| lowrank | 16 | 1 |" in markdown(result, "synthetic", "pytest")


def test_frontier_keeps_only_undominated_rows():
    rows = [
        {"variant": "a", "width": 1, "runs": 5, "file_bytes": 100, "metric_mean": 0.80},
        {"variant": "b", "width": 1, "runs": 5, "file_bytes": 200, "metric_mean": 0.90},
        {"variant": "c", "width": 1, "runs": 5, "file_bytes": 300, "metric_mean": 0.85},  # beaten by b
        {"variant": "d", "width": 1, "runs": 5, "file_bytes": 100, "metric_mean": 0.80},  # ties a: both stay
        {"variant": "e", "width": 1, "runs": 0, "failed": 5},
    ]
    assert frontier(rows) == [{"variant": v, "width": 1} for v in ("a", "b", "d")]


def test_bad_grids_are_refused():
    windows = beat_windows(records=10, n_per_record=10)
    with pytest.raises(ValueError, match="unknown variants"):
        ht.pareto(windows, variants=("int3",))
    with pytest.raises(ValueError, match="widths must be >= 1"):
        ht.pareto(windows, widths=(0,))


def test_codec_variants_share_the_stored_model_and_shrink_its_file():
    settings = ParetoSettings(depth=2, rank=2, epochs=1, patience=None, bootstrap=5)
    names = ("stored", "stored+int4", "stored+lut4", "kronecker+int4", "kronecker_w4")
    result = ht.pareto(beat_windows(), widths=(48,), variants=names, seeds=(0,), settings=settings, progress=False)
    points = {p["variant"]: p for p in result["points"]}
    assert set(points) == set(names) and all("metric" in p for p in points.values()), points
    # One training run per base: the codec points carry the base run's float metric.
    stored, int4, lut4 = points["stored"], points["stored+int4"], points["stored+lut4"]
    assert int4["float_metric"] == stored["float_metric"] == lut4["float_metric"]
    assert int4["codec"] == "int4" and "codec" not in stored
    assert int4["file_bytes"] < stored["file_bytes"] and lut4["file_bytes"] < stored["file_bytes"]
    assert int4["weight_bytes"] < stored["weight_bytes"]
    # A boot file keeps its init subgraph and its generated kernels in RAM.
    boot = points["kronecker+int4"]
    assert boot["deployed"] == "boot" and boot["generated_ram_bytes"] > 0
    assert boot["ram_bytes"] == boot["arena_bytes"] > boot["generated_ram_bytes"]
    # init_weight_bits=4: an exported, verified boot file of its own training run.
    w4 = points["kronecker_w4"]
    assert w4["deployed"] == "boot" and "codec" not in w4 and w4["generated_ram_bytes"] == boot["generated_ram_bytes"]


def test_a_codec_that_cannot_apply_records_an_error_not_the_base_metric():
    settings = ParetoSettings(depth=2, rank=2, epochs=1, patience=None, bootstrap=5)
    result = ht.pareto(beat_windows(), widths=(8,), variants=("stored", "stored+lut4"), seeds=(0,),
                       settings=settings, progress=False)
    lut = next(p for p in result["points"] if p["variant"] == "stored+lut4")
    assert "would not save bytes" in lut["error"] and "metric" not in lut and "file_bytes" not in lut
    row = next(r for r in result["summary"] if r["variant"] == "stored+lut4")
    assert row["runs"] == 0 and row["failed"] == 1


def test_merge_replaces_the_variants_it_ran_and_recomputes_the_front():
    settings = ParetoSettings(depth=3, rank=2, epochs=1, patience=None, bootstrap=5)
    windows = beat_windows()
    first = ht.pareto(windows, widths=(16,), variants=("stored", "lowrank"), seeds=(0,), settings=settings,
                      progress=False)
    update = ht.pareto(windows, widths=(16,), variants=("lowrank_shared",), seeds=(0,), settings=settings,
                       progress=False)
    shared = update["points"][0]
    assert shared["deployed"] == "boot" and "metric" in shared, shared  # the cross-layer form exports and verifies
    merged = merge(first, update)
    assert list(merged["variants"]) == ["stored", "lowrank", "lowrank_shared"]
    assert [p["variant"] for p in merged["points"]] == ["stored", "lowrank", "lowrank_shared"]
    assert merged["summary"] == _summarize(merged["points"]) and merged["frontier"] == frontier(merged["summary"])
    again = merge(merged, {**first, "variants": {"lowrank": first["variants"]["lowrank"]},
                           "points": [p for p in first["points"] if p["variant"] == "lowrank"]})
    assert [p["variant"] for p in again["points"]] == ["stored", "lowrank", "lowrank_shared"]
    # A new width of one variant keeps that variant's other widths.
    wider = merge(merged, {**update, "widths": [32], "points": [{**shared, "width": 32}]})
    assert [(p["variant"], p["width"]) for p in wider["points"]] == [
        ("stored", 16), ("lowrank", 16), ("lowrank_shared", 16), ("lowrank_shared", 32)]
    assert wider["widths"] == [16, 32]
    with pytest.raises(ValueError, match="different seeds"):
        merge(first, {**update, "seeds": [0, 1]})
