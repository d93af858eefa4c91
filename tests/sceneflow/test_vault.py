"""The credential vault: AES-256-GCM tokens bound to their (user, provider) row."""

from __future__ import annotations

import base64
import hashlib

import pytest

from sceneflow import vault
from sceneflow.errors import CredentialsError, EncryptionKeyError
from sceneflow.settings import get_settings
from sceneflow.vault import Keyring

SECRET = {"api_key": "sk-live-0123456789abcdef", "region": "us-east-1"}
KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()


def seal(ring: Keyring, user: str = "alice", provider: str = "runway") -> str:
    token, _ = ring.seal(user_id=user, provider=provider, credentials=SECRET)
    return token


def test_round_trip() -> None:
    ring = Keyring.from_keys(KEY_A)
    token, kid = ring.seal(user_id="alice", provider="runway", credentials=SECRET)
    assert ring.unseal(user_id="alice", provider="runway", token=token) == SECRET
    assert token.startswith(f"sf1.{kid}.")
    assert "sk-live" not in token and "us-east-1" not in token


def test_key_id_is_the_start_of_the_keys_sha256() -> None:
    ring = Keyring.from_keys(KEY_A)
    assert ring.current_id == hashlib.sha256(b"A" * 32).hexdigest()[:8]
    assert ring.current_id != Keyring.from_keys(KEY_B).current_id


def test_every_seal_uses_a_fresh_nonce() -> None:
    ring = Keyring.from_keys(KEY_A)
    tokens = {seal(ring) for _ in range(50)}
    nonces = {base64.urlsafe_b64decode(t.split(".")[2] + "==")[:12] for t in tokens}
    assert len(tokens) == len(nonces) == 50


def tamper(token: str, position: int) -> str:
    head, body = token.rsplit(".", 1)
    blob = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    blob[position] ^= 0x01
    return head + "." + base64.urlsafe_b64encode(bytes(blob)).decode().rstrip("=")


@pytest.mark.parametrize("position", [0, 12, -1], ids=["nonce", "ciphertext", "tag"])
def test_a_tampered_token_is_rejected(position: int) -> None:
    ring = Keyring.from_keys(KEY_A)
    with pytest.raises(CredentialsError) as info:
        ring.unseal(user_id="alice", provider="runway", token=tamper(seal(ring), position))
    assert str(info.value) == (
        "The stored credentials for provider 'runway' and user 'alice' failed authentication: "
        "they were altered or belong to another user or provider; store them again with "
        "`sceneflow creds set alice runway`."
    )


@pytest.mark.parametrize(
    ("user", "provider"), [("bob", "runway"), ("alice", "luma")], ids=["user", "provider"]
)
def test_a_token_moved_to_another_row_is_rejected(user: str, provider: str) -> None:
    ring = Keyring.from_keys(KEY_A)
    with pytest.raises(CredentialsError, match="failed authentication: they were altered or "):
        ring.unseal(user_id=user, provider=provider, token=seal(ring))


def test_user_and_provider_cannot_be_shifted_across_the_boundary() -> None:
    ring = Keyring.from_keys(KEY_A)
    token = seal(ring, user="a.b", provider="c")
    with pytest.raises(CredentialsError, match="failed authentication"):
        ring.unseal(user_id="a", provider="b.c", token=token)


def test_a_wrong_key_names_the_key_id_and_the_fix() -> None:
    token = seal(Keyring.from_keys(KEY_A))
    kid = Keyring.from_keys(KEY_A).current_id
    with pytest.raises(EncryptionKeyError) as info:
        Keyring.from_keys(KEY_B).unseal(user_id="alice", provider="runway", token=token)
    message = str(info.value)
    assert message == (
        f"The credentials for provider 'runway' and user 'alice' were sealed with key id {kid}, "
        "which is neither ENCRYPTION_KEY nor in ENCRYPTION_KEYS_PREVIOUS: set the key that "
        "sealed them (add it to ENCRYPTION_KEYS_PREVIOUS after a key change), or store them "
        "again with `sceneflow creds set alice runway`."
    )
    assert KEY_A not in message and KEY_B not in message and "sk-live" not in message


def test_a_forged_key_id_still_fails_authentication() -> None:
    ring = Keyring.from_keys(KEY_B, [KEY_A])
    token = seal(Keyring.from_keys(KEY_A))
    forged = token.replace(Keyring.from_keys(KEY_A).current_id, ring.current_id)
    with pytest.raises(CredentialsError, match="failed authentication"):
        ring.unseal(user_id="alice", provider="runway", token=forged)


@pytest.mark.parametrize("token", ["", "garbage", "sf0.abcd1234.AAAA", "sf1..AAAA", "sf1.x."])
def test_a_malformed_token_is_rejected(token: str) -> None:
    with pytest.raises(CredentialsError) as info:
        Keyring.from_keys(KEY_A).unseal(user_id="alice", provider="runway", token=token)
    assert str(info.value) == (
        "The stored credentials for provider 'runway' and user 'alice' are not a valid sealed "
        "token; store them again with `sceneflow creds set alice runway`."
    )


def test_previous_keys_still_open_old_tokens() -> None:
    old = seal(Keyring.from_keys(KEY_A))
    ring = Keyring.from_keys(KEY_B, [KEY_A])
    assert ring.unseal(user_id="alice", provider="runway", token=old) == SECRET
    token, kid = ring.seal(user_id="alice", provider="runway", credentials=SECRET)
    assert kid == Keyring.from_keys(KEY_B).current_id and token.split(".")[1] == kid


def test_keyring_from_settings_reads_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCRYPTION_KEY", KEY_B)
    monkeypatch.setenv("ENCRYPTION_KEYS_PREVIOUS", f" {KEY_A} ,")
    get_settings.cache_clear()
    old = seal(Keyring.from_keys(KEY_A))
    assert vault.unseal(user_id="alice", provider="runway", token=old) == SECRET
    token, kid = vault.seal(user_id="alice", provider="runway", credentials=SECRET)
    assert kid == Keyring.from_keys(KEY_B).current_id
    assert Keyring.from_keys(KEY_B).unseal(user_id="alice", provider="runway", token=token)


def test_a_missing_key_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCRYPTION_KEY")
    get_settings.cache_clear()
    with pytest.raises(EncryptionKeyError) as info:
        Keyring.from_settings()
    assert str(info.value) == (
        "ENCRYPTION_KEY is not set: it must be base64 of 32 bytes; "
        "make one with `sceneflow keys generate` and export it."
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!", "ENCRYPTION_KEY is not valid base64: it must be base64 of exactly 32 "),
        (base64.b64encode(b"k" * 16).decode(), "must be base64 of exactly 32 bytes, not 16;"),
        ("   ", "ENCRYPTION_KEY is empty: make one with `sceneflow keys generate`."),
    ],
    ids=["not-base64", "short", "blank"],
)
def test_a_malformed_key_names_the_variable_and_the_fix(value: str, message: str) -> None:
    with pytest.raises(EncryptionKeyError) as info:
        Keyring.from_keys(value)
    assert message in str(info.value)
    assert "sceneflow keys generate" in str(info.value)
    assert not value.strip() or value.strip() not in str(info.value)


def test_a_malformed_previous_key_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCRYPTION_KEYS_PREVIOUS", f"{KEY_A},short")
    get_settings.cache_clear()
    with pytest.raises(EncryptionKeyError, match="^ENCRYPTION_KEYS_PREVIOUS is not valid base64"):
        Keyring.from_settings()


def test_urlsafe_keys_are_accepted() -> None:
    raw = bytes([0xFB, 0xFF] * 16)
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    assert "-" in urlsafe or "_" in urlsafe
    assert Keyring.from_keys(urlsafe).current == raw


def test_generated_keys_are_fresh_32_byte_keys() -> None:
    keys = {vault.generate_key() for _ in range(10)}
    assert len(keys) == 10
    assert all(len(Keyring.from_keys(k).current) == 32 for k in keys)


def test_no_key_material_in_the_keyrings_repr() -> None:
    ring = Keyring.from_keys(KEY_A, [KEY_B])
    assert "AAAA" not in repr(ring) and "QUFB" not in repr(ring) and "QkJC" not in repr(ring)


def test_only_dicts_can_be_sealed() -> None:
    with pytest.raises(CredentialsError, match="must be a JSON object"):
        Keyring.from_keys(KEY_A).seal(user_id="a", provider="b", credentials=["x"])  # type: ignore[arg-type]


def _insert(token: str, junk: str, at: int) -> str:
    head, body = token.rsplit(".", 1)
    return f"{head}.{body[:at]}{junk}{body[at:]}"


@pytest.mark.parametrize("junk", ["!", "*", " ", "\n", "=", "==", "+", "/", "%00"], ids=repr)
@pytest.mark.parametrize("at", [0, 10, -1])
def test_a_token_with_junk_inserted_does_not_open(junk: str, at: int) -> None:
    # The lenient decoder skips characters outside the alphabet, so these opened before.
    ring = Keyring.from_keys(KEY_A)
    with pytest.raises(CredentialsError) as info:
        ring.unseal(user_id="alice", provider="runway", token=_insert(seal(ring), junk, at))
    assert str(info.value) == (
        "The stored credentials for provider 'runway' and user 'alice' are not a valid sealed "
        "token; store them again with `sceneflow creds set alice runway`."
    )


def test_a_token_with_padding_or_a_changed_last_character_does_not_open() -> None:
    ring = Keyring.from_keys(KEY_A)
    token = seal(ring)
    padded = token + "=" * (-len(token.rsplit(".", 1)[1]) % 4)
    candidates = [token + "A", token[:-1], token.upper(), " " + token, token + "\n"]
    if padded != token:
        candidates.append(padded)
    for bad in candidates:
        with pytest.raises(CredentialsError):
            ring.unseal(user_id="alice", provider="runway", token=bad)
    assert ring.unseal(user_id="alice", provider="runway", token=token) == SECRET


def test_only_the_exact_body_opens_when_the_last_characters_low_bits_change() -> None:
    # A body whose length leaves unused bits in its last character decodes the same whatever
    # those bits are; seal writes them as zero, and only that spelling opens.
    ring = Keyring.from_keys(KEY_A)
    token, _ = ring.seal(user_id="alice", provider="runway", credentials={"api_key": "k"})
    body = token.rsplit(".", 1)[1]
    assert len(body) % 4 in (2, 3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(body[-1])
    twin = token[:-1] + alphabet[last | 1]
    assert twin != token
    assert base64.urlsafe_b64decode(twin.rsplit(".", 1)[1] + "==") == (
        base64.urlsafe_b64decode(body + "==")
    )
    with pytest.raises(CredentialsError, match="not a valid sealed token"):
        ring.unseal(user_id="alice", provider="runway", token=twin)
