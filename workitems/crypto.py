"""Encrypted context keys: a queue's `encrypted_keys` of `context_data`, stored sealed.

A sealed value is `{"$enc": "v1:<key id>:<base64url(nonce + AES-256-GCM ciphertext)>"}`, the
value's JSON encrypted under the key ring's primary key (config/contextkeys.py) with
`workitem:<item id>:context_data:<key>` as associated data: a ciphertext copied to another
item or another key does not decrypt. What is sealed is known from the value itself, not from
the queue's current list, so an item moved to another queue still reads, and a key the queue
lists later stays clear until `manage.py rotate_context_keys` seals it.

Only `policy.masked_context(..., unmasked=True)` opens them (the readers of the sensitive
keys); everyone else, and every event, gets ENCRYPTED_MARK. Nothing here imports models.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from django.conf import settings

from config import contextkeys
from workitems.errors import EncryptionUnavailable

SEALED = "$enc"
VERSION = "v1"
ENCRYPTED_MARK = "***encrypted***"


def key_ring() -> contextkeys.KeyRing | None:
    return settings.CONTEXT_KEY_RING


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(SEALED), str)


def key_id_of(value: dict) -> str:
    """The id of the key that sealed `value` ('' when the form is not one this version writes)."""
    parts = value[SEALED].split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == VERSION else ""


def _aad(item_id: int, key: str) -> bytes:
    return f"workitem:{item_id}:context_data:{key}".encode()


def _ring_or_refuse(what: str) -> contextkeys.KeyRing:
    ring = key_ring()
    if ring is None:
        raise EncryptionUnavailable(
            f"{what}, but no context key ring is configured "
            f"({contextkeys.VARIABLE} or {contextkeys.VARIABLE}_FILE); nothing was changed"
        )
    return ring


def seal_value(item_id: int, key: str, value: Any, ring: contextkeys.KeyRing) -> dict:
    plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    key_id, blob = ring.encrypt(plaintext, _aad(item_id, key))
    return {SEALED: f"{VERSION}:{key_id}:{base64.urlsafe_b64encode(blob).rstrip(b'=').decode()}"}


def open_value(item_id: int, key: str, value: dict) -> Any:
    """The clear value of a sealed one; EncryptionUnavailable names the item, the key and why."""
    where = f"context_data.{key} of work item {item_id}"
    key_id = key_id_of(value)
    if not key_id:
        raise EncryptionUnavailable(f"{where} is not a sealed value this version reads")
    ring = _ring_or_refuse(f"{where} is encrypted")
    encoded = value[SEALED].split(":", 2)[2]
    try:
        blob = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        return json.loads(ring.decrypt(key_id, blob, _aad(item_id, key)))
    except contextkeys.UnknownKey:
        raise EncryptionUnavailable(
            f"{where} is encrypted with key {key_id!r}, which the key ring ({contextkeys.VARIABLE}) does not hold"
        ) from None
    except (contextkeys.NotAuthentic, binascii.Error, ValueError):
        raise EncryptionUnavailable(
            f"{where} does not decrypt with key {key_id!r}: a wrong key under that id, or the stored value was altered"
        ) from None


def open_context(item_id: int, data: dict) -> dict:
    """`data` with every sealed value opened."""
    if not any(is_sealed(v) for v in data.values()):
        return data
    return {k: (open_value(item_id, k, v) if is_sealed(v) else v) for k, v in data.items()}


def to_seal(queue, data: dict) -> list[str]:
    """The keys of `data` its queue encrypts that are still clear."""
    return [k for k in (queue.encrypted_keys or ()) if k in data and not is_sealed(data[k])]


def check_ring_for(queue) -> None:
    """A create into a queue with `encrypted_keys` needs the ring, whatever the body holds: a
    missing ring is found at the first create, not at the first sensitive value."""
    if queue.encrypted_keys:
        _ring_or_refuse(f"queue {queue.name} encrypts context keys {', '.join(queue.encrypted_keys)}")


def withhold(item) -> dict:
    """Take the clear values that will be sealed out of the unsaved item's context_data (for an
    INSERT sent before its id is known: they are sealed and written by `seal`, in the same
    transaction, so the clear value never reaches the database)."""
    data = item.context_data or {}
    keys = to_seal(item.queue, data)
    if not keys:
        return {}
    item.context_data = {k: v for k, v in data.items() if k not in keys}
    return {k: data[k] for k in keys}


def seal(item, clear: dict | None = None) -> bool:
    """Seal, in place, the item's clear values of its queue's encrypted keys (and `clear`, the
    values `withhold` took out). The item must have its id. True when anything was sealed."""
    data = {**(item.context_data or {}), **(clear or {})}
    keys = to_seal(item.queue, data)
    if not keys:
        return False
    ring = _ring_or_refuse(f"queue {item.queue.name} encrypts context keys {', '.join(keys)}")
    item.context_data = {k: (seal_value(item.pk, k, v, ring) if k in keys else v) for k, v in data.items()}
    return True


def reseal(item_id: int, data: dict, encrypted_keys: list[str], ring: contextkeys.KeyRing) -> tuple[dict, list[str]]:
    """(data with every value sealed under the primary key, the keys that changed): sealed values
    under another key are opened and sealed again; clear values of `encrypted_keys` are sealed."""
    changed = []
    out = {}
    for k, v in data.items():
        if is_sealed(v) and key_id_of(v) != ring.primary:
            out[k] = seal_value(item_id, k, open_value(item_id, k, v), ring)
            changed.append(k)
        elif not is_sealed(v) and k in encrypted_keys:
            out[k] = seal_value(item_id, k, v, ring)
            changed.append(k)
        else:
            out[k] = v
    return out, changed


def reserved_form_errors(data: Any, field: str) -> list[dict[str, str]]:
    """A client may not send the stored form: it would read as a value sealed by the server."""
    if not isinstance(data, dict):
        return []
    return [
        {"field": f"{field}.{k}", "message": f'{{"{SEALED}": …}} is the stored form of an encrypted value'}
        for k, v in data.items()
        if isinstance(v, dict) and SEALED in v
    ]


def masked(data: dict, *, sensitive: list[str], encrypted: list[str], mask: str) -> dict:
    """`data` as a reader who may not see the sensitive keys gets it: sealed values and the
    queue's encrypted keys read ENCRYPTED_MARK, its sensitive keys `mask`."""
    if not sensitive and not encrypted and not any(is_sealed(v) for v in data.values()):
        return data
    return {
        k: (ENCRYPTED_MARK if k in encrypted or is_sealed(v) else mask if k in sensitive else v)
        for k, v in data.items()
    }
