"""The API example in README.md runs as written."""
import os
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "export_tflite" in b)
    assert len(example.strip().splitlines()) <= 20
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        namespace = {}
        exec(compile(example, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    report = namespace["report"]
    assert (tmp_path / "model.tflite").stat().st_size == report.file_bytes
    assert report.synthesis == "boot" and report.verification["tflm_vs_litert_max_steps"] <= 1
