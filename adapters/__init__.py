"""Provider adapters and the registry that maps provider keys to them.

The registry is an explicit dict, not discovery by naming convention: a test asserts that every
module in this package is registered and that every entry imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import httpx

from adapters.base import Capabilities, Credentials, VideoAdapter
from sceneflow.errors import UnknownProviderError

__all__ = ["REGISTRY", "Capabilities", "Credentials", "VideoAdapter", "get_adapter", "known"]

# provider key -> "module:Class"; imported lazily so one provider's SDK-free module is never a
# cost for another's user.
REGISTRY: dict[str, str] = {
    "local": "adapters.local:LocalAdapter",
    "runway": "adapters.runway:RunwayAdapter",
    "veo": "adapters.veo:VeoAdapter",
    "vertex": "adapters.vertex:VertexVeoAdapter",
    "luma": "adapters.luma:LumaAdapter",
    "replicate": "adapters.replicate:ReplicateAdapter",
    "fal": "adapters.fal:FalAdapter",
}


def known() -> list[str]:
    return sorted(REGISTRY)


def adapter_class(provider: str) -> type[Any]:
    try:
        target = REGISTRY[provider]
    except KeyError:
        raise UnknownProviderError(provider, known()) from None
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


def get_adapter(
    provider: str, *, client: httpx.AsyncClient | None = None, base_url: str | None = None
) -> VideoAdapter:
    """Build the adapter for `provider`. The base URL comes from the argument, else the setting
    SCENEFLOW_BASE_URLS__<KEY>, else the provider's public endpoint."""
    cls = adapter_class(provider)
    if base_url is None:
        from sceneflow.settings import get_settings

        urls = {k.lower(): v for k, v in get_settings().base_urls.items()}
        base_url = urls.get(provider)
    return cls(client=client, base_url=base_url)  # type: ignore[no-any-return]
