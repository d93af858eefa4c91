"""The adapters' layer rule, read from their source: what they may import, and where."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import adapters

ADAPTER_DIR = Path(adapters.__file__).parent
MODULES = sorted(ADAPTER_DIR.rglob("*.py"))
# The core modules adapters build on; anything else of the project is above them.
CORE = {f"sceneflow.{m}" for m in ("errors", "models", "providers", "settings", "media")}
PROJECT = ("adapters", "sceneflow", "tasks", "flows", "deployments", "tests", "bench")


def imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert node.level == 0, "relative imports are not used here"
    return [node.module or ""]


def is_project(name: str) -> bool:
    return name.split(".")[0] in PROJECT


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ADAPTER_DIR)))
def test_adapters_import_only_the_core_and_each_other(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in imported(node):
                assert name.split(".")[0] != "prefect", f"{path.name} imports {name}"
                if is_project(name):
                    assert name == "adapters" or name.startswith("adapters.") or name in CORE, (
                        f"{path.name} imports {name}: adapters may use only {sorted(CORE)}"
                    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ADAPTER_DIR)))
def test_project_imports_are_at_module_top(path: Path):
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
            names = [n for n in imported(node) if is_project(n)]
            assert not names, f"{path.name}:{node.lineno} imports {names} below the top"


def test_vertex_does_not_build_on_the_gemini_adapter():
    tree = ast.parse((ADAPTER_DIR / "google" / "vertex.py").read_text())
    names = {
        n for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for n in imported(node)
    }
    assert "adapters.google.gemini" not in names
