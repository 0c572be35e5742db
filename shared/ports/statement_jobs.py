"""Statements run as jobs: started under a caller-chosen id, then looked at, never waited on (shared/runs/stage_jobs).

BigQuery runs every statement as a job already; a long one (a query of an hour) must not hold a Cloud Function that
lives at most 540 s, so `bigquery.query` starts its statement with `start_statement` and polls `statement_status`
in short invocations. The id is the attempt's (shared/processors/jobs.py `stage_job_id`): a second start of the
same id finds the first job (BigQuery answers 409) and starts nothing. The embedded DuckDB warehouse runs the
statement on a thread of its own in the process, under the same contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from shared.contracts.states import StatementState


@dataclass(frozen=True)
class StatementStatus:
    state: StatementState
    """MISSING: no job of that id (never started, or started by a process that is gone, on the embedded warehouse)."""
    error: Exception | None = None
    """FAILED: the statement's error, mapped like a synchronous statement's (TerminalError: no use retrying)."""
    bytes_processed: int | None = None


@runtime_checkable
class StatementJobs(Protocol):
    def start_statement(self, job_id: str, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Start the statement as job `job_id`, or do nothing when that job exists."""
        ...

    def statement_status(self, job_id: str) -> StatementStatus: ...

    def cancel_statement(self, job_id: str) -> None:
        """Ask the job to stop; a job that ended or does not exist is left alone."""
        ...
