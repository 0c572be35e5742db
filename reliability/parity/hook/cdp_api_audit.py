"""Records every Google API call a process makes, for `make gcp-parity` (reliability/parity).

Opt-in: installed by this folder's sitecustomize.py only when CLOUDACT_API_AUDIT_DIR is set (the parity runner puts
this folder on PYTHONPATH of the e2e run, so every functions-framework process and the pytest process load it). Never
deployed: reliability/ is not in the source bundle (cloudbuild.yaml `package` keeps main.py, functions/, shared/,
tenant_configs/ only).

Each process appends JSON lines to `$CLOUDACT_API_AUDIT_DIR/<function>-<pid>.jsonl`:
`{"function", "service", "method", "resource", "principal", ...}`.

- gRPC (Firestore, Pub/Sub, KMS): a client interceptor on every channel `grpc.insecure_channel` / `grpc.secure_channel`
  create; the method is the full RPC name (`/google.firestore.v1.Firestore/Commit`). Commit records which kinds of
  write it carries (create/update/delete: each needs its own permission); RunQuery records the query's shape
  (collection, filters, order) for the index audit.
- REST (BigQuery, Cloud Storage, IAM Credentials): a hook on `requests.Session.request`; the raw HTTP verb and path
  are recorded and mapped to API methods by reliability/parity/methods.py.
- Stand-ins: the emulators runtime encrypts with the local keyring where GCP uses Cloud KMS (same KeyService port), so
  the keyring's encrypt/decrypt are recorded as the KMS RPCs CloudKmsKeys makes for them.
- Who calls: on GCP a tenant's BigQuery and gs:// work runs as the tenant's service account (gcp_identity); the
  emulators use no identity. The hook tags the warehouse client a tenant gets (`build_warehouse`) and the credentials
  `tenant_credentials` hands out, so those calls are attributed to `tenant:<id>`; everything else to the function's own
  account.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

_lock = threading.Lock()
_out: Any = None
FUNCTION = "?"


def _function_name() -> str:
    argv = sys.argv
    if "--target" in argv and argv.index("--target") + 1 < len(argv):
        return argv[argv.index("--target") + 1]
    return "pytest" if any("pytest" in a for a in argv[:2]) else os.path.basename(argv[0] or "python")


def record(service: str, method: str, **fields: Any) -> None:
    line = json.dumps({"function": FUNCTION, "service": service, "method": method, **fields}, default=str)
    with _lock:
        _out.write(line + "\n")
        _out.flush()


# ---------------------------------------------------------------------------------------------------------- gRPC
def _grpc_fields(method: str, request: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"principal": "self"}
    for attr in ("topic", "subscription", "database", "name", "parent"):
        value = getattr(request, attr, None)
        if isinstance(value, str) and value:
            fields["resource"] = value
            break
    if method.endswith("/Commit"):
        fields["writes"] = sorted({_write_kind(w) for w in request.writes})
    elif method.endswith("/RunQuery") or method.endswith("/RunAggregationQuery"):
        query = getattr(request, "structured_query", None)
        if query is None and hasattr(request, "structured_aggregation_query"):
            query = request.structured_aggregation_query.structured_query
        if query is not None:
            fields["query"] = _query_shape(request.parent, query)
    return fields


def _write_kind(write: Any) -> str:
    kind = write._pb.WhichOneof("operation")
    if kind == "delete":
        return "delete"
    pre = write._pb.current_document if write._pb.HasField("current_document") else None
    if pre is not None and pre.WhichOneof("condition_type") == "exists":
        return "create" if not pre.exists else "update"
    if pre is not None and pre.WhichOneof("condition_type") == "update_time":
        return "update"  # a last-update-time precondition: the document must exist
    return "upsert"


def _query_shape(parent: str, query: Any) -> dict[str, Any]:
    pb = query._pb
    collection = pb.from_[0].collection_id if len(pb.from_) else ""
    group = bool(len(pb.from_) and pb.from_[0].all_descendants)
    filters: list[list[str]] = []

    def walk(f: Any) -> None:
        which = f.WhichOneof("filter_type")
        if which == "composite_filter":
            for sub in f.composite_filter.filters:
                walk(sub)
        elif which == "field_filter":
            op = type(f.field_filter).Operator.Name(f.field_filter.op)
            filters.append([f.field_filter.field.field_path, op])
        elif which == "unary_filter":
            op = type(f.unary_filter).Operator.Name(f.unary_filter.op)
            filters.append([f.unary_filter.field.field_path, op])

    if pb.HasField("where"):
        walk(pb.where)
    order = [[o.field.field_path, "DESCENDING" if o.direction == 2 else "ASCENDING"] for o in pb.order_by]
    return {"parent": parent, "collection": collection, "all_descendants": group, "filters": filters, "order": order}


def _interceptor() -> Any:
    import grpc

    bases: tuple[Any, ...] = (  # grpc ships no type information
        grpc.UnaryUnaryClientInterceptor,
        grpc.UnaryStreamClientInterceptor,
        grpc.StreamUnaryClientInterceptor,
        grpc.StreamStreamClientInterceptor,
    )

    class Recorder(*bases):  # type: ignore[misc]
        def _note(self, details: Any, request: Any) -> None:
            method = details.method.decode() if isinstance(details.method, bytes) else str(details.method)
            try:
                fields = _grpc_fields(method, request) if request is not None else {"principal": "self"}
            except Exception as exc:
                fields = {"principal": "self", "hook_error": repr(exc)}
            record(method.split("/")[1].rsplit(".", 1)[0] if "/" in method else "grpc", method, **fields)

        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            self._note(details, request)
            return continuation(details, request)

        def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
            self._note(details, request)
            return continuation(details, request)

        def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
            return continuation(details, _first_noted(self, details, request_iterator))

        def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
            return continuation(details, _first_noted(self, details, request_iterator))

    return Recorder()


def _first_noted(recorder: Any, details: Any, requests: Any) -> Any:
    """Streaming calls (Pub/Sub StreamingPull, Firestore Listen): note the call with its first request."""
    first = True
    for request in requests:
        if first:
            recorder._note(details, request)
            first = False
        yield request


def _install_grpc() -> None:
    import grpc

    interceptor = _interceptor()
    for name in ("insecure_channel", "secure_channel"):
        original = getattr(grpc, name)

        def wrapped(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            return grpc.intercept_channel(_original(*args, **kwargs), interceptor)

        setattr(grpc, name, wrapped)


# ---------------------------------------------------------------------------------------------------------- REST
def _principal_of(session: Any) -> str:
    tag = getattr(session, "_cdp_audit_principal", None) or getattr(
        getattr(session, "credentials", None), "_cdp_audit_principal", None
    )
    return str(tag) if tag else "self"


def _install_requests() -> None:
    import requests

    original = requests.Session.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        try:
            _note_rest(self, method, url, kwargs)
        except Exception as exc:
            record("rest", "?", url=url, hook_error=repr(exc))
        return original(self, method, url, *args, **kwargs)

    requests.Session.request = request  # type: ignore[method-assign,assignment]


def _note_rest(session: Any, method: str, url: str, kwargs: dict[str, Any]) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = parts.path
    service = ""
    for marker, name in (
        ("/bigquery/v2/", "bigquery"),
        ("/storage/v1/", "storage"),
        (":generateAccessToken", "iamcredentials"),
        (":signBlob", "iamcredentials"),
    ):
        if marker in path:
            service = name
            break
    if not service:
        return  # webhooks, http.extract sources, the emulators' own admin endpoints: not Google APIs
    fields: dict[str, Any] = {
        "http": method.upper(),
        "path": path,
        "query": parts.query,
        "principal": _principal_of(session),
    }
    body = kwargs.get("data") if kwargs.get("data") is not None else kwargs.get("json")
    if service == "bigquery" and path.endswith("/jobs") and method.upper() == "POST":
        fields["job"] = _job_kind(body)
    record(service, f"{method.upper()} {path}", **fields)


def _job_kind(body: Any) -> dict[str, Any]:
    try:
        doc = body if isinstance(body, dict) else json.loads(body) if isinstance(body, (bytes, str)) else {}
    except ValueError:
        return {}
    config = doc.get("configuration", {}) if isinstance(doc, dict) else {}
    kind = next((k for k in ("query", "load", "copy", "extract") if k in config), "")
    out: dict[str, Any] = {"type": kind}
    dest = config.get(kind, {}).get("destinationTable") if kind else None
    if isinstance(dest, dict):
        out["destination"] = f"{dest.get('datasetId')}.{dest.get('tableId')}"
    return out


# ---------------------------------------------------------------------------------------------------------- tenants
def _install_tenant_tags() -> None:
    from google.auth.credentials import AnonymousCredentials

    import shared.adapters.gcp_identity as identity
    import shared.runtime.context as context

    # Anonymous (the emulators check no identity) but saying which tenant account production would act as. Patched
    # before any processor imports the name, so `from ... import tenant_credentials` picks this one up.
    class TenantCredentials(AnonymousCredentials):  # type: ignore[misc]
        def __init__(self, tenant_id: str) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self._cdp_audit_principal = f"tenant:{tenant_id}"

    original_credentials = identity.tenant_credentials

    def tenant_credentials(settings: Any, tenant_id: str) -> Any:
        real = original_credentials(settings, tenant_id)
        return real if real is not None else TenantCredentials(tenant_id)

    identity.tenant_credentials = tenant_credentials
    original_build = context.build_warehouse

    def build_warehouse(settings: Any, tenant_id: str) -> Any:
        warehouse = original_build(settings, tenant_id)
        client = getattr(warehouse, "_client", None)
        if client is not None and hasattr(client, "_http"):
            client._http._cdp_audit_principal = f"tenant:{tenant_id}"
        return warehouse

    context.build_warehouse = build_warehouse


def _install_key_stand_in() -> None:
    """The local keyring stands in for Cloud KMS: CloudKmsKeys.encrypt/decrypt call KMS Encrypt/Decrypt once each."""
    from shared.adapters.local_keys import LocalKeyring

    for op, rpc in (("encrypt", "Encrypt"), ("decrypt", "Decrypt")):
        original = getattr(LocalKeyring, op)

        def wrapped(self: Any, *args: Any, _original: Any = original, _rpc: str = rpc) -> Any:
            record(
                "google.cloud.kms.v1",
                f"/google.cloud.kms.v1.KeyManagementService/{_rpc}",
                principal="self",
                resource="CLOUDACT_KMS_KEY",
                stand_in="shared.adapters.local_keys.LocalKeyring",
            )
            return _original(self, *args)

        setattr(LocalKeyring, op, wrapped)


def install() -> None:
    """Record in function processes (functions-framework --target NAME) and the pytest process; any other Python
    process that inherits the environment (bqemulator in its own virtualenv, helper scripts) is left alone."""
    global _out, FUNCTION
    FUNCTION = _function_name()
    if "--target" not in sys.argv and FUNCTION != "pytest":
        return
    directory = os.environ["CLOUDACT_API_AUDIT_DIR"]
    os.makedirs(directory, exist_ok=True)
    _out = open(os.path.join(directory, f"{FUNCTION}-{os.getpid()}.jsonl"), "a", encoding="utf-8")  # noqa: SIM115
    failures = []
    for step in (_install_grpc, _install_requests, _install_tenant_tags, _install_key_stand_in):
        try:
            step()
        except Exception as exc:
            failures.append(f"{step.__name__}: {exc!r}")
    for failure in failures:
        record("hook", "install-failed", detail=failure)
