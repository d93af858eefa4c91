"""No credential follows a redirect to another host, for any provider (design.md §4, issue 12).

Two real HTTP servers on 127.0.0.1, on two ports (another port is another origin): the first
plays the provider and answers the authenticated call with a redirect to the second, which
records every request it gets. The redirects are hostile on purpose: their Location echoes the
credential the first server received into the query (`key=`, `token=`), as a compromised or
misconfigured host could. API calls must refuse such a redirect and never reach the second
server; downloads must fetch the file there with no credential header and no credential
parameter, and keep a signed URL's own query untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters import get_adapter
from adapters.base import CREDENTIAL_HEADERS, HttpAdapter
from adapters.fal import FalAdapter
from adapters.google.gemini import VeoAdapter
from adapters.google.vertex import VertexVeoAdapter
from adapters.kling import KlingAdapter
from adapters.replicate import ReplicateAdapter
from adapters.runway import RunwayAdapter
from sceneflow.errors import AmbiguousSubmitError, ProviderError, RejectedError, TransientError
from sceneflow.models import JobStatus, StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Credentials
from tests.support.emulators import fal, kling, luma, minimax, runway, seedance, wan
from tests.support.emulators._base import sample_mp4, serve

MP4 = sample_mp4(0.5)
GEMINI_KEY = "AIzaSy-redirect-test-SECRET-0123456789"
REPLICATE_TOKEN = "r8_redirect_test_SECRET_0123456789abcdef"
VERTEX_TOKEN = "ya29.redirect-test-SECRET-token-0123456789"
SIGNED = {"X-Goog-Signature": "abc%2F123", "Expires": "1999999999"}


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]


Rule = Callable[[Request], str | None]


@dataclass
class Server:
    """Records every request. `redirect(request)` gives a Location to answer with (status
    `code`), or None to serve the MP4."""

    redirect: Rule = lambda request: None
    code: int = 302
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: Request) -> Response:
        self.seen.append(
            Seen(
                request.method,
                request.url.path,
                list(request.query_params.multi_items()),
                {k.lower(): v for k, v in request.headers.items()},
            )
        )
        location = self.redirect(request)
        if location is not None:
            return Response(status_code=self.code, headers={"location": location})
        return Response(MP4, media_type="video/mp4")

    @property
    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=methods)])


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    """(provider, elsewhere): two servers on two ports of 127.0.0.1."""
    first, second = Server(), Server()
    with serve(first.app) as first.url, serve(second.app) as second.url:
        yield first, second


def echoing(to: Server, path: str = "/elsewhere/video.mp4") -> Rule:
    """A redirect to `to` whose query carries a signature plus every credential the request
    came with, echoed back under credential-ish names."""

    def rule(request: Request) -> str:
        query = dict(SIGNED)
        for name in ("authorization", "x-goog-api-key"):
            if value := request.headers.get(name):
                query["key" if name == "x-goog-api-key" else "token"] = value
                query["echo"] = value.partition(" ")[2] or value
        return f"{to.url}{path}?{urlencode(query)}"

    return rule


def assert_bare(seen: list[Seen], secrets: list[str]) -> None:
    """No request carried a credential header, or any secret anywhere."""
    assert seen, "the second server was never asked: this check would prove nothing"
    for s in seen:
        assert not CREDENTIAL_HEADERS & set(s.headers), s.headers
        blob = repr((s.path, s.query, s.headers))
        for secret in secrets:
            assert secret not in blob


def sent_secret(first: Server, header: str) -> str:
    """The credential the provider's server got: proof the call was authenticated."""
    value = first.seen[0].headers[header]
    return value.partition(" ")[2] if header == "authorization" else value


def done(url: str, job_id: str = "job-1") -> StandardVideoResult:
    return StandardVideoResult(status=JobStatus.COMPLETED, provider_job_id=job_id, video_url=url)


def _gemini() -> Credentials:
    return Credentials({"api_key": GEMINI_KEY})


def clean(exc: BaseException, *secrets: str) -> None:
    """The error says what happened without echoing the Location's path, query or secrets."""
    text = str(exc)
    for leak in (*secrets, "elsewhere", "X-Goog-Signature", "abc%2F123"):
        assert leak not in text, text


# --- Bearer (Replicate, Runway) -------------------------------------------------------------


async def test_bearer_download_reaches_another_host_without_the_token(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    first, second = servers
    first.redirect = echoing(second)
    # An output on Replicate's own host is fetched with the token (replicate.py `trusted`).
    adapter = ReplicateAdapter(base_url=first.url)
    creds = Credentials({"api_key": REPLICATE_TOKEN})
    async with adapter:
        out = await adapter.download(done(first.url + "/files/out.mp4"), creds, tmp_path / "v.mp4")
    assert out.read_bytes() == MP4
    assert sent_secret(first, "authorization") == REPLICATE_TOKEN
    assert_bare(second.seen, [REPLICATE_TOKEN])
    # The signature is kept; only the echoed credentials were dropped.
    assert second.seen[0].query == list(SIGNED.items())


@pytest.mark.parametrize(
    ("code", "error", "hint"),
    [
        (302, TransientError, "will retry"),
        (307, TransientError, "will retry"),
        (301, RejectedError, "SCENEFLOW_BASE_URLS__RUNWAY=http://127.0.0.1:"),
        (308, RejectedError, "SCENEFLOW_BASE_URLS__RUNWAY=http://127.0.0.1:"),
    ],
)
async def test_bearer_status_redirect_to_another_host_is_refused(
    servers: tuple[Server, Server], code: int, error: type[ProviderError], hint: str
) -> None:
    first, second = servers
    first.redirect, first.code = echoing(second), code
    async with RunwayAdapter(base_url=first.url) as adapter:
        with pytest.raises(error) as caught:
            await adapter.status("task-1", Credentials({"api_key": runway.API_KEY}))
    assert type(caught.value) is error
    port = second.url.rpartition(":")[2]
    assert str(caught.value).startswith(
        f"runway: GET {first.url} was redirected (HTTP {code}) to "
        f"another host, http://127.0.0.1:{port}; SceneFlow sends credentials only to the host "
        "they are for, so it did not follow"
    )
    assert hint in str(caught.value)
    assert sent_secret(first, "authorization") == runway.API_KEY
    assert second.seen == []
    clean(caught.value, runway.API_KEY)


@pytest.mark.parametrize(
    ("code", "error", "ending"),
    [
        # 303, and 302 as Post/Redirect/Get uses it, answer a POST that was processed.
        (303, AmbiguousSubmitError, "; the job may have been created"),
        (302, AmbiguousSubmitError, "; the job may have been created"),
        (307, TransientError, "; will retry"),
        (308, RejectedError, "SCENEFLOW_BASE_URLS__RUNWAY=" + "http://127.0.0.1:{port}"),
    ],
)
async def test_a_submit_redirected_elsewhere_is_refused_and_says_whether_it_was_paid(
    servers: tuple[Server, Server], code: int, error: type[ProviderError], ending: str
) -> None:
    first, second = servers
    first.redirect, first.code = echoing(second), code
    request = StandardVideoRequest(prompt="A red fox runs", aspect_ratio="16:9", motion_intensity=5)
    async with RunwayAdapter(base_url=first.url) as adapter:
        with pytest.raises(error) as caught:
            await adapter.submit(request, Credentials({"api_key": runway.API_KEY}))
    assert type(caught.value) is error
    assert str(caught.value).endswith(ending.format(port=second.url.rpartition(":")[2]))
    assert first.seen[0].method == "POST"
    assert second.seen == []
    clean(caught.value, runway.API_KEY)


# --- x-goog-api-key (Gemini API, Vertex express mode) ---------------------------------------


async def test_goog_api_key_download_reaches_another_host_without_the_key(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    first, second = servers
    first.redirect = echoing(second)
    uri = "https://generativelanguage.googleapis.com/v1beta/files/abc123:download?alt=media"
    async with VeoAdapter(base_url=first.url) as adapter:
        out = await adapter.download(done(uri), _gemini(), tmp_path / "v.mp4")
    assert out.read_bytes() == MP4
    assert (first.seen[0].path, first.seen[0].query) == (
        "/v1beta/files/abc123:download",
        [("alt", "media")],
    )
    assert sent_secret(first, "x-goog-api-key") == GEMINI_KEY
    assert_bare(second.seen, [GEMINI_KEY])
    assert second.seen[0].query == list(SIGNED.items())


async def test_goog_api_key_same_host_redirect_keeps_the_key(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    """Gemini Files may redirect a download within their own host; that hop needs the key."""
    first, second = servers

    def rule(request: Request) -> str | None:
        if request.url.path.endswith(":download"):
            return "/media/abc123?alt=media"  # relative: the same scheme, host and port
        return None

    first.redirect = rule
    uri = "https://generativelanguage.googleapis.com/v1beta/files/abc123:download?alt=media"
    async with VeoAdapter(base_url=first.url) as adapter:
        out = await adapter.download(
            done(uri), Credentials({"api_key": GEMINI_KEY}), tmp_path / "v"
        )
    assert out.read_bytes() == MP4
    assert [(s.path, s.headers.get("x-goog-api-key")) for s in first.seen] == [
        ("/v1beta/files/abc123:download", GEMINI_KEY),
        ("/media/abc123", GEMINI_KEY),
    ]
    assert second.seen == []


async def test_goog_api_key_status_redirect_is_refused(servers: tuple[Server, Server]) -> None:
    first, second = servers
    first.redirect = echoing(second)
    async with VeoAdapter(base_url=first.url) as adapter:
        with pytest.raises(TransientError, match="SceneFlow sends credentials only") as caught:
            await adapter.status("models/veo-2.0-generate-001/operations/op1", _gemini())
    assert sent_secret(first, "x-goog-api-key") == GEMINI_KEY
    assert second.seen == []
    clean(caught.value, GEMINI_KEY)


async def test_vertex_storage_download_drops_the_oauth_token(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    """A storageUri output is read from Cloud Storage with the service account's token; a
    redirect off the storage host gets the file without it."""
    first, second = servers
    first.redirect = echoing(second)
    account = {"type": "service_account", "client_email": "sf@p.iam", "private_key_id": "k1"}
    account["token_uri"] = first.url + "/token"
    creds = Credentials({"service_account": account, "project": "p", "location": "us-central1"})
    adapter = VertexVeoAdapter(base_url=first.url, storage_url=first.url)
    # A token minted earlier and still fresh, so no token endpoint is needed here.
    adapter._tokens[adapter._token_key(account)] = (VERTEX_TOKEN, time.time() + 3600)
    async with adapter:
        out = await adapter.download(done("gs://bucket/out/v.mp4"), creds, tmp_path / "v.mp4")
    assert out.read_bytes() == MP4
    assert first.seen[0].path == "/storage/v1/b/bucket/o/out/v.mp4"  # out%2Fv.mp4, decoded
    assert sent_secret(first, "authorization") == VERTEX_TOKEN
    assert_bare(second.seen, [VERTEX_TOKEN])


# --- Key (fal) ------------------------------------------------------------------------------


async def test_fal_key_status_redirect_is_refused(servers: tuple[Server, Server]) -> None:
    first, second = servers
    first.redirect = echoing(second)
    job_id = "fal-ai/kling-video/v2/master/text-to-video:5f2b1c3d-0000-4000-8000-000000000001"
    async with FalAdapter(base_url=first.url) as adapter:
        with pytest.raises(TransientError, match="SceneFlow sends credentials only") as caught:
            await adapter.status(job_id, Credentials({"api_key": fal.API_KEY}))
    assert first.seen[0].headers["authorization"] == f"Key {fal.API_KEY}"
    assert second.seen == []
    clean(caught.value, fal.API_KEY, *fal.API_KEY.split(":"))


# --- a signed JWT (Kling) -------------------------------------------------------------------


async def test_kling_jwt_status_redirect_is_refused(servers: tuple[Server, Server]) -> None:
    first, second = servers
    first.redirect = echoing(second)
    creds = Credentials({"access_key": kling.ACCESS_KEY, "secret_key": kling.SECRET_KEY})
    async with KlingAdapter(base_url=first.url) as adapter:
        with pytest.raises(TransientError, match="SceneFlow sends credentials only") as caught:
            await adapter.status("text2video:123456", creds)
    token = sent_secret(first, "authorization")
    assert token.count(".") == 2  # a JWT was sent to the provider itself
    assert second.seen == []
    clean(caught.value, token, kling.SECRET_KEY)


async def test_signed_output_still_downloads_through_redirects(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    """A signed output URL has no credential: it follows redirects to another host, as before,
    with its query byte for byte (a re-encoded signature would no longer match)."""
    first, second = servers
    signed = f"{second.url}/cdn/out.mp4?X-Goog-Signature=abc%2F123&token=cdn-grant-0123456789"
    first.redirect = lambda request: signed
    creds = Credentials({"access_key": kling.ACCESS_KEY, "secret_key": kling.SECRET_KEY})
    async with KlingAdapter(base_url=first.url) as adapter:
        out = await adapter.download(done(first.url + "/out.mp4?sig=1"), creds, tmp_path / "v")
    assert out.read_bytes() == MP4
    assert "authorization" not in first.seen[0].headers
    assert second.seen[0].query == [
        ("X-Goog-Signature", "abc/123"),
        ("token", "cdn-grant-0123456789"),
    ]


# --- a credential in the query string -------------------------------------------------------


async def test_query_credential_is_not_forwarded_to_another_host(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    """No adapter puts its key in a URL today (Google's docs' `?key=`, the SDKs send a header);
    the download mechanism still drops one a redirect to another host carries along."""
    first, second = servers
    key = "AIzaSy-query-SECRET-0123456789"

    def rule(request: Request) -> str:
        return f"{second.url}/v.mp4?alt=media&key={request.query_params['key']}&k2={key}"

    first.redirect = rule
    async with VeoAdapter(base_url=first.url) as adapter:
        await adapter.fetch_to_file(f"{first.url}/f?alt=media&key={key}", tmp_path / "v.mp4")
    assert ("key", key) in first.seen[0].query
    assert_bare(second.seen, [key])
    assert second.seen[0].query == [("alt", "media")]


# --- every provider, and the mechanism's edges ----------------------------------------------

# Each remote provider's status call, with credentials its auth accepts and a job id in its
# own format. Local has no HTTP.
STATUS_CALLS: dict[str, tuple[dict[str, Any], str]] = {
    "runway": ({"api_key": runway.API_KEY}, "task-1"),
    "veo": ({"api_key": GEMINI_KEY}, "models/veo-2.0-generate-001/operations/op1"),
    "vertex": (
        {"api_key": GEMINI_KEY},
        "publishers/google/models/veo-3.0-generate-001/operations/op1",
    ),
    "luma": ({"api_key": luma.API_KEY}, "0b7c3e2a-5d41-4f6e-9a8b-1c2d3e4f5a6b"),
    "replicate": ({"api_key": REPLICATE_TOKEN}, "p1"),
    "fal": ({"api_key": fal.API_KEY}, "fal-ai/kling-video/v2/master/text-to-video:r1"),
    "kling": ({"access_key": kling.ACCESS_KEY, "secret_key": kling.SECRET_KEY}, "text2video:1"),
    "minimax": ({"api_key": minimax.API_KEY}, "1"),
    "wan": ({"api_key": wan.API_KEY}, "t1"),
    "seedance": ({"api_key": seedance.API_KEY}, "cgt-1"),
}


@pytest.mark.parametrize("provider", sorted(STATUS_CALLS))
async def test_every_provider_refuses_an_api_redirect_to_another_host(
    servers: tuple[Server, Server], provider: str
) -> None:
    first, second = servers
    first.redirect = echoing(second)
    values, job_id = STATUS_CALLS[provider]
    adapter = get_adapter(provider, base_url=first.url)
    assert isinstance(adapter, HttpAdapter)
    with pytest.raises(TransientError, match="SceneFlow sends credentials only") as caught:
        await adapter.status(job_id, Credentials(values))
    await adapter.aclose()
    assert first.seen, "the status call never reached the provider's server"
    assert CREDENTIAL_HEADERS & set(first.seen[0].headers), "the status call was not authenticated"
    assert second.seen == []
    clean(caught.value, *(v for v in values.values() if isinstance(v, str)))


async def test_an_injected_client_that_follows_redirects_is_overruled(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    first, second = servers
    first.redirect = echoing(second)
    async with httpx.AsyncClient(follow_redirects=True) as client:
        adapter = VeoAdapter(client=client, base_url=first.url)
        with pytest.raises(TransientError, match="did not follow"):
            await adapter.status("models/veo-2.0-generate-001/operations/op1", _gemini())
        uri = "https://x/v1beta/files/abc123:download?alt=media"
        await adapter.download(done(uri), _gemini(), tmp_path / "v.mp4")
    assert len(second.seen) == 1  # the download only
    assert_bare(second.seen, [GEMINI_KEY])


async def test_api_calls_follow_a_redirect_within_their_own_host(
    servers: tuple[Server, Server],
) -> None:
    first, second = servers

    def rule(request: Request) -> str | None:
        return "/v1beta/operations/moved" if request.url.path.endswith("/op1") else None

    first.redirect = rule
    async with VeoAdapter(base_url=first.url) as adapter:
        with pytest.raises(TransientError, match="not JSON"):  # the MP4 the server answers
            await adapter.status("models/veo-2.0-generate-001/operations/op1", _gemini())
    assert [(s.path, s.headers.get("x-goog-api-key")) for s in first.seen] == [
        ("/v1beta/models/veo-2.0-generate-001/operations/op1", GEMINI_KEY),
        ("/v1beta/operations/moved", GEMINI_KEY),
    ]
    assert second.seen == []


async def test_a_redirect_loop_stops_after_max_redirects(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    first, _ = servers
    first.redirect = lambda request: "/again"
    async with HttpAdapter(base_url=first.url) as adapter:
        adapter.key = "veo"
        with pytest.raises(TransientError) as caught:
            await adapter.fetch_to_file(first.url + "/start", tmp_path / "v.mp4")
    assert str(caught.value) == (
        f"veo: GET was redirected more than 5 times (last to {first.url}); will retry"
    )
    assert len(first.seen) == 6
    assert not (tmp_path / "v.mp4.part").exists()
