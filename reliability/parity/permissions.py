"""Checked-in tables: which IAM permissions each recorded API method needs, and which permissions each predefined role
the project's Terraform grants holds.

Sources (read 2026-12; re-check when a role or method is added):
- Roles: https://cloud.google.com/iam/docs/roles-permissions (per service: /bigquery, /datastore (Firestore), /pubsub,
  /cloudkms, /storage, /iam, /cloudtrace, /monitoring, /logging, /run). Only the permissions relevant to the methods
  below are listed per role, plus enough of the rest to name the role; a role missing here is a finding, never a pass.
- Firestore methods -> permissions: https://cloud.google.com/firestore/docs/security/iam#required_permissions
  (commit: create for exists=false, update for exists=true, create+update with no precondition, delete for deletes).
- BigQuery: https://cloud.google.com/bigquery/docs/access-control#bq-permissions and
  https://cloud.google.com/bigquery/docs/running-jobs#required_permissions (jobs.insert needs bigquery.jobs.create on
  the project; a load also needs tables.create/updateData on its destination dataset).
- Pub/Sub: https://cloud.google.com/pubsub/docs/access-control#tables (Publish: pubsub.topics.publish on the topic;
  Pull/StreamingPull/Acknowledge/ModifyAckDeadline: pubsub.subscriptions.consume on the subscription).
- Cloud KMS: https://cloud.google.com/kms/docs/reference/permissions-and-roles (Encrypt: useToEncrypt, Decrypt:
  useToDecrypt on the key).
- Cloud Storage: https://cloud.google.com/storage/docs/access-control/iam-json (objects.get / objects.list).
- IAM Credentials: https://cloud.google.com/iam/docs/service-account-permissions (generateAccessToken:
  iam.serviceAccounts.getAccessToken on the target account).
"""

from __future__ import annotations

from collections.abc import Mapping

# role -> permissions (the subset this project's calls can need; see the module docstring)
ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = {
    "roles/datastore.user": frozenset(
        {
            "appengine.applications.get",
            "datastore.databases.get",
            "datastore.databases.getMetadata",
            "datastore.entities.allocateIds",
            "datastore.entities.create",
            "datastore.entities.delete",
            "datastore.entities.get",
            "datastore.entities.list",
            "datastore.entities.update",
            "datastore.indexes.list",
            "datastore.namespaces.get",
            "datastore.namespaces.list",
            "datastore.statistics.get",
            "datastore.statistics.list",
            "resourcemanager.projects.get",
        }
    ),
    "roles/datastore.viewer": frozenset(
        {
            "datastore.databases.get",
            "datastore.databases.getMetadata",
            "datastore.entities.get",
            "datastore.entities.list",
        }
    ),
    "roles/pubsub.publisher": frozenset({"pubsub.topics.publish"}),
    "roles/pubsub.subscriber": frozenset(
        {"pubsub.snapshots.seek", "pubsub.subscriptions.consume", "pubsub.topics.attachSubscription"}
    ),
    "roles/pubsub.viewer": frozenset({"pubsub.subscriptions.get", "pubsub.subscriptions.list", "pubsub.topics.get"}),
    "roles/cloudkms.cryptoKeyEncrypterDecrypter": frozenset(
        {
            "cloudkms.cryptoKeyVersions.useToDecrypt",
            "cloudkms.cryptoKeyVersions.useToEncrypt",
            "cloudkms.locations.get",
            "cloudkms.locations.list",
            "resourcemanager.projects.get",
        }
    ),
    "roles/cloudkms.cryptoKeyEncrypter": frozenset({"cloudkms.cryptoKeyVersions.useToEncrypt"}),
    "roles/cloudkms.cryptoKeyDecrypter": frozenset({"cloudkms.cryptoKeyVersions.useToDecrypt"}),
    "roles/bigquery.dataEditor": frozenset(
        {
            "bigquery.datasets.get",
            "bigquery.datasets.getIamPolicy",
            "bigquery.models.create",
            "bigquery.models.delete",
            "bigquery.models.getData",
            "bigquery.models.getMetadata",
            "bigquery.models.list",
            "bigquery.models.updateData",
            "bigquery.models.updateMetadata",
            "bigquery.routines.create",
            "bigquery.routines.delete",
            "bigquery.routines.get",
            "bigquery.routines.list",
            "bigquery.routines.update",
            "bigquery.tables.create",
            "bigquery.tables.createIndex",
            "bigquery.tables.createSnapshot",
            "bigquery.tables.delete",
            "bigquery.tables.deleteIndex",
            "bigquery.tables.export",
            "bigquery.tables.get",
            "bigquery.tables.getData",
            "bigquery.tables.getIamPolicy",
            "bigquery.tables.list",
            "bigquery.tables.restoreSnapshot",
            "bigquery.tables.update",
            "bigquery.tables.updateData",
            "bigquery.tables.updateTag",
            "resourcemanager.projects.get",
        }
    ),
    "roles/bigquery.dataViewer": frozenset(
        {"bigquery.datasets.get", "bigquery.tables.get", "bigquery.tables.getData", "bigquery.tables.list"}
    ),
    "roles/bigquery.dataOwner": frozenset(
        {
            "bigquery.datasets.delete",
            "bigquery.datasets.get",
            "bigquery.datasets.update",
            "bigquery.tables.create",
            "bigquery.tables.delete",
            "bigquery.tables.get",
            "bigquery.tables.getData",
            "bigquery.tables.list",
            "bigquery.tables.update",
            "bigquery.tables.updateData",
        }
    ),
    "roles/bigquery.jobUser": frozenset(
        {"bigquery.config.get", "bigquery.jobs.create", "resourcemanager.projects.get", "resourcemanager.projects.list"}
    ),
    "roles/bigquery.user": frozenset(
        {
            "bigquery.datasets.create",
            "bigquery.datasets.get",
            "bigquery.jobs.create",
            "bigquery.jobs.list",
            "bigquery.tables.list",
            "resourcemanager.projects.get",
        }
    ),
    "roles/storage.objectViewer": frozenset(
        {
            "storage.folders.get",
            "storage.folders.list",
            "storage.managedFolders.get",
            "storage.managedFolders.list",
            "storage.objects.get",
            "storage.objects.list",
            "resourcemanager.projects.get",
        }
    ),
    "roles/iam.serviceAccountTokenCreator": frozenset(
        {
            "iam.serviceAccounts.get",
            "iam.serviceAccounts.getAccessToken",
            "iam.serviceAccounts.getOpenIdToken",
            "iam.serviceAccounts.implicitDelegation",
            "iam.serviceAccounts.signBlob",
            "iam.serviceAccounts.signJwt",
        }
    ),
    "roles/iam.serviceAccountUser": frozenset({"iam.serviceAccounts.actAs", "iam.serviceAccounts.get"}),
    "roles/cloudtrace.agent": frozenset({"cloudtrace.traces.patch", "telemetry.traces.write"}),
    "roles/monitoring.metricWriter": frozenset(
        {
            "monitoring.metricDescriptors.create",
            "monitoring.metricDescriptors.get",
            "monitoring.metricDescriptors.list",
            "monitoring.monitoredResourceDescriptors.get",
            "monitoring.monitoredResourceDescriptors.list",
            "monitoring.timeSeries.create",
        }
    ),
    "roles/logging.logWriter": frozenset({"logging.logEntries.create", "logging.logEntries.route"}),
    "roles/run.invoker": frozenset({"run.routes.invoke", "run.jobs.run"}),
}


def role_permissions(role: str) -> frozenset[str] | None:
    """The role's permissions, or None when the table does not know the role (the audit reports that)."""
    return ROLE_PERMISSIONS.get(role)
