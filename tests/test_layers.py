"""The layers, read from the source with `ast`: core ← adapters ← tasks ← flows ← entry layer.

A module may import its own layer and the layers below it, never one above. Project modules and
Prefect are imported at module top: an import inside a function or under `TYPE_CHECKING` is the
same arrow, only hidden, so it counts as a violation wherever it points.

One module is allowed a hidden import, by name: the launcher (LAUNCHER, below).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lower ranks sit below higher ones. Prefect is allowed from the tasks layer up: the core and the
# adapters run without it (the gateway's submit-only calls, the adapters' tests).
LAYERS = {"core": 0, "adapters": 1, "tasks": 2, "flows": 3, "entry": 4}
PROJECT = ("sceneflow", "adapters", "tasks", "flows", "prefect")

# The launcher behind the `sceneflow` command and `python -m sceneflow` is the one module allowed
# to import the command tree inside a function, because its purpose is to print before that
# import (a status on the terminal while Prefect and the flows load, which takes seconds). It is
# entry layer, though it sits outside sceneflow/app/: importing that package imports the gateway
# and Prefect. The allowance is this file and this import only.
LAUNCHER = Path("sceneflow/__main__.py")
LAUNCHER_MODULE = "sceneflow.__main__"
LAUNCHER_DEFERS = "sceneflow.app.cli"


def layer_of_module(name: str) -> str | None:
    """The layer an imported module belongs to; None for the standard library and third party."""
    top = name.split(".")[0]
    if name in ("sceneflow.app", LAUNCHER_MODULE) or name.startswith("sceneflow.app."):
        return "entry"
    if top == "sceneflow":
        return "core"
    if top in ("adapters", "tasks", "flows"):
        return top
    if top == "prefect":
        return "tasks"
    return None


def layer_of_file(path: Path, root: Path) -> str | None:
    if path.relative_to(root) == LAUNCHER:
        return "entry"
    parts = path.relative_to(root).parts
    if parts[0] == "sceneflow":
        return "entry" if len(parts) > 1 and parts[1] == "app" else "core"
    return parts[0] if parts[0] in ("adapters", "tasks", "flows") else None


def _imports(tree: ast.Module) -> list[tuple[str, int, bool]]:
    """(module, line, at module top) for every import in the file."""
    top = {id(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, node.lineno, id(node) in top))
    return found


def violations(root: Path) -> list[str]:
    """Every import that points up a layer or hides inside a function or TYPE_CHECKING."""
    problems = []
    for folder in ("sceneflow", "adapters", "tasks", "flows"):
        for path in sorted((root / folder).rglob("*.py")):
            source = layer_of_file(path, root)
            if source is None:
                continue
            where = path.relative_to(root)
            for module, line, at_top in _imports(ast.parse(path.read_text(encoding="utf-8"))):
                target = layer_of_module(module)
                if target is None:
                    continue
                if not at_top and not (where == LAUNCHER and module == LAUNCHER_DEFERS):
                    problems.append(f"{where}:{line}: imports {module} inside a block")
                if LAYERS[target] > LAYERS[source]:
                    problems.append(f"{where}:{line}: {source} imports {module} ({target})")
    return problems


def test_imports_point_down_only_and_sit_at_module_top() -> None:
    assert violations(ROOT) == []


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_check_catches_each_kind_of_violation(tmp_path: Path) -> None:
    _write(tmp_path, "sceneflow/jobs.py", "import prefect\nfrom adapters.base import X\n")
    _write(
        tmp_path,
        "sceneflow/hidden.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tasks import t\n"
        "def f():\n    from flows.batch import generate_batch\n",
    )
    _write(tmp_path, "adapters/runway.py", "from sceneflow.app.gateway import G\n")
    _write(tmp_path, "tasks/t.py", "from flows import f\nimport prefect\nimport httpx\n")
    _write(tmp_path, "flows/f.py", "from sceneflow.app.cli import app\n")
    _write(tmp_path, "sceneflow/app/cli.py", "def run():\n    import flows.batch\n")
    _write(tmp_path, "sceneflow/models.py", "import pydantic\nfrom sceneflow.errors import E\n")
    # The launcher may defer the command tree, and nothing else; no other module may defer it.
    _write(
        tmp_path,
        "sceneflow/__main__.py",
        "import rich\ndef main():\n    from sceneflow.app.cli import app\n"
        "    from flows.batch import b\n    import prefect\n",
    )
    _write(
        tmp_path, "sceneflow/app/launch.py", "def main():\n    from sceneflow.app.cli import app\n"
    )
    _write(tmp_path, "sceneflow/settings.py", "from sceneflow.__main__ import main\n")
    assert sorted(violations(tmp_path)) == [
        "adapters/runway.py:1: adapters imports sceneflow.app.gateway (entry)",
        "flows/f.py:1: flows imports sceneflow.app.cli (entry)",
        "sceneflow/__main__.py:4: imports flows.batch inside a block",
        "sceneflow/__main__.py:5: imports prefect inside a block",
        "sceneflow/app/cli.py:2: imports flows.batch inside a block",
        "sceneflow/app/launch.py:2: imports sceneflow.app.cli inside a block",
        "sceneflow/hidden.py:3: core imports tasks (tasks)",
        "sceneflow/hidden.py:3: imports tasks inside a block",
        "sceneflow/hidden.py:5: core imports flows.batch (flows)",
        "sceneflow/hidden.py:5: imports flows.batch inside a block",
        "sceneflow/jobs.py:1: core imports prefect (tasks)",
        "sceneflow/jobs.py:2: core imports adapters.base (adapters)",
        "sceneflow/settings.py:1: core imports sceneflow.__main__ (entry)",
        "tasks/t.py:1: tasks imports flows (flows)",
    ]


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("sceneflow.jobs.ledger", "core"),
        ("sceneflow.app.gateway", "entry"),
        ("sceneflow.__main__", "entry"),
        ("adapters.google.vertex", "adapters"),
        ("prefect.tasks", "tasks"),
        ("httpx", None),
    ],
)
def test_modules_map_to_their_layer(module: str, layer: str | None) -> None:
    assert layer_of_module(module) == layer
