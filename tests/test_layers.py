"""The layers of ARCHITECTURE.md hold: each module imports only gdlab modules of its own
layer or of layers below it, and importing gdlab changes no global matplotlib state."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "gdlab"
# Bottom to top; a module may import its own layer and the layers before it.
LAYERS = [
    ("base", ["_checks", "_types", "_tree", "stats", "problem", "config"]),
    ("core", ["core"]),
    ("symmetry", ["symmetry"]),
    ("landscape", ["landscape"]),
    ("atlas", ["atlas"]),
    ("problems", ["problems"]),
    ("batch", ["batch"]),
    ("costs", ["costs"]),
    ("plots", ["plots"]),
    ("entry", ["cli", "_argfields", "studies", "experiments", "__init__"]),
]
RANK = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def _layer(module: str) -> int:
    """Rank of a dotted gdlab module name ("gdlab.core.train" -> core)."""
    parts = module.split(".")
    if parts == ["gdlab"]:
        return RANK["__init__"]
    return RANK[parts[1]]


def _imports(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "gdlab":  # `from gdlab import sub` (or a name of gdlab itself)
                out += [(f"gdlab.{a.name}" if a.name in RANK else "gdlab", node.lineno)
                        for a in node.names]
            elif node.module.startswith("gdlab."):
                out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("gdlab.")]
    return out


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__") if rel.name == "__init__" \
        else ".".join(rel.parts)


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(
    p.relative_to(ROOT)))
def test_modules_import_only_their_layer_and_below(path):
    me = _module_of(path)
    bad = [(m, line) for m, line in _imports(path) if _layer(m) > _layer(me)]
    assert not bad, f"{me} ({LAYERS[_layer(me)][0]}) imports from higher layers: {bad}"


def test_importing_every_module_keeps_the_matplotlib_backend():
    code = ("import matplotlib; matplotlib.use('svg'); import pkgutil, importlib, gdlab; "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(gdlab.__path__, "
            "'gdlab.')]; print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "svg"


def test_every_subpackage_is_listed_for_the_wheel():
    """pyproject lists packages by name: a new subpackage left off it is missing from wheels."""
    import tomllib
    listed = set(tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {"gdlab"} | {"gdlab." + p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert found - listed == set(), f"add to pyproject's packages: {sorted(found - listed)}"


def test_architecture_page_names_every_module():
    """ARCHITECTURE.md's layer table lists each subpackage's modules; a module added or
    removed without the page following fails here."""
    import re
    page = (ROOT.parent / "ARCHITECTURE.md").read_text()
    rows = {m.group(1): set(re.findall(r"\w+", m.group(2)))
            for m in re.finditer(r"^\| \w[\w ]* \| `(\w+)/` ([^|`]*)\|", page, re.M)}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages <= set(rows), f"subpackages missing from the table: {packages - set(rows)}"
    for package in packages:
        found = {p.stem for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}
        assert rows[package] == found, (package, rows[package] ^ found)
