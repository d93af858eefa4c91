"""Provider adapters, the registry that maps provider keys to them, and the `Provider` enum.

The registry is an explicit dict, not discovery by naming convention: a test asserts that every
adapter module in this package (or its subpackages) is registered, that the shared helper
modules (base, fields, google.operations, ...) are listed as such, and that every entry
imports. `Provider` is made from the registry, so a new provider is one entry here and nothing
else outside its own module.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from importlib import import_module

import httpx

from sceneflow.errors import UnknownProviderError
from sceneflow.providers import VideoAdapter
from sceneflow.settings import get_settings

__all__ = ["REGISTRY", "Provider", "adapter_class", "get_adapter", "known"]

# provider key -> "module:Class"; imported on first use, so that one provider's imports (PyAV for
# local, google-auth for vertex) are never a cost for another provider's user.
REGISTRY: dict[str, str] = {
    "local": "adapters.local.adapter:LocalAdapter",
    "runway": "adapters.runway:RunwayAdapter",
    "veo": "adapters.google.gemini:VeoAdapter",
    "vertex": "adapters.google.vertex:VertexVeoAdapter",
    "luma": "adapters.luma:LumaAdapter",
    "replicate": "adapters.replicate:ReplicateAdapter",
    "fal": "adapters.fal:FalAdapter",
    "kling": "adapters.kling:KlingAdapter",
    "minimax": "adapters.minimax:MiniMaxAdapter",
    "wan": "adapters.wan:WanAdapter",
    "seedance": "adapters.seedance:SeedanceAdapter",
}

# A flow parameter typed `Provider` becomes a dropdown in the Prefect UI.
Provider = StrEnum("Provider", {key.upper(): key for key in REGISTRY})  # type: ignore[misc]


def known() -> list[str]:
    return sorted(REGISTRY)


def adapter_class(provider: str) -> type[VideoAdapter]:
    try:
        target = REGISTRY[provider]
    except KeyError:
        raise UnknownProviderError(provider, known()) from None
    return _load(target)


@cache
def _load(target: str) -> type[VideoAdapter]:
    # Keyed by the registry's entry, not the provider key, so a changed entry loads anew;
    # validating a 100,000-row CSV asked import_module 100,000 times (issue 10).
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


def get_adapter(
    provider: str, *, client: httpx.AsyncClient | None = None, base_url: str | None = None
) -> VideoAdapter:
    """Build the adapter for `provider`. The base URL comes from the argument, else the setting
    SCENEFLOW_BASE_URLS__<KEY>, else the provider's public endpoint."""
    cls = adapter_class(provider)
    if base_url is None:
        urls = {k.lower(): v for k, v in get_settings().base_urls.items()}
        base_url = urls.get(provider)
    return cls(client=client, base_url=base_url)  # type: ignore[call-arg]
