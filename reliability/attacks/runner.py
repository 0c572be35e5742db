"""Sending attacks through the product: validation in batches, the survivors as real runs through the API, and what
each run left where the attacker can see it.

Batching: up to BATCH attack steps per pipeline file, next to a control step (a benign query of the attacker's own
data). An attack counts as refused at validation only if an issue names its own step; a batch whose control is
refused, or whose run does not give the control's rows, measures nothing (its attacks are `not-measured`). Attacks
declaring parameters or variables go alone, so one cannot change another's meaning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from reliability.attacks.judge import Attack, Markers, Outcome, Verdict, judge_run
from reliability.attacks.sql_corpus import ATTACKER, control_sql

BATCH = 8
RUN_BOUND_S = 240.0
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "SKIPPED"})
OUTPUT_TABLES = frozenset({"x", "h", "f", "t"})
"""Placeholder destination tables of the corpus: each attack's output goes to a table of its own instead."""
CONTROL_ROWS = 5
"""Rows of the attacker's own table (`seed_own`) that the control step must copy."""


@dataclass
class Batch:
    pipeline_id: str
    attacks: list[Attack]
    parameters: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    control_ok: bool | None = None
    note: str = ""

    def step_id(self, i: int) -> str:
        return f"a{i}"

    def table(self, i: int) -> str:
        return f"{self.pipeline_id}_{i}"


def batches(attacks: Iterable[Attack], prefix: str) -> list[Batch]:
    plain: list[Attack] = []
    out: list[Batch] = []
    for attack in attacks:
        if attack.pipeline or attack.parameters:
            out.append(Batch(f"{prefix}{len(out)}", [attack], dict(attack.parameters)))
        else:
            plain.append(attack)
    for start in range(0, len(plain), BATCH):
        out.append(Batch(f"{prefix}{len(out)}", plain[start : start + BATCH]))
    return out


def pipeline_yaml(batch: Batch, attacks: list[tuple[int, Attack]]) -> str:
    """Control step `ctl` plus the given attacks (index in batch, attack); each attack step writes to a table of its
    own (when it names a placeholder table of the `atk` dataset) and gets one attempt and a short timeout."""
    steps: list[dict[str, Any]] = [
        {
            "step_id": "ctl",
            "ps_type": "bigquery.query",
            "source": {"query": control_sql()},
            "destination": {"dataset": "atk", "table": f"{batch.pipeline_id}_ctl", "write_mode": "truncate"},
        }
    ]
    doc: dict[str, Any] = {"pipeline_id": batch.pipeline_id, "steps": steps}
    for i, attack in attacks:
        step: dict[str, Any] = {
            "step_id": batch.step_id(i),
            "timeout_minutes": 1,
            "retries": {"max_attempts": 1},
            **json.loads(json.dumps(attack.step)),
        }
        dest = step.get("destination")
        if isinstance(dest, dict) and dest.get("dataset") == "atk" and dest.get("table") in OUTPUT_TABLES:
            dest["table"] = batch.table(i)
        steps.append(step)
        doc.update(attack.pipeline)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=10_000)


def validate(ground: Any, batch: Batch, markers: Markers) -> dict[int, Verdict]:
    """Loader verdicts: attacks refused at validation (by index). Sets `batch.control_ok` from the control step."""
    from shared.catalog.loader import PipelineValidationError, load_pipeline

    path = ground.pipelines / f"{batch.pipeline_id}.yaml"
    path.write_text(pipeline_yaml(batch, list(enumerate(batch.attacks))), encoding="utf-8")
    try:
        load_pipeline(path)
        issues: list[Any] = []
    except PipelineValidationError as exc:
        issues = list(exc.issues)
    by_step: dict[int, list[str]] = {}
    document: list[str] = []
    for issue in issues:
        match = re.match(r"^steps\[(\d+)\]", issue.key)
        if match is None:
            document.append(issue.message)
        else:
            by_step.setdefault(int(match.group(1)), []).append(issue.message)
    batch.control_ok = 0 not in by_step and (not document or len(batch.attacks) == 1)
    if not batch.control_ok:
        batch.note = "; ".join((by_step.get(0) or document)[:2])[:200]
    if len(batch.attacks) == 1 and document:  # a lone attack's own parameters/variables were refused
        by_step.setdefault(1, []).extend(document)
    out = {}
    for index, messages in by_step.items():
        if index == 0 or index > len(batch.attacks):
            continue
        attack = batch.attacks[index - 1]
        text = "\n".join(messages)
        leaks = markers.found(text, attack.payload_text())
        outcome: Outcome = "breached" if leaks else "blocked"
        out[index - 1] = Verdict(attack, outcome, "refused at validation", leaks, text[:200])
    return out


def start(ground: Any, batch: Batch, refused: dict[int, Verdict], markers: Markers) -> list[Verdict]:
    """Execute the batch's surviving attacks (and the control) through the API. A refused pipeline must be a 4xx;
    returns verdicts for attacks settled here (the API accepting what the loader refused, or a 5xx)."""
    survivors = [(i, a) for i, a in enumerate(batch.attacks) if i not in refused]
    if len(survivors) != len(batch.attacks):  # the API must refuse the file the loader refused, end to end
        response = ground.api("POST", "/pipelines/execute", {"pipeline_id": batch.pipeline_id})
        if not 400 <= response.status < 500:
            batch.note = f"execute of a refused pipeline answered {response.status}"
        if response.status in (200, 202):
            return [
                Verdict(refused[i].attack, "breached", "execute accepted a refused pipeline", ["ran"]) for i in refused
            ]
        if not survivors:
            return []
        batch.pipeline_id = f"{batch.pipeline_id}r"
        path = ground.pipelines / f"{batch.pipeline_id}.yaml"
        path.write_text(pipeline_yaml(batch, survivors), encoding="utf-8")
    response = ground.api(
        "POST", "/pipelines/execute", {"pipeline_id": batch.pipeline_id, "parameters": batch.parameters}
    )
    if response.status in (200, 202):
        batch.run_id = str(response.body["run_id"])
        return []
    text = json.dumps(response.body)
    out = []
    for _, attack in survivors:
        leaks = markers.found(text, attack.payload_text())
        refused_here = 400 <= response.status < 500
        outcome: Outcome = "breached" if leaks else ("blocked" if refused_here else "not-measured")
        out.append(Verdict(attack, outcome, f"execute {response.status}", leaks, text[:200]))
    return out


def table_text(wh: Any, table: str) -> str:
    """A table's rows as text ('' if it does not exist or cannot be read)."""
    try:
        if not wh.table_exists(table):
            return ""
        return json.dumps(wh.query(f"SELECT * FROM {table}").to_pylist(), default=str)
    except Exception as exc:  # an unreadable output table is not what is being judged here
        return f"<unreadable: {exc}>"


def judge_batch(
    ground: Any,
    batch: Batch,
    view: dict[str, Any],
    markers: Markers,
    harms: dict[str, list[str]],
    extra_seen: dict[str, str],
) -> list[Verdict]:
    """Verdicts of a batch's run from the run view (API), its output tables, and `harms` / `extra_seen` found
    elsewhere (keyed by attack name)."""
    wh = ground.warehouse(ATTACKER)
    stages = {str(s.get("stage_id")): s for s in view.get("stages") or []}
    control = stages.get("ctl", {})
    rows = table_text(wh, f"{ATTACKER}_atk.{batch.pipeline_id}_ctl")
    batch.control_ok = control.get("status") == "SUCCEEDED" and rows.count("own-row") == CONTROL_ROWS
    if not batch.control_ok:
        batch.note = f"control {control.get('status')}: {str(control.get('error'))[:160]}"
    out = []
    for i, attack in enumerate(batch.attacks):
        stage = stages.get(batch.step_id(i))
        if stage is None:
            continue
        if not batch.control_ok:
            out.append(Verdict(attack, "not-measured", f"control failed ({batch.note})"))
            continue
        seen = "\n".join(
            [
                json.dumps(stage, default=str),
                table_text(wh, f"{ATTACKER}_atk.{batch.table(i)}"),
                extra_seen.get(attack.name, ""),
            ]
        )
        out.append(judge_run(attack, str(stage.get("status")), seen, markers, harms.get(attack.name, [])))
    return out


def wait_runs(ground: Any, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    return ground.drill.wait_terminal(run_ids, RUN_BOUND_S, ATTACKER, ground.headers[ATTACKER]) if run_ids else {}
