"""The package's architecture, held: each sub-package is one layer, imports only point down, no
module imports itself back through others, and the names users import keep working."""

import ast
import re
import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "infobatch_runner"

# Lowest first. A module may import from its own unit (its sub-package, or itself) and from units
# of lower layers only; units of one layer do not import each other. docs/layout.md says why.
LAYERS = [
    {"errors"},
    {"data", "pruning"},
    {"results"},
    {"engine"},
    {"config", "sweeps", "integrations"},
    {"cli", "library", "lightning", "testing", "conf"},
    {"leaderboard"},
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name, the config package (conf/, shipped as
    infobatch_runner.conf) included."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    found["infobatch_runner.conf"] = ROOT / "conf" / "__init__.py"
    return found


MODULES = module_files()


def imported_modules(path: Path) -> set[str]:
    """The package's modules that a file imports, at its top or inside a function alike."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod itself
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        out |= {n for n in names if n == "infobatch_runner" or n.startswith("infobatch_runner.")}
    return out


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "infobatch_runner"


GRAPH = {name: imported_modules(path) for name, path in MODULES.items()}


def test_every_unit_of_the_package_has_a_layer():
    units = {unit_of(m) for m in MODULES} - {"infobatch_runner"}
    assert units - LAYER_OF.keys() == set(), "a new module or sub-package: give it a layer here and in docs/layout.md"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_point_down(module):
    mine = unit_of(module)
    for target in sorted(GRAPH[module]):
        theirs = unit_of(target)
        if theirs in (mine, "infobatch_runner"):
            continue
        assert LAYER_OF[theirs] < LAYER_OF[mine], (
            f"{module} (layer {LAYER_OF[mine]}, {mine}/) imports {target} (layer {LAYER_OF[theirs]}, {theirs}/): "
            "a lower layer must not import a higher one, nor one of its own layer")


def test_no_import_cycle_between_modules():
    """A cycle (a imports b imports a), even through an import inside a function, is refused: it is
    what ties two modules that should be one, or one that should be split."""
    def module_of(target):  # `from infobatch_runner.x import Name` imports the module infobatch_runner.x
        return target if target in MODULES else target.rpartition(".")[0]

    edges = {m: {module_of(t) for t in ts} - {m} for m, ts in GRAPH.items()}
    # a package's __init__ imports its own modules to re-export them; that edge is not a cycle's
    for m, ts in edges.items():
        edges[m] = {t for t in ts if not m.startswith(t + ".")}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(t):] + [m, t]))
            if t not in state:
                visit(t, path + [m])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])


def test_the_check_sees_an_upward_import(tmp_path):
    """The rule above fails on the bug it names: a results module importing the engine."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from infobatch_runner.engine.train import train\n")
    (target,) = imported_modules(bad)
    assert unit_of(target) == "engine" and LAYER_OF["engine"] > LAYER_OF["results"]


def test_the_public_names_still_import():
    from infobatch_runner.library import IndexedDataset, PrunedBatchSampler, Pruner
    from infobatch_runner.lightning import InfoBatchCallback

    assert all(callable(x) for x in (IndexedDataset, PrunedBatchSampler, Pruner, InfoBatchCallback))
    assert importlib.import_module("infobatch_runner.conf").__file__.endswith("__init__.py")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"infobatch-run", "infobatch-report"}
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def readme_layout() -> str:
    return (ROOT / "docs" / "layout.md").read_text()


def test_the_readme_table_shows_these_layers():
    rows = {}
    for line in readme_layout().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows[int(cells[0])] = {name.rstrip("/").removesuffix(".py") for name in re.findall(r"`([^`]+)`", cells[1])}
    assert rows == dict(enumerate(LAYERS))


def test_the_readme_layout_names_every_module():
    layout = readme_layout()
    missing = [str(path.relative_to(ROOT)) for path in MODULES.values()
               if path.name != "__init__.py" and not re.search(rf"\b{re.escape(path.name)}", layout)]
    assert missing == []
