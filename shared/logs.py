"""Structured JSON logs with Cloud Logging field names (severity, message) and the run's ids on every line.

`log_context(run_id=..., tenant_id=..., stage_id=...)` binds ids for the current task; every line logged inside it
carries them, so one run can be followed across functions by filtering on jsonPayload.run_id.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_BOUND: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("cloudact_log_fields", default={})  # noqa: B039
_SEVERITY = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "CRITICAL"}
ID_FIELDS = ("run_id", "tenant_id", "pipeline_id", "stage_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "logger": record.name,
        }
        bound = _BOUND.get()
        for key in ID_FIELDS:
            entry[key] = bound.get(key)
        entry.update({k: v for k, v in bound.items() if k not in ID_FIELDS})
        entry.update(_trace_fields())
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _trace_fields() -> dict[str, Any]:
    """`logging.googleapis.com/trace` and spanId of the current span: Cloud Logging nests the line under its trace."""
    from shared.observability.tracing import log_trace_fields

    return log_trace_fields()


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Install the JSON formatter on the root logger once (functions-framework and the CLI both call this).

    The functions pass `Settings.log_level` (CLOUDACT_LOG_LEVEL); this layer is below Settings and reads no
    environment."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = _BOUND.set({**_BOUND.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _BOUND.reset(token)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
