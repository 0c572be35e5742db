"""Tenant-vs-tenant attack drill (issue 13): an attacker tenant tries to read, write or outlast a victim tenant
through SQL, catalogs, errors, reserved datasets, time, YAML, URLs and files (corpus: reliability/attacks/).

Breached = a victim canary, the victim's name or objects, a local path, file content or a catalog shows up anywhere
the attacker can see (execute answers, its run views, its tables, its notifications, its own HTTP endpoint), or the
attack wrote into a reserved dataset or the victim's data, opened a connection to a metadata address, or left work
running past its time; also any attack of the `refuse` kind that ran to SUCCEEDED. Blocked = refused at validation
(loader, then execute 4xx end to end) or failed without leaking. Controls (a benign own-data query in every batch,
the victim reading its own canary, the network watch catching a planted connection) must pass, or the attacks they
vouch for are not measured.

`CLOUDACT_ATTACK_REPORT=<file>` writes every verdict as JSON.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from bench.tenants import has_tenancy
from reliability.attacks import bombs, netguard, outlive, runner
from reliability.attacks.ground import DISCLOSURE, SECRET_NAME, Ground, attack_ground
from reliability.attacks.judge import Attack, Markers, Outcome, Verdict, describe, tally
from reliability.attacks.sql_corpus import (
    ATTACKER,
    VICTIM,
    VICTIM_TABLE,
    catalog_attacks,
    error_attacks,
    table_function_attacks,
)
from reliability.attacks.step_corpus import file_attacks, other_channel_attacks, reserved_attacks, ssrf_attacks
from reliability.harness import Figure, NotMeasured, Options, figure, info, progress

NAME = "tenant attacks"


def corpus(ground: Ground, server: netguard.AttackerServer) -> list[Attack]:
    p = ground.paths
    attacks = table_function_attacks(p) + catalog_attacks() + error_attacks(p) + reserved_attacks()
    attacks += ssrf_attacks(server.base) + file_attacks(p) + other_channel_attacks(p, server.base)
    if not ground.gcs:
        attacks = [a for a in attacks if "gs://" not in a.payload_text().lower()]
    return attacks


def _setup_controls(ground: Ground, watch: list[tuple[str, int]]) -> dict[str, str]:
    """Name -> '' when the control passed, else why not."""
    out: dict[str, str] = {}
    put = ground.api("PUT", f"/secrets/{SECRET_NAME}", {"value": ground.canaries["victim secret"]}, tenant=VICTIM)
    out["victim secret stored"] = "" if put.status < 300 else f"PUT secret: {put.status}"
    runs = {}
    for tenant, pipeline in ((VICTIM, "seed_vault"), (ATTACKER, "seed_own")):
        response = ground.api("POST", "/pipelines/execute", {"pipeline_id": pipeline}, tenant=tenant)
        runs[tenant] = str(response.body.get("run_id", ""))
        if response.status != 202:
            out[f"{pipeline} executed"] = f"{response.status} {str(response.body)[:160]}"
    for tenant, run_id in runs.items():
        if run_id:
            view = ground.drill.wait_terminal([run_id], 60, tenant, ground.headers[tenant])[run_id]
            ok = view["status"] == "SUCCEEDED"
            out[f"{tenant} seed run SUCCEEDED"] = "" if ok else f"{view['status']}: {str(view.get('error'))[:160]}"
    vault = runner.table_text(ground.warehouse(VICTIM), VICTIM_TABLE)
    out["victim reads its own canary"] = "" if ground.canaries["victim table canary"] in vault else "canary not found"
    try:  # the network watch must see (and stop) a connection to the metadata address
        with socket.create_connection(("169.254.169.254", 80), timeout=2):
            pass
    except OSError:
        pass
    caught = ("169.254.169.254", 80) in watch
    watch[:] = [c for c in watch if c != ("169.254.169.254", 80)]
    out["network watch catches a metadata connection"] = "" if caught else "not seen"
    return out


def _harms(ground: Ground, attacks: list[Attack], watch: list[tuple[str, int]]) -> dict[str, list[str]]:
    """Effects outside the attacker's text, by attack name: metadata connections (matched by their port) and
    `pwn_*` tables found in reserved or victim datasets."""
    harms: dict[str, list[str]] = {}
    for host, port in watch:
        for a in attacks:
            if f":{port}/" in a.payload_text() or f"/{port}/" in a.payload_text():
                harms.setdefault(a.name, []).append(f"connected to {host}:{port}")
    for tenant in (ATTACKER, VICTIM):
        for schema, table in _tables(ground.warehouse(tenant)):
            if not table.startswith(("pwn_", "_cloudact_pwn")):
                continue
            plain = unicodedata.normalize("NFKC", schema).casefold().replace("\u200b", "").replace(" ", "")
            if "metadata" in plain or schema.startswith(VICTIM) or table.startswith("_cloudact"):
                for a in attacks:
                    if table in _destination_tables(a):
                        harms.setdefault(a.name, []).append(f"wrote {schema}.{table}")
    return harms


def _destination_tables(attack: Attack) -> set[str]:
    dest = attack.step.get("destination") or {}
    return {str(dest.get("table", "")), *(str(v) for v in (attack.pipeline.get("variables") or {}).values())}


def _tables(wh: Any) -> list[tuple[str, str]]:
    try:
        rows = wh.query("SELECT table_schema, table_name FROM information_schema.tables").to_pylist()
    except Exception:  # a locked-down warehouse may refuse the catalog; then only named tables are checked
        return []
    return [(str(r["table_schema"]), str(r["table_name"])) for r in rows]


def through_product(
    ground: Ground, attacks: list[Attack], markers: Markers, server: netguard.AttackerServer, watch: list[Any]
) -> tuple[list[Verdict], list[runner.Batch]]:
    verdicts: list[Verdict] = []
    all_batches = runner.batches(attacks, "atk")
    started: list[runner.Batch] = []
    for batch in all_batches:
        refused = runner.validate(ground, batch, markers)
        if not batch.control_ok:
            verdicts += [Verdict(a, "not-measured", f"control refused: {batch.note}") for a in batch.attacks]
            continue
        verdicts += list(refused.values())
        verdicts += runner.start(ground, batch, refused, markers)
        if batch.run_id:
            started.append(batch)
    views = runner.wait_runs(ground, [b.run_id for b in started if b.run_id])
    harms = _harms(ground, attacks, watch)
    seen_by_server = "\n".join(server.requests)
    extra = {a.name: seen_by_server for a in attacks if server.base in a.payload_text()}
    for batch in started:
        view = views.get(str(batch.run_id), {})
        if view.get("status") not in runner.TERMINAL:
            batch.note = f"run {batch.run_id} not terminal after {runner.RUN_BOUND_S:.0f} s"
        verdicts += runner.judge_batch(ground, batch, view, markers, harms, extra)
    return verdicts, all_batches


def direct_warehouse(ground: Ground, attacks: list[Attack], markers: Markers) -> list[Verdict]:
    """The SQL straight into the attacker's warehouse, no SQL check in front: other tenants' data must stay out of
    reach by construction. Judged on `markers` without DISCLOSURE (see ground.py); those are counted apart."""
    wh = ground.warehouse(ATTACKER)
    out = []
    for attack in attacks:
        if attack.direct_sql is None:
            continue
        sql = attack.direct_sql.replace("/tmp/x.duckdb", str(ground.tmp / "attached.duckdb"))
        try:
            text, status = json.dumps(wh.query(sql).to_pylist(), default=str), "SUCCEEDED"
        except Exception as exc:  # every refusal shape counts; its text is judged for leaks like a run's error
            text, status = f"{type(exc).__name__}: {exc}", "FAILED"
        leaks = markers.found(text, attack.payload_text() + sql)
        outcome: Outcome = "breached" if leaks else ("blocked" if status == "FAILED" else "ran-clean")
        out.append(Verdict(attack, outcome, f"direct {status}", leaks, text[:200]))
    return out


def yaml_bombs(ground: Ground, markers: Markers) -> list[Verdict]:
    klass = "6 YAML bombs"
    files = bombs.write_bombs(ground.pipelines)
    judged = bombs.judge_in_children(files)
    out = []
    for name, path in files.items():
        attack = Attack(klass, name, {"file": path.name, "bytes": path.stat().st_size})
        outcome, detail = judged.get(name, ("crash", "no answer"))
        if outcome != "refused":
            out.append(Verdict(attack, "breached", f"loader: {outcome}", [detail[:160]]))
            continue
        response = ground.api("POST", "/pipelines/execute", {"pipeline_id": path.stem})
        out.append(_execute_verdict(ground, attack, response))
    for path in files.values():
        path.unlink()
    param: dict[str, Any] = {"pipeline_id": "big_param", "parameters": {"p": {"type": "string", "default": "x"}}}
    param["steps"] = [{"step_id": "a", "ps_type": "debug.noop"}]
    (ground.pipelines / "big_param.yaml").write_text(json.dumps(param), encoding="utf-8")
    bodies = {
        "parameter value of 900 KB": {"pipeline_id": "big_param", "parameters": {"p": "z" * 900_000}},
        "5,000 undeclared parameters": {"pipeline_id": "big_param", "parameters": {f"q{i}": 1 for i in range(5000)}},
        "request body of 2 MB": {"pipeline_id": "big_param", "parameters": {"p": "z" * 2_000_000}},
    }
    for name, body in bodies.items():
        attack = Attack(klass, f"execute with {name}", {"body_bytes": len(json.dumps(body))})
        out.append(_execute_verdict(ground, attack, ground.api("POST", "/pipelines/execute", body)))
    return out


def _execute_verdict(ground: Ground, attack: Attack, response: Any) -> Verdict:
    if response.status in (200, 202):  # accepted: stop the run at once, the acceptance is the breach
        ground.api("POST", f"/metadata/executions/{response.body['run_id']}/cancel", {})
        return Verdict(attack, "breached", f"execute {response.status}", ["accepted"])
    if 400 <= response.status < 500:
        return Verdict(attack, "blocked", f"execute {response.status}")
    return Verdict(attack, "breached", f"execute {response.status}", ["server error"], str(response.body)[:160])


def work_outliving_time() -> list[Verdict]:
    klass = "5 work outlives its time"
    if not Path("/proc/self/stat").is_file():
        return [Verdict(Attack(klass, v, {}), "not-measured", "no /proc to read CPU from") for v in outlive.VARIANTS]
    out = []
    with tempfile.TemporaryDirectory(prefix="cloudact-outlive-") as tmp:
        for variant, step in outlive.VARIANTS.items():
            attack = Attack(klass, variant, {**step, "timeout_minutes": outlive.STEP_TIMEOUT_MIN})
            m = outlive.measure(variant, Path(tmp))
            note = f"busy {m.busy_cores:.2f} cores while running"
            if m.stage_status.startswith("execute answered 4"):
                out.append(Verdict(attack, "blocked", "execute refused it"))
            elif m.stage_status in ("FAILED", "CANCELLED") and m.idle_after_s is not None:
                out.append(Verdict(attack, "blocked", f"stage {m.stage_status}: {m.error[:80]}"))
            elif m.stage_status != "TIMED_OUT" or m.busy_cores < 0.5:
                out.append(Verdict(attack, "not-measured", f"stage {m.stage_status}; {note}"))
            elif m.idle_after_s is None:
                out.append(
                    Verdict(attack, "breached", "TIMED_OUT", [f"CPU still busy {outlive.IDLE_BOUND_S:.0f} s after"])
                )
            else:
                out.append(Verdict(attack, "blocked", f"TIMED_OUT; idle {m.idle_after_s:.1f} s after; {note}"))
    return out


def sweep(ground: Ground, markers: Markers) -> list[str]:
    """Markers (in no payload) anywhere the attacker can look: its notifications, run list and every table."""
    found: list[str] = []
    texts = {
        "notifications": json.dumps(ground.api("GET", "/notifications", query={"limit": "500"}).body),
        "run list": json.dumps(ground.api("GET", "/metadata/executions", query={"limit": "500"}).body),
    }
    wh = ground.warehouse(ATTACKER)
    for schema, table in _tables(wh):
        if schema.startswith(f"{ATTACKER}_"):
            texts[f"table {schema}.{table}"] = runner.table_text(wh, f"{schema}.{table}")
    for where, text in texts.items():
        found += [f"{name} in {where}" for name in markers.found(text)]
    return found


def run(options: Options) -> list[Figure]:
    if not has_tenancy():
        raise NotMeasured("needs API keys (tenancy, issue 4)")
    with netguard.AttackerServer() as server, attack_ground() as ground, netguard.watching() as watch:
        controls = _setup_controls(ground, watch)
        markers = ground.markers()
        attacks = corpus(ground, server)
        progress(f"{NAME}: {len(attacks)} step attacks ...")
        verdicts, all_batches = through_product(ground, attacks, markers, server, watch)
        direct = direct_warehouse(
            ground, attacks, Markers({k: v for k, v in markers.markers.items() if k not in DISCLOSURE})
        )
        disclosed = [v for v in direct_warehouse(ground, attacks, markers) if v.outcome == "breached"]
        progress(f"{NAME}: YAML bombs ...")
        verdicts += yaml_bombs(ground, markers)
        leftovers = sweep(ground, markers.without(a.payload_text() for a in attacks))
        vault = runner.table_text(ground.warehouse(VICTIM), VICTIM_TABLE)
    progress(f"{NAME}: work past its time ...")
    verdicts += work_outliving_time()
    failed_controls = {k: v for k, v in controls.items() if v}
    bad_batches = [f"{b.pipeline_id}: {b.note}" for b in all_batches if b.control_ok is False]
    out = figures(verdicts, direct, failed_controls, bad_batches, leftovers, vault, ground.canaries)
    names = "; ".join(f"{v.attack.name} ({', '.join(v.leaks)})" for v in disclosed)
    return [
        *out,
        info(
            NAME,
            "raw warehouse queries disclosing paths or settings (the SQL check must refuse them)",
            len(disclosed),
            names[:300],
        ),
    ]


def figures(
    verdicts: list[Verdict],
    direct: list[Verdict],
    failed_controls: dict[str, str],
    bad_batches: list[str],
    leftovers: list[str],
    vault: str,
    canaries: dict[str, str],
) -> list[Figure]:
    overall, per_class = tally(verdicts)
    breaches = [v for v in verdicts if v.outcome == "breached"]
    for v in breaches + [d for d in direct if d.outcome == "breached"]:
        progress(f"{NAME}: BREACH {describe(v)}" + (" [warehouse alone]" if v in direct else ""))
    report = os.environ.get("CLOUDACT_ATTACK_REPORT")
    if report:
        rows = [
            {
                "layer": layer,
                "class": v.attack.klass,
                "name": v.attack.name,
                "outcome": v.outcome,
                "stage": v.stage,
                "leaks": v.leaks,
                "evidence": v.evidence,
                "payload": v.attack.payload_text(),
            }
            for layer, vs in (("product", verdicts), ("warehouse", direct))
            for v in vs
        ]
        Path(report).write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    controls_ok = not failed_controls and not bad_batches and overall.not_measured == 0
    out = [
        figure(
            NAME,
            "controls passed (own-data query in every batch, victim sees its canary, network watch)",
            "yes" if controls_ok else "no",
            controls_ok,
            "yes",
            "; ".join([*(f"{k}: {v}" for k, v in failed_controls.items()), *bad_batches][:4]),
        ),
        figure(NAME, "attacks tried / blocked / breached", overall.render(), overall.breached == 0, "breached 0"),
    ]
    for klass in sorted(per_class):
        t = per_class[klass]
        names = "; ".join(v.attack.name for v in breaches if v.attack.klass == klass)
        out.append(figure(NAME, f"class {klass}", t.render(), t.breached == 0, "breached 0", names[:300]))
    d_all, _ = tally(direct)
    d_names = "; ".join(v.attack.name for v in direct if v.outcome == "breached")
    out.append(
        figure(
            NAME,
            "SQL straight into the attacker's warehouse (check bypassed)",
            d_all.render(),
            d_all.breached == 0,
            "breached 0",
            d_names[:300],
        )
    )
    out.append(
        figure(
            NAME,
            "canaries anywhere else the attacker can look",
            len(leftovers),
            not leftovers,
            "0",
            "; ".join(leftovers[:4]),
        )
    )
    intact = vault.count(canaries["victim table canary"]) == 1
    out.append(figure(NAME, "victim's table intact", "yes" if intact else "no", intact, "yes"))
    out.append(
        info(NAME, "breaching payloads", len(breaches), "listed on stderr; CLOUDACT_ATTACK_REPORT=<file> for all")
    )
    return out
