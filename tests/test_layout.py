"""The shape of the house (docs/ARCHITECTURE in ../shared, issue 37): no import cycles, dependencies
pointing one way (plugins -> codec -> formats), every module importable on its own, and a decoder
that never loads encoder code.

The import graph is read from the source (every import statement, function-level ones included),
over the packages pyproject.toml installs, so a new module is covered without listing it here.
"""

import ast
import os
from pathlib import Path
import subprocess
import sys
import tomllib

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
# Modules of the encoder side: a decode must not import them (nor anything that imports them).
ENCODER_MODULES = {"neco.codec.rate_control", "neco.codec.image_hp.encoder", "neco.codec.image_hp.refine",
                   "neco.codec.image_hp.fit", "neco.codec.image_hp.training", "neco.codec.video_hp.encoder"}


def _modules() -> dict[str, Path]:
    """Every installed module name -> its source file."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The neco modules `name` imports anywhere in its source (a `from package import x` counts
    as importing module package.x when that is a module, else the package)."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names}
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for module in GRAPH[todo.pop()] - seen:
            seen.add(module)
            todo.append(module)
    return seen


def test_the_graph_covers_the_house():
    assert {"neco", "neco.codec.session", "neco.codec.image_hp.decoder", "neco.formats.container"} <= set(MODULES)
    assert "neco.codec.image_hp.decoder" in GRAPH["neco.codec.image_hp.encoder"]   # the reader sees imports


def test_no_import_cycles():
    cycles = sorted(name for name in MODULES if name in _reachable(name))
    assert not cycles, f"modules on an import cycle: {cycles}"


@pytest.mark.parametrize("layer, forbidden", [
    ("neco.formats", ("neco", "neco.codec", "neco.plugins")),   # "neco": the facade
    ("neco.codec", ("neco", "neco.plugins")),
    ("neco.plugins.adapters", ("neco", "neco.plugins.cli", "neco.plugins.bench")),   # the facade imports them
    ("neco.plugins.bench", ("neco.plugins.cli",)),                 # a library; the CLI is its shell
])
def test_dependencies_point_one_way(layer, forbidden):
    for name in MODULES:
        if name == layer or name.startswith(layer + "."):
            wrong = {m for m in GRAPH[name] for f in forbidden if m == f or (f != "neco" and m.startswith(f + "."))}
            assert not wrong, f"{name} imports {sorted(wrong)}"


def test_the_decoder_side_imports_no_encoder_module():
    """Statically for the family's decoder modules; the session layer reaches the encoder side
    through lazy imports (registry.get_encoder, FrameWriter), checked at run time below."""
    for name in ("neco.codec.image_hp.decoder", "neco.codec.image_hp.adaptation", "neco.codec.image_hp.offsets",
                 "neco.codec.image_hp.payload", "neco.codec.video_hp.decoder", "neco.codec.video_hp.payload"):
        assert not _reachable(name) & ENCODER_MODULES, name


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "error::ImportWarning"})


def test_decoding_loads_no_encoder_module():
    """Through the API and the CLI; `neco info` loads no torch at all."""
    golden = sorted((ROOT / "tests" / "codec" / "golden").glob("*/*.neco"))
    still = next(path for path in golden if path.stem.startswith("photo"))
    result = _run(f"""
import sys, tempfile, neco
from neco.plugins.cli import cli
data = open({str(still)!r}, "rb").read()
neco.info(data)
cli.main(["info", {str(still)!r}], standalone_mode=False)
assert "torch" not in sys.modules, "neco info loaded torch"
neco.decode(data)
for path in {[str(p) for p in golden]!r}:
    with neco.open(path) as reader:
        list(reader)
    list(neco.open(path, strict=False))
    cli.main(["decode", path, tempfile.mkdtemp() + "/out.y4m"], standalone_mode=False)
print(sorted(m for m in sys.modules if m.startswith("neco.")))
""")
    assert result.returncode == 0, result.stderr
    loaded = set(eval(result.stdout.splitlines()[-1]))
    assert "neco.codec.image_hp.decoder" in loaded and not loaded & ENCODER_MODULES


def test_decoding_a_video_loads_no_encoder_module(tmp_path):
    """The video profile's decode (sequential, seeking, lenient, CLI) loads no encoder module either."""
    import numpy as np
    import neco
    clip = tmp_path / "clip.neco"
    frames = [np.full((64, 64, 3), 40 * i, np.uint8) for i in range(3)]
    neco.encode_frames(frames, clip, quality=10, gop=2)
    result = _run(f"""
import sys, tempfile, neco
from neco.plugins.cli import cli
path = {str(clip)!r}
with neco.open(path) as reader:
    list(reader)
    reader.frame(1)
list(neco.open(path, strict=False))
cli.main(["decode", path, tempfile.mkdtemp() + "/out.y4m"], standalone_mode=False)
print(sorted(m for m in sys.modules if m.startswith("neco.")))
""")
    assert result.returncode == 0, result.stderr
    loaded = set(eval(result.stdout.splitlines()[-1]))
    assert "neco.codec.video_hp.decoder" in loaded and not loaded & ENCODER_MODULES


def test_every_module_imports_on_its_own():
    """Each module in a fresh child process (third-party packages preloaded, so it is quick): an
    order-dependent import, e.g. a cycle hidden by who imports first, fails here. (Python runs
    the `neco` facade's __init__ before any neco.X, so "alone" means after the facade.)"""
    names = sorted(MODULES)
    result = _run(f"""
import os, sys
import numpy, torch, PIL.Image, click  # third-party: shared by the children
failed = []
for name in {names!r}:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except BaseException as exc:
            print(name, type(exc).__name__, exc, file=sys.stderr)
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failed.append(name)
print(failed)
""")
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
