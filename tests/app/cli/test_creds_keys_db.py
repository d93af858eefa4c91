"""Every `sceneflow` command end to end through Typer's runner, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

import adapters
from sceneflow import db, store
from sceneflow.app import cli
from sceneflow.app.cli import creds as creds_cli
from sceneflow.settings import get_settings
from sceneflow.vault import Keyring

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
SECRET = "sk-PLAINTEXT-canary-7f3a9c1e5b"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("ENCRYPTION_KEY", KEY_A)
    get_settings.cache_clear()
    yield database_url
    db.dispose_engines()


def run(*args: str, input: str | None = None, **env: str | None) -> Result:
    """Invoke the CLI with `env` changes (None unsets) applied to fresh settings."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            if value is None:
                mp.delenv(name, raising=False)
            else:
                mp.setenv(name, value)
        get_settings.cache_clear()
        result = runner.invoke(cli.app, list(args), input=input)
    get_settings.cache_clear()
    return result


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("Error: ")
    return line.removeprefix("Error: ")


def snapshot() -> list[tuple[Any, ...]]:
    with db.session_scope() as s:
        return [
            (r.user_id, r.provider_name, r.encrypted_credentials, r.key_id, r.is_valid)
            for r in store.list_all_configs(session=s)
        ]


def load(user: str, provider: str, ring: Keyring | None = None) -> dict[str, Any]:
    with db.session_scope() as s:
        return store.unseal_credentials(
            session=s, user_id=user, provider=provider, keyring=ring or Keyring.from_keys(KEY_A)
        )


# --- keys --------------------------------------------------------------------------------


def test_keys_generate_prints_a_fresh_key_alone_on_stdout() -> None:
    first, second = run("keys", "generate"), run("keys", "generate")
    assert first.exit_code == 0
    key = first.stdout.strip()
    assert len(Keyring.from_keys(key).current) == 32 and key != second.stdout.strip()
    assert f"export ENCRYPTION_KEY='{key}'" in first.stderr
    assert f"Key id {Keyring.from_keys(key).current_id}." in first.stderr


def test_keys_rotate_reseals_under_the_new_key_and_twice_is_a_no_op() -> None:
    assert run("creds", "set", "alice", "runway", input=SECRET).exit_code == 0
    assert run("creds", "set", "bob", "luma", input='{"api_key": "x"}').exit_code == 0
    rotated = run("keys", "rotate", ENCRYPTION_KEY=KEY_B, ENCRYPTION_KEYS_PREVIOUS=KEY_A)
    b_id = Keyring.from_keys(KEY_B).current_id
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.startswith(f"Re-encrypted 2 credential(s) under key id {b_id}; 0 already")
    again = run("keys", "rotate", ENCRYPTION_KEY=KEY_B, ENCRYPTION_KEYS_PREVIOUS=KEY_A)
    assert again.stdout.startswith(f"Re-encrypted 0 credential(s) under key id {b_id}; 2 already")
    assert load("alice", "runway", Keyring.from_keys(KEY_B)) == {"api_key": SECRET}


def test_keys_rotate_with_the_wrong_key_changes_nothing() -> None:
    run("creds", "set", "alice", "runway", input=SECRET)
    before = snapshot()
    message = one_error_line(run("keys", "rotate", ENCRYPTION_KEY=KEY_B))
    a_id = Keyring.from_keys(KEY_A).current_id
    assert message.startswith(
        f"The credentials for provider 'runway' and user 'alice' were sealed with key id {a_id}, "
        "which is neither ENCRYPTION_KEY nor in ENCRYPTION_KEYS_PREVIOUS"
    )
    assert snapshot() == before


# --- creds set ---------------------------------------------------------------------------


def test_creds_set_takes_a_bare_key_on_stdin() -> None:
    result = run("creds", "set", "alice", "runway", input=f"  {SECRET}\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Stored credentials for 'runway' and user 'alice'")
    assert SECRET not in result.output
    assert load("alice", "runway") == {"api_key": SECRET}


def test_creds_set_takes_a_json_object_on_stdin() -> None:
    creds = '{"access_key": "AK", "secret_key": "SK-xyz", "region": "eu"}'
    result = run("creds", "set", "alice", "vertex", input=creds)
    assert result.exit_code == 0, result.output
    assert (
        "fields: access_key, region, secret_key" in result.stdout and "SK-xyz" not in result.output
    )
    assert load("alice", "vertex") == {"access_key": "AK", "secret_key": "SK-xyz", "region": "eu"}


def test_creds_set_prompts_without_echo_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        creds_cli, "sys", SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True))
    )
    result = run("creds", "set", "alice", "runway", input=f"{SECRET}\n")
    assert result.exit_code == 0, result.output
    assert "Credentials (a JSON object or a bare API key):" in result.output
    assert SECRET not in result.output
    assert load("alice", "runway") == {"api_key": SECRET}


def test_creds_set_never_takes_the_secret_as_an_argument() -> None:
    result = run("creds", "set", "alice", "runway", SECRET, input="")
    assert result.exit_code == 2 and "Got unexpected extra argument" in result.stderr
    assert snapshot() == []


def test_creds_set_again_updates_the_row_and_resets_validity() -> None:
    run("creds", "set", "alice", "runway", input="old-key")
    with db.session_scope() as s:
        store.set_validity(session=s, user_id="alice", provider="runway", is_valid=True)
    assert "valid " in run("creds", "list", "alice").stdout
    assert run("creds", "set", "alice", "runway", input="new-key").exit_code == 0
    [(_, _, _, _, is_valid)] = snapshot()
    assert is_valid is None and load("alice", "runway") == {"api_key": "new-key"}
    assert "unknown" in run("creds", "list", "alice").stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ENCRYPTION_KEY": None},
            "ENCRYPTION_KEY is not set: it must be base64 of 32 bytes; "
            "make one with `sceneflow keys generate` and export it.",
        ),
        (
            {"ENCRYPTION_KEY": "c2hvcnQ="},
            "ENCRYPTION_KEY must be base64 of exactly 32 bytes, not 5; "
            "make one with `sceneflow keys generate`.",
        ),
        (
            {"ENCRYPTION_KEYS_PREVIOUS": "%%%"},
            "ENCRYPTION_KEYS_PREVIOUS is not valid base64: it must be base64 of exactly 32 bytes; "
            "make one with `sceneflow keys generate`.",
        ),
    ],
    ids=["missing", "short", "bad-previous"],
)
def test_creds_set_with_a_bad_key_changes_nothing(env: dict[str, str | None], message: str) -> None:
    run("creds", "set", "alice", "runway", input="first")
    before = snapshot()
    assert one_error_line(run("creds", "set", "alice", "runway", input=SECRET, **env)) == message
    assert one_error_line(run("creds", "set", "bob", "luma", input=SECRET, **env)) == message
    assert snapshot() == before


def test_creds_set_for_an_unknown_provider_lists_the_known_ones() -> None:
    message = one_error_line(run("creds", "set", "alice", "sora", input=SECRET))
    assert message == (
        f"Unknown provider 'sora'. Known providers: {', '.join(sorted(adapters.REGISTRY))}."
    )
    assert snapshot() == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            '{"api_key": "sk-PLAINTEXT-canary-7f3a9c1e5b",',
            "Malformed credential JSON (Expecting property name enclosed in double quotes at "
            "line 1 column 46): the credentials must be a JSON object or a bare key.",
        ),
        (
            f"two words {SECRET}",
            "Malformed credential JSON (Expecting value at line 1 column 1): "
            "the credentials must be a JSON object or a bare key.",
        ),
        (
            f'["{SECRET}"]',
            'The credentials are JSON list, but they must be a JSON object (such as {"api_key": '
            '"..."}) or a bare key.',
        ),
        (
            "  \n",
            "No credentials given: pipe a JSON object or a bare API key on stdin, "
            "or type it at the prompt.",
        ),
        (
            "{}",
            "The credentials for provider 'runway' are empty: give a JSON object with at least "
            'one field, such as {"api_key": "..."}.',
        ),
    ],
    ids=["truncated-json", "spaces", "array", "empty", "empty-object"],
)
def test_creds_set_with_malformed_credentials_changes_nothing(raw: str, message: str) -> None:
    run("creds", "set", "alice", "runway", input="first")
    before = snapshot()
    assert one_error_line(run("creds", "set", "alice", "runway", input=raw)) == message
    assert SECRET not in message
    assert snapshot() == before


# --- creds list / delete -----------------------------------------------------------------


def test_creds_list_shows_status_and_never_a_secret() -> None:
    run("creds", "set", "alice", "runway", input=SECRET)
    run("creds", "set", "alice", "luma", input=SECRET)
    run("creds", "set", "bob", "fal", input=SECRET)
    with db.session_scope() as s:
        store.set_validity(session=s, user_id="alice", provider="luma", is_valid=False)
    result = run("creds", "list", "alice")
    assert result.exit_code == 0
    rows = [line for line in result.stdout.splitlines() if "luma" in line or "runway" in line]
    assert len(rows) == 2
    assert "invalid" in rows[0] and "never" not in rows[0]
    assert "unknown" in rows[1] and "never" in rows[1]
    assert (
        "fal" not in result.stdout and SECRET not in result.output and "sf1." not in result.output
    )


def test_creds_list_for_a_user_with_nothing_stored() -> None:
    result = run("creds", "list", "nobody")
    assert (
        result.exit_code == 0
        and result.stdout.strip() == "No credentials stored for user 'nobody'."
    )


def test_creds_delete_removes_only_that_row() -> None:
    run("creds", "set", "alice", "runway", input=SECRET)
    run("creds", "set", "alice", "luma", input=SECRET)
    result = run("creds", "delete", "alice", "runway")
    assert result.exit_code == 0
    assert result.stdout.strip() == "Deleted the credentials for 'runway' and user 'alice'."
    assert [(u, p) for u, p, *_ in snapshot()] == [("alice", "luma")]


def test_creds_delete_of_what_is_not_there_changes_nothing() -> None:
    run("creds", "set", "alice", "luma", input=SECRET)
    before = snapshot()
    assert one_error_line(run("creds", "delete", "alice", "runway")) == (
        "No credentials for provider 'runway' and user 'alice', so nothing was deleted: "
        "`sceneflow creds list alice` shows what is stored."
    )
    assert snapshot() == before


# --- db ----------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_hides_the_password(database_url: str) -> None:
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("is at the latest schema.")
    assert result.stdout.startswith(f"Database {db.public_url(database_url)}")
    assert "generation_job" in sa.inspect(db.get_engine()).get_table_names()
    assert run("db", "upgrade").exit_code == 0


def test_an_unreachable_database_is_one_error_line() -> None:
    result = run("db", "upgrade", DATABASE_URL="postgresql://sf:pw-hidden@127.0.0.1:1/x")
    assert one_error_line(result).startswith(
        "Cannot open the database postgresql+psycopg://sf:***@"
    )
    assert "pw-hidden" not in result.output


# --- the database never holds the plaintext ----------------------------------------------


def raw_database_text(url: str) -> bytes:
    if url.startswith("sqlite"):
        path = Path(sa.engine.make_url(url).database or "")
        files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
        assert path in files
        return b"".join(p.read_bytes() for p in files)
    chunks = []
    with db.get_engine().connect() as conn:
        chunks += [
            t
            for (t,) in conn.execute(
                sa.text("SELECT encrypted_credentials FROM user_provider_config")
            )
        ]
        columns = conn.execute(
            sa.text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND data_type IN ('text', 'character varying')"
            )
        ).all()
        assert ("user_provider_config", "encrypted_credentials") in columns
        for table, column in columns:
            chunks += [
                str(v) for (v,) in conn.execute(sa.text(f'SELECT "{column}" FROM "{table}"'))
            ]
    return "\n".join(chunks).encode()


def test_the_database_never_holds_the_plaintext(database_url: str) -> None:
    secret = {"api_key": SECRET, "service_account": "PRIVATE-KEY-canary-b81d"}
    assert run("creds", "set", "alice", "vertex", input=json.dumps(secret)).exit_code == 0
    assert run("creds", "set", "bob", "runway", input=SECRET).exit_code == 0
    assert load("alice", "vertex") == secret
    while_open = raw_database_text(database_url)
    db.dispose_engines()
    after_close = raw_database_text(database_url)
    for blob in (while_open, after_close):
        assert b"sf1." in blob and b"alice" in blob  # the rows were read ...
        for canary in (SECRET, "PRIVATE-KEY-canary-b81d", "7f3a9c1e5b", "canary"):
            assert canary.encode() not in blob  # ... and the plaintext is not
            assert canary.encode("utf-16-le") not in blob
