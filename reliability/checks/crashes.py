"""Crash injection at every stage boundary on the embedded runtime: one run of `seq3` per crash point, all at once.

Each run's worker dies once, at its own point (reliability/faults.py), and the message it held is redelivered like an
unacked Pub/Sub message. A crash while a stage is RUNNING is recovered only when that attempt's lease expires (step
timeout + the engine's grace), so the wave takes about a minute however many points there are.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from reliability.drill import TERMINAL, embedded_drill
from reliability.faults import FaultInjector, every_boundary
from reliability.harness import Figure, Options, figure, info, ratio

NAME = "crash injection"
CHAIN = ["a", "b", "c"]
WAVE_TIMEOUT_S = 240.0


def lost_messages(runs: dict[str, dict[str, Any]], bus_dropped: int) -> int:
    """Work that never happened: runs or stages left non-terminal, plus messages the bus dropped with nowhere to go."""
    open_runs = sum(r["status"] not in TERMINAL for r in runs.values())
    open_stages = sum(s["status"] not in TERMINAL for r in runs.values() for s in r.get("stages", []))
    return open_runs + open_stages + bus_dropped


def metadata_row_counts(drill: Any) -> Counter[str]:
    table = drill.warehouse.query("SELECT run_id FROM relyco_metadata.pipeline_executions")
    return Counter(str(v) for v in table.column("run_id").to_pylist())


def run(options: Options) -> list[Figure]:
    points = every_boundary(CHAIN)

    def name_of(key: str) -> str:
        return points[int(key.split("-")[1])].name

    injector = FaultInjector()
    injector.install()
    try:
        with embedded_drill(maintenance_every_s=2.0, max_backoff_s=1.0) as drill:
            started = time.monotonic()
            run_ids: dict[str, str] = {}
            for i, point in enumerate(points):
                key = f"crash-{i:02d}"
                injector.plan(key, point)
                run_ids[key] = drill.start("seq3", key=key)
            control = drill.start("seq3", key="control")
            runs = drill.wait_terminal([*run_ids.values(), control], WAVE_TIMEOUT_S, finalized=True)
            elapsed = time.monotonic() - started
            fired = {key: injector.fired(key) for key in run_ids}
            events = {run_id: Counter(e["type"] for e in drill.events(run_id)) for run_id in runs}
            rows = metadata_row_counts(drill)
            dropped = int(drill.bus.stats.dropped)
            dead_lettered = int(drill.bus.stats.dead_lettered)
    finally:
        injector.uninstall()
    point_of = {run_id: name_of(key) for key, run_id in run_ids.items()}
    point_of[control] = "control run"
    crashed = list(run_ids.values())
    not_fired = [run_ids[key] for key, n in fired.items() if n != 1]
    not_terminal = [r for r in crashed if runs[r]["status"] not in TERMINAL]
    not_succeeded = [r for r in [*crashed, control] if runs[r]["status"] != "SUCCEEDED"]
    reexecuted = sum(max(0, len(s.get("attempts") or []) - 1) for r in runs.values() for s in r.get("stages", []))
    end_events = {
        r: sum(n for t, n in c.items() if t.startswith("run.") and t != "run.started") for r, c in events.items()
    }
    lost = lost_messages(runs, dropped)

    def share(name: str, bad: list[str], of: list[str], why: Callable[[str], str] = lambda r: "") -> Figure:
        note = "; ".join(f"{point_of[r]}{why(r)}" for r in bad[:4]) + (
            f"; +{len(bad) - 4} more" if len(bad) > 4 else ""
        )
        return figure(NAME, name, ratio(len(of) - len(bad), len(of)), not bad, "100 %", note)

    everything = [*crashed, control]
    return [
        share("crash points injected, one per run", not_fired, crashed),
        share("runs reaching a terminal state", not_terminal, crashed),
        figure(NAME, "messages lost", lost, lost == 0, "0", "runs/stages left open + messages dropped by the bus"),
        share(
            "runs still SUCCEEDED after their crash",
            not_succeeded,
            everything,
            lambda r: f" -> {runs[r]['status']}: {str(runs[r].get('error'))[:80]}",
        ),
        share(
            "runs with exactly one run.started event",
            [r for r in everything if events[r]["run.started"] != 1],
            everything,
        ),
        share(
            "runs with exactly one terminal run event (the alert)",
            [r for r in everything if end_events[r] != 1],
            everything,
            lambda r: f" ({end_events[r]})",
        ),
        share(
            "runs with exactly one pipeline_executions row",
            [r for r in everything if rows.get(r, 0) != 1],
            everything,
            lambda r: f" ({rows.get(r, 0)})",
        ),
        info(NAME, "stage attempts re-run after a crash", reexecuted, "at-least-once: processors must be idempotent"),
        info(NAME, "messages dead-lettered while leases ran out", dead_lettered),
        info(NAME, "wave wall time", f"{elapsed:.1f} s", f"{len(crashed)} crash runs + 1 control, concurrently"),
    ]
