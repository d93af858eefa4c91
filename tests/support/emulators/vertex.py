"""Emulator of Veo on Vertex AI plus Google's OAuth2 token endpoint.

Vertex's side follows https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation.

`POST /token` implements the JWT-bearer grant (RFC 7523) that google-auth's service-account
credentials use: it verifies the signed assertion with the account's public key (PyJWT), checks
issuer, audience (Google's token URI) and scope, and issues a bearer token. The Vertex routes
accept only tokens it issued (else 401 UNAUTHENTICATED), only the configured project (else 403
PERMISSION_DENIED), and return the video inline as base64 in the finished operation, as Vertex
does without storageUri.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
import uuid
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.emulators._base import Emulator, Job
from tests.support.emulators.gemini import (
    PARAMETERS,
    RAI_MESSAGE,
    RAI_REASON,
    Recorded,
    check_instances,
    check_parameters,
    clip,
    google_error,
    google_fault,
    record,
)

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth addresses every assertion to Google's token URI, whatever `token_uri` it posts to.
AUDIENCE = "https://oauth2.googleapis.com/token"
MODEL_ROOT = "/v1/projects/{project}/locations/{location}"
LIMITS: dict[str, dict[str, Any]] = {
    "veo-3.1-generate-001": {"durations": {4, 6, 8}, "resolutions": {"720p", "1080p"}},
    "veo-3.1-fast-generate-001": {"durations": {4, 6, 8}, "resolutions": {"720p", "1080p"}},
    "veo-2.0-generate-001": {"durations": {5, 6, 7, 8}, "resolutions": set()},
}
VERTEX_PARAMETERS = PARAMETERS | {
    "seed",
    "fps",
    "generateAudio",
    "storageUri",
    "pubsubTopic",
    "compressionQuality",
    "resizeMode",
}


class VertexEmulator(Emulator):
    """`public_keys` maps service-account emails to PEM public keys the token endpoint trusts."""

    def __init__(self, *, public_keys: dict[str, str], project: str = "sf-proj", **kw: Any):
        super().__init__(**kw)
        self.public_keys = public_keys
        self.project = project
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.token_lifetime = 3599
        self.recorded: list[Recorded] = []
        self.app = Starlette(
            routes=[
                Route("/token", self.token, methods=["POST"]),
                Route(MODEL_ROOT + "/models", self.list_models, methods=["GET"]),
                Route(
                    MODEL_ROOT + "/publishers/google/models/{target}",
                    self.model_call,
                    methods=["POST"],
                ),
                *self.control_routes(),
            ]
        )

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        # Starlette's request.form() needs python-multipart; the body is plain urlencoded.
        form = dict(urllib.parse.parse_qsl((await request.body()).decode()))
        if form.get("grant_type") != JWT_BEARER:
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        assertion = form.get("assertion", "")
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
            key = self.public_keys[claims["iss"]]
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=AUDIENCE)
        except (jwt.InvalidTokenError, KeyError):
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400
            )
        if SCOPE not in str(claims.get("scope", "")).split():
            return JSONResponse({"error": "invalid_scope"}, 400)
        token = "ya29.emu-" + uuid.uuid4().hex
        self.tokens[token] = time.time() + self.token_lifetime
        return JSONResponse(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def auth(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or self.tokens.get(token, 0) < time.time():
            return google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                "UNAUTHENTICATED",
            )
        project, location = request.path_params["project"], request.path_params["location"]
        if project != self.project:
            return google_error(
                403,
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/projects/{project}/locations/{location}' "
                "(or it may not exist).",
                "PERMISSION_DENIED",
            )
        return None

    async def list_models(self, request: Request) -> Response:
        await record(self, self.recorded, request)
        if denied := self.auth(request):
            return denied
        return JSONResponse({"models": []})

    async def model_call(self, request: Request) -> Response:
        body = await record(self, self.recorded, request)
        if denied := self.auth(request):
            return denied
        model, _, method = request.path_params["target"].partition(":")
        if model not in LIMITS or method not in ("predictLongRunning", "fetchPredictOperation"):
            return google_error(
                404,
                f"Publisher Model `projects/{self.project}/locations/"
                f"{request.path_params['location']}/publishers/google/models/{model}` "
                "not found.",
                "NOT_FOUND",
            )
        if method == "fetchPredictOperation":
            return await self.fetch(body, model)
        rai = google_error(400, RAI_MESSAGE, "INVALID_ARGUMENT")
        if fault := await google_fault(self, "submit", rai):
            return fault
        problem = check_instances(body)
        params = body.get("parameters", {}) if isinstance(body, dict) else {}
        problem = problem or check_parameters(model, params, LIMITS, VERTEX_PARAMETERS)
        if problem:
            return google_error(400, problem, "INVALID_ARGUMENT")
        job = self.new_job(body, fail=self.pop_fail_flag())
        prefix = request.url.path.removeprefix("/v1/").partition(":")[0]
        job.extra["name"] = f"{prefix}/operations/{job.id}"
        return JSONResponse({"name": job.extra["name"]})

    async def fetch(self, body: Any, model: str) -> Response:
        name = body.get("operationName") if isinstance(body, dict) else None
        job = self.jobs.get(str(name).rpartition("/operations/")[2])
        if job is None or job.extra["name"] != name or f"/models/{model}/" not in name:
            return google_error(400, f"Invalid operation name: {name}", "INVALID_ARGUMENT")
        if self.faults.get("status") and self.faults["status"][0].kind == "moderation":
            self.take_fault("status")
            job.extra["rai"] = True
        if fault := await google_fault(self, "status"):
            return fault
        return JSONResponse(self.operation(job))

    def operation(self, job: Job) -> dict[str, Any]:
        name = job.extra["name"]
        phase, _ = self.phase(job)
        if phase in ("queued", "running") and not job.extra.get("rai"):
            return {"name": name}
        if phase == "failed":
            error = {"code": 13, "message": "Video generation failed: internal error."}
            return {"name": name, "done": True, "error": error}
        response: dict[str, Any] = {
            "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
        }
        if job.extra.get("rai"):
            response |= {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [RAI_REASON]}
        else:
            encoded = base64.b64encode(clip(job.body)).decode()
            response["videos"] = [{"bytesBase64Encoded": encoded, "mimeType": "video/mp4"}]
        return {"name": name, "done": True, "response": response}
