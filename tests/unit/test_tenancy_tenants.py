"""Tenants: id rules, idempotent onboarding (metadata dataset, one first key), audited changes, local bootstrap."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import BadRequest, Conflict, Forbidden, NotFound
from shared.lifecycle.local_tenants import bootstrap_local_tenants, config_tenants
from shared.lifecycle.onboarding import onboard_tenant
from shared.plans import PLANS, effective_plan
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from shared.tenancy import apikeys
from shared.tenancy.audit import list_audit
from shared.tenancy.credentials import credentials_path
from shared.tenancy.tenants import check_tenant_id, get_tenant, require_active, update_tenant


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    context = Context(settings)
    yield context
    context.close()


@pytest.mark.parametrize("good", ["abc", "acme", "a_1", "x" * 50, "tenant_2026"])
def test_valid_tenant_ids(good: str) -> None:
    assert check_tenant_id(good) == good


@pytest.mark.parametrize("bad", ["ab", "Acme", "1abc", "_abc", "ac-me", "ac.me", "x" * 51, "", "acme ", "ü_tenant"])
def test_invalid_tenant_ids_are_400_naming_the_field(bad: str) -> None:
    with pytest.raises(BadRequest) as info:
        check_tenant_id(bad)
    assert info.value.details["field"] == "tenant_id"


def test_onboarding_is_idempotent_creates_metadata_and_issues_one_first_key(ctx: Context) -> None:
    first = onboard_tenant(ctx, "initech", "starter", {"name": "Globex"}, user_id="ops@example.com")
    assert first.created and first.first_key is not None
    assert first.tenant["status"] == "active" and first.tenant["first_key_id"] == first.first_key.key_id
    assert apikeys.authenticate(ctx, first.first_key.api_key).scopes == frozenset({"admin"})
    assert ctx.warehouse_for("initech").table_exists("initech_metadata.pipeline_executions")
    assert ctx.warehouse_for("initech").table_exists("initech_metadata.step_executions")
    again = onboard_tenant(ctx, "initech", "starter")
    assert not again.created and again.first_key is None  # shown once
    assert len(apikeys.list_keys(ctx, "initech")) == 1
    with pytest.raises(Conflict) as info:
        onboard_tenant(ctx, "initech", "enterprise")  # a plan change is a separate, audited call
    assert info.value.details["field"] == "plan"
    assert [a["action"] for a in list_audit(ctx, "initech")] == ["tenant.onboarded"]
    assert list_audit(ctx, "initech")[0]["user_id"] == "ops@example.com"


def test_onboarding_rejects_unknown_plans_and_bad_limits(ctx: Context) -> None:
    with pytest.raises(BadRequest):
        onboard_tenant(ctx, "initech", "platinum")
    with pytest.raises(BadRequest) as info:
        onboard_tenant(ctx, "initech", "starter", limits={"runs_per_day": -1})
    assert info.value.details["field"] == "limits.runs_per_day"
    with pytest.raises(NotFound):
        get_tenant(ctx, "initech")  # nothing was created by a refused call


def test_plan_changes_limits_and_suspension_are_audited(ctx: Context) -> None:
    onboard_tenant(ctx, "initech", "starter")
    tenant = update_tenant(ctx, "initech", {"plan": "professional", "limits": {"runs_per_day": 7}}, user_id="bob")
    plan = effective_plan(tenant)
    assert plan.name == "professional" and plan.runs_per_day == 7
    assert plan.concurrent_runs == PLANS["professional"].concurrent_runs
    suspended = update_tenant(ctx, "initech", {"status": "suspended"})
    with pytest.raises(Forbidden):
        require_active(suspended)
    with pytest.raises(BadRequest):
        update_tenant(ctx, "initech", {"status": "deleted"})
    actions = [a["action"] for a in list_audit(ctx, "initech")]
    assert actions.count("tenant.updated") == 2


def test_local_bootstrap_onboards_config_tenants_and_reuses_a_valid_cli_key(ctx: Context, settings: Settings) -> None:
    first = bootstrap_local_tenants(ctx)
    assert set(first.api_keys) == set(config_tenants(settings.config_dir)) >= {"acme", "testco"}
    assert len(first.admin_token) >= 32
    assert get_tenant(ctx, "acme")["plan"] == "starter"
    mode = stat.S_IMODE(credentials_path(settings).stat().st_mode)
    assert mode == 0o600
    second = bootstrap_local_tenants(ctx)
    assert second == first  # nothing new issued
    apikeys.revoke_key(ctx, "acme", apikeys.authenticate(ctx, first.api_keys["acme"]).key_id)
    third = bootstrap_local_tenants(ctx)
    assert third.api_keys["acme"] != first.api_keys["acme"]  # a revoked CLI key is replaced
    assert apikeys.authenticate(ctx, third.api_keys["acme"]).tenant_id == "acme"


def test_tenant_ids_whose_datasets_would_overlap_are_refused(tmp_path: Path) -> None:
    ctx = Context(Settings(home=tmp_path / ".cloudact", config_dir=tmp_path))
    onboard_tenant(ctx, "acme", "starter")
    for clashing, other in (("acme_eu", "acme"), ("acme_eu_west", "acme")):
        with pytest.raises(Conflict) as refused:
            onboard_tenant(ctx, clashing, "starter")
        assert refused.value.details["clashes_with"] == other
    onboard_tenant(ctx, "acmes", "starter")  # a different id, not an extension by "_"
    onboard_tenant(ctx, "zeta_one", "starter")
    with pytest.raises(Conflict) as refused:
        onboard_tenant(ctx, "zeta", "starter")  # the longer one came first
    assert refused.value.details["clashes_with"] == "zeta_one"
    assert onboard_tenant(ctx, "acme", "starter").created is False  # re-onboarding stays idempotent
