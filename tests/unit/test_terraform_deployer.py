"""terraform/README.md "Deployer roles" against the resource types terraform/ declares.

Each declared resource or data source type needs some predefined role on the identity running `terraform apply`;
the table below says which (from each role's permission list: https://cloud.google.com/iam/docs/roles-permissions).
A new resource type fails here until the README (and the bootstrap command of "First deploy") names its role, and a
role the README lists that no declared resource needs fails too.
"""

from __future__ import annotations

import re

from tests.conftest import REPO

TERRAFORM = REPO / "terraform"
README = TERRAFORM / "README.md"

ROLE_OF: dict[str, str | None] = {
    "google_project_service": "roles/serviceusage.serviceUsageAdmin",
    "google_project_service_identity": "roles/serviceusage.serviceUsageAdmin",
    "google_service_account": "roles/iam.serviceAccountAdmin",
    "google_service_account_iam_member": "roles/iam.serviceAccountAdmin",
    "google_project_iam_member": "roles/resourcemanager.projectIamAdmin",
    "data.google_project": "roles/resourcemanager.projectIamAdmin",
    "google_pubsub_topic": "roles/pubsub.admin",
    "google_pubsub_subscription": "roles/pubsub.admin",
    "google_pubsub_topic_iam_member": "roles/pubsub.admin",
    "google_pubsub_subscription_iam_member": "roles/pubsub.admin",
    "google_cloudfunctions2_function": "roles/cloudfunctions.admin",
    "google_cloud_run_service_iam_member": "roles/run.admin",
    "google_artifact_registry_repository": "roles/artifactregistry.admin",
    "google_artifact_registry_repository_iam_member": "roles/artifactregistry.admin",
    "google_kms_key_ring": "roles/cloudkms.admin",
    "google_kms_crypto_key": "roles/cloudkms.admin",
    "google_kms_crypto_key_iam_member": "roles/cloudkms.admin",
    "google_firestore_database": "roles/datastore.owner",
    "google_firestore_index": "roles/datastore.owner",
    "google_firestore_field": "roles/datastore.owner",
    "google_bigquery_dataset": "roles/bigquery.admin",
    "google_bigquery_dataset_iam_member": "roles/bigquery.admin",
    "data.google_bigquery_default_service_account": "roles/bigquery.admin",
    "google_cloud_scheduler_job": "roles/cloudscheduler.admin",
    "google_storage_bucket": "roles/storage.admin",
    "google_storage_bucket_iam_member": "roles/storage.admin",
    "google_monitoring_alert_policy": "roles/monitoring.editor",
    "google_monitoring_dashboard": "roles/monitoring.editor",
    "google_monitoring_uptime_check_config": "roles/monitoring.editor",
    "google_logging_metric": "roles/logging.configWriter",
    "google_logging_project_sink": "roles/logging.configWriter",
    "time_sleep": None,  # no Google API call
}
# Needed by the deploy itself rather than by a resource type.
DEPLOY_ROLES = {
    "roles/iam.serviceAccountUser",  # act as the accounts functions and subscriptions are attached to
    "roles/logging.logWriter",  # Cloud Build logs of a user-specified build account
    "roles/secretmanager.secretAccessor",  # the smoke test's key (on that one secret)
}


def declared_types() -> set[str]:
    found: set[str] = set()
    for path in TERRAFORM.rglob("*.tf"):
        for kind, name in re.findall(r'^(resource|data) "([a-z0-9_]+)"', path.read_text(), flags=re.M):
            found.add(name if kind == "resource" else f"data.{name}")
    return found


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_declared_type_has_its_deployer_role() -> None:
    types = declared_types()
    unknown = types - set(ROLE_OF)
    assert not unknown, f"resource types with no deployer role in ROLE_OF: {sorted(unknown)}"
    assert set(ROLE_OF) - types == set(), "ROLE_OF names types terraform/ no longer declares"


def test_readme_lists_exactly_the_roles_apply_needs() -> None:
    section = readme_section("Deployer roles")
    table = [line for line in section.splitlines() if line.startswith("| `roles/")]
    listed = {re.match(r"\| `(roles/[A-Za-z.]+)`", line).group(1) for line in table}  # type: ignore[union-attr]
    needed = {role for role in ROLE_OF.values() if role} | DEPLOY_ROLES
    assert listed == needed
    for line in table:  # each with why: the resource types it is for, by name
        role = re.match(r"\| `(roles/[A-Za-z.]+)`", line).group(1)  # type: ignore[union-attr]
        for kind, kind_role in ROLE_OF.items():
            if kind_role == role:
                assert kind.removeprefix("data.") in line, f"{role}: the README line does not name {kind}"
    assert "roles/editor" not in section.replace("No basic role (`roles/editor`, `roles/owner`)", "")


def test_the_bootstrap_command_grants_those_roles() -> None:
    section = readme_section("First deploy")
    loop = section[section.index("for role in") : section.index("done")]
    granted = {f"roles/{name}" for name in re.findall(r"\b([a-z]+\.[A-Za-z]+)\b", loop.split(";")[0])}
    project_roles = {role for role in ROLE_OF.values() if role} | DEPLOY_ROLES - {"roles/secretmanager.secretAccessor"}
    assert granted == project_roles
    assert "--role=roles/secretmanager.secretAccessor" in section  # on the smoke secret only
