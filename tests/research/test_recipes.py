"""Recipes run end to end on real data in --quick mode and write results and a README."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("recipe", ["mitbih", "ptbxl", "apnea_ecg", "speech_commands"])
def test_quick_recipe(recipe, data_root, tmp_path):
    env = {**os.environ, "HYPERTINY_DATA": str(data_root)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / f"{recipe}.py"), "--quick", f"--out={tmp_path}"],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert {"hypertiny_pw", "stored_pw_twin"} <= set(results)
    hyper = results["hypertiny_pw"]["runs"][0]
    assert set(hyper["exports"]) == {"frozen", "boot"}
    assert hyper["exports"]["boot"]["generated_weight_ram_bytes"] > 0
    assert 0 <= hyper["exports"]["boot"]["int8_tflm"]["metrics"]["macro_f1"]["value"] <= 1
    # Beat tasks are scored without median smoothing; minute/record tasks with the paper's 5 windows.
    assert hyper["settings"]["kernel"] == (1 if recipe == "mitbih" else 5)
    twin = results["stored_pw_twin"]["runs"][0]
    assert set(twin["exports"]) == {"frozen"}
    readme = (tmp_path / "README.md").read_text()
    assert "hypertiny_pw" in readme and (tmp_path / "pareto.png").stat().st_size > 0


def test_quick_full_suite_with_teacher(data_root, tmp_path):
    """Every model of the suite, the teacher trained first for KD, on the MIT-BIH quick slice."""
    env = {**os.environ, "HYPERTINY_DATA": str(data_root)}
    models = "hypertiny_pw,hypertiny_pw_kd,stored_pw_twin,resnet1d_small,tiny_vae_head,ternary_separable_cnn"
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "mitbih.py"), "--quick", f"--out={tmp_path}", f"--models={models}"],
        capture_output=True, text=True, timeout=1200, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names = {p.stem for p in tmp_path.glob("*.json")}
    assert names == set(models.split(",")) | {"regular_cnn"}
    kd = json.loads((tmp_path / "hypertiny_pw_kd.json").read_text())["runs"][0]
    assert kd["train_config"]["loss"]["kd"] == 0.7
    assert set(kd["packed"]) == {"8", "6", "4"}
    ternary = json.loads((tmp_path / "ternary_separable_cnn.json").read_text())["runs"][0]
    assert ternary["flash_bytes"] < ternary["packed_bytes"]["total"]["8"]  # 2-bit kernels
    readme = (tmp_path / "README.md").read_text()
    assert "Compression vs RegularCNN" in readme and "KD on (vs off)" in readme


def test_quick_apnea_hrv_featnet_from_rr_seconds_and_groupnorm(data_root, tmp_path):
    """HRVFeatNet reads the RR windows in seconds (not z-scored); the GroupNorm ablation exports boot and frozen."""
    env = {**os.environ, "HYPERTINY_DATA": str(data_root)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "apnea_ecg.py"), "--quick", f"--out={tmp_path}",
         "--models=hrv_featnet,hypertiny_pw_groupnorm"],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    hrv = json.loads((tmp_path / "hrv_featnet.json").read_text())["runs"][0]
    assert hrv["flash_bytes"] == 73 and "int8_tflm" in hrv["exports"]["frozen"]
    assert hrv["float"]["metrics"]["roc_auc"]["value"] > 0.6  # z-scored RR would carry no mean RR or SDNN
    group = json.loads((tmp_path / "hypertiny_pw_groupnorm.json").read_text())["runs"][0]
    assert set(group["exports"]) == {"frozen", "boot"}
    assert "GroupNorm(1) (vs BatchNorm)" not in (tmp_path / "README.md").read_text()  # no BatchNorm twin ran


def test_flag_files_are_one_flag_per_line():
    """absl reads a flag file line by line: a trailing comment would become part of the value."""
    for path in sorted((ROOT / "recipes" / "flags").glob("*.flags")):
        for line in path.read_text().splitlines():
            if line and not line.startswith("#"):
                assert line.startswith("--") and " " not in line, f"{path.name}: {line!r}"
        if path.stem.startswith("mitbih"):
            flags = [line for line in path.read_text().splitlines() if line.startswith("--smoothing=")]
            assert flags, f"{path.name} must pin its smoothing (its committed results depend on it)"
