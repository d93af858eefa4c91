"""Emulator of Veo on Vertex AI plus Google's OAuth2 token endpoint.

Vertex's side follows https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation.

`POST /token` implements the JWT-bearer grant (RFC 7523) that google-auth's service-account
credentials use: it verifies the signed assertion with the account's public key (PyJWT), checks
issuer, audience (Google's token URI) and scope, and issues a bearer token. The project routes
accept only tokens it issued or the configured API key (else 401 UNAUTHENTICATED; a wrong key
is 400 API_KEY_INVALID), and only the configured project (else 403 PERMISSION_DENIED).

Express mode (an API key, no project): `/v1/publishers/google/models/{model}:predictLongRunning`
and `:fetchPredictOperation`, and `GET /v1/publishers/google/models/{model}`, with the key in
`x-goog-api-key`, as the SDK sends it. The operation name then has no project either (what
Google names it in express mode is UNCONFIRMED; the SDK and the adapter poll either shape).

Outputs come back inline as base64 unless the body sets `parameters.storageUri`: the video is
then written to the fake Cloud Storage below as `{storageUri}/{job id}/sample_0.mp4` and the
operation names it as `gcsUri`. A first frame may be `image.gcsUri` (with `mimeType`); it must
be an object in `objects`, as Vertex reads it with its own service agent.

The fake Cloud Storage JSON API (`GET /storage/v1/b/{bucket}/o/{object}?alt=media` and
`GET /storage/v1/b/{bucket}/o?prefix=`) takes only bearer tokens the token endpoint issued
(401 otherwise, an API key included) and only for `readable_buckets` (403 otherwise); a missing
object is 404, in Cloud Storage's error shape.
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
EXPRESS_ROOT = "/v1/publishers/google/models"
IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp"}
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
    """`public_keys` maps service-account emails to PEM public keys the token endpoint trusts;
    `api_key` is the one express-mode key it accepts; `objects` is Cloud Storage's content by
    (bucket, object name), readable with a token for `readable_buckets`."""

    def __init__(
        self,
        *,
        public_keys: dict[str, str],
        project: str = "sf-proj",
        api_key: str = "vertex-express-test-key",
        readable_buckets: set[str] | None = None,
        **kw: Any,
    ):
        super().__init__(**kw)
        self.public_keys = public_keys
        self.project = project
        self.api_key = api_key
        self.readable_buckets = {"sf-bucket"} if readable_buckets is None else readable_buckets
        self.objects: dict[tuple[str, str], bytes] = {}
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
                Route(EXPRESS_ROOT + "/{target}", self.model_call, methods=["POST"]),
                Route(EXPRESS_ROOT + "/{target}", self.get_model, methods=["GET"]),
                Route("/storage/v1/b/{bucket}/o", self.storage_list, methods=["GET"]),
                Route("/storage/v1/b/{bucket}/o/{name:path}", self.storage_get, methods=["GET"]),
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

    def bearer_ok(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and self.tokens.get(token, 0) >= time.time()

    def auth(self, request: Request) -> Response | None:
        key = request.headers.get("x-goog-api-key")
        if key is not None and key != self.api_key:
            return google_error(
                400,
                "API key not valid. Please pass a valid API key.",
                "INVALID_ARGUMENT",
                reason="API_KEY_INVALID",
            )
        if key is None and not self.bearer_ok(request):
            return google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                "UNAUTHENTICATED",
            )
        if "project" not in request.path_params:
            if key is None:
                # Express-mode paths name no project, so only a key says whose it is.
                return google_error(403, "Express mode requires an API key.", "PERMISSION_DENIED")
            return None
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

    async def get_model(self, request: Request) -> Response:
        await record(self, self.recorded, request)
        if denied := self.auth(request):
            return denied
        model = request.path_params["target"]
        if model not in LIMITS:
            return google_error(404, f"Publisher Model `{model}` not found.", "NOT_FOUND")
        return JSONResponse({"name": f"publishers/google/models/{model}", "versionId": "001"})

    async def model_call(self, request: Request) -> Response:
        body = await record(self, self.recorded, request)
        if denied := self.auth(request):
            return denied
        model, _, method = request.path_params["target"].partition(":")
        if model not in LIMITS or method not in ("predictLongRunning", "fetchPredictOperation"):
            return google_error(
                404, f"Publisher Model `publishers/google/models/{model}` not found.", "NOT_FOUND"
            )
        if method == "fetchPredictOperation":
            return await self.fetch(body, model)
        rai = google_error(400, RAI_MESSAGE, "INVALID_ARGUMENT")
        if fault := await google_fault(self, "submit", rai):
            return fault
        problem = self.check_image(body) or check_instances(_inline_shaped(body))
        params = body.get("parameters", {}) if isinstance(body, dict) else {}
        problem = problem or check_parameters(model, params, LIMITS, VERTEX_PARAMETERS)
        problem = problem or self.check_storage(request, params)
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
        elif storage := job.body.get("parameters", {}).get("storageUri"):
            bucket, _, prefix = storage.removeprefix("gs://").partition("/")
            object_name = f"{prefix.rstrip('/') + '/' if prefix.strip('/') else ''}{job.id}"
            object_name += "/sample_0.mp4"
            self.objects.setdefault((bucket, object_name), clip(job.body))
            uri = f"gs://{bucket}/{object_name}"
            response["videos"] = [{"gcsUri": uri, "mimeType": "video/mp4"}]
        else:
            encoded = base64.b64encode(clip(job.body)).decode()
            response["videos"] = [{"bytesBase64Encoded": encoded, "mimeType": "video/mp4"}]
        return {"name": name, "done": True, "response": response}

    def check_image(self, body: Any) -> str | None:
        """A gcsUri first frame must be an image object Vertex can read."""
        instances = body.get("instances") if isinstance(body, dict) else None
        instance = instances[0] if isinstance(instances, list) and instances else None
        image = instance.get("image") if isinstance(instance, dict) else None
        if not isinstance(image, dict) or "gcsUri" not in image:
            return None
        if "bytesBase64Encoded" in image:
            return "image takes one of bytesBase64Encoded or gcsUri, not both."
        if image.get("mimeType") not in IMAGE_TYPES:
            return f"image.mimeType must be one of {sorted(IMAGE_TYPES)} for a gcsUri image."
        bucket, _, name = str(image["gcsUri"]).removeprefix("gs://").partition("/")
        if (bucket, name) not in self.objects:
            return f"Unable to read the image at {image['gcsUri']}: object not found."
        return None

    def check_storage(self, request: Request, params: dict[str, Any]) -> str | None:
        uri = params.get("storageUri")
        if uri is None:
            return None
        if not isinstance(uri, str) or not uri.startswith("gs://") or len(uri) < 8:
            return "storageUri must be a Cloud Storage URI: gs://BUCKET/PREFIX."
        return None

    # -- the fake Cloud Storage JSON API ------------------------------------------------------

    def storage_auth(self, request: Request, bucket: str) -> Response | None:
        if not self.bearer_ok(request):
            return _storage_error(401, "Anonymous caller does not have storage.objects.get access.")
        if bucket not in self.readable_buckets:
            return _storage_error(
                403,
                "The caller does not have storage.objects.get access to the Google Cloud "
                f"Storage bucket {bucket}. Permission 'storage.objects.get' denied.",
            )
        return None

    async def storage_get(self, request: Request) -> Response:
        await record(self, self.recorded, request)
        bucket, name = request.path_params["bucket"], request.path_params["name"]
        if denied := self.storage_auth(request, bucket):
            return denied
        if request.query_params.get("alt") != "media":
            return _storage_error(400, "Only alt=media downloads are emulated.")
        data = self.objects.get((bucket, name))
        if data is None:
            return _storage_error(404, f"No such object: {bucket}/{name}")
        return Response(data, media_type="video/mp4" if name.endswith(".mp4") else None)

    async def storage_list(self, request: Request) -> Response:
        await record(self, self.recorded, request)
        bucket = request.path_params["bucket"]
        if denied := self.storage_auth(request, bucket):
            return denied
        prefix = request.query_params.get("prefix", "")
        names = sorted(n for b, n in self.objects if b == bucket and n.startswith(prefix))
        limit = int(request.query_params.get("maxResults", 1000))
        items = [{"bucket": bucket, "name": n} for n in names[:limit]]
        return JSONResponse({"kind": "storage#objects"} | ({"items": items} if items else {}))


def _storage_error(code: int, message: str) -> Response:
    """Cloud Storage's JSON error shape."""
    reasons = {400: "invalid", 401: "required", 403: "forbidden", 404: "notFound"}
    error = {
        "code": code,
        "message": message,
        "errors": [{"message": message, "reason": reasons[code]}],
    }
    return JSONResponse({"error": error}, code)


def _inline_shaped(body: Any) -> Any:
    """`body` with a gcsUri image shaped like an inline one, for the shared Gemini checks."""
    try:
        image = body["instances"][0]["image"]
    except (KeyError, IndexError, TypeError):
        return body
    if not isinstance(image, dict) or "gcsUri" not in image:
        return body
    instance = body["instances"][0] | {"image": {"bytesBase64Encoded": "", "mimeType": ""}}
    return body | {"instances": [instance, *body["instances"][1:]]}
