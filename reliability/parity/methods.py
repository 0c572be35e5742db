"""Recorded API calls (reliability/parity/hook) -> the API method they are and the IAM permissions they need, on which
resource. Sources of the mapping: reliability/parity/permissions.py's docstring."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ANY = "*"
"""A resource name that any grant of the kind covers (e.g. listing datasets needs datasets.get on some dataset)."""


@dataclass(frozen=True)
class Need:
    permission: str
    kind: str  # project | topic | subscription | crypto_key | dataset | bucket | service_account
    name: str = ANY


@dataclass(frozen=True)
class Call:
    """One distinct API call of a principal: `principal` is `fn:<function>` or `tenant:<id>`."""

    function: str
    principal: str
    method: str
    needs: tuple[Need, ...]


class Unmapped(ValueError):
    """A recorded method the table does not know: the audit reports it (the table must grow, never guess)."""


def _last(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


_FIRESTORE_READ = ("datastore.entities.get", "datastore.entities.list")
_FIRESTORE: Mapping[str, tuple[str, ...]] = {
    "BatchGetDocuments": ("datastore.entities.get",),
    "GetDocument": ("datastore.entities.get",),
    "RunQuery": _FIRESTORE_READ,
    "RunAggregationQuery": _FIRESTORE_READ,
    "ListDocuments": _FIRESTORE_READ,
    "ListCollectionIds": ("datastore.entities.list",),
    "PartitionQuery": ("datastore.entities.get",),
    "BeginTransaction": ("datastore.databases.get",),
    "Rollback": ("datastore.databases.get",),
    "CreateDocument": ("datastore.entities.create",),
    "UpdateDocument": ("datastore.entities.update",),
    "DeleteDocument": ("datastore.entities.delete",),
}
_COMMIT: Mapping[str, tuple[str, ...]] = {
    "create": ("datastore.entities.create",),
    "update": ("datastore.entities.update",),
    "upsert": ("datastore.entities.create", "datastore.entities.update"),
    "delete": ("datastore.entities.delete",),
}
_PUBSUB_CONSUME = ("Pull", "StreamingPull", "Acknowledge", "ModifyAckDeadline")


def grpc_needs(method: str, record: Mapping[str, Any]) -> tuple[str, tuple[Need, ...]]:
    service, _, rpc = method.strip("/").partition("/")
    resource = str(record.get("resource") or "")
    if service == "google.firestore.v1.Firestore":
        if rpc == "Commit":
            kinds = record.get("writes") or []
            perms = sorted({p for k in kinds for p in _COMMIT[k]}) or ["datastore.databases.get"]
            return f"firestore.Commit({'+'.join(kinds) or 'empty'})", tuple(Need(p, "project") for p in perms)
        if rpc in _FIRESTORE:
            return f"firestore.{rpc}", tuple(Need(p, "project") for p in _FIRESTORE[rpc])
    if service == "google.pubsub.v1.Publisher" and rpc == "Publish":
        return "pubsub.Publish", (Need("pubsub.topics.publish", "topic", _last(resource)),)
    if service == "google.pubsub.v1.Subscriber" and rpc in _PUBSUB_CONSUME:
        return f"pubsub.{rpc}", (Need("pubsub.subscriptions.consume", "subscription", _last(resource)),)
    if service == "google.pubsub.v1.Subscriber" and rpc == "GetSubscription":
        return "pubsub.GetSubscription", (Need("pubsub.subscriptions.get", "subscription", _last(resource)),)
    if service == "google.pubsub.v1.Publisher" and rpc == "GetTopic":
        return "pubsub.GetTopic", (Need("pubsub.topics.get", "topic", _last(resource)),)
    if service == "google.cloud.kms.v1.KeyManagementService" and rpc in ("Encrypt", "Decrypt"):
        permission = f"cloudkms.cryptoKeyVersions.useTo{rpc}"
        return f"kms.{rpc}", (Need(permission, "crypto_key", resource),)
    raise Unmapped(method)


_BQ = re.compile(r"^(?:/upload)?/bigquery/v2/projects/[^/]+/(?P<rest>.*)$")


def bigquery_needs(http: str, path: str, record: Mapping[str, Any]) -> tuple[str, tuple[Need, ...]]:
    m = _BQ.match(path)
    if not m:
        raise Unmapped(f"{http} {path}")
    parts = m.group("rest").split("/")
    project = Need("bigquery.jobs.create", "project")
    if parts[0] == "datasets":
        if len(parts) == 1:
            perm = {"GET": ("bigquery.datasets.get", ANY), "POST": ("bigquery.datasets.create", "project")}.get(http)
            if perm is None:
                raise Unmapped(f"{http} {path}")
            kind = "project" if perm[1] == "project" else "dataset"
            return f"bigquery.datasets.{'list' if http == 'GET' else 'insert'}", (Need(perm[0], kind),)
        dataset = parts[1]
        if len(parts) == 2:
            verb = {"GET": "get", "DELETE": "delete", "PATCH": "update", "PUT": "update"}[http]
            return f"bigquery.datasets.{verb}", (Need(f"bigquery.datasets.{verb}", "dataset", dataset),)
        if len(parts) == 3 and parts[2] == "tables":
            verb = {"GET": "list", "POST": "create"}[http]
            api = {"list": "list", "create": "insert"}[verb]
            return f"bigquery.tables.{api}", (Need(f"bigquery.tables.{verb}", "dataset", dataset),)
        if len(parts) == 4:
            verb = {"GET": "get", "DELETE": "delete", "PATCH": "update", "PUT": "update"}[http]
            return f"bigquery.tables.{verb}", (Need(f"bigquery.tables.{verb}", "dataset", dataset),)
        if len(parts) == 5 and parts[4] == "insertAll":
            return "bigquery.tabledata.insertAll", (Need("bigquery.tables.updateData", "dataset", dataset),)
        if len(parts) == 5 and parts[4] == "data":
            return "bigquery.tabledata.list", (Need("bigquery.tables.getData", "dataset", dataset),)
    if parts[0] == "jobs" and len(parts) == 1:
        if http == "PUT" or "upload_id" in str(record.get("query", "")):
            return "bigquery.jobs.insert", ()  # the data of a resumable load upload: part of the insert above
        job = record.get("job") or {}
        needs = [project]
        if job.get("type") == "load" and job.get("destination"):
            dataset = str(job["destination"]).split(".")[0]
            needs += [
                Need("bigquery.tables.create", "dataset", dataset),
                Need("bigquery.tables.updateData", "dataset", dataset),
            ]
        return f"bigquery.jobs.insert({job.get('type') or '?'})", tuple(needs)
    # Own jobs: whoever may create jobs may get, read and cancel the ones it created (bigquery.jobUser).
    if parts[0] == "jobs" and len(parts) == 2 and http == "GET":
        return "bigquery.jobs.get", (project,)
    if parts[0] == "jobs" and len(parts) == 3 and parts[2] == "cancel":
        return "bigquery.jobs.cancel", (project,)
    if parts[0] == "queries" and len(parts) == 2:
        return "bigquery.jobs.getQueryResults", (project,)
    if parts[0] == "queries" and len(parts) == 1:
        return "bigquery.jobs.query", (project,)
    raise Unmapped(f"{http} {path}")


_GCS = re.compile(r"^(?:/download|/upload)?/storage/v1/b/(?P<bucket>[^/]+)(?P<rest>/o(?:/.*)?)?$")


def storage_needs(http: str, path: str) -> tuple[str, tuple[Need, ...]]:
    m = _GCS.match(path)
    if not m or http != "GET":
        raise Unmapped(f"{http} {path}")
    bucket, rest = m.group("bucket"), m.group("rest") or ""
    if rest == "/o":
        return "storage.objects.list", (Need("storage.objects.list", "bucket", bucket),)
    if rest.startswith("/o/"):
        return "storage.objects.get", (Need("storage.objects.get", "bucket", bucket),)
    return "storage.buckets.get", (Need("storage.buckets.get", "bucket", bucket),)


def needs_of(record: Mapping[str, Any]) -> tuple[str, tuple[Need, ...]]:
    service = str(record.get("service"))
    if service == "bigquery":
        return bigquery_needs(str(record["http"]), str(record["path"]), record)
    if service == "storage":
        return storage_needs(str(record["http"]), str(record["path"]))
    if service == "iamcredentials":
        email = str(record["path"]).rsplit("/", 1)[-1].split(":")[0]
        return "iamcredentials.generateAccessToken", (
            Need("iam.serviceAccounts.getAccessToken", "service_account", email),
        )
    return grpc_needs(str(record["method"]), record)
