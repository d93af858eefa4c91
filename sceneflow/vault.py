"""AES-256-GCM sealing of provider credentials, with key ids so the master key can rotate.

A token looks like ``sf1.<key_id>.<base64url(nonce || ciphertext || tag)>``. The key id is the
first 8 hex characters of the SHA-256 of the key: it names the key without revealing it. The
associated data binds a token to its (user_id, provider) row, so a token copied onto another
row fails to open. The master key comes from the environment, never from the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sceneflow.errors import CredentialsError, EncryptionKeyError
from sceneflow.settings import Settings, get_settings

__all__ = ["TOKEN_VERSION", "Keyring", "generate_key", "key_id", "seal", "unseal"]

TOKEN_VERSION = "sf1"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_GENERATE_HINT = "make one with `sceneflow keys generate`"
# What seal writes: a key id of 8 lowercase hex digits and an unpadded base64url body.
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_BODY = re.compile(r"[A-Za-z0-9_-]+")


def generate_key() -> str:
    """A fresh random 256-bit key, base64-encoded, ready for ENCRYPTION_KEY."""
    return base64.b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> str:
    """The public name of a key: 8 hex characters of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


def _decode_key(value: str, variable: str) -> bytes:
    text = value.strip()
    if not text:
        raise EncryptionKeyError(f"{variable} is empty: {_GENERATE_HINT}.")
    try:
        # Accept the URL-safe alphabet too: keys made with other tools often use it.
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionKeyError(
            f"{variable} is not valid base64: it must be base64 of exactly 32 bytes; "
            f"{_GENERATE_HINT}."
        ) from None
    if len(raw) != _KEY_BYTES:
        raise EncryptionKeyError(
            f"{variable} must be base64 of exactly 32 bytes, not {len(raw)}; {_GENERATE_HINT}."
        )
    return raw


def _aad(kid: str, user_id: str, provider: str) -> bytes:
    # JSON keeps the fields unambiguous: ("a.b", "c") and ("a", "b.c") must differ.
    return json.dumps([TOKEN_VERSION, kid, user_id, provider]).encode("utf-8")


def _encode_body(blob: bytes) -> str:
    return base64.urlsafe_b64encode(blob).decode("ascii").rstrip("=")


def _row(user_id: str, provider: str) -> str:
    return f"provider {provider!r} and user {user_id!r}"


@dataclass(frozen=True)
class Keyring:
    """The current key, which seals, and previous keys, which may still open older tokens."""

    current: bytes = field(repr=False)
    previous: tuple[bytes, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        for key in (self.current, *self.previous):
            if len(key) != _KEY_BYTES:
                raise EncryptionKeyError(
                    f"An encryption key must be exactly 32 bytes; {_GENERATE_HINT}."
                )

    @classmethod
    def from_keys(cls, current: str, previous: Iterable[str] = ()) -> Keyring:
        """Build from base64 strings, as they appear in the environment."""
        return cls(
            current=_decode_key(current, "ENCRYPTION_KEY"),
            previous=tuple(_decode_key(p, "ENCRYPTION_KEYS_PREVIOUS") for p in previous),
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Keyring:
        """Build from ENCRYPTION_KEY and ENCRYPTION_KEYS_PREVIOUS."""
        settings = settings or get_settings()
        if settings.encryption_key is None:
            raise EncryptionKeyError(
                "ENCRYPTION_KEY is not set: it must be base64 of 32 bytes; "
                f"{_GENERATE_HINT} and export it."
            )
        previous = ""
        if settings.encryption_keys_previous is not None:
            previous = settings.encryption_keys_previous.get_secret_value()
        return cls.from_keys(
            settings.encryption_key.get_secret_value(),
            [p for p in previous.split(",") if p.strip()],
        )

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def _key_for(self, kid: str, user_id: str, provider: str) -> bytes:
        for key in (self.current, *self.previous):
            if key_id(key) == kid:
                return key
        raise EncryptionKeyError(
            f"The credentials for {_row(user_id, provider)} were sealed with key id {kid}, "
            "which is neither ENCRYPTION_KEY nor in ENCRYPTION_KEYS_PREVIOUS: set the key that "
            "sealed them (add it to ENCRYPTION_KEYS_PREVIOUS after a key change), or store them "
            f"again with `sceneflow creds set {user_id} {provider}`."
        )

    def seal(self, *, user_id: str, provider: str, credentials: dict[str, Any]) -> tuple[str, str]:
        """Encrypt `credentials` for one (user, provider) row; returns (token, key_id)."""
        if not isinstance(credentials, dict):
            raise CredentialsError("Credentials must be a JSON object (a dict).")
        kid = self.current_id
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(credentials, separators=(",", ":")).encode("utf-8")
        sealed = AESGCM(self.current).encrypt(nonce, plaintext, _aad(kid, user_id, provider))
        return f"{TOKEN_VERSION}.{kid}.{_encode_body(nonce + sealed)}", kid

    def unseal(self, *, user_id: str, provider: str, token: str) -> dict[str, Any]:
        """Decrypt a token sealed for this (user, provider) row."""
        broken = CredentialsError(
            f"The stored credentials for {_row(user_id, provider)} are not a valid sealed token; "
            f"store them again with `sceneflow creds set {user_id} {provider}`."
        )
        version, _, rest = token.partition(".")
        kid, _, body = rest.partition(".")
        if version != TOKEN_VERSION or not _KEY_ID.fullmatch(kid) or not _BODY.fullmatch(body):
            raise broken
        key = self._key_for(kid, user_id, provider)
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise broken from None
        # The decoder forgives a length that is not a whole number of bytes and stray low bits
        # in the last character; only the body seal itself would write may open.
        if len(blob) <= _NONCE_BYTES or _encode_body(blob) != body:
            raise broken
        try:
            plaintext = AESGCM(key).decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _aad(kid, user_id, provider)
            )
        except InvalidTag:
            raise CredentialsError(
                f"The stored credentials for {_row(user_id, provider)} failed authentication: "
                "they were altered or belong to another user or provider; store them again "
                f"with `sceneflow creds set {user_id} {provider}`."
            ) from None
        value = json.loads(plaintext)
        if not isinstance(value, dict):
            raise broken
        return value


def seal(
    *, user_id: str, provider: str, credentials: dict[str, Any], keyring: Keyring | None = None
) -> tuple[str, str]:
    """Seal with `keyring`, or with the keys from the settings."""
    ring = keyring or Keyring.from_settings()
    return ring.seal(user_id=user_id, provider=provider, credentials=credentials)


def unseal(
    *, user_id: str, provider: str, token: str, keyring: Keyring | None = None
) -> dict[str, Any]:
    """Open with `keyring`, or with the keys from the settings."""
    ring = keyring or Keyring.from_settings()
    return ring.unseal(user_id=user_id, provider=provider, token=token)
