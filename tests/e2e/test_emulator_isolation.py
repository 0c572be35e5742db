"""Issue 13 (tenant isolation) on the emulator stack: the attack corpus of reliability/attacks/ sent by an attacker
tenant through the api function served by functions-framework, runs executed by the worker functions behind Pub/Sub
emulator push subscriptions, state in the Firestore emulator, data in bqemulator, gs:// in a GCS emulator.

What the attacker can see is judged for the victim's markers (reliability/attacks/judge.py): its canaries (a row of
the victim's table written by the victim's own pipeline, an object in a bucket the attacker never declared, files on
the machine), the victim's name and table name, the admin token and the victim's key, local paths and DuckDB's
settings catalog. A marker the attacker wrote into its own payload does not count.

- The SQL classes (1 table functions, 2 catalog disclosure, 3 errors that leak, 9 parser differentials) and the step
  classes (4 reserved datasets, 7 files and buckets): each attack is its own pipeline file next to a control step
  (the attacker's benign own-data query), executed through the API. A 400 must not be about the control step and
  must carry no marker; an attack that gets past validation runs to the end and is judged on its stage and output
  table, and its control must have copied the attacker's own rows (else nothing was measured and the test fails).
- Full runs per class that reaches run time: reserved destination through a run parameter (refused at admission),
  a WITH RECURSIVE running far past its step timeout (TIMED_OUT; bounded, see that test), SSRF forms (a local sink
  records any connection that got through), an undeclared gs:// bucket named by a parameter, and catalog / foreign
  table names rendered from parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import os
import re
import secrets
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.local_stack import http_json
from reliability.attacks.ground import _files as plant_files  # the drill's files, canaries and symlinks
from reliability.attacks.judge import Attack, Markers, Verdict, describe, judge_run, tally
from reliability.attacks.sql_corpus import (
    ATTACKER,
    VICTIM,
    VICTIM_TABLE,
    Paths,
    catalog_attacks,
    control_sql,
    error_attacks,
    table_function_attacks,
)
from reliability.attacks.step_corpus import (
    VICTIM_BUCKET,
    VICTIM_OBJECT,
    file_attacks,
    reserved_attacks,
    ssrf_urls,
)
from shared.lifecycle.provisioning import provision_tenant
from tests.conftest import REPO
from tests.e2e.conftest import stack_context

pytestmark = [pytest.mark.emulator, pytest.mark.bqemulator, pytest.mark.timeout(420)]

OWN_BUCKET = "mallory-drop"
OWN_OBJECT = "in/own.csv"
OWN_ROWS = 5
"""Rows of the attacker's own table `mallory_own.data` (label 'own-row'): what every control step copies."""
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"})
STAGE_TERMINAL = TERMINAL | {"SKIPPED"}
RUN_BOUND_S = 150.0
BURN_LEVELS = 1_000_000
"""Levels of the recursive query: about 13 s in bqemulator on 2 cores, four times the step's 3 s timeout."""
_LOCAL_PATH = re.compile(r"(?<![\w:/.~<-])/(?:[\w.+-]+/)+[\w.+-]*")
"""An absolute path of two or more segments (not the path of a URL, not `a/b`)."""

GOOGLESQL_OWN_DATA = frozenset({"FOR SYSTEM_TIME AS OF", "COLLATE with a locale"})
"""Corpus entries (class 9) that are parser differentials only where the product transpiles to DuckDB (embedded):
valid GoogleSQL over the attacker's own table, which BigQuery (bqemulator) runs. Judged here as no-leak."""

_GCS_HOST: list[str] = []


def STACK_EXTRA_ENV(root: Path) -> dict[str, str]:
    """Point every function of the stack at this module's GCS emulator (started before the stack)."""
    return {"STORAGE_EMULATOR_HOST": _GCS_HOST[0]} if _GCS_HOST else {}


# -- servers of this module: a GCS emulator holding the victim's bucket, an HTTP sink that records connections ----


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", autouse=True)
def gcs_canaries() -> Iterator[dict[str, str]]:
    """The victim's private bucket holds a canary object; the attacker's declared bucket holds its own rows."""
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=VICTIM_BUCKET)
    server.start()
    host = f"http://127.0.0.1:{port}"
    canary = f"CNRY-BUCKET-{secrets.token_hex(6)}"
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORAGE_EMULATOR_HOST", host)
            from google.cloud import storage  # type: ignore[attr-defined]

            client = storage.Client(project="isolation")
            client.bucket(VICTIM_BUCKET).blob(VICTIM_OBJECT).upload_from_string(f"secret\n{canary}\n")
            client.create_bucket(OWN_BUCKET).blob(OWN_OBJECT).upload_from_string("label,n\nown-gcs,1\n")
        _GCS_HOST[:] = [host]
        yield {"victim bucket object": canary}
    finally:
        _GCS_HOST.clear()
        server.stop()


class _Sink(http.server.ThreadingHTTPServer):
    requests: list[str]
    canary: str


class _SinkHandler(http.server.BaseHTTPRequestHandler):
    server: _Sink

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path.startswith("/redirect/"):  # 302 to the same sink through an address form refused everywhere
            self.send_response(302)
            self.send_header("Location", f"http://{self.path.removeprefix('/redirect/')}")
            self.end_headers()
            return
        value = "own-http" if self.path == "/ok" else self.server.canary
        body = json.dumps([{"v": value}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def _sink() -> Iterator[_Sink]:
    server = _Sink(("127.0.0.1", 0), _SinkHandler)
    server.requests, server.canary = [], f"CNRY-SSRF-{secrets.token_hex(6)}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# -- the ground: attacker and victim onboarded on the stack, the victim's canaries in place --------------------------


@dataclass
class Ground:
    stack: Any
    config_dir: Path
    paths: Paths
    canaries: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)
    counter: int = 0
    context: Any = None

    @property
    def pipelines(self) -> Path:
        return self.config_dir / ATTACKER / "pipelines"

    def api(self, method: str, path: str, body: Any = None, tenant: str = ATTACKER) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"X-API-Key": self.keys[tenant], "X-User-ID": "isolation"}
        return http_json(method, f"{self.stack.api_url}/api/v1/tenants/{tenant}{path}", data, headers, timeout_s=60)

    def execute(self, pipeline_id: str, parameters: Mapping[str, Any] | None = None, tenant: str = ATTACKER) -> Any:
        """Execute; a 429/503 (the plan's concurrency, emulator contention) is retried, anything else returned."""
        body = {"pipeline_id": pipeline_id, "parameters": dict(parameters or {})}
        deadline = time.monotonic() + 60
        while True:
            status, answer = self.api("POST", "/pipelines/execute", body, tenant)
            if status not in (429, 503) or time.monotonic() > deadline:
                return status, answer
            time.sleep(1.0)

    def view(self, run_id: str, tenant: str = ATTACKER) -> dict[str, Any]:
        status, body = self.api("GET", f"/metadata/executions/{run_id}", tenant=tenant)
        assert status == 200, body
        return dict(body)

    def wait(self, run_ids: list[str], tenant: str = ATTACKER, bound_s: float = RUN_BOUND_S) -> dict[str, Any]:
        """The terminal view of every run (fails naming the runs still not terminal after `bound_s`)."""
        views: dict[str, Any] = {}
        deadline = time.monotonic() + bound_s
        pending = list(run_ids)
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                view = self.view(run_id, tenant)
                if view["status"] in TERMINAL:
                    views[run_id] = view
                    pending.remove(run_id)
            if pending:
                time.sleep(0.5)
        assert not pending, f"runs not terminal after {bound_s:.0f} s: {pending}"
        return views

    def write_pipeline(self, doc: dict[str, Any], tenant: str = ATTACKER) -> str:
        folder = self.config_dir / tenant / "pipelines"
        folder.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=10_000)
        (folder / f"{doc['pipeline_id']}.yaml").write_text(text, encoding="utf-8")
        # As an operator does after adding a pipeline (`cloudact tenants provision`): runs never create datasets.
        provision_tenant(self.context or self._new_context(), tenant)
        return str(doc["pipeline_id"])

    def _new_context(self) -> Any:
        self.context = stack_context(self.stack)
        return self.context

    def new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:03d}"

    def own_file_paths_masked(self, text: str) -> str:
        """`text` with the absolute path of the attacker's own pipeline folder replaced: validation issues name it
        (`<config dir>/mallory/pipelines/x.yaml:3:5: ...`), a disclosure pinned apart by
        test_validation_issues_name_no_host_path so the corpus judges everything else."""
        return text.replace(str(self.pipelines) + "/", "<pipelines>/")

    def warehouse(self, tenant: str = ATTACKER) -> Any:
        return (self.context or self._new_context()).warehouse_for(tenant)

    def table_text(self, table: str) -> str:
        wh = self.warehouse()
        if not wh.table_exists(table):
            return ""
        return json.dumps(wh.query(f"SELECT * FROM {table}").to_pylist(), default=str)

    def markers(self, extra: Mapping[str, str] = {}) -> Markers:
        root = Path(self.stack.env["CLOUDACT_HOME"]).parent
        home = str(Path.home())
        return Markers(
            {
                **self.canaries,
                **extra,
                "admin token": self.stack.env["CLOUDACT_ADMIN_TOKEN"],
                "api key of victimco": self.keys[VICTIM],
                "victim tenant name": VICTIM,
                "victim table name": VICTIM_TABLE.split(".")[1],
                "victim bucket": VICTIM_BUCKET,
                "stack folder path": str(root),
                "repository path": str(REPO),
                "user home path": f"{home}/" if len(home) > 1 else "",
                "/etc/passwd content": "root:x:0:0",
                "settings catalog": "enable_external_access",
            }
        )


def local_paths(text: str, payload: str) -> list[str]:
    """Absolute local paths in `text` that the payload did not bring (API routes are not paths on the machine)."""
    return sorted(
        {p for p in _LOCAL_PATH.findall(text) if p not in payload and not p.startswith(("/api/", "/computeMetadata"))}
    )


def _control_step(table: str) -> dict[str, Any]:
    return {
        "step_id": "ctl",
        "ps_type": "bigquery.query",
        "source": {"query": control_sql()},
        "destination": {"dataset": "atk", "table": table, "write_mode": "truncate"},
    }


def _onboard(stack: Any, tenant: str) -> str:
    admin = {"X-Admin-Token": stack.env["CLOUDACT_ADMIN_TOKEN"], "X-User-ID": "isolation"}
    body = json.dumps({"tenant_id": tenant, "plan": "enterprise"}).encode()
    status, created = http_json("POST", f"{stack.api_url}/api/v1/admin/tenants", body, admin)
    assert status == 201, created
    return str(created["api_key"]["api_key"])


@pytest.fixture(scope="module")
def ground(emulator_stack: Any, gcs_canaries: dict[str, str]) -> Iterator[Ground]:
    """Attacker `mallory` (declares only its own bucket) and victim `victimco`, onboarded through the api function;
    each seeds its own table with its own pipeline; the victim's table holds a canary."""
    config_dir = Path(emulator_stack.env["CLOUDACT_CONFIG_DIR"])
    home = Path(emulator_stack.env["CLOUDACT_HOME"])
    tag = secrets.token_hex(6)
    canaries = {
        "victim table canary": f"CNRY-VAULT-{tag}",
        "victim landing file": f"CNRY-LANDING-{tag}",
        "file outside tenants": f"CNRY-FILE-{tag}",
        **gcs_canaries,
    }
    for tenant, extra in ((VICTIM, ""), (ATTACKER, f"sources:\n  gcs_buckets: [{OWN_BUCKET}]\n")):
        (config_dir / tenant / "pipelines").mkdir(parents=True, exist_ok=True)
        (config_dir / tenant / "tenant.yaml").write_text(
            f"tenant_id: {tenant}\nname: {tenant}\nplan: enterprise\n{extra}", encoding="utf-8"
        )
    g = Ground(emulator_stack, config_dir, plant_files(home, home.parent, canaries), canaries)
    for tenant in (VICTIM, ATTACKER):
        g.keys[tenant] = _onboard(emulator_stack, tenant)
    seeds = {
        VICTIM: ("vault", VICTIM_TABLE.split(".")[1], f"SELECT '{canaries['victim table canary']}' AS secret, 1 AS id"),
        ATTACKER: ("own", "data", "SELECT 'own-row' AS label, x AS n FROM UNNEST(GENERATE_ARRAY(1, 5)) AS x"),
    }
    runs = {}
    for tenant, (dataset, table, sql) in seeds.items():
        step = {
            "step_id": "seed",
            "ps_type": "bigquery.query",
            "source": {"query": sql},
            "destination": {"dataset": dataset, "table": table, "write_mode": "truncate"},
        }
        g.write_pipeline({"pipeline_id": "seed", "steps": [step]}, tenant)
        status, body = g.execute("seed", tenant=tenant)
        assert status == 202, body
        runs[tenant] = body["run_id"]
    for tenant, run_id in runs.items():
        view = g.wait([run_id], tenant)[run_id]
        assert view["status"] == "SUCCEEDED", view
    # Controls of the ground: the canary is really there (a leak-free result is not a canary that never existed).
    vault = g.warehouse(VICTIM).query(f"SELECT secret FROM {VICTIM_TABLE}")
    assert vault.to_pylist() == [{"secret": canaries["victim table canary"]}]
    assert g.table_text(f"{ATTACKER}_own.data").count("own-row") == OWN_ROWS
    try:
        yield g
    finally:
        g.context.close()


# -- the corpus through the API ------------------------------------------------------------------------------------


@dataclass
class Sent:
    attack: Attack
    pipeline_id: str
    run_id: str | None = None
    verdict: Verdict | None = None


def _attack_pipeline(g: Ground, attack: Attack) -> str:
    pipeline_id = g.new_id("atk")
    step: dict[str, Any] = {
        "step_id": "a",
        "timeout_minutes": 1,
        "retries": {"max_attempts": 1},
        **json.loads(json.dumps(attack.step)),
    }
    dest = step.get("destination")
    if isinstance(dest, dict) and dest.get("dataset") == "atk" and dest.get("table") in ("x", "h", "f", "t"):
        dest["table"] = f"{pipeline_id}_a"
    doc = {"pipeline_id": pipeline_id, "steps": [_control_step(f"{pipeline_id}_ctl"), step], **attack.pipeline}
    return g.write_pipeline(doc)


def send_corpus(g: Ground, attacks: list[Attack], markers: Markers) -> tuple[list[Verdict], list[str]]:
    """Every attack as its own pipeline (control + attack) through execute; survivors run to the end and are judged.
    Returns the verdicts and the problems that make the measurement void (a control refused or without its rows)."""
    sent = [Sent(a, _attack_pipeline(g, a)) for a in attacks]
    void: list[str] = []
    for s in sent:
        status, body = g.execute(s.pipeline_id, s.attack.parameters)
        text = g.own_file_paths_masked(json.dumps(body, ensure_ascii=False))
        payload = s.attack.payload_text()
        if status in (200, 202):
            s.run_id = str(body["run_id"])
            continue
        leaks = markers.found(text, payload) + [f"local path {p}" for p in local_paths(text, payload)]
        issues = [str(i) for i in (body.get("details") or {}).get("issues") or []]
        if status == 400 and any(": steps[0]" in i for i in issues):
            void.append(f"{s.attack.name}: the control step was refused: {issues[:2]}")
        if status != 400:
            s.verdict = Verdict(s.attack, "breached", f"execute {status}", ["not a 400", *leaks], text[:200])
        else:
            s.verdict = Verdict(s.attack, "breached" if leaks else "blocked", "execute 400", leaks, text[:200])
    views = g.wait([s.run_id for s in sent if s.run_id])
    for s in sent:
        if s.run_id is None:
            continue
        view = views[s.run_id]
        stages = {st["stage_id"]: st for st in view.get("stages") or []}
        ctl, attack_stage = stages.get("ctl", {}), stages.get("a", {})
        own = g.table_text(f"{ATTACKER}_atk.{s.pipeline_id}_ctl")
        if ctl.get("status") != "SUCCEEDED" or own.count("own-row") != OWN_ROWS:
            void.append(f"{s.attack.name}: control {ctl.get('status')}: {str(ctl.get('error'))[:160]}")
        run_text = json.dumps({k: view.get(k) for k in ("status", "error")}, default=str)
        seen = "\n".join(
            [json.dumps(attack_stage, default=str), run_text, g.table_text(f"{ATTACKER}_atk.{s.pipeline_id}_a")]
        )
        paths = [f"local path {p}" for p in local_paths(seen, s.attack.payload_text())]
        s.verdict = judge_run(s.attack, str(attack_stage.get("status")), seen, markers, paths)
    return [s.verdict for s in sent if s.verdict is not None], void


def _assert_all_blocked(verdicts: list[Verdict], void: list[str], expected: int) -> None:
    overall, per_class = tally(verdicts)
    summary = "; ".join(f"class {k}: {t.render()}" for k, t in sorted(per_class.items()))
    refused = sum(v.stage == "execute 400" for v in verdicts)
    print(f"emulator isolation: {overall.render()}; {refused} refused by execute, the rest ran ({summary})")
    assert not void, "controls failed, nothing measured:\n" + "\n".join(void[:10])
    assert len(verdicts) == expected
    breaches = [describe(v) for v in verdicts if v.outcome not in ("blocked", "ran-clean")]
    assert not breaches, f"{len(breaches)} attacks got through on the emulator stack:\n" + "\n".join(breaches)
    # `ran-clean` is allowed only to attacks of the no-leak kind (judge_run calls a refuse-kind SUCCEEDED a breach).
    assert all(v.attack.expect == "no-leak" for v in verdicts if v.outcome == "ran-clean")


def test_sql_attack_classes_are_blocked_through_the_api(ground: Ground) -> None:
    """Classes 1, 2, 3 and 9: table functions, catalogs, leaky errors and parser differentials."""
    started = time.monotonic()
    attacks = table_function_attacks(ground.paths) + catalog_attacks() + error_attacks(ground.paths)
    assert len(attacks) > 150
    attacks = [dataclasses.replace(a, expect="no-leak") if a.name in GOOGLESQL_OWN_DATA else a for a in attacks]
    verdicts, void = send_corpus(ground, attacks, ground.markers())
    _assert_all_blocked(verdicts, void, len(attacks))
    print(f"emulator isolation: {len(attacks)} SQL attacks in {time.monotonic() - started:.1f}s")


def test_reserved_dataset_and_file_attacks_are_blocked_through_the_api(ground: Ground) -> None:
    """Classes 4 and 7 as step definitions: reserved or case-variant destinations, local paths, literal buckets."""
    attacks = reserved_attacks() + file_attacks(ground.paths)
    verdicts, void = send_corpus(ground, attacks, ground.markers())
    _assert_all_blocked(verdicts, void, len(attacks))
    wrote = _pwn_tables(ground)
    assert not wrote, f"attacks wrote into reserved or foreign datasets: {wrote}"


def _pwn_tables(g: Ground) -> list[str]:
    """`pwn_*` / `_cloudact_pwn*` tables (what reserved_attacks write) in a reserved or victim dataset of the project:
    listed with a client of its own, not through a tenant's warehouse (which lists its own datasets only)."""
    client = _bigquery_client(g)
    found = []
    for dataset in client.list_datasets():
        name = unicodedata.normalize("NFKC", dataset.dataset_id).casefold().replace("\u200b", "")
        for table in client.list_tables(dataset.reference):
            reserved = "metadata" in name or name.startswith(f"{VICTIM}_") or table.table_id.startswith("_cloudact")
            if reserved and table.table_id.startswith(("pwn_", "_cloudact_pwn")):
                found.append(f"{dataset.dataset_id}.{table.table_id}")
    return found


# -- full runs, one per class that reaches run time -----------------------------------------------------------------


def _stage_texts(view: Mapping[str, Any]) -> dict[str, str]:
    return {str(s["stage_id"]): json.dumps(s, default=str) for s in view.get("stages") or []}


def _assert_clean(text: str, markers: Markers, payload: str, what: str) -> None:
    leaks = markers.found(text, payload)
    paths = local_paths(text, payload)
    assert not leaks and not paths, f"{what}: leaked {leaks} {paths}: {text[:400]}"


def test_reserved_destination_from_a_run_parameter_is_refused_at_admission(ground: Ground) -> None:
    step = {
        "step_id": "w",
        "ps_type": "bigquery.query",
        "source": {"query": control_sql()},
        "destination": {"dataset": "{ds}", "table": "pwn_param", "write_mode": "append"},
    }
    doc = {"pipeline_id": "reserved_param", "parameters": {"ds": {"type": "string", "required": True}}, "steps": [step]}
    ground.write_pipeline(doc)
    markers = ground.markers()
    for value in ("metadata", "Metadata", "METADATA", "metadata "):
        status, body = ground.execute("reserved_param", {"ds": value})
        assert status == 400, (value, body)
        _assert_clean(json.dumps(body), markers, json.dumps(doc), f"ds={value!r}")
    # Control: the same pipeline with an ordinary dataset is admitted and writes there (once provisioned by name: a
    # dataset a run parameter names is not derivable from the YAML, and runs never create datasets).
    ground.warehouse().create_dataset(f"{ATTACKER}_atk2")
    status, body = ground.execute("reserved_param", {"ds": "atk2"})
    assert status == 202, body
    view = ground.wait([body["run_id"]])[body["run_id"]]
    assert view["status"] == "SUCCEEDED", view
    assert ground.table_text(f"{ATTACKER}_atk2.pwn_param").count("own-row") == OWN_ROWS
    assert not [t for t in _pwn_tables(ground) if "pwn_param" in t]


def _bigquery_client(g: Ground) -> Any:
    """A client of the test's own on bqemulator (not a tenant's warehouse)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project=g.stack.env["CLOUDACT_PROJECT"],
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=os.environ["CLOUDACT_BIGQUERY_ENDPOINT"]),
    )


def test_recursive_query_past_its_timeout_is_timed_out_without_leaking(ground: Ground) -> None:
    """Class 5 at run time: TIMED_OUT, the run's view clean, nothing written, and the tenant served afterwards.

    The recursion is bounded (BURN_LEVELS): bqemulator runs a query inside its jobs.insert call, on its request loop,
    and answers jobs.cancel with a no-op, so an unbounded one would hold it, for every tenant and every later test,
    for ever. How long it stayed busy after TIMED_OUT is printed (the work outliving its time on this stack)."""
    sql = (
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < "
        f"{BURN_LEVELS}) SELECT COUNT(*) AS c FROM r"
    )
    step = {
        "step_id": "burn",
        "ps_type": "bigquery.query",
        "timeout_minutes": 0.05,
        "retries": {"max_attempts": 1},
        "source": {"query": sql},
        "destination": {"dataset": "atk", "table": "burn", "write_mode": "truncate"},
    }
    doc = {"pipeline_id": "burn", "steps": [step]}
    ground.write_pipeline(doc)
    started = time.monotonic()
    status, body = ground.execute("burn")
    assert status == 202, body
    view = ground.wait([body["run_id"]], bound_s=90)[body["run_id"]]
    timed_out = time.monotonic()
    client = _bigquery_client(ground)
    assert [r[0] for r in client.query("SELECT 1 AS one", timeout=120).result(timeout=120)] == [1]
    busy_after = time.monotonic() - timed_out
    stage = {s["stage_id"]: s for s in view["stages"]}["burn"]
    assert stage["status"] == "TIMED_OUT" and view["status"] == "TIMED_OUT", view
    # bqemulator finishes the statement (CREATE TABLE ... AS) after TIMED_OUT, so its table may appear: judged too.
    landed = ground.table_text(f"{ATTACKER}_atk.burn")
    seen = ground.own_file_paths_masked(json.dumps(view)) + landed
    _assert_clean(seen, ground.markers(), json.dumps(doc), "timed-out run")
    ctl = ground.write_pipeline({"pipeline_id": "after_burn", "steps": [_control_step("after_burn")]})
    status, body = ground.execute(ctl)
    assert status == 202, body
    after = ground.wait([body["run_id"]], bound_s=60)[body["run_id"]]
    assert after["status"] == "SUCCEEDED", after
    assert ground.table_text(f"{ATTACKER}_atk.after_burn").count("own-row") == OWN_ROWS
    print(
        f"emulator isolation: recursive query TIMED_OUT {timed_out - started:.1f}s after execute; "
        f"bqemulator busy with it {busy_after:.1f}s longer; its table written anyway: {bool(landed)}"
    )


def test_ssrf_forms_fail_and_never_connect(ground: Ground) -> None:
    def http_step(step_id: str, url: str) -> dict[str, Any]:
        return {
            "step_id": step_id,
            "ps_type": "http.extract",
            "retries": {"max_attempts": 1},
            "source": {"url": url, "timeout_seconds": 3, "retries": {"max_attempts": 1}},
            "destination": {"dataset": "atk", "table": f"ssrf_{step_id}", "write_mode": "truncate"},
            "config": {"schema": {"v": "STRING"}},
        }

    with _sink() as sink:
        port = sink.server_address[1]
        hit = f"{port}/hit"
        attacks = {
            # Address forms that reach this very sink if the guard lets them through (the sink records it).
            "mapped_loopback": f"http://[::ffff:127.0.0.1]:{hit}",
            "mapped_loopback_hex": f"http://[::ffff:7f00:1]:{hit}",
            "redirect_mapped": f"http://127.0.0.1:{port}/redirect/[::ffff:127.0.0.1]:{hit}",
            "redirect_mapped_hex": f"http://127.0.0.1:{port}/redirect/[::ffff:7f00:1]:{hit}",
            "redirect_metadata": f"http://127.0.0.1:{port}/redirect/169.254.169.254:{hit}",
            # The metadata server from run parameters (a decimal IPv4, part of its name), rendered at run time.
            "param_decimal": f"http://{{h1}}:{hit}",
            "param_name": f"http://metadata.{{h2}}.internal:{hit}",
        }
        # Every form of the drill's corpus aimed at the metadata address.
        for i, url in enumerate(ssrf_urls().values()):
            attacks[f"form{i}"] = url.format(port=port)
        steps = [http_step("ctl", f"http://127.0.0.1:{port}/ok")]
        steps += [http_step(name, url) for name, url in attacks.items()]
        parameters = {"h1": {"type": "string", "required": True}, "h2": {"type": "string", "required": True}}
        doc = {"pipeline_id": "ssrf", "parameters": parameters, "steps": steps}
        ground.write_pipeline(doc)
        status, body = ground.execute("ssrf", {"h1": "2852039166", "h2": "google"})
        assert status == 202, body
        view = ground.wait([body["run_id"]])[body["run_id"]]
        requests = list(sink.requests)
        markers = ground.markers({"ssrf sink canary": sink.canary})
    stages = {s["stage_id"]: s for s in view["stages"]}
    assert stages["ctl"]["status"] == "SUCCEEDED" and "/ok" in requests, stages["ctl"]  # the sink is reachable
    assert ground.table_text(f"{ATTACKER}_atk.ssrf_ctl").count("own-http") == 1
    assert "/hit" not in requests, f"a refused address form was connected to: {requests}"
    got_through = {n: stages[n]["status"] for n in attacks if stages[n]["status"] != "FAILED"}
    assert not got_through, got_through
    texts = _stage_texts(view)
    for name in attacks:
        assert re.search(r"refused|not allowed", str(stages[name]["error"])), stages[name]  # the guard said no
        seen = texts[name] + ground.table_text(f"{ATTACKER}_atk.ssrf_{name}")
        _assert_clean(seen, markers, json.dumps(doc), f"ssrf {name}")


def test_undeclared_bucket_from_a_parameter_is_refused_at_run_time(ground: Ground) -> None:
    def load(step_id: str, path: str) -> dict[str, Any]:
        return {
            "step_id": step_id,
            "ps_type": "file.load",
            "retries": {"max_attempts": 1},
            "source": {"path": path, "format": "csv"},
            "destination": {"dataset": "atk", "table": f"gs_{step_id}", "write_mode": "truncate"},
        }

    owner, _, rest = VICTIM_BUCKET.partition("-")
    steps = [
        load("ctl", f"gs://{OWN_BUCKET}/{OWN_OBJECT}"),  # declared in its tenant.yaml: read
        load("victim", f"gs://{{b}}-{rest}/{VICTIM_OBJECT}"),
        load("victim_glob", f"gs://{{b}}-{rest}/exports/*.csv"),
    ]
    doc = {"pipeline_id": "gs_read", "parameters": {"b": {"type": "string", "required": True}}, "steps": steps}
    ground.write_pipeline(doc)
    # Both values pass admission's path rule (a bucket name carries '-'): with `owner` the path renders exactly the
    # victim's bucket, with the whole name another undeclared one. The step refuses both before any read.
    for value in (owner, VICTIM_BUCKET):
        status, body = ground.execute("gs_read", {"b": value})
        assert status == 202, body
        view = ground.wait([body["run_id"]])[body["run_id"]]
        stages = {s["stage_id"]: s for s in view["stages"]}
        assert stages["ctl"]["status"] == "SUCCEEDED", stages["ctl"]
        assert ground.table_text(f"{ATTACKER}_atk.gs_ctl").count("own-gcs") == 1
        texts = _stage_texts(view)
        markers = ground.markers()
        for name in ("victim", "victim_glob"):
            assert stages[name]["status"] == "FAILED", stages[name]
            assert "not declared" in str(stages[name]["error"]), stages[name]
            seen = texts[name] + ground.table_text(f"{ATTACKER}_atk.gs_{name}")
            # The bucket's name is the attacker's own doing (its parameter): only the bucket's content would leak.
            _assert_clean(seen, markers.without([VICTIM_BUCKET]), json.dumps([doc, value]), name)


def test_catalog_and_foreign_names_rendered_at_run_time_do_not_leak(ground: Ground) -> None:
    """Table names that pass validation as placeholders and name a catalog, a system view or the victim's table
    (in the attacker's own datasets) once rendered: they may fail, and nothing of the catalog or the victim shows."""
    names = {
        "t_victim": ("SELECT * FROM {tenant_id}_own.{t_victim}", "ledger_q7x"),
        "t_tables": ("SELECT * FROM {tenant_id}_own.{t_tables}", "duckdb_tables"),
        "t_settings": ("SELECT * FROM {tenant_id}_own.{t_settings}", "duckdb_settings"),
        "t_master": ("SELECT * FROM {tenant_id}_own.{t_master}", "sqlite_master"),
        "d_vault": ("SELECT * FROM {tenant_id}_{d_vault}.ledger_q7x", "vault"),
        "d_schema": ("SELECT * FROM {tenant_id}_{d_schema}.tables", "information_schema"),
        "d_catalog": ("SELECT * FROM {tenant_id}_{d_catalog}.pg_tables", "pg_catalog"),
    }
    steps: list[dict[str, Any]] = [_control_step("rt_ctl")]
    for name, (sql, _) in names.items():
        steps.append(
            {
                "step_id": name,
                "ps_type": "bigquery.query",
                "retries": {"max_attempts": 1},
                "source": {"query": sql},
                "destination": {"dataset": "atk", "table": f"rt_{name}", "write_mode": "truncate"},
            }
        )
    parameters = {name: {"type": "string", "required": True} for name in names}
    doc = {"pipeline_id": "runtime_names", "parameters": parameters, "steps": steps}
    ground.write_pipeline(doc)
    values = {name: value for name, (_, value) in names.items()}
    status, body = ground.execute("runtime_names", values)
    assert status == 202, body
    view = ground.wait([body["run_id"]])[body["run_id"]]
    stages = {s["stage_id"]: s for s in view["stages"]}
    assert stages["ctl"]["status"] == "SUCCEEDED", stages["ctl"]
    assert ground.table_text(f"{ATTACKER}_atk.rt_ctl").count("own-row") == OWN_ROWS
    texts = _stage_texts(view)
    markers = ground.markers()
    for name in names:
        assert stages[name]["status"] in STAGE_TERMINAL, stages[name]
        seen = texts[name] + ground.table_text(f"{ATTACKER}_atk.rt_{name}")
        _assert_clean(seen, markers, json.dumps([doc, values]), name)  # names it gave itself do not count


def test_validation_issues_name_no_host_path(ground: Ground) -> None:
    step = {
        "step_id": "a",
        "ps_type": "bigquery.query",
        "source": {"query": "SELECT * FROM read_text('x')"},
        "destination": {"dataset": "atk", "table": "x", "write_mode": "truncate"},
    }
    ground.write_pipeline({"pipeline_id": "bad_step", "steps": [step]})
    status, body = ground.execute("bad_step")
    assert status == 400 and body["details"]["issues"], body
    text = json.dumps(body)
    assert "bad_step.yaml:" in text  # the issue names its file and position ...
    assert str(ground.config_dir) not in text and not local_paths(text, ""), text  # ... but no path on the host
