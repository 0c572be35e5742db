"""StatementJobs on the embedded DuckDB warehouse: each statement on a thread of its own, by job id, in this process.

The registry is shared by every handle of one tenant's database (sessions are shallow copies). A job's thread lives
exactly as long as its statement (no pool: an idle pool per tenant database would keep threads alive for every
warehouse a process ever opened). A process that ends takes its jobs with it: their ids are then MISSING and the
engine starts them again under the same id, which a `CREATE OR REPLACE TABLE ... AS` (what bigquery.query runs as a
job) makes harmless. Finished jobs are remembered (the newest MAX_REMEMBERED), so a late duplicate poll still finds
the outcome.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.states import StatementState
from shared.ports.statement_jobs import StatementStatus

MAX_REMEMBERED = 4096


@dataclass
class _Job:
    cancel: Callable[[], bool]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class DuckDBStatements:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, _Job] = OrderedDict()

    def start(
        self,
        job_id: str,
        execute: Callable[[str, Mapping[str, Any] | None], int],
        cancel: Callable[[], bool],
        sql: str,
        params: Mapping[str, Any] | None,
    ) -> None:
        with self._lock:
            if job_id in self._jobs:
                return
            job = self._jobs[job_id] = _Job(cancel)
            self._forget_finished()

        def work() -> None:
            try:
                execute(sql, params)
            except BaseException as exc:  # kept for statement_status, like a BigQuery job's error_result
                job.error = exc
            finally:
                job.done.set()

        threading.Thread(target=work, name="cloudact-job", daemon=True).start()

    def status(self, job_id: str) -> StatementStatus:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return StatementStatus(StatementState.MISSING)
        if not job.done.is_set():
            return StatementStatus(StatementState.RUNNING)
        if job.error is not None:
            error = job.error if isinstance(job.error, Exception) else RuntimeError(str(job.error))
            return StatementStatus(StatementState.FAILED, error=error)
        return StatementStatus(StatementState.DONE)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None and not job.done.is_set():
            job.cancel()

    def close(self) -> None:
        """Stop whatever still runs (the database is closing under it)."""
        with self._lock:
            running = [job for job in self._jobs.values() if not job.done.is_set()]
        for job in running:
            job.cancel()

    def _forget_finished(self) -> None:
        """Under the lock: drop the oldest finished jobs beyond MAX_REMEMBERED."""
        excess = len(self._jobs) - MAX_REMEMBERED
        if excess > 0:
            for job_id in [jid for jid, job in self._jobs.items() if job.done.is_set()][:excess]:
                del self._jobs[job_id]
