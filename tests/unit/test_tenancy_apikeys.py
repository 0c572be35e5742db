"""API keys: format, storage as HMAC only, 401 for every bad key, rotation grace, revocation, cache staleness bound."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from shared.clock import iso, utc_now
from shared.errors import BadRequest, Conflict, Unauthorized
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from shared.tenancy import apikeys
from tests.manual_clock import ManualClock


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    context = Context(settings)
    yield context
    context.close()


def test_key_format_and_only_an_hmac_is_stored(ctx: Context) -> None:
    issued = apikeys.issue_key(ctx, "acme", "ci", ["runs:read"])
    assert issued.api_key.startswith(f"cdp_{issued.key_id}_") and apikeys.RAW_KEY.match(issued.api_key)
    secret = issued.api_key.split("_", 2)[2]
    stored = ctx.state.get(apikeys.key_path(issued.key_id))
    assert stored is not None and secret not in json.dumps(stored) and issued.api_key not in json.dumps(stored)
    assert len(bytes.fromhex(stored["digest"])) == 32
    principal = apikeys.authenticate(ctx, issued.api_key, "alice")
    assert (principal.tenant_id, principal.scopes, principal.user_id) == ("acme", frozenset({"runs:read"}), "alice")
    assert "digest" not in apikeys.list_keys(ctx, "acme")[0]


def test_pepper_is_sealed_at_rest_and_shared_by_instances(ctx: Context, settings: Settings) -> None:
    issued = apikeys.issue_key(ctx, "acme", "ci")
    doc = ctx.state.get("platform/api_key_pepper")
    assert doc is not None and set(doc["sealed"]) == {"v", "wrapped_key", "nonce", "ciphertext", "key_service"}
    other = Context(settings)  # another instance over the same store and keyring verifies the same key
    try:
        assert apikeys.authenticate(other, issued.api_key).tenant_id == "acme"
    finally:
        other.close()


@pytest.mark.parametrize(
    "raw",
    [None, "", "not-a-key", "cdp_", "cdp_0123456789abcdef_short", "cdp_XYZ3456789abcdef_" + "a" * 43, "x" * 5000],
)
def test_missing_or_malformed_key_is_401(ctx: Context, raw: str | None) -> None:
    with pytest.raises(Unauthorized):
        apikeys.authenticate(ctx, raw)


def test_unknown_key_id_and_wrong_secret_are_401(ctx: Context) -> None:
    issued = apikeys.issue_key(ctx, "acme", "ci")
    forged = issued.api_key[:-4] + ("aaaa" if not issued.api_key.endswith("aaaa") else "bbbb")
    with pytest.raises(Unauthorized, match="invalid API key"):
        apikeys.authenticate(ctx, forged)
    with pytest.raises(Unauthorized, match="invalid API key"):
        apikeys.authenticate(ctx, "cdp_0000000000000000_" + issued.api_key.split("_", 2)[2])


def test_revoked_key_is_401_at_once_and_revoking_is_idempotent(ctx: Context) -> None:
    issued = apikeys.issue_key(ctx, "acme", "ci")
    apikeys.authenticate(ctx, issued.api_key)  # now cached
    first = apikeys.revoke_key(ctx, "acme", issued.key_id)
    second = apikeys.revoke_key(ctx, "acme", issued.key_id)
    assert first["revoked_at"] == second["revoked_at"] and first["active"] is False
    with pytest.raises(Unauthorized, match="revoked"):
        apikeys.authenticate(ctx, issued.api_key)


def test_expired_key_is_401(ctx: Context, manual_clock: ManualClock) -> None:
    issued = apikeys.issue_key(ctx, "acme", "ci", expires_at=utc_now() + timedelta(hours=1))
    manual_clock.advance(timedelta(minutes=59))
    apikeys.authenticate(ctx, issued.api_key)
    manual_clock.advance(timedelta(minutes=1, seconds=1))
    with pytest.raises(Unauthorized, match="expired"):
        apikeys.authenticate(ctx, issued.api_key)
    with pytest.raises(BadRequest):
        apikeys.issue_key(ctx, "acme", "ci", expires_at=utc_now() - timedelta(seconds=1))


def test_rotation_keeps_the_old_key_for_the_grace_period_only(ctx: Context, manual_clock: ManualClock) -> None:
    old = apikeys.issue_key(ctx, "acme", "deploy", ["pipelines:execute", "runs:read"])
    new, old_view = apikeys.rotate_key(ctx, "acme", old.key_id, grace_seconds=1)
    assert new.doc["scopes"] == ["pipelines:execute", "runs:read"] and new.doc["rotated_from"] == old.key_id
    assert old_view["replaced_by"] == new.key_id
    assert apikeys.authenticate(ctx, old.api_key).key_id == old.key_id  # still valid during the grace period
    assert apikeys.authenticate(ctx, new.api_key).key_id == new.key_id
    with pytest.raises(Conflict):
        apikeys.rotate_key(ctx, "acme", old.key_id, grace_seconds=1)  # one successor only
    manual_clock.advance(1.05)
    with pytest.raises(Unauthorized, match="expired"):
        apikeys.authenticate(ctx, old.api_key)
    assert apikeys.authenticate(ctx, new.api_key).tenant_id == "acme"


def test_revocation_on_another_instance_is_seen_within_the_cache_ttl(
    ctx: Context, settings: Settings, manual_clock: ManualClock
) -> None:
    """The documented staleness bound: another instance's cached copy lives at most KEY_CACHE_TTL_S."""
    issued = apikeys.issue_key(ctx, "acme", "ci")
    apikeys.authenticate(ctx, issued.api_key)
    other = Context(settings)
    try:
        apikeys.revoke_key(other, "acme", issued.key_id)
    finally:
        other.close()
    manual_clock.advance(apikeys.KEY_CACHE_TTL_S - 1)
    assert apikeys.authenticate(ctx, issued.api_key).key_id == issued.key_id  # stale, within the bound
    manual_clock.advance(2)
    with pytest.raises(Unauthorized, match="revoked"):
        apikeys.authenticate(ctx, issued.api_key)
    assert apikeys.KEY_CACHE_TTL_S <= 60


def test_scopes_are_validated_and_admin_implies_all(ctx: Context) -> None:
    with pytest.raises(BadRequest):
        apikeys.issue_key(ctx, "acme", "x", ["runs:delete"])
    with pytest.raises(BadRequest):
        apikeys.issue_key(ctx, "acme", "x", [])
    admin = apikeys.authenticate(ctx, apikeys.issue_key(ctx, "acme", "x", ["admin"]).api_key)
    assert all(admin.allows(scope) for scope in apikeys.SCOPES)
    reader = apikeys.authenticate(ctx, apikeys.issue_key(ctx, "acme", "x", ["runs:read"]).api_key)
    assert reader.allows("runs:read") and not reader.allows("runs:cancel")


def test_key_ids_are_scoped_to_their_tenant(ctx: Context) -> None:
    issued = apikeys.issue_key(ctx, "acme", "ci")
    from shared.errors import NotFound

    with pytest.raises(NotFound):
        apikeys.revoke_key(ctx, "initech", issued.key_id)
    assert ctx.state.get(apikeys.key_path(issued.key_id))["revoked_at"] is None  # type: ignore[index]
    assert iso(utc_now()) > issued.doc["created_at"]
