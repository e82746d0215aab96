"""The import graph of `neco.plugins`: no cycles (function-level imports included), the bench
never imports the CLI, the adapters never import the `neco` facade (which imports the Pillow
plugin), and every module imports on its own."""

import ast
from pathlib import Path
import subprocess
import sys

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PLUGINS.rglob("*.py")):
        parts = ["neco", "plugins", *path.relative_to(PLUGINS).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """What `name` imports, anywhere in its body: modules of `neco.plugins`, and "neco" for the facade.

    ``from package import submodule`` counts as the submodule (importing a submodule runs its
    package's ``__init__``, an edge every checker leaves out).
    """
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            if target == "neco":
                found.add("neco")
                continue
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_import_cycles():
    def visit(name: str, path: list[str]) -> None:
        for target in sorted(GRAPH[name] - {"neco"}):
            assert target not in path, "import cycle: " + " -> ".join([*path[path.index(target):], target])
            if target not in done:
                visit(target, [*path, target])
        done.add(name)

    done: set[str] = set()
    for name in MODULES:
        visit(name, [name])


def test_the_bench_does_not_import_the_cli():
    for name, targets in GRAPH.items():
        if name.startswith("neco.plugins.bench"):
            assert not any(t.startswith("neco.plugins.cli") for t in targets), name


def test_the_adapters_do_not_import_the_facade():
    for name, targets in GRAPH.items():
        if name.startswith("neco.plugins.adapters"):
            assert "neco" not in targets, name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_imports_alone(name):
    result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
