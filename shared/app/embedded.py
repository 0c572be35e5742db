"""The embedded runtime: every function hosted in one process over the in-process bus, SQLite state and DuckDB.

The same function entry points run here as in Cloud Functions: each delivery is turned into the
`google.cloud.pubsub.topic.v1.messagePublished` CloudEvent functions-framework would build, and the HTTP API is
called with a real Flask request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.adapters.dead_letter_file import DeadLetterFile
from shared.adapters.inprocess_bus import InProcessBus
from shared.api.routes import ApiResponse
from shared.app.tick_workers import TickWorkers, tick_processes_for
from shared.contracts import topics
from shared.contracts.envelope import ReceivedMessage, cloud_event_attributes
from shared.runtime.context import Context, set_context
from shared.runtime.settings import Settings

EMBEDDED_MAX_CONCURRENCY: dict[str, int] = {"scheduled_trigger": 1}
"""Function -> deliveries at once on the in-process bus (the others share all its workers). A schedule tick is
Python from end to end here (YAML, validation, SQLite): under the GIL more threads only add hand-offs, and bench P6
measured 10,000 ticks at 1.3 ms each on one thread against 2.0-2.3 ms on 2 or 8. Stage tasks wait on DuckDB with the
GIL released, so they keep the pool."""


def to_cloud_event(project: str, message: ReceivedMessage) -> Any:
    from cloudevents.http import CloudEvent

    attrs = cloud_event_attributes(project, message.topic, message.message_id, message.publish_time)
    import base64

    data = {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": message.attributes,
            "messageId": message.message_id,
            "publishTime": message.publish_time,
        },
        "deliveryAttempt": message.delivery_attempt,
    }
    return CloudEvent(attrs, data)


def dead_letter_file_path(settings: Settings) -> Path:
    return settings.home / "dead_letters.sqlite3"


def _entry_points() -> dict[str, Callable[[Any], Any]]:
    """The same callables root main.py re-exports for deployment (one module per function under functions/)."""
    import importlib

    names = ("api", *sorted(set(topics.SUBSCRIBERS.values())))
    return {name: getattr(importlib.import_module(f"functions.{name}"), name) for name in names}


@dataclass
class EmbeddedRuntime:
    settings: Settings
    bus: InProcessBus
    context: Context
    api_keys: dict[str, str] = field(default_factory=dict)
    """tenant_id -> an admin-scoped API key per tenant in tenant_configs/ (shared/lifecycle/local_tenants.py)."""
    admin_token: str = ""
    tick_workers: TickWorkers | None = None
    """Worker processes running schedule ticks, once `run_ticks_on_workers` moved them there."""
    _stop_ticker: threading.Event = field(default_factory=threading.Event)

    def run_ticks_on_workers(self, due_ticks: int) -> int:
        """Before a slot's `due_ticks` ticks are published: run schedule ticks on worker processes from now on when
        there are enough of them (`tick_processes_for`; shared/app/tick_workers.py says why and what it costs).
        Returns the number of workers running ticks (0: this process runs them)."""
        if self.tick_workers is not None:
            return self.tick_workers.processes
        processes = tick_processes_for(due_ticks)
        if processes < 1:
            return 0
        workers = TickWorkers(self.settings, processes, self.bus.publish)
        workers.start()
        self.tick_workers = workers
        name = topics.subscription_name(topics.SCHEDULE_TICKS)
        self.bus.reroute(name, workers.deliver, workers.max_concurrency)
        return processes

    def start_maintenance_ticker(self, every_s: float) -> None:
        """Publish a maintenance tick every `every_s`, as Cloud Scheduler does on GCP (platform/scheduler.tf).

        The watchdog behind it finishes what crashed deliveries left: history rows a finaliser could not write, stages
        nobody dispatched, runs past their deadline. Long-lived local processes (the UI server, drills) start it."""

        def tick() -> None:
            from shared.contracts.envelope import OutboundMessage
            from shared.contracts.messages import MaintenanceTick

            while not self._stop_ticker.wait(every_s):
                self.bus.publish(topics.MAINTENANCE_TICKS, [OutboundMessage(MaintenanceTick().to_bytes())])

        threading.Thread(target=tick, name="cloudact-maintenance-ticker", daemon=True).start()

    def call_api(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> ApiResponse:
        """Call the `api` function entry point with a real Flask request, as functions-framework would."""
        from flask import request

        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        app = _flask_app()
        entry = _entry_points()["api"]
        with app.test_request_context(
            path,
            method=method,
            data=data,
            headers=headers or {},
            query_string=query or {},
            content_type="application/json",
        ):
            text, status, out_headers = entry(request)
        return ApiResponse(status, json.loads(text), dict(out_headers))

    def wait_idle(self, timeout: float | None = 60.0) -> bool:
        return self.bus.wait_idle(timeout)

    def close(self) -> None:
        self._stop_ticker.set()
        self.bus.close()
        if self.tick_workers is not None:
            self.tick_workers.close()
        self.context.close()
        set_context(None)


_app: Any = None


def _flask_app() -> Any:
    global _app
    if _app is None:
        from flask import Flask

        _app = Flask("cloudact-embedded")
    return _app


def start(
    settings: Settings | None = None,
    workers: int = 8,
    max_backoff_s: float = 0.5,
    duplicate_deliveries: int = 1,
    max_delivery_attempts: int = 20,
    onboard_local_tenants: bool = True,
) -> EmbeddedRuntime:
    """Build adapters, wire every topic to its function entry point, and install the context for this process."""
    settings = settings or Settings.from_env()
    bus = InProcessBus(
        workers=workers,
        max_backoff_s=max_backoff_s,
        duplicate_deliveries=duplicate_deliveries,
        max_delivery_attempts=max_delivery_attempts,
    )
    # The dead-letter topic's pull subscription, kept in a file so an operator's later `cloudact dead-letters` sees it
    bus.retain(topics.DEAD_LETTERS, DeadLetterFile(dead_letter_file_path(settings)))
    context = Context(settings, _bus=bus)
    set_context(context)
    entries = _entry_points()
    for topic, function in topics.SUBSCRIBERS.items():
        entry = entries[function]

        def handler(message: ReceivedMessage, entry: Callable[[Any], Any] = entry) -> None:
            entry(to_cloud_event(settings.project, message))

        dead_letter = None if topic == topics.DEAD_LETTERS else topics.DEAD_LETTERS
        bus.subscribe(
            topic,
            handler,
            topics.subscription_name(topic),
            dead_letter,
            max_concurrency=EMBEDDED_MAX_CONCURRENCY.get(topics.SUBSCRIBERS[topic]),
        )
    runtime = EmbeddedRuntime(settings, bus, context)
    if onboard_local_tenants:  # the tenants of tenant_configs/ exist, and the CLI holds a key for each
        from shared.lifecycle.local_tenants import bootstrap_local_tenants

        local = bootstrap_local_tenants(context)
        runtime.api_keys, runtime.admin_token = local.api_keys, local.admin_token
    return runtime
