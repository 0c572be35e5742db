"""Warehouse down at run end: every history write fails while runs end; the alerts must not wait for it and the
history must catch up, exactly once per run, when the warehouse is back (issue 15, "crash-proof run ends").

The outage is injected at the history seam (`metadata.record_run` raises like an unreachable warehouse) on the
embedded runtime with its maintenance ticker on, as Cloud Scheduler drives the watchdog on GCP.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import shared.metadata_tables as metadata
from reliability.drill import TERMINAL, embedded_drill
from reliability.harness import Figure, Options, figure, info, ratio

NAME = "warehouse down at run end"
TICK_S = 1.0


class Outage:
    def __init__(self) -> None:
        self.down = threading.Event()
        self.refused = 0
        self._real = metadata.record_run

    def __enter__(self) -> Outage:
        def record_run(ctx: Any, run: dict[str, Any], stages: Any) -> None:
            if self.down.is_set():
                self.refused += 1
                raise ConnectionError("warehouse unreachable (injected outage)")
            self._real(ctx, run, stages)

        metadata.record_run = record_run  # type: ignore[assignment]
        self.down.set()
        return self

    def __exit__(self, *exc: object) -> None:
        metadata.record_run = self._real  # type: ignore[assignment]


def run(options: Options) -> list[Figure]:
    wanted = 5 if options.quick else 12
    with Outage() as outage, embedded_drill(maintenance_every_s=TICK_S, max_backoff_s=0.2) as drill:
        run_ids = [drill.start("seq3", key=f"down-{i:02d}") for i in range(wanted)]
        during = drill.wait_terminal(run_ids, 120)
        alerts_during = {r: _end_events(drill, r) for r in run_ids}
        unfinalized_during = sum(not (drill.state.get(f"runs/{r}") or {}).get("finalized") for r in run_ids)
        time.sleep(3 * TICK_S)  # the watchdog retries during the outage too; nothing may be written twice
        outage.down.clear()
        back = time.monotonic()
        drill.wait_terminal(run_ids, 120, finalized=True)
        catch_up_s = time.monotonic() - back
        finalized = sum(bool((drill.state.get(f"runs/{r}") or {}).get("finalized")) for r in run_ids)
        rows = Counter(
            str(v)
            for v in drill.warehouse.query("SELECT run_id FROM relyco_metadata.pipeline_executions")
            .column("run_id")
            .to_pylist()
        )
        alerts_after = {r: _end_events(drill, r) for r in run_ids}
    terminal = [r for r in run_ids if during[r]["status"] in TERMINAL]
    return [
        figure(
            NAME,
            "runs terminal while the warehouse is down",
            ratio(len(terminal), wanted),
            len(terminal) == wanted,
            "100 %",
        ),
        figure(
            NAME,
            "runs alerted while the warehouse is down (one terminal event each)",
            ratio(sum(n == 1 for n in alerts_during.values()), wanted),
            all(n == 1 for n in alerts_during.values()),
            "100 %",
            "the alert does not wait for history",
        ),
        figure(
            NAME,
            "runs left unfinalised during the outage (history pending)",
            ratio(unfinalized_during, wanted),
            unfinalized_during == wanted,
            "100 %",
            f"{outage.refused} history writes refused",
        ),
        figure(
            NAME, "runs finalised after the warehouse is back", ratio(finalized, wanted), finalized == wanted, "100 %"
        ),
        figure(
            NAME,
            "runs with exactly one pipeline_executions row",
            ratio(sum(rows[r] == 1 for r in run_ids), wanted),
            all(rows[r] == 1 for r in run_ids),
            "100 %",
        ),
        figure(
            NAME,
            "runs still with exactly one terminal event after recovery",
            ratio(sum(n == 1 for n in alerts_after.values()), wanted),
            all(n == 1 for n in alerts_after.values()),
            "100 %",
        ),
        info(
            NAME,
            "history catch-up after the warehouse is back",
            f"{catch_up_s:.1f} s",
            f"watchdog tick {TICK_S:g} s here; 5 min on GCP (Cloud Scheduler)",
        ),
    ]


def _end_events(drill: Any, run_id: str) -> int:
    return sum(1 for e in drill.events(run_id) if e["type"].startswith("run.") and e["type"] != "run.started")
