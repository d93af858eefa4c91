"""The HTTP plumbing adapters share: an injected client, one attempt, errors translated once.

The contract adapters implement is `sceneflow.providers`. An adapter makes exactly one attempt
per call; retries, backoff and deadlines belong to the Prefect tasks (`tasks/policies.py`).
Transport and HTTP failures are translated here, once, into `sceneflow.errors`.

Redirects are followed here, by hand, never by httpx: httpx drops only `Authorization` when a
redirect leaves the origin and keeps every other header, so `x-goog-api-key` would travel along
(design.md §4). An authenticated API call follows a redirect only within its own origin (scheme,
host and port) and refuses one that leaves it; a download follows it bare, without any header
the caller gave, any credential header or any query parameter that carries a credential.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from sceneflow.errors import (
    AmbiguousSubmitError,
    AuthError,
    ModerationError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    TransientError,
)
from sceneflow.models import StandardVideoRequest, StandardVideoResult
from sceneflow.providers import Credentials, Lookup, ModelCapabilities, check_options

__all__ = [
    "CREDENTIAL_HEADERS",
    "CREDENTIAL_PARAMS",
    "HttpAdapter",
    "audio_warnings",
    "compose_prompt",
    "option_problems",
    "parse_retry_after",
    "parse_timestamp",
    "require_output_url",
    "unsupported_warning",
]

M = TypeVar("M", bound=BaseModel)

# Headers that carry a credential in any adapter or by convention; a redirect that leaves the
# origin never carries them, whatever the caller passed.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-goog-api-key", "x-api-key", "api-key", "cookie"}
)
# Query parameters that carry a credential by convention: Google's API `key`, OAuth 2's
# `access_token` (RFC 6750 §2.3). Stripped from a hop to another origin of an authenticated call.
CREDENTIAL_PARAMS = frozenset({"key", "api_key", "apikey", "access_token"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port: a redirect to any other triple leaves the origin."""
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _show(url: httpx.URL) -> str:
    """The origin only: a path or query may be signed."""
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"


def _secrets(request: httpx.Request, names: Iterable[str]) -> set[str]:
    """Credential values on `request`: the named headers' values (with and without their
    scheme word, "Bearer"/"Key") and the values of credential query parameters."""
    found: set[str] = set()
    for name in names:
        value = request.headers.get(name)
        if value:
            found |= {value, value.partition(" ")[2]}
    for name, value in request.url.params.multi_items():
        if name.lower() in CREDENTIAL_PARAMS:
            found.add(value)
    return {v for v in found if len(v) >= 8}


def _strip_credentials(request: httpx.Request, names: Iterable[str], secrets: set[str]) -> None:
    """Remove every credential from a request bound for another origin, in place."""
    for name in {*(n.lower() for n in names), *CREDENTIAL_HEADERS}:
        request.headers.pop(name, None)
    for name, value in list(request.headers.items()):
        if any(secret in value for secret in secrets):
            del request.headers[name]
    if not secrets:
        return  # nothing was sent with credentials: a signed URL's query stays byte for byte
    items = request.url.params.multi_items()
    kept = [
        (k, v)
        for k, v in items
        if k.lower() not in CREDENTIAL_PARAMS and not any(s in v for s in secrets)
    ]
    if len(kept) != len(items):
        request.url = request.url.copy_with(params=kept)


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            return max(float(ms) / 1000, 0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0) if parsed else None


def parse_timestamp(text: str | None) -> datetime | None:
    """A provider's ISO 8601 time, aware (no zone means UTC); None when absent or unreadable."""
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class HttpAdapter:
    """Shared plumbing: an injected (or owned) httpx.AsyncClient and error translation.

    Subclasses set `key`, `default_base_url`, implement `auth_headers` and may override
    `error_message` to pull the provider's own message out of an error body.

    A job refused by the provider's content filter raises ModerationError with the provider's
    reason, the one way every adapter signals it: from `submit` when refused up front (a 4xx
    body matching `moderation_markers`, translated here), from `status` when refused later.
    """

    key: str = ""
    default_base_url: str = ""
    timeout = httpx.Timeout(30.0, connect=10.0)
    # An idle connection is dropped after this, well before the 5 s after which common servers
    # (uvicorn, Node's http) close theirs: a submit sent on a connection the server is closing
    # at that moment gets a ReadError with no way to tell whether it arrived, and the job is
    # UNKNOWN (seen at N=1,000 against the emulator under load, with httpx's own 5 s).
    keepalive_expiry = 2.0
    # Hops a call or download may take; a CDN chain of signed URLs takes two or three.
    max_redirects = 5
    moderation_markers: tuple[str, ...] = ("moderation", "safety", "content policy", "nsfw")

    def __init__(
        self, *, client: httpx.AsyncClient | None = None, base_url: str | None = None
    ) -> None:
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self._injected = client
        self._owned: httpx.AsyncClient | None = None

    @property
    def _client(self) -> httpx.AsyncClient:
        # Built on first use: an httpx client loads the CA bundle (~0.1 s), and many adapters
        # are made only to read capabilities or validate a request.
        if self._injected is not None:
            return self._injected
        if self._owned is None:
            # httpx's default pool sizes, with the shorter keep-alive.
            pool = httpx.Limits(
                max_connections=100,
                max_keepalive_connections=20,
                keepalive_expiry=self.keepalive_expiry,
            )
            self._owned = httpx.AsyncClient(timeout=self.timeout, limits=pool)
        return self._owned

    async def aclose(self) -> None:
        """Close the client this adapter made; an injected one belongs to the caller."""
        if self._owned is not None:
            await self._owned.aclose()
            self._owned = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def find_submitted(
        self,
        request: StandardVideoRequest,
        credentials: Credentials,
        *,
        since: datetime,
        reference: str | None = None,
        known: Collection[str] = (),
    ) -> Lookup | None:
        return None  # providers with a list endpoint override this

    def validate(self, request: StandardVideoRequest) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} must implement validate")

    async def prepare(self, request: StandardVideoRequest, credentials: Credentials) -> list[str]:
        """`validate`: nothing needs reading first (Replicate and fal read a model's schema)."""
        return self.validate(request)

    def auth_headers(self, credentials: Credentials) -> dict[str, str]:
        raise NotImplementedError(f"{type(self).__name__} must implement auth_headers")

    def error_message(self, response: httpx.Response) -> str:
        """The provider's own words from an error body; never echoes request headers."""
        try:
            body = response.json()
        except ValueError:
            return response.text[:300] or response.reason_phrase
        if isinstance(body, dict):
            for key in ("error", "message", "detail", "failure"):
                value = body.get(key)
                if isinstance(value, dict):
                    value = value.get("message") or value.get("detail") or value
                if value:
                    return str(value)[:500]
        return str(body)[:500]

    async def request(
        self,
        method: str,
        url: str,
        *,
        credentials: Credentials | None = None,
        submit: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """One HTTP call, translated. `submit=True` marks a call that may be billed, whose lost
        reply becomes AmbiguousSubmitError rather than a retryable error (design.md §3)."""
        if not url.startswith(("http://", "https://")):
            url = self.base_url + url
        headers = dict(kwargs.pop("headers", None) or {})
        if credentials is not None:
            headers.update(self.auth_headers(credentials))
        try:
            outgoing = self._client.build_request(method, url, headers=headers, **kwargs)
            response = await self._send(outgoing, cross_origin="refuse", submit=submit)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise TransientError(
                f"{self.key}: could not connect to {self.base_url} ({type(e).__name__}); "
                "check the network or the base URL setting",
                provider=self.key,
            ) from e
        except httpx.TransportError as e:
            if submit:
                raise AmbiguousSubmitError(
                    f"{self.key}: the submit was sent but no reply came back "
                    f"({type(e).__name__}); it may have been accepted and billed",
                    provider=self.key,
                ) from e
            raise TransientError(
                f"{self.key}: {method} failed mid-way ({type(e).__name__}); will retry",
                provider=self.key,
            ) from e
        try:
            self.raise_for_status(response, submit=submit)
        except ProviderError as e:
            if credentials is not None:
                e.args = (credentials.redact(str(e)),)
            raise
        return response

    async def _send(
        self,
        request: httpx.Request,
        *,
        cross_origin: Literal["refuse", "strip"],
        credential_headers: Iterable[str] = (),
        stream: bool = False,
        submit: bool = False,
    ) -> httpx.Response:
        """Send `request`, following up to `max_redirects` redirects by hand.

        Within the origin of `request` a redirect keeps its headers. One that leaves it is
        refused (`"refuse"`, for API calls) or followed without `credential_headers`,
        CREDENTIAL_HEADERS, any header holding their values and any credential query
        parameter (`"strip"`, for downloads); credentials never come back on a later hop.
        """
        start = _origin(request.url)
        names = list(credential_headers)
        secrets = _secrets(request, [*names, *CREDENTIAL_HEADERS])
        for _ in range(self.max_redirects + 1):
            # follow_redirects=False even on an injected client built to follow them.
            response = await self._client.send(request, stream=stream, follow_redirects=False)
            following = response.next_request
            if following is None:
                return response
            await response.aclose()
            if _origin(following.url) != start:
                if cross_origin == "refuse":
                    raise self._refused_redirect(response, following, submit=submit)
                _strip_credentials(following, names, secrets)
            request = following
        raise TransientError(
            f"{self.key}: {request.method} was redirected more than {self.max_redirects} times "
            f"(last to {_show(request.url)}); will retry",
            provider=self.key,
            status_code=response.status_code,
        )

    def _refused_redirect(
        self, response: httpx.Response, following: httpx.Request, *, submit: bool
    ) -> ProviderError:
        code, there = response.status_code, _show(following.url)
        msg = (
            f"{self.key}: {response.request.method} {_show(response.request.url)} was "
            f"redirected (HTTP {code}) to another host, {there}; SceneFlow sends credentials "
            "only to the host they are for, so it did not follow"
        )
        if submit and code in (302, 303):
            # 303 See Other, and 302 as Post/Redirect/Get uses it, answer a POST that was
            # processed: the job may exist. 307/308 ask for the same POST elsewhere.
            return AmbiguousSubmitError(
                f"{msg}; the job may have been created", provider=self.key, status_code=code
            )
        if code in (301, 308):
            return RejectedError(
                f"{msg}. If {there} is {self.key}'s new address and you trust it, set "
                f"SCENEFLOW_BASE_URLS__{self.key.upper()}={there}",
                provider=self.key,
                status_code=code,
            )
        return TransientError(f"{msg}; will retry", provider=self.key, status_code=code)

    def raise_for_status(self, response: httpx.Response, *, submit: bool = False) -> None:
        code = response.status_code
        if code < 400:
            return
        what = self.error_message(response)
        msg = f"{self.key} answered HTTP {code}: {what}"
        if code in (401, 403):
            raise AuthError(
                f"{msg}. The stored key was rejected: run `sceneflow creds set USER {self.key}` "
                f"with a valid key, then `sceneflow creds test USER {self.key}`",
                provider=self.key,
                status_code=code,
            )
        if code == 429:
            raise RateLimitedError(
                msg, provider=self.key, retry_after=parse_retry_after(response.headers)
            )
        if code >= 500 or code == 408:
            # A 503 is load shedding: the job was not created. Other 5xx on a submit may
            # have created one.
            if submit and code not in (503,):
                raise AmbiguousSubmitError(
                    f"{msg}; the job may have been created", provider=self.key, status_code=code
                )
            raise TransientError(msg, provider=self.key, status_code=code)
        if any(m in what.lower() for m in self.moderation_markers):
            raise ModerationError(msg, provider=self.key, status_code=code)
        raise RejectedError(msg, provider=self.key, status_code=code)

    def parse(
        self, model: type[M], response: httpx.Response, what: str = "", *, submit: bool = False
    ) -> M:
        """Validate a success body against a private reply model. A wrong shape is transient,
        like a malformed body; the message names the fields, never their values (they may hold
        signed URLs). A body that is not JSON is transient too: proxies and overloads send them.

        With `submit=True` (the reply to a billed call) an unreadable success is ambiguous
        instead: the provider took the request, so the job may exist (design.md §3)."""
        try:
            return model.model_validate(response.json())
        except ValueError as e:
            if isinstance(e, ValidationError):
                fields = ", ".join(".".join(map(str, err["loc"])) or "body" for err in e.errors())
                problem = f"a {what + ' ' if what else ''}reply SceneFlow cannot read"
                problem += f" (HTTP {response.status_code}; fields: {fields})"
            else:
                problem = f"a reply that is not JSON (HTTP {response.status_code})"
            if submit:
                raise AmbiguousSubmitError(
                    f"{self.key} accepted the submit but sent {problem}; the job may exist and "
                    "be billed",
                    provider=self.key,
                    status_code=response.status_code,
                ) from e
            raise TransientError(
                f"{self.key} sent {problem}; will retry",
                provider=self.key,
                status_code=response.status_code,
            ) from e

    async def fetch_to_file(
        self, url: str, destination: Path, *, headers: dict[str, str] | None = None
    ) -> Path:
        """Stream a file to `destination` atomically. The URL (often signed) is never logged.

        `headers` are credentials: they go to the origin of `url` only. Redirects are followed;
        one to another scheme, host or port is fetched without them (see `_send`)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        headers = headers or {}
        try:
            outgoing = self._client.build_request("GET", url, headers=headers)
            response = await self._send(
                outgoing, cross_origin="strip", credential_headers=headers, stream=True
            )
            try:
                if response.status_code >= 400:
                    await response.aread()
                    self.raise_for_status(response)
                with partial.open("wb") as fh:
                    async for chunk in response.aiter_bytes(1 << 16):
                        fh.write(chunk)
            finally:
                await response.aclose()
        except httpx.TransportError as e:
            partial.unlink(missing_ok=True)
            raise TransientError(
                f"{self.key}: download interrupted ({type(e).__name__}); will retry",
                provider=self.key,
            ) from e
        partial.replace(destination)
        return destination


def require_output_url(result: StandardVideoResult, provider: str) -> str:
    if not result.video_url:
        raise ProviderError(
            f"{provider}: the job {result.provider_job_id} has no output URL to download",
            provider=provider,
        )
    return result.video_url


def compose_prompt(request: StandardVideoRequest, *, style: bool = True) -> str:
    """The prompt with the style folded in, for providers that have no style field.

    Providers that map `style` this way say so in capabilities ("mapped: appended to prompt").
    """
    if style and request.style:
        return f"{request.prompt.rstrip('. ')}. Style: {request.style}."
    return request.prompt


def unsupported_warning(provider: str, field: str, what_happens: str) -> str:
    """The one wording for a field a provider has no equivalent for (reported, never silent)."""
    return f"{field}: {provider} has no equivalent setting; {what_happens}"


def audio_warnings(who: str, request: StandardVideoRequest, *, renders: bool | None) -> list[str]:
    """The warning for an audio setting a model cannot follow: `renders` False for a model that
    makes silent video only, True for one that always adds sound, None when it has a switch."""
    if renders is False and request.audio is True:
        return [
            unsupported_warning(
                who, "audio", "it makes silent video only, so the clip has no sound"
            )
        ]
    if renders is True and request.audio is False:
        return [
            f"audio: {who} always adds sound and has no way to turn it off; the clip will "
            "have sound"
        ]
    return []


def option_problems(
    request: StandardVideoRequest,
    models: Mapping[str, ModelCapabilities],
    model: str,
    who: str,
) -> list[str]:
    """Every problem with `request.options` against `model`'s declared options (none when the
    model is unknown), naming the other models that offer an option this one lacks."""
    if not request.options:
        # Most requests set none; the index of other models' options, built for every request,
        # was a fifth of a provider's check of a CSV row (issue 10).
        return []
    caps = models.get(model)
    elsewhere: dict[str, list[str]] = {}
    for name, other in models.items():
        if name != model:
            for option in other.options:
                elsewhere.setdefault(option, []).append(name)
    specs = caps.options if caps is not None else {}
    return check_options(request.options, specs, who=who, elsewhere=elsewhere)
