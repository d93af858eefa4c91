"""Audio and provider options on every adapter, over real HTTP against each emulator (uvicorn on
127.0.0.1): what is sent on the wire for audio on, off and unset and for each declared option,
and that an unknown or ill-typed option, or a strict refusal, fails before any request reaches
the emulator (its paid-submission count stays 0). The Veo endpoints are in google/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import adapters
from adapters.fal import FalAdapter
from adapters.kling import KlingAdapter
from adapters.luma import LumaAdapter
from adapters.minimax import MiniMaxAdapter
from adapters.replicate import ReplicateAdapter
from adapters.runway import RunwayAdapter
from adapters.seedance import SeedanceAdapter
from adapters.wan import WanAdapter
from sceneflow.errors import RequestValidationError
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Credentials, validate_request
from tests.support.emulators import fal, kling, luma, minimax, replicate, runway, seedance, wan
from tests.support.emulators._base import serve

KEYED = Credentials({"api_key": "unused"})


def req(**kw: Any) -> StandardVideoRequest:
    base: dict[str, Any] = {"prompt": "A red fox runs through snow", "aspect_ratio": "16:9"}
    return StandardVideoRequest.model_validate(base | {"motion_intensity": 5} | kw)


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    emu = request.param()
    with serve(emu.app) as url:
        yield emu, url


def last_body(emu: Any) -> dict[str, Any]:
    return emu.recorded[-1]["body"]  # type: ignore[no-any-return]


# -- audio on the wire -------------------------------------------------------------------------


@pytest.mark.parametrize("served", [lambda: runway.RunwayEmulator(latency=10)], indirect=True)
@pytest.mark.parametrize(("audio", "sent"), [(None, None), (True, True), (False, False)])
async def test_runway_veo_sends_audio_only_when_set(
    served: tuple[Any, str], audio: bool | None, sent: bool | None
) -> None:
    emu, url = served
    creds = Credentials({"api_key": runway.API_KEY})
    async with RunwayAdapter(base_url=url) as adapter:
        await adapter.submit(req(model="veo3.1", duration=8, audio=audio), creds)
    assert last_body(emu).get("audio") is sent and emu.submissions == 1


@pytest.mark.parametrize("served", [lambda: kling.KlingEmulator(latency=10)], indirect=True)
@pytest.mark.parametrize(("audio", "sound"), [(None, None), (True, "on"), (False, "off")])
async def test_kling_sends_sound_on_v2_6(
    served: tuple[Any, str], audio: bool | None, sound: str | None
) -> None:
    emu, url = served
    creds = Credentials({"access_key": kling.ACCESS_KEY, "secret_key": kling.SECRET_KEY})
    request = req(model="kling-v2-6", resolution="1080p", audio=audio)
    async with KlingAdapter(base_url=url) as adapter:
        await adapter.submit(request, creds)
    assert last_body(emu).get("sound") == sound and emu.submissions == 1


@pytest.mark.parametrize("served", [lambda: seedance.SeedanceEmulator(latency=10)], indirect=True)
@pytest.mark.parametrize(("audio", "sent"), [(None, None), (True, True), (False, False)])
async def test_seedance_1_5_sends_generate_audio(
    served: tuple[Any, str], audio: bool | None, sent: bool | None
) -> None:
    emu, url = served
    creds = Credentials({"api_key": seedance.API_KEY})
    request = req(model="seedance-1-5-pro-251215", audio=audio)
    async with SeedanceAdapter(base_url=url + seedance.PREFIX) as adapter:
        await adapter.submit(request, creds)
    assert last_body(emu).get("generate_audio") is sent and emu.submissions == 1


@pytest.mark.parametrize("served", [lambda: fal.FalEmulator(latency=0.3)], indirect=True)
@pytest.mark.parametrize(("audio", "sent"), [(None, None), (True, True), (False, False)])
async def test_fal_veo3_sends_generate_audio(
    served: tuple[Any, str], audio: bool | None, sent: bool | None
) -> None:
    emu, url = served
    creds = Credentials({"api_key": fal.API_KEY})
    request = req(model="fal-ai/veo3/fast", duration=8, audio=audio)
    async with FalAdapter(base_url=url) as adapter:
        await adapter.submit(request, creds)
    assert emu.log[-1]["json"].get("generate_audio") is sent and emu.submissions == 1


@pytest.fixture
def replicate_served() -> Iterator[tuple[Any, str]]:
    app = replicate.create_app(replicate.Emulator(latency=0.3))
    with serve(app) as url:
        yield app, url


@pytest.mark.parametrize(("audio", "sent"), [(None, None), (True, True), (False, False)])
async def test_replicate_veo_sends_generate_audio(
    replicate_served: tuple[Any, str], audio: bool | None, sent: bool | None
) -> None:
    app, url = replicate_served
    creds = Credentials({"api_key": replicate.TOKEN})
    async with ReplicateAdapter(base_url=url) as adapter:
        await adapter.submit(req(model="google/veo-3.1", duration=8, audio=audio), creds)
    inputs = json.loads(app.state.recorded[-1]["body"])["input"]
    assert inputs.get("generate_audio") is sent and app.state.emu.submissions == 1


async def test_replicate_schema_model_maps_audio_and_takes_its_other_inputs_as_options(
    replicate_served: tuple[Any, str],
) -> None:
    app, url = replicate_served
    creds = Credentials({"api_key": replicate.TOKEN})
    async with ReplicateAdapter(base_url=url) as adapter:
        await adapter.submit(req(model="acme/enum-video", audio=False), creds)
        inputs = json.loads(app.state.recorded[-1]["body"])["input"]
        assert inputs["generate_audio"] is False
        await adapter.submit(req(model="acme/range-video", options={"guidance_scale": 9.5}), creds)
        inputs = json.loads(app.state.recorded[-1]["body"])["input"]
        assert inputs["guidance_scale"] == 9.5
        submitted = app.state.emu.submissions
        bad = req(model="acme/range-video", options={"guidance_scale": 99, "steps": 4})
        with pytest.raises(RequestValidationError) as info:
            await adapter.submit(bad, creds)
        assert app.state.emu.submissions == submitted
    assert info.value.problems == [
        "options.guidance_scale: replicate model acme/range-video takes numbers from 1 to 20 in "
        "its input 'guidance_scale'; got 99",
        "options.steps: replicate model acme/range-video has no input 'steps' (its options: "
        "guidance_scale)",
    ]


# -- options on the wire -----------------------------------------------------------------------


@pytest.mark.parametrize("served", [lambda: luma.LumaEmulator(latency=0.3)], indirect=True)
async def test_luma_sends_loop(served: tuple[Any, str]) -> None:
    emu, url = served
    async with LumaAdapter(base_url=url + luma.PREFIX) as adapter:
        await adapter.submit(req(options={"loop": True}), Credentials({"api_key": luma.API_KEY}))
    assert last_body(emu)["loop"] is True and emu.submissions == 1


@pytest.mark.parametrize("served", [lambda: kling.KlingEmulator(latency=10)], indirect=True)
async def test_kling_sends_mode_and_camera_control(served: tuple[Any, str]) -> None:
    emu, url = served
    creds = Credentials({"access_key": kling.ACCESS_KEY, "secret_key": kling.SECRET_KEY})
    camera = {"type": "simple", "config": {"horizontal": 0, "zoom": 5}}
    async with KlingAdapter(base_url=url) as adapter:
        await adapter.submit(req(model="kling-v1-6", options={"mode": "pro"}), creds)
        assert last_body(emu)["mode"] == "pro"
        await adapter.submit(req(model="kling-v1", options={"camera_control": camera}), creds)
    assert last_body(emu)["camera_control"] == camera and last_body(emu)["mode"] == "std"
    assert emu.submissions == 2


@pytest.mark.parametrize("served", [lambda: seedance.SeedanceEmulator(latency=10)], indirect=True)
async def test_seedance_sends_camera_fixed_as_given(served: tuple[Any, str]) -> None:
    emu, url = served
    request = req(motion_intensity=1, options={"camera_fixed": False})
    async with SeedanceAdapter(base_url=url + seedance.PREFIX) as adapter:
        assert adapter.validate(request) == [
            "motion_intensity: seedance has no equivalent setting; not sent; "
            "options.camera_fixed sets the camera instead"
        ]
        await adapter.submit(request, Credentials({"api_key": seedance.API_KEY}))
    assert last_body(emu)["camera_fixed"] is False and emu.submissions == 1


@pytest.mark.parametrize("served", [lambda: wan.WanEmulator(latency=10)], indirect=True)
async def test_wan_sends_prompt_extend_in_parameters(served: tuple[Any, str]) -> None:
    emu, url = served
    async with WanAdapter(base_url=url + wan.PREFIX) as adapter:
        await adapter.submit(
            req(options={"prompt_extend": False}), Credentials({"api_key": wan.API_KEY})
        )
    body = last_body(emu)
    assert body["parameters"]["prompt_extend"] is False
    assert body["input"]["extend_prompt"] is True  # what the SDK sends beside it
    assert emu.submissions == 1


@pytest.mark.parametrize("served", [lambda: minimax.MiniMaxEmulator(latency=10)], indirect=True)
async def test_minimax_sends_prompt_optimizer(served: tuple[Any, str]) -> None:
    emu, url = served
    request = req(duration=6, options={"prompt_optimizer": False})
    async with MiniMaxAdapter(base_url=url) as adapter:
        await adapter.submit(request, Credentials({"api_key": minimax.API_KEY}))
    assert last_body(emu)["prompt_optimizer"] is False and emu.submissions == 1


# -- refusals before sending -------------------------------------------------------------------


@pytest.mark.parametrize("served", [lambda: kling.KlingEmulator(latency=10)], indirect=True)
async def test_kling_bad_options_are_all_refused_and_nothing_is_sent(
    served: tuple[Any, str],
) -> None:
    emu, url = served
    creds = Credentials({"access_key": kling.ACCESS_KEY, "secret_key": kling.SECRET_KEY})
    options = {"mode": "turbo", "camera_control": {"type": "simple"}, "cfg": 1}
    async with KlingAdapter(base_url=url) as adapter:
        with pytest.raises(RequestValidationError) as info:
            await adapter.submit(req(model="kling-v1-6", options=options), creds)
        with pytest.raises(RequestValidationError) as camera:
            simple = {"type": "simple", "config": {"zoom": 11, "pan": 1}}
            await adapter.submit(req(model="kling-v1", options={"camera_control": simple}), creds)
        with pytest.raises(RequestValidationError) as rules:
            both = {"type": "simple", "config": {"zoom": 2, "pan": 1}}
            await adapter.submit(
                req(model="kling-v1", duration=10, options={"camera_control": both}), creds
            )
    assert info.value.problems == [
        'options.mode: kling model kling-v1-6 takes "std" or "pro"; got "turbo"',
        "options.camera_control: kling model kling-v1-6 has no option 'camera_control' "
        "(known: mode); 'camera_control' is an option of kling-v1",
        "options.cfg: kling model kling-v1-6 has no option 'cfg' (known: mode)",
    ]
    assert camera.value.problems == [
        "options.camera_control.config.zoom: kling model kling-v1 takes a number from -10 to "
        "10; got 11"
    ]
    assert rules.value.problems == [
        "options.camera_control: kling-v1 moves the camera only in mode std at 5 s; this "
        "request is mode std at 10 s",
        "options.camera_control.config: type simple needs exactly one of horizontal, vertical, "
        "pan, tilt, roll, zoom set to a non-zero value from -10 to 10",
    ]
    assert emu.submissions == 0 and emu.recorded == []


@pytest.mark.parametrize("served", [lambda: luma.LumaEmulator(latency=0.3)], indirect=True)
async def test_luma_ill_typed_option_and_strict_send_nothing(served: tuple[Any, str]) -> None:
    emu, url = served
    async with LumaAdapter(base_url=url + luma.PREFIX) as adapter:
        with pytest.raises(RequestValidationError) as info:
            await adapter.submit(req(options={"loop": "yes"}), KEYED)
        with pytest.raises(RequestValidationError) as strict:
            validate_request(adapter, req(seed=7, audio=True), strict=True)
    assert info.value.problems == ['options.loop: luma model ray-2 takes true or false; got "yes"']
    assert [p.partition(":")[0] for p in strict.value.problems] == ["seed", "audio"]
    assert emu.submissions == 0 and emu.recorded == []


# -- every adapter ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", adapters.known())
def test_every_adapter_declares_audio_and_refuses_an_unknown_option(key: str) -> None:
    adapter = adapters.get_adapter(key)
    caps = adapter.capabilities()
    for model in caps.models.values():
        assert "audio" in model.fields and "options" not in model.fields
    with pytest.raises(RequestValidationError) as info:
        adapter.validate(req(options={"zzz_not_an_option": 1}))
    assert any(p.startswith("options.zzz_not_an_option: ") for p in info.value.problems)


@pytest.mark.parametrize(
    ("key", "request_"),
    [
        ("local", req(audio=True)),
        ("luma", req(audio=True)),
        ("minimax", req(duration=6, audio=True)),
        ("runway", req(audio=True)),
        ("kling", req(audio=True)),
        ("seedance", req(audio=True)),
        ("wan", req(audio=True)),
        ("fal", req(audio=True)),
        ("replicate", req(audio=True)),
    ],
)
def test_audio_on_a_silent_model_is_warned_and_strict_refuses_it(
    key: str, request_: StandardVideoRequest
) -> None:
    adapter = adapters.get_adapter(key)
    warnings = adapter.validate(request_)
    assert [w for w in warnings if w.startswith("audio: ")]
    with pytest.raises(RequestValidationError) as info:
        validate_request(adapter, request_, strict=True)
    assert [p.partition(":")[0] for p in info.value.problems] == ["audio"]
