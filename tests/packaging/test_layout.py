"""The package reads like its architecture: layers import downwards only, nothing private crosses a module.

Static checks on the source (ast): the package-level import graph has no
cycle, the file layer `tflite/` imports nothing of the package above it,
no module imports another module's private names, `keras.src` is imported
only where README says why, and the package's top level holds only
`__init__.py`.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "hypertiny_keras"
#: `keras.src` imports that remain, by file: README ("Architecture") says why.
KERAS_SRC_ALLOWED: dict[str, set[str]] = {
    # load_model's object-sharing scope (one shared generator restored per file) has no public API.
    "hypertiny_keras/layers/hyper_pointwise.py": {"keras.src.backend.common"},
}


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import in `tree`, function-level imports included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def _subpackage(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if parts[0] == "hypertiny_keras" and len(parts) > 1 else None


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path, tree in _modules().items():
        me = pathlib.Path(path).parts[1]
        if me.endswith(".py"):  # the top-level __init__ re-exports the public API lazily
            continue
        for module, names in _imports(tree):
            for dotted in [module] + [f"{module}.{n}" for n in names]:
                other = _subpackage(dotted)
                if other and other != me and (PACKAGE / other).is_dir():
                    graph.setdefault(me, set()).add(other)
    return graph


def test_package_imports_have_no_cycle():
    graph = package_graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(path + [nxt])
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_file_layer_utilities_and_execution_import_nothing_above_them():
    graph = package_graph()
    assert graph.get("tflite", set()) <= set(), graph.get("tflite")
    assert graph.get("utils", set()) <= set(), graph.get("utils")
    assert graph.get("device", set()) <= {"tflite", "utils"}, graph.get("device")
    assert graph.get("execution", set()) <= {"utils"}, graph.get("execution")  # runs tasks, knows none of them


def test_no_private_names_cross_modules_and_keras_src_only_where_documented():
    problems = []
    for path, tree in _modules().items():
        for module, names in _imports(tree):
            if module.startswith("keras.src") and module not in KERAS_SRC_ALLOWED.get(path, set()):
                problems.append(f"{path}: imports {module}")
            if module.startswith("hypertiny_keras"):
                problems += [f"{path}: imports private {module}.{n}" for n in names if n.startswith("_")]
    assert not problems, "\n".join(problems)


def test_top_level_holds_only_the_public_api():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]
