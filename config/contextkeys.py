"""The key ring of the encrypted context keys (README, "Encrypted context keys").

`WORKSTREAM_CONTEXT_KEYS` (or the file named by `WORKSTREAM_CONTEXT_KEYS_FILE`) is a
comma-separated list of `id:key`, each key 32 random bytes in base64 (AES-256-GCM,
`cryptography`'s AESGCM). The first key encrypts; every key decrypts, so a rotation puts the
new key first, runs `manage.py rotate_context_keys`, and only then drops the old one.
A malformed ring stops start-up (ImproperlyConfigured, naming the variable and the entry);
an unset one leaves encryption unavailable, and a queue that asks for it refuses creates.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.exceptions import ImproperlyConfigured

VARIABLE = "WORKSTREAM_CONTEXT_KEYS"
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
KEY_BYTES = 32
NONCE_BYTES = 12
MIN_DISTINCT_BYTES = 16  # 32 random bytes have ~30 distinct values; fewer is a made-up key


class UnknownKey(Exception):
    """The ciphertext names a key the ring does not hold."""


class NotAuthentic(Exception):
    """The key does not authenticate the ciphertext: a wrong key under that id, or altered data."""


@dataclass(frozen=True)
class KeyRing:
    """The keys by id; `primary` encrypts."""

    primary: str
    keys: dict[str, AESGCM]

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext) under the primary key; a fresh random nonce each time."""
        nonce = os.urandom(NONCE_BYTES)
        return self.primary, nonce + self.keys[self.primary].encrypt(nonce, plaintext, aad)

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise UnknownKey(key_id)
        try:
            return key.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise NotAuthentic(key_id) from None


def parse(raw: str, *, name: str = VARIABLE) -> KeyRing | None:
    """The ring `raw` describes, None when it is empty; ImproperlyConfigured names what is wrong
    (never the key material)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    keys: dict[str, AESGCM] = {}
    order: list[str] = []
    for position, entry in enumerate(raw.split(","), start=1):
        key_id, sep, material = entry.strip().partition(":")
        where = f"{name}: entry {position}"
        if not sep or not KEY_ID.fullmatch(key_id):
            raise ImproperlyConfigured(f"{where} must be id:base64key, the id of letters, digits, '.', '_', '-'")
        if key_id in keys:
            raise ImproperlyConfigured(f"{where}: key id {key_id!r} appears twice")
        try:
            secret = base64.b64decode(
                material.strip() + "=" * (-len(material.strip()) % 4), altchars=b"-_", validate=True
            )
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(f"{where} ({key_id}): the key is not base64") from None
        if len(secret) != KEY_BYTES:
            raise ImproperlyConfigured(f"{where} ({key_id}): the key must be {KEY_BYTES} bytes, not {len(secret)}")
        if len(set(secret)) < MIN_DISTINCT_BYTES:
            raise ImproperlyConfigured(f"{where} ({key_id}): the key is not random (too few distinct bytes)")
        keys[key_id] = AESGCM(secret)
        order.append(key_id)
    return KeyRing(primary=order[0], keys=keys)


def new_key_entry(key_id: str) -> str:
    """A fresh `id:key` entry (32 bytes from the OS's generator)."""
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"
