"""What importing costs and changes: the core and the adapters run without Prefect, and importing
the CLI changes no environment variable (its Prefect defaults apply when a command runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DO_NOT_TRACK"))}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_core_and_every_adapter_import_without_prefect() -> None:
    code = (
        "import sys, importlib, pathlib, adapters\n"
        "files = [p.with_suffix('') for p in pathlib.Path('sceneflow').rglob('*.py')]\n"
        "names = ['.'.join(f.parts).removesuffix('.__init__') for f in files"
        " if f.parts[1] not in ('app', 'migrations')]\n"
        "for n in names: importlib.import_module(n)\n"
        "for key in adapters.REGISTRY: adapters.adapter_class(key)\n"
        "print(len(names), 'prefect' in sys.modules)"
    )
    count, prefect_loaded = _run(code).split()
    assert int(count) > 10 and prefect_loaded == "False"


def test_importing_the_cli_sets_no_environment_variable() -> None:
    code = (
        "import os, json\nbefore = dict(os.environ)\nimport sceneflow.app.cli\n"
        "print(json.dumps(sorted(set(os.environ.items()) - set(before.items()))))"
    )
    assert json.loads(_run(code)) == []
