"""The store over SQLite and PostgreSQL: credentials, rotation, jobs and their attempt log."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from sceneflow import db, store
from sceneflow.errors import CredentialsError, EncryptionKeyError, NotFoundError
from sceneflow.models import JobStatus
from sceneflow.vault import Keyring

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
RING_A = Keyring.from_keys(KEY_A)
RING_B = Keyring.from_keys(KEY_B, [KEY_A])
SECRET = {"api_key": "sk-store-secret-42"}


@pytest.fixture(autouse=True)
def _engines(database_url: str) -> Iterator[str]:
    yield database_url
    db.dispose_engines()


def put(user: str, provider: str, ring: Keyring = RING_A, **creds: Any) -> None:
    with db.session_scope() as s:
        store.put_credentials(
            session=s, user_id=user, provider=provider, credentials=creds or SECRET, keyring=ring
        )


def load(user: str, provider: str, ring: Keyring = RING_A) -> dict[str, Any]:
    with db.session_scope() as s:
        return store.unseal_credentials(session=s, user_id=user, provider=provider, keyring=ring)


def key_ids() -> dict[tuple[str, str], str]:
    with db.session_scope() as s:
        return {(r.user_id, r.provider_name): r.key_id for r in store.list_all_configs(session=s)}


def test_put_and_load_round_trip_without_plaintext_in_the_row() -> None:
    put("alice", "runway")
    assert load("alice", "runway") == SECRET
    with db.session_scope() as s:
        row = store.get_config(session=s, user_id="alice", provider="runway")
        assert row is not None
        assert "sk-store-secret-42" not in row.encrypted_credentials
        assert row.key_id == RING_A.current_id and row.is_valid is None
        assert row.created_at.tzinfo is not None and row.updated_at.tzinfo is not None
        assert "encrypted_credentials" not in repr(row)


def test_put_again_updates_the_row_and_resets_validity() -> None:
    put("alice", "runway")
    with db.session_scope() as s:
        first = store.set_validity(session=s, user_id="alice", provider="runway", is_valid=True)
        first_id, first_token = first.id, first.encrypted_credentials
        assert first.last_validated_at is not None
    put("alice", "runway", api_key="sk-new")
    with db.session_scope() as s:
        [row] = store.list_all_configs(session=s)
        assert row.id == first_id and row.encrypted_credentials != first_token
        assert row.is_valid is None and row.last_validated_at is None
    assert load("alice", "runway") == {"api_key": "sk-new"}


def test_user_and_provider_are_unique_together() -> None:
    put("alice", "runway")
    with pytest.raises(IntegrityError), db.session_scope() as s:
        s.add(
            store.UserProviderConfig(
                user_id="alice", provider_name="runway", encrypted_credentials="x", key_id="x"
            )
        )
        s.flush()
    put("bob", "runway")
    put("alice", "luma")
    assert len(key_ids()) == 3


def test_listing_is_sorted_and_public_rows_hold_no_secret() -> None:
    put("bob", "runway")
    put("alice", "runway")
    put("alice", "luma")
    with db.session_scope() as s:
        mine = store.list_configs(session=s, user_id="alice")
        assert [r.provider_name for r in mine] == ["luma", "runway"]
        everyone = store.list_all_configs(session=s)
        assert [(r.user_id, r.provider_name) for r in everyone] == [
            ("alice", "luma"),
            ("alice", "runway"),
            ("bob", "runway"),
        ]
        public = store.UserProviderConfigPublic.model_validate(mine[0])
    assert "encrypted_credentials" not in store.UserProviderConfigPublic.model_fields
    assert public.validity == "unknown" and public.provider_name == "luma"


def test_validity_is_recorded_and_shown() -> None:
    put("alice", "runway")
    with db.session_scope() as s:
        row = store.set_validity(session=s, user_id="alice", provider="runway", is_valid=False)
        assert row.last_validated_at is not None
        assert row.last_validated_at.tzinfo == UTC
        assert store.UserProviderConfigPublic.model_validate(row).validity == "invalid"
    with pytest.raises(NotFoundError, match="run `sceneflow creds set alice luma`"):
        with db.session_scope() as s:
            store.set_validity(session=s, user_id="alice", provider="luma", is_valid=True)


def test_missing_credentials_say_how_to_set_them() -> None:
    with pytest.raises(CredentialsError) as info:
        load("alice", "runway")
    assert str(info.value) == (
        "No credentials for provider 'runway' and user 'alice': "
        "run `sceneflow creds set alice runway`"
    )


def test_empty_credentials_and_blank_users_are_refused() -> None:
    with pytest.raises(CredentialsError, match="are empty: give a JSON object"):
        with db.session_scope() as s:
            store.put_credentials(
                session=s, user_id="alice", provider="runway", credentials={}, keyring=RING_A
            )
    with pytest.raises(CredentialsError, match="user id must not be blank"):
        put(" ", "runway")
    assert key_ids() == {}


def test_delete_removes_the_row_and_refuses_what_is_not_there() -> None:
    put("alice", "runway")
    with db.session_scope() as s:
        store.delete_credentials(session=s, user_id="alice", provider="runway")
    assert key_ids() == {}
    with pytest.raises(NotFoundError) as info, db.session_scope() as s:
        store.delete_credentials(session=s, user_id="alice", provider="runway")
    assert str(info.value) == (
        "No credentials for provider 'runway' and user 'alice', so nothing was deleted: "
        "`sceneflow creds list alice` shows what is stored."
    )


ROWS = [("alice", "runway"), ("alice", "luma"), ("bob", "runway")]


def rotate(ring: Keyring) -> int:
    with db.session_scope() as s:
        return store.rotate_keys(session=s, keyring=ring)


def test_rotation_reseals_every_row_and_running_it_twice_is_a_no_op() -> None:
    for user, provider in ROWS:
        put(user, provider, api_key=f"{user}-{provider}")
    assert rotate(RING_B) == 3
    assert set(key_ids().values()) == {RING_B.current_id}
    only_b = Keyring.from_keys(KEY_B)
    for user, provider in ROWS:
        assert load(user, provider, only_b) == {"api_key": f"{user}-{provider}"}
    assert rotate(RING_B) == 0
    assert set(key_ids().values()) == {RING_B.current_id}


def test_an_interrupted_rotation_changes_nothing_and_a_rerun_finishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for user, provider in ROWS:
        put(user, provider)
    real_seal = Keyring.seal
    calls = []

    def crash_on_second(self: Keyring, **kwargs: Any) -> tuple[str, str]:
        calls.append(kwargs["user_id"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_seal(self, **kwargs)

    monkeypatch.setattr(Keyring, "seal", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        rotate(RING_B)
    monkeypatch.setattr(Keyring, "seal", real_seal)
    assert set(key_ids().values()) == {RING_A.current_id}
    for user, provider in ROWS:
        assert load(user, provider, RING_B) == SECRET
    assert rotate(RING_B) == 3
    assert rotate(RING_B) == 0


def test_rotation_skips_rows_already_under_the_current_key() -> None:
    put("alice", "runway", RING_A)
    put("alice", "luma", RING_B)
    put("bob", "runway", RING_A)
    assert rotate(RING_B) == 2
    for user, provider in ROWS:
        assert load(user, provider, Keyring.from_keys(KEY_B)) == SECRET


def test_rotation_with_an_unknown_key_fails_and_changes_nothing() -> None:
    put("alice", "runway", RING_A)
    put("bob", "runway", Keyring.from_keys(KEY_B))
    before = key_ids()
    ring_c = Keyring.from_keys(base64.b64encode(b"C" * 32).decode(), [KEY_B])
    with pytest.raises(EncryptionKeyError, match=f"sealed with key id {RING_A.current_id}"):
        rotate(ring_c)
    assert key_ids() == before


# --- jobs --------------------------------------------------------------------------------


def new_job(key: str = "k1", **fields: Any) -> tuple[store.GenerationJob, bool]:
    base = {"user_id": "alice", "provider": "local", "request_json": "{}"} | fields
    with db.session_scope() as s:
        return store.get_or_create_job(session=s, idempotency_key=key, **base)


def test_get_or_create_job_is_idempotent() -> None:
    job, created = new_job(batch_id="b1", row_number=3)
    assert created and len(job.id) == 32 and job.status == "QUEUED" and job.attempts == 0
    again, created_again = new_job(batch_id="other")
    assert not created_again and again.id == job.id and again.batch_id == "b1"


def test_get_or_create_job_survives_losing_the_insert_race(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    winner, _ = new_job()
    real = store._job_by_key
    calls = []

    def stale_first_read(**kwargs: Any) -> store.GenerationJob | None:
        calls.append(1)
        return None if len(calls) == 1 else real(**kwargs)

    monkeypatch.setattr(store, "_job_by_key", stale_first_read)
    with db.session_scope() as s:
        other, _ = store.get_or_create_job(
            session=s, idempotency_key="k2", user_id="bob", provider="local", request_json="{}"
        )
        calls.clear()
        job, created = store.get_or_create_job(
            session=s, idempotency_key="k1", user_id="x", provider="local", request_json="{}"
        )
        assert not created and job.id == winner.id
    with db.session_scope() as s:
        # The lost race rolled back only its savepoint: the other job in the session survived.
        assert store.get_job(session=s, job_id=other.id) is not None


def test_concurrent_get_or_create_job_makes_one_row() -> None:
    db.get_engine()
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        job, created = new_job("same-key")
        results.append((job.id, created))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_update_job_applies_changes_and_bumps_updated_at() -> None:
    job, _ = new_job()
    with db.session_scope() as s:
        updated = store.update_job(
            session=s,
            job_id=job.id,
            status=JobStatus.PROCESSING,
            provider_job_id="p-1",
            progress=40.0,
        )
        assert updated.updated_at > job.updated_at
    with db.session_scope() as s:
        row = store.get_job(session=s, job_id=job.id)
        assert row is not None and row.status == "PROCESSING" and row.progress == 40.0
    with pytest.raises(TypeError, match="Unknown generation_job field"), db.session_scope() as s:
        store.update_job(session=s, job_id=job.id, colour="red")
    with pytest.raises(NotFoundError, match="No generation job with id 'nope'"):
        with db.session_scope() as s:
            store.update_job(session=s, job_id="nope", progress=1.0)


def test_find_job_by_our_id_or_the_providers() -> None:
    job, _ = new_job(provider_job_id="prov-9")
    with db.session_scope() as s:
        by_id = store.find_job(session=s, job_id_or_provider_job_id=job.id)
        by_provider = store.find_job(session=s, job_id_or_provider_job_id="prov-9")
        assert by_id is not None and by_provider is not None and by_id.id == by_provider.id
        assert store.find_job(session=s, job_id_or_provider_job_id="missing") is None


def test_attempts_are_logged_and_checked() -> None:
    job, _ = new_job()
    with db.session_scope() as s:
        a = store.record_attempt(
            session=s,
            job_id=job.id,
            operation="submit",
            outcome="error",
            http_status=429,
            error_class="RateLimitedError",
            detail="429 from /v1/tasks; retry after 2 s",
        )
        assert a.id is not None and a.finished_at is not None and a.started_at.tzinfo is not None
    with pytest.raises(ValueError, match="operation must be one of"), db.session_scope() as s:
        store.record_attempt(session=s, job_id=job.id, operation="pay", outcome="ok")
    with pytest.raises(ValueError, match="outcome must be one of"), db.session_scope() as s:
        store.record_attempt(session=s, job_id=job.id, operation="status", outcome="meh")
    with pytest.raises(IntegrityError), db.session_scope() as s:
        store.record_attempt(session=s, job_id="no-such-job", operation="status", outcome="ok")


def test_jobs_for_batch_are_in_row_order() -> None:
    for row in (2, 0, 1):
        new_job(f"b-{row}", batch_id="b1", row_number=row)
    new_job("other", batch_id="b2", row_number=0)
    with db.session_scope() as s:
        jobs = store.jobs_for_batch(session=s, batch_id="b1")
    assert [j.row_number for j in jobs] == [0, 1, 2]


def test_batch_status_counts_count_only_that_batch() -> None:
    for row, status in enumerate(("QUEUED", "COMPLETED", "COMPLETED")):
        new_job(f"c-{row}", batch_id="b1", row_number=row, status=status)
    new_job("c-other", batch_id="b2", row_number=0, status="FAILED")
    with db.session_scope() as s:
        assert store.batch_status_counts(session=s, batch_id="b1") == {
            "QUEUED": 1,
            "COMPLETED": 2,
        }
        assert store.batch_status_counts(session=s, batch_id="none") == {}


def test_provider_job_ids_since_are_the_other_jobs_ids_of_that_provider() -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    mine, _ = new_job("p-mine", provider="wan", provider_job_id="t-mine")
    new_job("p-other", provider="wan", provider_job_id="t-other")
    new_job("p-none", provider="wan")
    new_job("p-luma", provider="luma", provider_job_id="l-1")
    with db.session_scope() as s:
        known = store.provider_job_ids_since(
            session=s, provider="wan", since=start, other_than=mine.id
        )
        later = store.provider_job_ids_since(
            session=s, provider="wan", since=datetime.now(UTC) + timedelta(hours=1), other_than=""
        )
    assert known == {"t-other"} and later == frozenset()
