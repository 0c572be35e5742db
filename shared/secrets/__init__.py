"""Tenant secrets at rest: envelope encryption on top of any `KeyService` (see `envelope`)."""

from __future__ import annotations

from shared.secrets.envelope import RECORD_VERSION, open_sealed, seal, secret_aad

__all__ = ["RECORD_VERSION", "open_sealed", "seal", "secret_aad"]
