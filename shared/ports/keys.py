"""The key service port: symmetric encryption with additional authenticated data (Cloud KMS | local AES-GCM).

Envelope encryption of tenant secrets is built on top of this (a data key per secret, wrapped by this service).
A failure is always an exception: there is never a plaintext fallback.
"""

from __future__ import annotations

from typing import Protocol


class KeyService(Protocol):
    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def decrypt(self, ciphertext: bytes, aad: bytes) -> bytes:
        """Raises TerminalError when the ciphertext was tampered with or `aad` differs from encryption time."""
        ...
