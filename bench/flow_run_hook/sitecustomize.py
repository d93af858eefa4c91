"""Imported by Python at the start of every process whose PYTHONPATH holds this folder.

bench_scale puts it there for its process workers: each flow run a worker starts is a process
of its own, which bench_batch's in-process `_polling` cannot reach, so this makes the flow run
poll the Runway emulator every SCENEFLOW_BENCH_POLL_SECONDS with no back-off, as bench_batch
does in its own process. Nothing is imported before adapters.runway is, so the worker itself
and any process that never loads the adapter pay nothing for it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

TARGET = "adapters.runway"


class _PollEvery(importlib.abc.MetaPathFinder):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module
        seconds = self.seconds

        def exec_module(module: ModuleType) -> None:
            load(module)
            from bench.bench_batch import _poll_every

            _poll_every(seconds)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if poll := os.environ.get("SCENEFLOW_BENCH_POLL_SECONDS"):
    sys.meta_path.insert(0, _PollEvery(float(poll)))
