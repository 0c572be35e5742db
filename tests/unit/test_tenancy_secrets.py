"""Tenant secrets through the store on both key adapters (local AES-GCM keyring, Cloud KMS via drongo's mock):
round trip, no plaintext at rest, tampered ciphertext and wrong AAD (another tenant or name) fail."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from shared.adapters.kms_keys import CloudKmsKeys
from shared.adapters.local_keys import LocalKeyring
from shared.errors import TerminalError
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from shared.secrets.store import get_secret, list_secret_names, put_secret, secret_path
from tests.contract.test_keys_contract import _make_kms_key, drongo_kms_only

SECRET = b"xoxb-slack-webhook-token-0123456789"


@pytest.fixture(params=["local", "kms"])
def ctx(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Context]:
    if request.param == "local":
        context = Context(settings, _keys=LocalKeyring.for_home(settings.home))
        yield context
        context.close()
        return
    with drongo_kms_only():
        context = Context(settings, _keys=CloudKmsKeys(_make_kms_key()))
        yield context
        context.close()


def _stored(ctx: Context, tenant: str, name: str) -> dict[str, object]:
    doc = ctx.state.get(secret_path(tenant, name))
    assert doc is not None
    return doc


def test_round_trip_and_no_plaintext_at_rest(ctx: Context) -> None:
    put_secret(ctx, "acme", "slack_webhook", SECRET)
    assert get_secret(ctx, "acme", "slack_webhook") == SECRET
    stored = json.dumps(_stored(ctx, "acme", "slack_webhook"))
    assert SECRET.decode() not in stored
    assert base64.b64encode(SECRET).decode()[:20] not in stored
    assert SECRET[:12].hex() not in stored
    assert list_secret_names(ctx, "acme") == ["slack_webhook"]


def test_tampered_ciphertext_fails(ctx: Context) -> None:
    put_secret(ctx, "acme", "smtp_password", SECRET)
    doc = _stored(ctx, "acme", "smtp_password")
    sealed = dict(doc["sealed"])  # type: ignore[call-overload]
    raw = bytearray(base64.b64decode(sealed["ciphertext"]))
    raw[0] ^= 0x01
    sealed["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    ctx.state.set(secret_path("acme", "smtp_password"), {**doc, "sealed": sealed})
    with pytest.raises(TerminalError):
        get_secret(ctx, "acme", "smtp_password")


@pytest.mark.parametrize(("tenant", "name"), [("initech", "smtp_password"), ("acme", "other_name")])
def test_record_moved_to_another_tenant_or_name_fails(ctx: Context, tenant: str, name: str) -> None:
    """The AAD binds a record to its tenant and name: a copied record does not open."""
    put_secret(ctx, "acme", "smtp_password", SECRET)
    ctx.state.set(secret_path(tenant, name), _stored(ctx, "acme", "smtp_password"))
    with pytest.raises(TerminalError):
        get_secret(ctx, tenant, name)


def test_missing_secret_is_a_terminal_error_naming_it(ctx: Context) -> None:
    with pytest.raises(TerminalError, match="nope"):
        get_secret(ctx, "acme", "nope")
