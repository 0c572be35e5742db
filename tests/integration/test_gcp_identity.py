"""On GCP, tenant X's BigQuery and Cloud Storage clients act as X's own service account, never as Y's or the function's.

Real google-auth and google-cloud clients throughout. The identity of a client is checked two ways: the credentials
object it holds (built from real Application Default Credentials, an `authorized_user` file: no network), and on the
wire: a local server plays the IAM Credentials API (generateAccessToken) and BigQuery's REST API, so the tests see
which account each token was minted for and which token each tenant's BigQuery request carried.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.adapters.gcp_identity import (
    ACCOUNT_ID,
    TENANT_SCOPES,
    impersonated_tenant_credentials,
    reset_tenant_credentials,
    tenant_credentials,
    tenant_service_account_email,
    tenant_service_account_id,
)
from shared.errors import TerminalError
from shared.runtime.context import Context, set_context
from shared.runtime.settings import Settings

PROJECT = "cdp-prod"
GCP = Settings(runtime="gcp", project=PROJECT, warehouse="bigquery")


@pytest.fixture
def adc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Application Default Credentials from a file, as `google.auth.default()` finds them (nothing is refreshed)."""
    key = tmp_path / "adc.json"
    key.write_text(
        json.dumps({"type": "authorized_user", "client_id": "fn", "client_secret": "s", "refresh_token": "r"})
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    reset_tenant_credentials()
    yield
    reset_tenant_credentials()


# ------------------------------------------------------------------------------------------------ credentials objects
def test_tenant_credentials_target_the_tenants_own_account_with_narrow_scopes(adc: None) -> None:
    acme, globex = tenant_credentials(GCP, "acme"), tenant_credentials(GCP, "globex")
    assert acme is not None and globex is not None
    assert acme.service_account_email == "cdp-t-acme@cdp-prod.iam.gserviceaccount.com"  # type: ignore[attr-defined]
    assert globex.service_account_email == "cdp-t-globex@cdp-prod.iam.gserviceaccount.com"  # type: ignore[attr-defined]
    for creds in (acme, globex):
        assert tuple(creds._target_scopes) == TENANT_SCOPES  # type: ignore[attr-defined]  # BigQuery + GCS read only
        source = creds._source_credentials  # type: ignore[attr-defined]
        assert source.client_id == "fn"  # the function's own Application Default Credentials mint the tokens
    assert tenant_credentials(GCP, "acme") is acme  # one per tenant and process: tokens are reused until they expire
    assert acme.token is None  # building them called nothing


def test_emulator_and_embedded_runtimes_use_no_tenant_identity(adc: None) -> None:
    for runtime in ("embedded", "emulators"):
        assert tenant_credentials(Settings(runtime=runtime, project=PROJECT), "acme") is None  # type: ignore[arg-type]


def test_tenant_clients_carry_their_tenants_identity_and_no_other(adc: None) -> None:
    warehouses = {
        t: BigQueryWarehouse(PROJECT, credentials=tenant_credentials(GCP, t), tenant_id=t) for t in ("acme", "globex")
    }
    for tenant, other in (("acme", "globex"), ("globex", "acme")):
        wh = warehouses[tenant]
        client_credentials = wh._client._credentials
        assert client_credentials is tenant_credentials(GCP, tenant)
        assert client_credentials.service_account_email == tenant_service_account_email(PROJECT, tenant)
        assert client_credentials.service_account_email != tenant_service_account_email(PROJECT, other)
        assert wh.identity == tenant_service_account_email(PROJECT, tenant)
        assert wh.job_labels == {"app": "cdp", "tenant": tenant, "identity": f"cdp-t-{tenant}"}
    emulated = BigQueryWarehouse(PROJECT, endpoint="http://127.0.0.1:1", tenant_id="acme")
    assert emulated.identity == "anonymous (emulator)" and "identity" not in emulated.job_labels


def test_tenant_storage_clients_carry_their_tenants_identity(adc: None) -> None:
    from shared.processors.file_sources import gcs_client

    previous = set_context(Context(GCP))
    try:
        acme = gcs_client(PROJECT, tenant_credentials(GCP, "acme"))
        globex = gcs_client(PROJECT, tenant_credentials(GCP, "globex"))
    finally:
        set_context(previous)
    assert acme is not globex
    assert acme._credentials.service_account_email == tenant_service_account_email(PROJECT, "acme")
    assert globex._credentials.service_account_email == tenant_service_account_email(PROJECT, "globex")


# ------------------------------------------------------------------------------------------------ on the wire
class _FakeGoogle(BaseHTTPRequestHandler):
    """generateAccessToken for the accounts in `accounts` (403 otherwise, as IAM answers) and BigQuery's dataset and
    table GETs: a dataset exists, a table does not. Every request is recorded with its Authorization header."""

    accounts: set[str] = set()
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        account = re.fullmatch(r"/v1/projects/-/serviceAccounts/(.+):generateAccessToken", self.path)
        self.seen.append({"path": self.path, "auth": self.headers["Authorization"], "body": body})
        if account and account.group(1) in self.accounts:
            self._reply(200, {"accessToken": f"token-for-{account.group(1)}", "expireTime": "2099-01-01T00:00:00Z"})
        else:
            self._reply(
                403,
                {
                    "error": {
                        "code": 403,
                        "message": "Permission 'iam.serviceAccounts.getAccessToken' "
                        "denied on resource (or it may not exist).",
                        "status": "PERMISSION_DENIED",
                    }
                },
            )

    def do_GET(self) -> None:
        self.seen.append({"path": self.path.split("?")[0], "auth": self.headers["Authorization"]})
        dataset = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets/([^/?]+)", self.path.split("?")[0])
        if dataset:
            ref = {"projectId": dataset.group(1), "datasetId": dataset.group(2)}
            self._reply(200, {"kind": "bigquery#dataset", "id": ":".join(ref.values()), "datasetReference": ref})
        else:
            self._reply(404, {"error": {"code": 404, "message": "Not found", "errors": [{"reason": "notFound"}]}})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_google(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _FakeGoogle.seen = []
    _FakeGoogle.accounts = {tenant_service_account_email(PROJECT, t) for t in ("acme", "globex")}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGoogle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", url)  # the client's own switch; credentials stay ours
    yield url
    server.shutdown()
    server.server_close()


def _tenant_warehouse(url: str, tenant_id: str) -> BigQueryWarehouse:
    from google.oauth2.credentials import Credentials as FunctionToken

    email = tenant_service_account_email(PROJECT, tenant_id)
    credentials = impersonated_tenant_credentials(
        PROJECT,
        tenant_id,
        FunctionToken(token="function-token"),  # the function's own identity, already valid
        iam_endpoint_override=f"{url}/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
    )
    return BigQueryWarehouse(PROJECT, credentials=credentials, tenant_id=tenant_id, retry_deadline_s=2)


def test_each_tenants_bigquery_requests_carry_a_token_minted_for_its_own_account(fake_google: str) -> None:
    acme, globex = _tenant_warehouse(fake_google, "acme"), _tenant_warehouse(fake_google, "globex")
    acme.require_dataset("acme_sales")
    assert not acme.table_exists("acme_sales.orders")
    globex.require_dataset("globex_costs")

    mints = [r for r in _FakeGoogle.seen if r["path"].endswith(":generateAccessToken")]
    assert [m["path"].split("/")[-1].split(":")[0] for m in mints] == [
        "cdp-t-acme@cdp-prod.iam.gserviceaccount.com",  # once per tenant: the token is reused until it expires
        "cdp-t-globex@cdp-prod.iam.gserviceaccount.com",
    ]
    assert all(m["auth"] == "Bearer function-token" for m in mints)  # minted by the function's own identity
    assert all(m["body"]["scope"] == list(TENANT_SCOPES) for m in mints)
    bigquery = [r for r in _FakeGoogle.seen if r["path"].startswith("/bigquery/")]
    by_token = {(r["path"].split("/")[6], r["auth"]) for r in bigquery}
    assert by_token == {
        ("acme_sales", "Bearer token-for-cdp-t-acme@cdp-prod.iam.gserviceaccount.com"),
        ("globex_costs", "Bearer token-for-cdp-t-globex@cdp-prod.iam.gserviceaccount.com"),
    }


def test_a_tenant_without_an_account_fails_and_never_falls_back_to_the_functions_identity(fake_google: str) -> None:
    ghost = _tenant_warehouse(fake_google, "ghost")
    with pytest.raises(TerminalError, match=r"cannot act as cdp-t-ghost@cdp-prod\.iam\.gserviceaccount\.com"):
        ghost.require_dataset("ghost_metadata")
    assert not [r for r in _FakeGoogle.seen if r["path"].startswith("/bigquery/")]  # nothing reached BigQuery


# ------------------------------------------------------------------------------------------------ naming rule
def test_account_ids_are_valid_distinct_and_readable_when_they_fit() -> None:
    assert tenant_service_account_id("acme") == "cdp-t-acme"
    assert tenant_service_account_id("big_retail_co") == "cdp-t-big-retail-co"
    assert tenant_service_account_id("x" * 24) == "cdp-t-" + "x" * 24  # exactly 30
    long_ids = [
        "x" * 25,
        "x" * 50,
        "x" * 24 + "_",
        "abc_",
        "abcdefghijklmn_x_yyyyyyyyyyyyy",
        "abcdefghijklmn__" + "z" * 20,
    ]
    shortened = [tenant_service_account_id(t) for t in long_ids]
    for tenant_id, account_id in zip(long_ids, shortened, strict=True):
        assert ACCOUNT_ID.fullmatch(account_id), account_id
        assert re.fullmatch(r"cdp-t-[a-z0-9-]{1,15}-[0-9a-f]{8}", account_id), account_id
        assert account_id.startswith("cdp-t-" + tenant_id.replace("_", "-")[:15].rstrip("-"))
    assert len(set(shortened)) == len(shortened)


@pytest.mark.parametrize("bad", ["Acme", "ab", "a-b", "1abc", "acme.x", "x" * 51, ""])
def test_invalid_tenant_ids_name_no_account(bad: str) -> None:
    with pytest.raises(ValueError):
        tenant_service_account_id(bad)


def test_domain_scoped_projects_are_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError):
        tenant_service_account_email("example.com:proj", "acme")
