"""gs:// first frames: a provider takes one only when its capabilities say `gcs_images`, and
`sceneflow.providers.validate_request`, the one check every validation path goes through,
refuses one for every other provider before anything is sent."""

from __future__ import annotations

import httpx
import pytest

import adapters
from sceneflow.errors import RequestValidationError
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import GCS_IMAGE_PROVIDERS, Capabilities, validate_request

GS = "gs://sf-bucket/frames/fox.png"
OTHERS = sorted(key for key in adapters.REGISTRY if key not in GCS_IMAGE_PROVIDERS)


def refusal(key: str) -> str:
    return (
        f"image_url: {key} cannot read a gs:// image (providers that take one: vertex). Use an "
        "https URL it can fetch instead (for a private object, a signed URL from `gcloud "
        f"storage sign-url {GS}`), a data: URL, or the provider vertex"
    )


def request(**kw: object) -> StandardVideoRequest:
    base: dict[str, object] = {"prompt": "A red fox runs", "aspect_ratio": "16:9"}
    base |= {"motion_intensity": 5, "duration": 8, "image_url": GS}
    return StandardVideoRequest.model_validate(base | kw)


def test_the_providers_named_are_those_whose_capabilities_say_so() -> None:
    declared = {
        key for key in adapters.REGISTRY if adapters.get_adapter(key).capabilities().gcs_images
    }
    assert declared == set(GCS_IMAGE_PROVIDERS) == {"vertex"}


@pytest.mark.parametrize("key", OTHERS)
@pytest.mark.parametrize("strict", [False, True])
async def test_every_other_provider_refuses_a_gs_image_before_anything_is_sent(
    key: str, strict: bool
) -> None:
    sent: list[httpx.Request] = []

    def record(r: httpx.Request) -> httpx.Response:
        sent.append(r)
        return httpx.Response(500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
        adapter = adapters.get_adapter(key, client=client)
        with pytest.raises(RequestValidationError) as exc:
            validate_request(adapter, request(), strict=strict)
        await adapter.aclose()
    assert exc.value.provider == key
    # The contract's line comes first; the adapter's problems with other fields (if its
    # limits refuse something else too) follow, but none about the image.
    assert exc.value.problems[0] == refusal(key)
    assert not [p for p in exc.value.problems[1:] if p.startswith("image_url")]
    assert sent == []


def test_the_gemini_apis_own_gs_refusal_is_not_repeated() -> None:
    # VeoAdapter.validate refuses gs:// in its own words as well; said once, by the contract.
    with pytest.raises(RequestValidationError) as exc:
        validate_request(adapters.get_adapter("veo"), request())
    assert exc.value.problems == [refusal("veo")]


def test_other_problems_are_reported_with_it() -> None:
    with pytest.raises(RequestValidationError) as exc:
        validate_request(adapters.get_adapter("veo"), request(duration=9))
    assert exc.value.problems == [
        refusal("veo"),
        "duration: veo model veo-3.1-generate-preview makes 4, 6, 8 second videos, not 9",
    ]


def test_vertex_takes_it_as_it_takes_an_https_image() -> None:
    vertex = adapters.get_adapter("vertex")
    https = request(image_url="https://img.test/fox.png")
    assert validate_request(vertex, request()) == validate_request(vertex, https)


def test_capabilities_are_read_only_for_a_gs_image(monkeypatch: pytest.MonkeyPatch) -> None:
    # A CSV validates every row through here: the contract adds no capabilities build a row.
    adapter = adapters.get_adapter("veo")
    real = adapter.capabilities
    calls: list[None] = []

    def counted() -> Capabilities:
        calls.append(None)
        return real()

    monkeypatch.setattr(adapter, "capabilities", counted)
    https = request(image_url="https://img.test/a.png")
    adapter.validate(https)
    own = len(calls)
    validate_request(adapter, https)
    assert len(calls) == 2 * own
