"""The recipes' model suite: HRVFeatNet on computed features (normalization adapted, float step
on the device, int8 head in TFLM) and the GroupNorm ablation."""
import numpy as np
import pytest

from hypertiny_keras.data import Windows
from hypertiny_keras.sweeps.runner import RunSettings, run_model
from hypertiny_research.hrv import hrv_features_from_rr
from hypertiny_research.suite import model_specs, run_suite

FS = 4.0  # Hz, RR tachograms as Apnea-ECG `rr` windows


def rr_windows(n_per_record=20, records=12, length=240, seed=0) -> Windows:
    """RR series (s) at 4 Hz: label 1 = slow heart rate, in alternating runs of 10 windows (the evaluation
    median-smooths scores along each record); 6 records train, 3 val, 3 test."""
    rng = np.random.default_rng(seed)
    n = n_per_record * records
    y = (np.arange(n) // 10) % 2
    t = np.arange(length) / FS
    base = np.where(y == 1, 0.95, 0.7) + 0.1 * rng.standard_normal(n)
    rr = base[:, None] + 0.04 * np.sin(2 * np.pi * rng.uniform(0.05, 0.35, (n, 1)) * t)
    record = np.repeat([f"r{i:02d}" for i in range(records)], n_per_record)
    split = np.repeat(np.array(["train"] * 6 + ["val"] * 3 + ["test"] * 3), n_per_record)
    return Windows(
        x=rr[..., None].astype(np.float32), y=y.astype(np.int64), record=record, patient=record, split=split,
        order=np.tile(np.arange(n_per_record), records).astype(np.int64), class_names=("fast", "slow"), fs=FS,
        meta={"source": "synthetic RR"},
    )


def test_hrv_featnet_runs_on_features_adapts_its_normalization_and_deploys_the_int8_head():
    windows = rr_windows()
    inputs = lambda w: hrv_features_from_rr(w.x, w.fs)  # noqa: E731
    spec = model_specs(hrv_inputs=inputs)["hrv_featnet"]
    result, model = run_model(spec, windows, seed=0, settings=RunSettings(epochs=20, learning_rate=0.05, bootstrap=20))
    train_features = inputs(windows.select("train"))
    normalize = model.get_layer("features")
    np.testing.assert_allclose(np.asarray(normalize.mean).ravel(), train_features.mean(0), rtol=1e-4, atol=1e-3)
    assert result["flash_bytes"] == 73  # 32 weights + 2 int32 biases + 33 normalization values
    assert set(result["exports"]) == {"frozen"}
    frozen = result["exports"]["frozen"]
    assert frozen["file_bytes"] < 2000
    assert frozen["verification"]["tflm_vs_litert_max_steps"] <= 1
    int8, float_ = frozen["int8_tflm"]["metrics"], result["float"]["metrics"]
    assert float_["macro_f1"]["value"] > 0.8  # mean RR separates the classes
    assert abs(int8["macro_f1"]["value"] - float_["macro_f1"]["value"]) < 0.1


def test_hrv_featnet_without_features_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="hrv_featnet needs HRV features"):
        run_suite("x", rr_windows(), ["stored_pw_twin", "hrv_featnet"], [0], RunSettings(), tmp_path, "cmd")
    assert not list(tmp_path.iterdir())


def test_groupnorm_ablation_is_the_hypertiny_backbone_with_group_norm():
    specs = model_specs()
    group = specs["hypertiny_pw_groupnorm"].build((256, 1), 2)
    batch = specs["hypertiny_pw"].build((256, 1), 2)
    kinds = lambda m: [type(layer).__name__ for layer in m.layers]  # noqa: E731
    assert kinds(group) == [k.replace("BatchNormalization", "GroupNormalization") for k in kinds(batch)]


def test_results_index_sets_the_paper_figure_next_to_ours(tmp_path):
    from hypertiny_keras.sweeps.runner import save_model_results
    from hypertiny_research.paper import REFERENCES, write_index
    from hypertiny_research.report import write_report

    windows = rr_windows()
    spec = model_specs(hrv_inputs=lambda w: hrv_features_from_rr(w.x, w.fs))["stored_pw_twin"]
    result, _ = run_model(spec, windows, seed=0, settings=RunSettings(epochs=1, bootstrap=10, export=False))
    save_model_results(tmp_path / "apnea_ecg_rr" / "stored_pw_twin.json", "Apnea-ECG (rr)", "cmd", [result])
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "pareto").mkdir()  # a folder of other JSON (a front's summary is a list): skipped
    (tmp_path / "pareto" / "mitbih.json").write_text('{"summary": [{"variant": "stored"}]}')
    text = write_index(tmp_path).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| [apnea_ecg_rr]"))
    f1 = result["float"]["metrics"]["macro_f1"]["value"]
    assert "0.717 at 225.5 kB" in row and f"{f1:.3f} ± 0.000 (n=1) at " in row
    assert row.count("not run") == 3  # HyperTinyPW float and int8, RegularCNN
    assert REFERENCES["apnea_ecg"].ours in text and "unrelated" not in text
    readme = write_report(tmp_path / "apnea_ecg_rr", "Apnea-ECG (rr)").read_text()
    assert f"Wall time: {result['wall_seconds'] / 60:.1f} min over 1 run(s)" in readme


def test_report_only_rewrites_the_readme_from_the_json_and_trains_nothing(data_root, tmp_path):
    import os
    import pathlib
    import subprocess
    import sys

    from hypertiny_keras.sweeps.runner import save_model_results

    result, _ = run_model(model_specs()["stored_pw_twin"], rr_windows(), seed=0,
                          settings=RunSettings(epochs=1, bootstrap=10, export=False))
    json_path = tmp_path / "stored_pw_twin.json"
    save_model_results(json_path, "PTB-XL", "an earlier command", [result])
    before = json_path.read_bytes()
    root = pathlib.Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, str(root / "recipes" / "ptbxl.py"), "--report_only", "--smoothing=3", f"--out={tmp_path}"],
        capture_output=True, text=True, timeout=600, cwd=root, env={**os.environ, "HYPERTINY_DATA": str(data_root)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    readme = (tmp_path / "README.md").read_text()
    assert "an earlier command" in readme and "Wall time:" in readme and "stored_pw_twin" in readme
    assert "median-smoothed over 3 windows" in readme
    assert json_path.read_bytes() == before and sorted(p.suffix for p in tmp_path.iterdir()) == [
        ".json", ".md", ".png", ".png"]
