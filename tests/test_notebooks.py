"""The colab/ notebooks run top to bottom (small settings) and are stored without outputs."""
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "colab").glob("*.ipynb"))


def test_the_notebooks_exist_and_are_stored_clean():
    assert [p.name for p in NOTEBOOKS] == [
        "bring_your_own_data.ipynb", "personalize.ipynb", "quickstart.ipynb", "your_own_model.ipynb",
    ]
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        code = [cell for cell in book.cells if cell.cell_type == "code"]
        assert "pip" in code[0].source, f"{path.name}: the first code cell installs the package"
        assert all(not cell.outputs and cell.execution_count is None for cell in code), f"{path.name} holds outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("HT_SMALL", "1")
    monkeypatch.setenv("HT_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert any(cell.get("outputs") for cell in book.cells if cell.cell_type == "code")
    assert list((tmp_path / "out").glob("*.tflite")), f"{path.name} exported no .tflite file"


def test_readme_sections_are_what_the_notebooks_run():
    import re

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Bring your own model and data", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2 and all(len(b.strip().splitlines()) <= 16 for b in blocks)
    for block, name in zip(blocks, ("bring_your_own_data", "your_own_model")):
        book = nbformat.read(ROOT / "colab" / f"{name}.ipynb", as_version=4)
        code = "\n".join(cell.source for cell in book.cells if cell.cell_type == "code")
        for line in block.strip().splitlines():
            statement = line.split("  #")[0].rstrip()
            if statement and not statement.startswith(("import", "print(report)")):
                assert statement in code, f"README line not run by {name}.ipynb: {statement}"
