"""Audio and options on both Veo endpoints, over real HTTP against their emulators: what each
sends for audio on, off and unset, the options it sends, and that a bad option or a strict
refusal sends nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters.google.gemini import VeoAdapter
from adapters.google.vertex import VertexVeoAdapter
from sceneflow.errors import RequestValidationError
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials, validate_request
from tests.adapters.google.test_vertex import EMAIL, PUBLIC_KEY, creds
from tests.support.emulators._base import serve
from tests.support.emulators.gemini import VeoEmulator
from tests.support.emulators.vertex import VertexEmulator

KEY = "AIzaSy-test-SECRET-0123456789"
GEMINI = Credentials({"api_key": KEY})


def req(**kw: Any) -> StandardVideoRequest:
    base: dict[str, Any] = {"prompt": "A red fox runs", "aspect_ratio": "16:9", "duration": 8}
    return StandardVideoRequest.model_validate(base | {"motion_intensity": 5} | kw)


@pytest.fixture
def gemini() -> Iterator[tuple[VeoEmulator, str]]:
    emu = VeoEmulator(api_key=KEY, latency=0.3)
    with serve(emu.app) as url:
        yield emu, url


@pytest.fixture
def vertex() -> Iterator[tuple[VertexEmulator, str]]:
    emu = VertexEmulator(public_keys={EMAIL: PUBLIC_KEY}, latency=0.3)
    with serve(emu.app) as url:
        yield emu, url


@pytest.mark.parametrize(("audio", "sent"), [(None, True), (True, True), (False, False)])
async def test_vertex_sends_generate_audio_for_veo3(
    vertex: tuple[VertexEmulator, str], audio: bool | None, sent: bool
) -> None:
    emu, url = vertex
    async with VertexVeoAdapter(base_url=url) as adapter:
        assert adapter.validate(req(audio=audio)) == [
            "motion_intensity: vertex has no equivalent setting; not sent; describe the motion "
            "in the prompt"
        ]
        await adapter.submit(req(audio=audio), creds(url))
    assert emu.recorded[-1].body["parameters"]["generateAudio"] is sent
    assert emu.submissions == 1


async def test_vertex_veo2_takes_no_generate_audio(vertex: tuple[VertexEmulator, str]) -> None:
    emu, url = vertex
    request = req(model="veo-2.0-generate-001", duration=5, audio=True)
    async with VertexVeoAdapter(base_url=url) as adapter:
        warnings = adapter.validate(request)
        await adapter.submit(request, creds(url))
    assert warnings[-1] == (
        "audio: vertex model veo-2.0-generate-001 has no equivalent setting; it makes silent "
        "video only, so the clip has no sound"
    )
    assert "generateAudio" not in emu.recorded[-1].body["parameters"]


async def test_vertex_options_are_sent_as_parameters(vertex: tuple[VertexEmulator, str]) -> None:
    emu, url = vertex
    options = {"personGeneration": "allow_all", "enhancePrompt": False}
    async with VertexVeoAdapter(base_url=url) as adapter:
        await adapter.submit(req(options=options), creds(url))
    parameters = emu.recorded[-1].body["parameters"]
    assert parameters["personGeneration"] == "allow_all"
    assert parameters["enhancePrompt"] is False


@pytest.mark.parametrize(
    ("audio", "warning"),
    [
        (None, None),
        (True, None),
        (
            False,
            "audio: veo model veo-3.1-generate-preview always adds sound and has no way to turn "
            "it off; the clip will have sound",
        ),
    ],
)
async def test_gemini_sends_no_audio_field_and_says_when_off_cannot_be_kept(
    gemini: tuple[VeoEmulator, str], audio: bool | None, warning: str | None
) -> None:
    emu, url = gemini
    async with VeoAdapter(base_url=url) as adapter:
        warnings = adapter.validate(req(audio=audio))
        await adapter.submit(req(audio=audio), GEMINI)
    assert (warnings[1:] or [None])[0] == warning
    # The SDK refuses generate_audio in Gemini mode; SceneFlow never sends it there.
    assert "generateAudio" not in emu.recorded[-1].body["parameters"]
    assert emu.submissions == 1


async def test_gemini_sends_person_generation(gemini: tuple[VeoEmulator, str]) -> None:
    emu, url = gemini
    async with VeoAdapter(base_url=url) as adapter:
        await adapter.submit(req(options={"personGeneration": "dont_allow"}), GEMINI)
    assert emu.recorded[-1].body["parameters"]["personGeneration"] == "dont_allow"


async def test_bad_options_are_all_refused_before_anything_is_sent(
    gemini: tuple[VeoEmulator, str],
) -> None:
    emu, url = gemini
    options = {"personGeneration": "allow_all", "enhancePrompt": "yes", "loop": True}
    async with VeoAdapter(base_url=url) as adapter:
        with pytest.raises(RequestValidationError) as info:
            await adapter.submit(req(options=options), GEMINI)
    assert info.value.problems == [
        'options.personGeneration: veo model veo-3.1-generate-preview takes "dont_allow" or '
        '"allow_adult"; got "allow_all"',
        'options.enhancePrompt: veo model veo-3.1-generate-preview takes true or false; got "yes"',
        "options.loop: veo model veo-3.1-generate-preview has no option 'loop' (known: "
        "enhancePrompt, personGeneration)",
    ]
    assert emu.submissions == 0 and emu.recorded == []


def test_strict_refuses_the_gemini_seed_and_keeps_motion_a_warning() -> None:
    adapter = VeoAdapter()
    assert len(validate_request(adapter, req(), strict=True)) == 1  # motion_intensity only
    with pytest.raises(RequestValidationError) as info:
        validate_request(adapter, req(seed=42, audio=False), strict=True)
    assert [p.partition(":")[0] for p in info.value.problems] == ["seed", "audio"]
    assert info.value.problems[0].startswith(
        "seed: veo has no equivalent setting; not sent; the Gemini API refuses it [strict: "
        "refused before anything is sent;"
    )


def test_capabilities_declare_audio_and_options() -> None:
    vertex = VertexVeoAdapter().capabilities().models
    assert vertex["veo-3.1-generate-001"].fields["audio"].support == "native"
    assert "required for Veo 3" in vertex["veo-3.1-generate-001"].fields["audio"].note
    assert vertex["veo-2.0-generate-001"].fields["audio"].support == "unsupported"
    gemini = VeoAdapter().capabilities().models["veo-3.1-generate-preview"]
    assert gemini.fields["audio"].support == "mapped"
    assert gemini.options["personGeneration"].choices == ["dont_allow", "allow_adult"]
    assert gemini.options["personGeneration"].wire == "parameters.personGeneration"
