"""Crash injection at every boundary of a run: the worker "dies" (SimulatedCrash, a BaseException nothing in the app
can swallow) right before or right after one durable step, and the message it was handling is not acked.

The seams are the engine's own collaborators (transition, transition_run, publish_stage_tasks, publish_status_event,
metadata.record_run), wrapped for the drill's duration. A plan is keyed by the run's idempotency key, so it is in
place before the run's first message is delivered. When an engine seam is renamed, `install` fails loudly: the drill
reports it instead of silently injecting nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

When = Literal["before", "after"]


class SimulatedCrash(BaseException):
    """The worker process dies here. Not an Exception: like a real kill, no handler in the app may catch it."""


@dataclass(frozen=True)
class CrashPoint:
    name: str
    seam: str
    """Which engine collaborator: transition | transition_run | publish_stage_tasks | run_event | record_run."""
    when: When
    target: str | None = None
    """transition: the status moved to; transition_run: the run status; publish_stage_tasks: the stage dispatched."""
    stage: str | None = None
    """transition: the stage whose document moves."""


def stage_points(stage: str) -> list[CrashPoint]:
    """The four boundaries of one stage's attempt, from claim to completion."""
    return [
        CrashPoint(f"{stage}: claimed, before RUNNING is recorded", "transition", "before", "RUNNING", stage),
        CrashPoint(f"{stage}: RUNNING recorded, before the processor ends", "transition", "after", "RUNNING", stage),
        CrashPoint(f"{stage}: processed, before SUCCEEDED is recorded", "transition", "before", "SUCCEEDED", stage),
        CrashPoint(f"{stage}: SUCCEEDED recorded, before dispatching", "transition", "after", "SUCCEEDED", stage),
    ]


def dispatch_points(stage: str) -> list[CrashPoint]:
    return [
        CrashPoint(f"dispatch of {stage}: flagged, before publishing", "publish_stage_tasks", "before", stage),
        CrashPoint(f"dispatch of {stage}: published, before the ack", "publish_stage_tasks", "after", stage),
    ]


def run_points() -> list[CrashPoint]:
    return [
        CrashPoint("run start: stages created, before RUNNING", "transition_run", "before", "RUNNING"),
        CrashPoint("run start: RUNNING, before the first dispatch", "transition_run", "after", "RUNNING"),
        CrashPoint("run end: before the metadata rows", "record_run", "before"),
        CrashPoint("run end: metadata written, before the run event", "run_event", "before"),
        CrashPoint("run end: run event published, before `finalized`", "run_event", "after"),
    ]


def every_boundary(chain: list[str]) -> list[CrashPoint]:
    """Every crash point of a run whose stages form the chain `chain`."""
    points = run_points()
    for stage in chain:
        points += dispatch_points(stage) + stage_points(stage)
    return points


@dataclass
class _Plan:
    point: CrashPoint
    times: int
    """How many deliveries die at this point (1: one crash; more: a worker that dies on every attempt)."""
    fired: int = 0


class FaultInjector:
    """Install once per drill; `plan(idempotency_key, point)` before starting that run."""

    def __init__(self) -> None:
        self._plans: dict[str, list[_Plan]] = {}
        self._lock = threading.Lock()
        self._restore: list[tuple[Any, str, Any]] = []

    def plan(self, idempotency_key: str, point: CrashPoint, times: int = 1) -> None:
        with self._lock:
            self._plans.setdefault(idempotency_key, []).append(_Plan(point, times))

    def fired(self, idempotency_key: str) -> int:
        with self._lock:
            return sum(p.fired for p in self._plans.get(idempotency_key, []))

    # ------------------------------------------------------------------------------------------- deciding
    def _maybe_crash(self, key: str | None, seam: str, when: When, target: str | None, stage: str | None) -> None:
        if key is None:
            return
        with self._lock:
            for plan in self._plans.get(key, []):
                p = plan.point
                if (p.seam, p.when) != (seam, when) or plan.fired >= plan.times:
                    continue
                if p.target is not None and p.target != target:
                    continue
                if p.stage is not None and p.stage != stage:
                    continue
                plan.fired += 1
                raise SimulatedCrash(p.name)

    # ------------------------------------------------------------------------------------------- wiring
    def install(self) -> None:
        import shared.metadata_tables as metadata
        import shared.runs.dag as dag
        import shared.runs.engine as engine
        import shared.runs.finalize as finalize
        import shared.runs.run_start as run_start
        import shared.runs.stage_slots as stage_slots

        # Each seam is wrapped in every module that calls it (run start, engine, DAG, stage slots, finaliser).
        seams = (
            (engine, "transition", self._transition),
            (dag, "transition", self._transition),
            (run_start, "transition_run", self._transition_run),
            (finalize, "transition_run", self._transition_run),
            (stage_slots, "publish_stage_tasks", self._publish_stage_tasks),  # dag dispatches via stage slots
            (run_start, "publish_status_event", self._publish_status_event),
            (engine, "publish_status_event", self._publish_status_event),
            (finalize, "publish_status_event", self._publish_status_event),
            (metadata, "record_run", self._record_run),
        )
        missing = [
            f"{module.__name__}.{name}" for module, name, _ in seams if not callable(getattr(module, name, None))
        ]
        if missing:
            raise RuntimeError(f"crash seams missing: {', '.join(missing)}")
        for module, name, make in seams:
            self._wrap(module, name, make)

    def uninstall(self) -> None:
        for module, name, original in reversed(self._restore):
            setattr(module, name, original)
        self._restore.clear()

    def _wrap(self, module: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(module, name)
        self._restore.append((module, name, original))
        setattr(module, name, make(original))

    # Each wrapper finds the run's idempotency key from what the engine passes (a run doc, or the store + path).
    def _transition(self, real: Any) -> Any:
        keys: dict[str, str | None] = {}

        def wrapped(store: Any, path: str, req: Any) -> Any:
            parts = path.split("/")  # runs/{run_id}/stages/{stage_id}
            stage = parts[3] if len(parts) == 4 and parts[2] == "stages" else None
            key = None
            if stage is not None:
                if parts[1] not in keys:
                    keys[parts[1]] = (store.get(f"runs/{parts[1]}") or {}).get("idempotency_key")
                key = keys[parts[1]]
            self._maybe_crash(key, "transition", "before", req.to, stage)
            result = real(store, path, req)
            if result.applied:
                self._maybe_crash(key, "transition", "after", req.to, stage)
            return result

        return wrapped

    def _transition_run(self, real: Any) -> Any:
        def wrapped(store: Any, run_id: str, to: str, **fields: Any) -> Any:
            key = (store.get(f"runs/{run_id}") or {}).get("idempotency_key")
            self._maybe_crash(key, "transition_run", "before", to, None)
            result = real(store, run_id, to, **fields)
            if result.applied:
                self._maybe_crash(key, "transition_run", "after", to, None)
            return result

        return wrapped

    def _publish_stage_tasks(self, real: Any) -> Any:
        def wrapped(bus: Any, run: dict[str, Any], stage_ids: Any) -> None:
            ids = list(stage_ids)
            key = run.get("idempotency_key")
            for sid in ids:
                self._maybe_crash(key, "publish_stage_tasks", "before", sid, None)
            real(bus, run, ids)
            for sid in ids:
                self._maybe_crash(key, "publish_stage_tasks", "after", sid, None)

        return wrapped

    def _publish_status_event(self, real: Any) -> Any:
        def wrapped(bus: Any, run: dict[str, Any], event_type: str, *args: Any, **kwargs: Any) -> None:
            is_run_end = event_type.startswith("run.") and event_type != "run.started"
            if is_run_end:
                self._maybe_crash(run.get("idempotency_key"), "run_event", "before", None, None)
            real(bus, run, event_type, *args, **kwargs)
            if is_run_end:
                self._maybe_crash(run.get("idempotency_key"), "run_event", "after", None, None)

        return wrapped

    def _record_run(self, real: Any) -> Any:
        def wrapped(ctx: Any, run: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            self._maybe_crash(run.get("idempotency_key"), "record_run", "before", None, None)
            real(ctx, run, *args, **kwargs)

        return wrapped


class PoisonedSeam:
    """Makes one engine collaborator raise an ordinary exception (a bug, a corrupt document) on every matching call,
    so the message that reaches it fails on every delivery: a poison message. Counts the matching calls."""

    def __init__(self, module: Any, name: str, matches: Callable[..., bool]) -> None:
        if not callable(getattr(module, name, None)):
            raise RuntimeError(f"poison seam {module.__name__}.{name} is missing")
        self._module, self._name, self._matches = module, name, matches
        self._original = getattr(module, name)
        self.calls = 0
        self._lock = threading.Lock()

    def __enter__(self) -> PoisonedSeam:
        original = self._original

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if self._matches(*args, **kwargs):
                with self._lock:
                    self.calls += 1
                raise RuntimeError(f"injected poison in {self._name}")
            return original(*args, **kwargs)

        setattr(self._module, self._name, wrapped)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self._module, self._name, self._original)
