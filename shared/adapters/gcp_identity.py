"""Which Google identity a tenant's work runs as on GCP: the tenant's own service account, impersonated.

Every function runs as its own service account (`cdp-fn-*`), which holds no BigQuery or Cloud Storage data role. A
tenant's BigQuery jobs and `gs://` reads run with short-lived tokens of the tenant's account `cdp-t-<tenant>`, which
Terraform's tenant module grants data roles on that tenant's datasets and declared buckets only. A query that slipped
past the SQL checks therefore still runs as an identity that cannot read any other tenant.

How: `google.auth.impersonated_credentials.Credentials` mints tokens for the target account through the IAM
Credentials API (generateAccessToken), authenticated by the function's own Application Default Credentials; the
function's account needs `roles/iam.serviceAccountTokenCreator` on the tenant account (granted per account, never
on the project). Tokens are refreshed on first use and when expired, so building the credentials makes no call.
https://cloud.google.com/iam/docs/create-short-lived-credentials-direct
https://googleapis.dev/python/google-auth/latest/reference/google.auth.impersonated_credentials.html

Emulators (bqemulator, the Cloud Storage and Firestore emulators) check no identity at all, and the embedded runtime
uses DuckDB and local files: there `tenant_credentials` is None and isolation rests on the per-tenant warehouse files
and the SQL and bucket checks.

The account id rule is the one of terraform/modules/tenant_config (tests evaluate both and compare them).
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from google.auth.credentials import Credentials


class IdentitySettings(Protocol):
    """What of shared.runtime.settings.Settings names the identity (typed structurally: adapters sit below runtime)."""

    @property
    def runtime(self) -> str: ...

    @property
    def project(self) -> str: ...


ACCOUNT_PREFIX = "cdp-t-"
"""Tenant service accounts are `cdp-t-...`; the functions' own are `cdp-fn-...` (platform module)."""

MAX_ACCOUNT_ID = 30
"""IAM account ids are 6-30 characters of [a-z0-9-], start with a letter and do not end with '-'."""

HASH_CHARS = 8
"""Hex digits of sha256(tenant_id) that keep shortened ids of long tenant ids distinct."""

READABLE_CHARS = MAX_ACCOUNT_ID - len(ACCOUNT_PREFIX) - 1 - HASH_CHARS
"""Characters of the tenant id a shortened account id keeps (15): prefix + these + '-' + hash fits in 30."""

BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery"
STORAGE_READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
TENANT_SCOPES = (BIGQUERY_SCOPE, STORAGE_READ_SCOPE)
"""What a tenant token may be used for: BigQuery, and reading Cloud Storage objects. Even a stolen token cannot
write a bucket or call any other API, whatever roles the account is ever given."""

SOURCE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
"""Scope of the function's own token, used only to call the IAM Credentials API."""

TOKEN_LIFETIME_S = 3600
"""Lifetime of a minted tenant token (the API's default and maximum without an org policy exception)."""

# Tenant ids as shared.tenancy.tenants.TENANT_ID accepts them; anything else never names an account.
_TENANT_ID = re.compile(r"[a-z][a-z0-9_]{2,49}")
ACCOUNT_ID = re.compile(r"[a-z][-a-z0-9]{4,28}[a-z0-9]")
"""What IAM accepts as an account id (CreateServiceAccountRequest.account_id): 6-30 characters."""


def tenant_service_account_id(tenant_id: str) -> str:
    """The account id of `tenant_id`'s service account: `cdp-t-<tenant, '_' as '-'>` when it is a valid id of at
    most 30 characters; otherwise the first 15 characters of that name (trailing '-' trimmed), '-' and 8 hex digits of
    sha256(tenant_id). Same rule as terraform/modules/tenant_config/main.tf."""
    if not isinstance(tenant_id, str) or not _TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"invalid tenant id {tenant_id!r}: it names no service account")
    name = tenant_id.replace("_", "-")
    readable = f"{ACCOUNT_PREFIX}{name}"
    if len(readable) <= MAX_ACCOUNT_ID and not readable.endswith("-"):
        return readable
    digest = hashlib.sha256(tenant_id.encode()).hexdigest()[:HASH_CHARS]
    return f"{ACCOUNT_PREFIX}{name[:READABLE_CHARS].strip('-')}-{digest}"


def tenant_service_account_email(project: str, tenant_id: str) -> str:
    """`<account id>@<project>.iam.gserviceaccount.com`, the email Terraform's `google_service_account` gets."""
    if not project or ":" in project:  # domain-scoped projects (example.com:p) have another email form: unsupported
        raise ValueError(f"project {project!r}: tenant service accounts need a plain project id")
    return f"{tenant_service_account_id(tenant_id)}@{project}.iam.gserviceaccount.com"


def impersonated_tenant_credentials(
    project: str, tenant_id: str, source: Credentials, iam_endpoint_override: str | None = None
) -> Credentials:
    """Credentials acting as `tenant_id`'s service account, minted with `source` (no network call until used).
    `iam_endpoint_override`: the full generateAccessToken URL, for a private endpoint (tests: a local fake)."""
    from google.auth import impersonated_credentials  # lazy: cold starts of functions that never need it

    credentials: Credentials = impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=source,
        target_principal=tenant_service_account_email(project, tenant_id),
        target_scopes=list(TENANT_SCOPES),
        lifetime=TOKEN_LIFETIME_S,
        iam_endpoint_override=iam_endpoint_override,
    )
    return credentials


_lock = threading.Lock()
_source: Credentials | None = None
_by_tenant: dict[tuple[str, str], Credentials] = {}


def tenant_credentials(settings: IdentitySettings, tenant_id: str) -> Credentials | None:
    """The credentials a tenant's BigQuery client and Cloud Storage reads must use: on the `gcp` runtime, its
    impersonated service account (one object per tenant and process, refreshed by google-auth when it expires);
    None on the `embedded` and `emulators` runtimes, whose emulators check no identity.

    The function's own Application Default Credentials are looked up once per process, on first use."""
    if settings.runtime != "gcp":
        return None
    key = (settings.project, tenant_id)
    global _source
    with _lock:
        cached = _by_tenant.get(key)
        if cached is not None:
            return cached
        if _source is None:
            import google.auth

            _source, _ = google.auth.default(scopes=list(SOURCE_SCOPES))  # type: ignore[no-untyped-call]
        credentials = _by_tenant[key] = impersonated_tenant_credentials(settings.project, tenant_id, _source)
        return credentials


def credentials_identity(credentials: Credentials | None) -> str:
    """Who a client acts as, for logs and errors: the impersonated (or service) account's email, else a description."""
    if credentials is None:
        return "application default credentials"
    email = getattr(credentials, "service_account_email", None)
    if isinstance(email, str) and email and email != "default":
        return email
    return type(credentials).__name__


def reset_tenant_credentials() -> None:
    """Forget the cached source and tenant credentials (tests)."""
    global _source
    with _lock:
        _source = None
        _by_tenant.clear()
