"""The registry is explicit: every adapter module is registered, and every entry works."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import adapters
from adapters import Provider
from sceneflow.errors import RequestValidationError, UnknownProviderError
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials, VideoAdapter

ADAPTER_DIR = Path(adapters.__file__).parent


# Modules of adapters/ that hold shared parts, not a provider (dotted, below `adapters.`).
NOT_ADAPTERS = {
    "base",
    "fields",
    "schemas",
    "google.operations",
    "google.veo_base",
    "google.veo_models",
    "local.job_store",
    "local.render_pool",
    "local.renderer",
}


def _modules() -> set[str]:
    """Every module under adapters/, dotted below `adapters.`; packages by their modules."""
    found = set()
    for path in ADAPTER_DIR.rglob("*.py"):
        parts = path.relative_to(ADAPTER_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            continue
        found.add(".".join(parts))
    return found


def test_every_adapter_module_is_registered():
    registered = {
        target.split(":")[0].removeprefix("adapters.") for target in adapters.REGISTRY.values()
    }
    assert _modules() - NOT_ADAPTERS == registered
    assert NOT_ADAPTERS <= _modules(), "a listed helper module no longer exists"


def test_no_module_is_private_by_name():
    # Helpers are named for what they hold and listed above, not hidden behind a leading "_".
    assert not [m for m in _modules() if any(p.startswith("_") for p in m.split("."))]


def test_registry_keys_are_the_provider_enum():
    assert set(adapters.REGISTRY) == {p.value for p in Provider}


@pytest.mark.parametrize("key", sorted(adapters.REGISTRY))
def test_every_entry_builds_an_adapter_that_describes_itself(key: str):
    adapter = adapters.get_adapter(key)
    assert isinstance(adapter, VideoAdapter)
    assert adapter.key == key
    caps = adapter.capabilities()
    assert caps.provider == key and caps.default_model in caps.models
    request_fields = set(StandardVideoRequest.model_fields) - {"model", "options"}
    for model, model_caps in caps.models.items():
        # Every request field is declared native, mapped or unsupported: nothing is silent.
        assert set(model_caps.fields) >= request_fields, f"{key}/{model}"


@pytest.mark.parametrize("key", sorted(adapters.REGISTRY))
def test_the_providers_job_id_has_one_name(key: str):
    cls = adapters.adapter_class(key)
    for method in (cls.status, cls.cancel):
        assert list(inspect.signature(method).parameters)[1] == "provider_job_id", method


def test_unknown_provider_lists_the_known_ones():
    with pytest.raises(UnknownProviderError) as e:
        adapters.get_adapter("sora")
    assert str(e.value) == (
        "Unknown provider 'sora'. Known providers: " + ", ".join(sorted(adapters.REGISTRY)) + "."
    )


def test_base_url_comes_from_the_setting(monkeypatch: pytest.MonkeyPatch):
    from sceneflow.settings import get_settings

    monkeypatch.setenv("SCENEFLOW_BASE_URLS__RUNWAY", "http://127.0.0.1:9/")
    get_settings.cache_clear()
    assert adapters.get_adapter("runway").base_url == "http://127.0.0.1:9"  # type: ignore[attr-defined]


async def test_a_key_the_provider_echoes_back_never_reaches_the_error():
    import httpx

    from sceneflow.errors import AuthError
    from sceneflow.providers import Credentials

    key = "key_" + "ab12" * 16

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": f"Incorrect API key provided: {key}"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as client:
        adapter = adapters.get_adapter("runway", client=client, base_url="http://127.0.0.1:9")
        with pytest.raises(AuthError) as e:
            await adapter.test_connection(Credentials({"api_key": key}))
    assert key not in str(e.value)
    assert "Incorrect API key provided: [redacted]" in str(e.value)


@pytest.mark.parametrize("key", sorted(adapters.REGISTRY))
async def test_prepare_says_what_validate_says_where_nothing_is_read_first(key: str):
    # Every adapter has prepare (the job engine calls it right before the send); with the
    # default model no schema is read, so it is validate(), refusals included.
    adapter = adapters.get_adapter(key)
    for duration in (5, 8):
        request = StandardVideoRequest(
            prompt="A kite", aspect_ratio="16:9", motion_intensity=5, duration=duration, seed=4
        )
        try:
            expected: object = adapter.validate(request)
        except RequestValidationError as e:
            expected = e.problems
        try:
            got: object = await adapter.prepare(request, Credentials({"api_key": "k" * 16}))
        except RequestValidationError as e:
            got = e.problems
        assert got == expected
    await adapter.aclose()
