"""The package's layers: imports run one way, from the shared base up to the CLI, and never in a circle.

Read with the standard library's ``ast`` (nothing is imported), so a lazy import inside a function counts as
much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "container" / "dummy_training"

#: Each room and its layer, lowest first. A module may import its own room and any lower layer, never a higher one.
LAYERS: list[tuple[str, ...]] = [
    ("contract", "errors"),
    ("aws", "hyperparameters", "console"),
    ("ends",),
    ("engine",),
    ("step",),
    ("sagemaker",),
    ("ack",),
    ("kfp",),
    ("cli", "__main__"),
]
LAYER_OF = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(("dummy_training", *parts))] = path
    return found


MODULES = _modules()


def _room(module: str) -> str:
    """``dummy_training.engine.gzip_scan`` -> ``engine``; the package itself (``__version__``) is the base."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "contract"


def _imports(path: Path) -> set[str]:
    """Every ``dummy_training`` module ``path`` imports, at any depth of its code."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "dummy_training")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dummy_training":
            for alias in node.names:  # "from dummy_training.ends import factory" imports a module
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in MODULES else node.module)
    return out


def test_every_module_has_a_layer() -> None:
    rooms = {_room(m) for m in MODULES}
    assert rooms <= set(LAYER_OF), f"modules outside every layer: {sorted(rooms - set(LAYER_OF))}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_higher_layer(module: str) -> None:
    own = LAYER_OF[_room(module)]
    upward = sorted(m for m in _imports(MODULES[module]) if LAYER_OF[_room(m)] > own)
    assert not upward, f"{module} (layer {_room(module)}) imports from above: {upward}"


def test_no_import_cycle() -> None:
    graph = {m: {i for i in _imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    # a package's __init__ is imported with any of its modules: not an edge of a cycle we care about
    visiting: list[str] = []
    done: set[str] = set()

    def visit(m: str) -> None:
        if m in done:
            return
        assert m not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(m):], m])
        visiting.append(m)
        for n in sorted(graph[m]):
            visit(n)
        visiting.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule bites: an engine module that imported the SageMaker launcher would be reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from dummy_training.sagemaker import launcher\n    return launcher\n")
    imported = _imports(bad)
    assert imported == {"dummy_training.sagemaker.launcher"}
    assert LAYER_OF[_room("dummy_training.sagemaker.launcher")] > LAYER_OF["engine"]
