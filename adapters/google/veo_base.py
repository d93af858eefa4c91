"""What both Veo endpoints build the same way: the request body, its validation and the
capabilities they declare.

The Gemini API and Vertex take one `instances`/`parameters` body for `:predictLongRunning`
(https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation;
checked against the official SDK `google-genai` 2.34.0, `_GenerateVideosParameters_to_mldev`
and `_to_vertex`). `gemini.VeoAdapter` and `vertex.VertexVeoAdapter` subclass `VeoBase` and add
their auth, paths, polling and download; Vertex also sends `seed`, `fps` and `generateAudio`
through `extra_parameters`, and takes a `gs://` first frame as `image.gcsUri` (`gcs_images`).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from adapters.base import (
    HttpAdapter,
    audio_warnings,
    compose_prompt,
    option_problems,
    unsupported_warning,
)
from adapters.fields import field_table, mapped, native, unsupported
from adapters.google.veo_models import IMAGE_TYPES, SIZES, VEO_FPS, ModelSpec
from sceneflow.errors import RequestValidationError, TransientError
from sceneflow.models import StandardVideoRequest
from sceneflow.providers import Capabilities, Credentials, ModelCapabilities, OptionSpec

__all__ = ["GCS_IMAGE_TYPES", "VeoBase"]

# A gs:// first frame's mimeType, from its extension: Vertex reads the object itself.
GCS_IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}


class VeoBase(HttpAdapter):
    """A Veo endpoint. Subclasses set the class attributes below and implement the calls."""

    models: dict[str, ModelSpec] = {}
    default_model = ""
    draft_model = ""
    # Google words its refusals as breaking its "Responsible AI practices".
    moderation_markers = (*HttpAdapter.moderation_markers, "responsible ai", "usage guidelines")
    # The Gemini API refuses seed and fps (the SDK raises before sending); Vertex accepts them.
    native_seed_fps = False
    # Vertex reads a first frame from Cloud Storage (`image.gcsUri`); the Gemini API refuses
    # one (the SDK raises "gcs_uri parameter is only supported in ... Agent Platform mode").
    gcs_images = False
    # Vertex takes `generateAudio` for Veo 3; the Gemini API refuses it (the SDK raises "only
    # supported in ... Agent Platform mode") and always adds sound to Veo 3 clips.
    audio_switch = False
    # `personGeneration` values: the SDK's GenerateVideosConfig docstring names dont_allow and
    # allow_adult; Vertex adds allow_all (veo-video-generation reference) for allow-listed
    # projects.
    person_generation: tuple[str, ...] = ("dont_allow", "allow_adult")
    credential_fields: tuple[str, ...] = ()
    connection_test = ""

    def capabilities(self) -> Capabilities:
        return Capabilities(
            provider=self.key,
            default_model=self.default_model,
            models={name: self._model_caps(spec) for name, spec in self.models.items()},
            credential_fields=list(self.credential_fields),
            can_cancel=False,
            connection_test=self.connection_test,
            # Google's own examples poll every 10 s; clips take 11 s to 6 min at peak.
            poll_interval=10,
            max_poll_interval=30,
            deadline=900,
        )

    def _model_caps(self, spec: ModelSpec) -> ModelCapabilities:
        hd = f"; 1080p only at {spec.full_hd_duration} s" if spec.full_hd_duration else ""
        if self.native_seed_fps:
            seed = native("parameters.seed")
            fps = native(f"parameters.fps when set; {VEO_FPS} only")
        else:
            seed = unsupported("the Gemini API refuses seed; warning")
            fps = unsupported(f"always {VEO_FPS} fps; warning")
        if not spec.audio:
            audio = unsupported("Veo 2 makes silent video; audio on is warned, not sent")
        elif self.audio_switch:
            audio = native(
                "parameters.generateAudio; unset sends true: Google's reference makes it "
                "required for Veo 3 and names no default (see vertex.extra_parameters)"
            )
        else:
            audio = mapped(
                "always on: the Gemini API adds sound to Veo 3 clips and refuses "
                "generateAudio; audio off is warned, not sent"
            )
        return ModelCapabilities(
            fields=field_table(
                prompt=native("instances[0].prompt"),
                negative_prompt=native("parameters.negativePrompt"),
                aspect_ratio=native("parameters.aspectRatio"),
                duration=native("parameters.durationSeconds"),
                resolution=native("parameters.resolution; WxH mapped" + hd)
                if spec.sends_resolution
                else mapped("always 720p; not sent"),
                style=mapped("appended to the prompt"),
                quality=mapped(f"draft picks {self.draft_model} when no model is given"),
                image_url=mapped(
                    "gs:// sent as instances[0].image.gcsUri; http(s) fetched and sent inline "
                    "as instances[0].image; data: sent inline"
                )
                if self.gcs_images
                else mapped("fetched and sent inline as instances[0].image"),
                motion_intensity=unsupported("warning; not sent"),
                seed=seed,
                fps=fps,
                audio=audio,
            ),
            options=self._options(),
            aspect_ratios=list(spec.aspect_ratios),
            durations=[float(d) for d in spec.durations],
            min_duration=min(spec.durations),
            max_duration=max(spec.durations),
            resolutions=list(spec.resolutions),
            image_to_video=True,
        )

    def _options(self) -> dict[str, OptionSpec]:
        return {
            "personGeneration": OptionSpec(
                type="string",
                choices=list(self.person_generation),
                wire="parameters.personGeneration",
                description="whether people may appear in the video",
            ),
            "enhancePrompt": OptionSpec(
                type="boolean",
                wire="parameters.enhancePrompt",
                description="let Google rewrite the prompt before generating",
            ),
        }

    def model_for(self, request: StandardVideoRequest) -> str:
        if request.model:
            return request.model
        return self.draft_model if request.quality == "draft" else self.default_model

    def validate(self, request: StandardVideoRequest) -> list[str]:
        model = self.model_for(request)
        spec = self.models.get(model)
        if spec is None:
            raise RequestValidationError(
                [f"model: {self.key} has no model {model!r}; allowed: {', '.join(self.models)}"],
                provider=self.key,
            )
        problems: list[str] = []
        where = f"{self.key} model {model}"
        if request.aspect_ratio not in spec.aspect_ratios:
            problems.append(
                f"aspect_ratio: {where} supports {', '.join(spec.aspect_ratios)}, "
                f"not {request.aspect_ratio}"
            )
        if request.duration not in spec.durations:
            allowed = ", ".join(str(d) for d in spec.durations)
            problems.append(
                f"duration: {where} makes {allowed} second videos, not {request.duration:g}"
            )
        resolution = SIZES.get(request.resolution, request.resolution)
        if resolution not in spec.resolutions:
            problems.append(
                f"resolution: {where} supports {', '.join(spec.resolutions)}, "
                f"not {request.resolution}"
            )
        elif resolution == "1080p" and request.duration != spec.full_hd_duration:
            problems.append(
                f"resolution: {where} renders 1080p only at duration {spec.full_hd_duration}; "
                "use duration 8 or resolution 720p"
            )
        if request.image_url and request.image_url.startswith("data:"):
            mime = request.image_url[5:].partition(";")[0]
            if mime not in IMAGE_TYPES or ";base64," not in request.image_url:
                problems.append(f"image_url: a data URL must be base64 of {', '.join(IMAGE_TYPES)}")
        if request.image_url and request.image_url.startswith("gs://"):
            problems += self._gcs_image_problems(request.image_url)
        problems += self.extra_problems(request, where)
        problems += option_problems(request, self.capabilities().models, model, where)
        if problems:
            raise RequestValidationError(problems, provider=self.key)
        renders = False if not spec.audio else None if self.audio_switch else True
        return self._warnings(request) + audio_warnings(where, request, renders=renders)

    def extra_problems(self, request: StandardVideoRequest, where: str) -> list[str]:
        return []

    def _gcs_image_problems(self, url: str) -> list[str]:
        if not self.gcs_images:
            return [
                f"image_url: {self.key} cannot read a gs:// image (only Vertex AI reads Cloud "
                "Storage); use an http(s) or data: URL, or the provider vertex"
            ]
        bucket, _, name = url.removeprefix("gs://").partition("/")
        if not bucket or not name or name.endswith("/"):
            return ["image_url: a gs:// image must name an object: gs://BUCKET/PATH/FILE.png"]
        if _gcs_mime(name) is None:
            return [
                "image_url: a gs:// image must end in "
                f"{', '.join(GCS_IMAGE_TYPES)} so its mimeType is known"
            ]
        return []

    def _warnings(self, request: StandardVideoRequest) -> list[str]:
        gemini = not self.native_seed_fps
        notes = [
            (True, "motion_intensity", "not sent; describe the motion in the prompt"),
            (
                bool(request.model) and request.quality != "standard",
                "quality",
                f"ignored because model {request.model} was chosen",
            ),
            (gemini and request.seed is not None, "seed", "not sent; the Gemini API refuses it"),
            (gemini and request.fps != VEO_FPS, "fps", f"not sent; Veo renders {VEO_FPS} fps"),
        ]
        return [unsupported_warning(self.key, field, what) for on, field, what in notes if on]

    async def build_body(self, request: StandardVideoRequest) -> dict[str, Any]:
        """The predictLongRunning body, the same on both Veo endpoints plus `extra_parameters`."""
        spec = self.models[self.model_for(request)]
        instance: dict[str, Any] = {"prompt": compose_prompt(request)}
        if request.image_url and request.image_url.startswith("gs://"):
            # Vertex reads the object itself (validate() allowed gs:// only where it can).
            mime = _gcs_mime(request.image_url)
            instance["image"] = {"gcsUri": request.image_url, "mimeType": mime}
        elif request.image_url:
            instance["image"] = await self._inline_image(request.image_url)
        parameters: dict[str, Any] = {
            "sampleCount": 1,  # said explicitly so no endpoint default can bill several clips
            "aspectRatio": request.aspect_ratio,
            "durationSeconds": int(request.duration),
        }
        if spec.sends_resolution:
            parameters["resolution"] = SIZES.get(request.resolution, request.resolution)
        if request.negative_prompt:
            parameters["negativePrompt"] = request.negative_prompt
        parameters |= request.options  # validate() checked them: each is a parameters key
        parameters |= self.extra_parameters(request, spec)
        return {"instances": [instance], "parameters": parameters}

    def extra_parameters(self, request: StandardVideoRequest, spec: ModelSpec) -> dict[str, Any]:
        return {}

    async def _inline_image(self, url: str) -> dict[str, str]:
        """Veo takes the first frame as inline base64 only (no URLs), so fetch it here."""
        if url.startswith("data:"):
            header, _, data = url.partition(",")
            return {"bytesBase64Encoded": data, "mimeType": header[5:].partition(";")[0]}
        try:
            response = await self._client.get(url, follow_redirects=True)
        except httpx.TransportError as e:
            raise TransientError(
                f"{self.key}: could not fetch image_url ({type(e).__name__}); will retry",
                provider=self.key,
            ) from e
        mime = response.headers.get("content-type", "").partition(";")[0].strip()
        if response.status_code >= 400 or mime not in IMAGE_TYPES:
            # The URL itself may be signed, so the message names the field, not the URL.
            raise RequestValidationError(
                [
                    f"image_url: fetching it gave HTTP {response.status_code} "
                    f"{mime or 'without a content type'}; it must serve one of "
                    f"{', '.join(IMAGE_TYPES)} publicly, or be a data: URL"
                ],
                provider=self.key,
            )
        return {"bytesBase64Encoded": base64.b64encode(response.content).decode(), "mimeType": mime}

    async def cancel(self, provider_job_id: str, credentials: Credentials) -> None:
        """No-op: neither endpoint exposes a cancel for Veo operations (can_cancel=False);
        the pipeline simply stops polling."""


def _gcs_mime(path: str) -> str | None:
    """The image type a Cloud Storage object's file name implies, from its extension."""
    file = path.rpartition("/")[2]
    suffix = "." + file.rpartition(".")[2].lower() if "." in file else ""
    return GCS_IMAGE_TYPES.get(suffix)
