"""The one exception tree of SceneFlow.

Adapters translate provider and transport failures into these once, at their edge, with
``raise ... from e``. `is_retryable` is the one definition of what may be tried again: Prefect's
retry condition (``tasks/policies.py``) and the job engine (``sceneflow.jobs``) both ask it.
No message ever carries a credential, an auth header or a signed URL.

    SceneFlowError
    ├── ConfigError ............... a setting or input the user must fix; never retried
    │   ├── EncryptionKeyError .... ENCRYPTION_KEY missing, malformed, or not the key that sealed it
    │   ├── UnknownProviderError .. a provider key that is not in the registry
    │   ├── CredentialsError ...... stored credentials missing, malformed or marked invalid
    │   ├── RequestValidationError  the request breaks SceneFlow's or the provider's limits
    │   └── NotFoundError ......... a user/provider/job that does not exist
    ├── OrchestrationError ........ Prefect could not run the task that carries a job (its API
    │                               refused or failed); retried: nothing was sent for the job
    └── ProviderError ............. the provider (or the way to it) failed; carries `provider`
        ├── AuthError ............. 401/403: the key was rejected; marks is_valid false
        ├── RateLimitedError ...... 429: retried after `retry_after` seconds
        ├── TransientError ........ 5xx, connection and read failures, malformed replies; retried
        ├── AmbiguousSubmitError .. a submit whose reply was lost: it may have been billed, so it
        │                           is never retried blindly; the job is looked up where the
        │                           provider lists its jobs, else reported (design.md §3)
        ├── RejectedError ......... other 4xx: the provider refused the request; never retried
        │   └── ModerationError ... refused by the provider's content filter
        ├── GenerationFailedError . the job ran and failed on the provider's side
        └── GenerationTimeoutError  the job missed its deadline; it was cancelled
"""

from __future__ import annotations

__all__ = [
    "AmbiguousSubmitError",
    "AuthError",
    "ConfigError",
    "CredentialsError",
    "EncryptionKeyError",
    "GenerationFailedError",
    "GenerationTimeoutError",
    "ModerationError",
    "NotFoundError",
    "OrchestrationError",
    "ProviderError",
    "RateLimitedError",
    "RejectedError",
    "RETRYABLE",
    "RequestValidationError",
    "SceneFlowError",
    "TransientError",
    "UnknownProviderError",
    "is_retryable",
]


class SceneFlowError(Exception):
    """Base of every error SceneFlow raises on purpose."""


class ConfigError(SceneFlowError):
    """Something the user must fix: a setting, an input, stored data. Never retried."""


class EncryptionKeyError(ConfigError):
    pass


class UnknownProviderError(ConfigError):
    def __init__(self, provider: str, known: list[str]) -> None:
        self.provider = provider
        super().__init__(f"Unknown provider {provider!r}. Known providers: {', '.join(known)}.")


class CredentialsError(ConfigError):
    pass


class RequestValidationError(ConfigError):
    """The request breaks a rule. `problems` holds one line per broken rule, each naming a field."""

    def __init__(self, problems: list[str], *, provider: str | None = None) -> None:
        self.problems = list(problems)
        self.provider = provider
        where = f" for provider {provider!r}" if provider else ""
        super().__init__(f"Invalid request{where}: " + "; ".join(self.problems))


class NotFoundError(ConfigError):
    pass


class OrchestrationError(SceneFlowError):
    """Prefect failed around a job, not the provider: a job it never started was not sent, and
    one with a provider job keeps it, so a re-run picks either up without paying twice."""


class ProviderError(SceneFlowError):
    """A failure on the provider's side or on the way to it."""

    def __init__(self, message: str, *, provider: str, status_code: int | None = None) -> None:
        self.provider = provider
        self.status_code = status_code
        super().__init__(message)


class AuthError(ProviderError):
    pass


class RateLimitedError(ProviderError):
    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retry_after: float | None = None,
        status_code: int | None = 429,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, status_code=status_code)


class TransientError(ProviderError):
    pass


class AmbiguousSubmitError(ProviderError):
    """The submit went out but no reply came back. Retrying blindly could pay twice."""


class RejectedError(ProviderError):
    pass


class ModerationError(RejectedError):
    pass


class GenerationFailedError(ProviderError):
    pass


class GenerationTimeoutError(ProviderError):
    pass


# Transient failures and rate limits are the only errors worth trying again. A lost submit
# (AmbiguousSubmitError) is not among them: it may have been billed (design.md §3).
RETRYABLE: tuple[type[SceneFlowError], ...] = (TransientError, RateLimitedError, OrchestrationError)


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, RETRYABLE)
