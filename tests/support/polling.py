"""Polling sped up for tests: providers ask to be polled every 2-10 s, emulators finish in 0.2 s."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

import adapters
from sceneflow.providers import Capabilities


def fast_polling(monkeypatch: pytest.MonkeyPatch, keys: Iterable[str] | None = None) -> None:
    """Make the adapters of `keys` (default: every provider) poll every 0.1-0.2 s."""
    for key in keys if keys is not None else adapters.known():
        cls = adapters.adapter_class(key)
        original = cls.capabilities

        def fast(self: Any, _original: Any = original) -> Capabilities:
            return _original(self).model_copy(
                update={"poll_interval": 0.1, "max_poll_interval": 0.2}
            )

        monkeypatch.setattr(cls, "capabilities", fast)
