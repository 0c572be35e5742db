"""`cloudact runs watch RUN_ID`: follow a run until it ends, from any process that can read the state store.

It only reads run and stage documents (SQLite under `.cloudact/` next to a `cloudact run` in another terminal, or
Firestore with `CLOUDACT_RUNTIME=gcp`), so watching never interferes with the run. On a terminal the progress bar
and the stage timeline are redrawn in place; in a pipe or CI log each stage change is printed once, then the final
timeline.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live

from shared.cli.render import stage_line
from shared.cli.timeline import progress_view
from shared.contracts.state_paths import run_path
from shared.contracts.states import TERMINAL, StageStatus
from shared.ports.state import StateStore
from shared.runs.store import list_stages, public_run

TIMED_OUT_WATCHING = "WATCH_TIMEOUT"


class RunNotFound(LookupError):
    pass


def load_run(state: StateStore, run_id: str) -> dict[str, Any]:
    run = state.get(run_path(run_id)) if run_id.startswith("run_") else None
    if run is None:
        raise RunNotFound(run_id)
    return public_run(run, list_stages(state, run_id))


def watch_run(
    state: StateStore, run_id: str, console: Console, interval: float = 0.5, timeout: float | None = None
) -> str:
    """Follow `run_id` until it is terminal (returns its status) or `timeout` seconds pass (TIMED_OUT_WATCHING)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    view = load_run(state, run_id)

    def over() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    if console.is_terminal:
        with Live(progress_view(view), console=console, refresh_per_second=8, transient=False) as live:
            while str(view["status"]) not in TERMINAL and not over():
                time.sleep(interval)
                view = load_run(state, run_id)
                live.update(progress_view(view), refresh=True)
    else:
        seen: dict[str, tuple[str, int]] = {}
        console.print(f"watching {run_id} ({view['tenant_id']}/{view['pipeline_id']}): {view['status']}")
        while True:
            for stage in view.get("stages", []):
                key = (str(stage["status"]), int(stage.get("attempt") or 0))
                if seen.get(stage["stage_id"]) != key and (
                    stage["status"] != StageStatus.QUEUED or stage.get("attempts")
                ):
                    seen[stage["stage_id"]] = key
                    console.print(stage_line(stage))
            if str(view["status"]) in TERMINAL or over():
                break
            time.sleep(interval)
            view = load_run(state, run_id)
        console.print(progress_view(view))
    return str(view["status"]) if str(view["status"]) in TERMINAL else TIMED_OUT_WATCHING
