"""Opening and testing stored credentials: plain functions, no Prefect."""

from __future__ import annotations

import pytest

from sceneflow import store
from sceneflow.credentials import check_credentials, open_credentials
from sceneflow.db import session_scope
from sceneflow.errors import AuthError, CredentialsError, TransientError
from sceneflow.providers import Capabilities, Credentials

pytestmark = pytest.mark.usefixtures("database_url")

SECRET = "rw-key-0123456789abcdef"


def caps(fields: list[str]) -> Capabilities:
    return Capabilities(
        provider="runway",
        default_model="m",
        models={},
        credential_fields=fields,
        can_cancel=False,
        connection_test="GET /v1/organization",
    )


class Probe:
    """An adapter whose connection test answers as scripted."""

    key = "runway"

    def __init__(self, outcome: BaseException | None, fields: list[str]) -> None:
        self.outcome, self.fields = outcome, fields
        self.seen: list[str] = []
        self.closed = False

    def capabilities(self) -> Capabilities:
        return caps(self.fields)

    async def test_connection(self, credentials: Credentials) -> None:
        self.seen.append(credentials.get("api_key"))
        if self.outcome:
            raise self.outcome

    async def aclose(self) -> None:
        self.closed = True


def _store() -> None:
    with session_scope() as session:
        store.put_credentials(
            session=session, user_id="ann", provider="runway", credentials={"api_key": SECRET}
        )


def _validity() -> bool | None:
    with session_scope() as session:
        config = store.get_config(session=session, user_id="ann", provider="runway")
        assert config is not None
        return config.is_valid


def test_open_decrypts_into_memory_only() -> None:
    _store()
    opened = open_credentials("ann", caps(["api_key"]))
    assert opened.get("api_key") == SECRET
    assert SECRET not in repr(opened)


def test_a_keyless_provider_needs_nothing_stored() -> None:
    assert open_credentials("nobody", caps([])).fields() == []


def test_missing_credentials_say_how_to_store_them() -> None:
    with pytest.raises(CredentialsError, match=r"run `sceneflow creds set ann runway`"):
        open_credentials("ann", caps(["api_key"]))


def test_credentials_the_last_test_rejected_are_refused_with_the_fix() -> None:
    _store()
    with session_scope() as session:
        store.set_validity(session=session, user_id="ann", provider="runway", is_valid=False)
    with pytest.raises(CredentialsError) as e:
        open_credentials("ann", caps(["api_key"]))
    assert "rejected by the provider at the last check" in str(e.value)
    assert "`sceneflow creds test ann runway`" in str(e.value)


@pytest.mark.parametrize(
    ("outcome", "valid"), [(None, True), (AuthError("401", provider="runway"), False)]
)
async def test_check_stores_the_verdict_and_closes_the_adapter(
    outcome: BaseException | None, valid: bool
) -> None:
    _store()
    probe = Probe(outcome, ["api_key"])
    assert await check_credentials(probe, "ann") is valid  # type: ignore[arg-type]
    assert probe.seen == [SECRET] and probe.closed
    assert _validity() is valid


async def test_a_provider_outage_keeps_the_last_verdict() -> None:
    _store()
    probe = Probe(TransientError("503", provider="runway"), ["api_key"])
    with pytest.raises(TransientError):
        await check_credentials(probe, "ann")  # type: ignore[arg-type]
    assert _validity() is None and probe.closed
