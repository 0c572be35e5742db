"""Envelope encryption of tenant secrets.

Why an envelope: the key service (Cloud KMS, or the local keyring) only ever sees a 32-byte data key, never the
secret itself, so secrets of any size cost one small KMS call, and rotating the master key only requires re-wrapping
data keys. Each secret gets its own fresh random AES-256 data key, so one leaked data key exposes one secret.

Both layers use the same AAD, `cloudact:{tenant_id}:{name}`: the sealed value *and* its wrapped key are bound to the
tenant and secret name they were sealed for, so a record copied to another tenant or renamed fails to open instead of
leaking one tenant's credentials to another.

A sealed record is a small JSON-serialisable dict::

    {"v": 1, "wrapped_key": b64, "nonce": b64, "ciphertext": b64, "key_service": "local" | "kms:<CryptoKey name>"}
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import TerminalError
from shared.ports.keys import KeyService

RECORD_VERSION = 1
_NONCE_LEN = 12
_DATA_KEY_BITS = 256
_FIELDS = ("v", "wrapped_key", "nonce", "ciphertext", "key_service")


def secret_aad(tenant_id: str, name: str) -> bytes:
    """The AAD binding a secret to its tenant and name.

    A tenant id may not contain ':' so the encoding stays unambiguous (tenant "a:b" + name "c" must not collide with
    tenant "a" + name "b:c").
    """
    if not isinstance(tenant_id, str) or not tenant_id or ":" in tenant_id:
        raise TerminalError(f"secret tenant_id must be a non-empty string without ':', got {tenant_id!r}")
    if not isinstance(name, str) or not name:
        raise TerminalError(f"secret name must be a non-empty string, got {name!r}")
    return f"cloudact:{tenant_id}:{name}".encode()


def seal(keys: KeyService, plaintext: bytes, tenant_id: str, name: str) -> dict[str, Any]:
    """Encrypt `plaintext` under a fresh data key, wrap the data key with `keys`, and return the JSON-ready record."""
    aad = secret_aad(tenant_id, name)
    data_key = AESGCM.generate_key(bit_length=_DATA_KEY_BITS)
    nonce = os.urandom(_NONCE_LEN)
    ciphertext = AESGCM(data_key).encrypt(nonce, bytes(plaintext), aad)
    wrapped_key = keys.encrypt(data_key, aad)
    return {
        "v": RECORD_VERSION,
        "wrapped_key": _b64(wrapped_key),
        "nonce": _b64(nonce),
        "ciphertext": _b64(ciphertext),
        "key_service": _label(keys),
    }


def open_sealed(keys: KeyService, record: Any, tenant_id: str, name: str) -> bytes:
    """Return the plaintext of a record made by `seal` for the same tenant and name.

    Raises TerminalError when the record is malformed, was sealed by another key service, was moved to another
    tenant or name, or was tampered with. Never returns unverified bytes.
    """
    aad = secret_aad(tenant_id, name)
    if not isinstance(record, dict):
        raise TerminalError(f"sealed secret {tenant_id}/{name}: record must be an object, got {type(record).__name__}")
    missing = [f for f in _FIELDS if f not in record]
    if missing:
        raise TerminalError(f"sealed secret {tenant_id}/{name}: record is missing {', '.join(missing)}")
    if isinstance(record["v"], bool) or record["v"] != RECORD_VERSION:
        raise TerminalError(f"sealed secret {tenant_id}/{name}: unsupported record version {record['v']!r}")
    expected_service = _label(keys)
    if record["key_service"] != expected_service:
        raise TerminalError(
            f"sealed secret {tenant_id}/{name}: sealed with key service {record['key_service']!r}, "
            f"cannot open with {expected_service!r}"
        )
    wrapped_key = _unb64(record, "wrapped_key", tenant_id, name)
    nonce = _unb64(record, "nonce", tenant_id, name)
    ciphertext = _unb64(record, "ciphertext", tenant_id, name)
    if len(nonce) != _NONCE_LEN:
        raise TerminalError(f"sealed secret {tenant_id}/{name}: nonce must be {_NONCE_LEN} bytes, got {len(nonce)}")

    data_key = keys.decrypt(wrapped_key, aad)  # TerminalError if moved, tampered, or foreign
    if len(data_key) != _DATA_KEY_BITS // 8:
        raise TerminalError(f"sealed secret {tenant_id}/{name}: unwrapped data key has the wrong length")
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise TerminalError(
            f"sealed secret {tenant_id}/{name}: decryption failed - the record was tampered with "
            "or belongs to another tenant or name"
        ) from None


def _label(keys: KeyService) -> str:
    label = getattr(keys, "label", None)
    return label if isinstance(label, str) and label else type(keys).__name__


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(record: dict[str, Any], field: str, tenant_id: str, name: str) -> bytes:
    value = record[field]
    if not isinstance(value, str):
        raise TerminalError(f"sealed secret {tenant_id}/{name}: {field} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TerminalError(f"sealed secret {tenant_id}/{name}: {field} is not valid base64") from exc
