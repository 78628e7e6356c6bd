"""Recipes run end to end on real data in --quick mode and write results and a README."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


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
    twin = results["stored_pw_twin"]["runs"][0]
    assert set(twin["exports"]) == {"frozen"}
    readme = (tmp_path / "README.md").read_text()
    assert "hypertiny_pw" in readme and (tmp_path / "pareto.png").stat().st_size > 0
