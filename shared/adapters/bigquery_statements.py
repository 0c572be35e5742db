"""StatementJobs on BigQuery (shared/ports/statement_jobs.py): a statement's job is inserted under the attempt's id
and never waited on; its state is read with jobs.get. Mixed into BigQueryWarehouse, whose client, labels, bytes cap
and error mapping it uses, so a job started this way is labelled and capped like every other job of the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.contracts.states import StatementState
from shared.ports.statement_jobs import StatementStatus

if TYPE_CHECKING:
    from google.cloud import bigquery


class BigQueryStatementJobs:
    # Provided by BigQueryWarehouse.
    _client: bigquery.Client
    _location: str
    _retry: Any
    _timeout: float

    def _query_config(self, params: Mapping[str, Any] | None) -> bigquery.QueryJobConfig:
        raise NotImplementedError

    def _errors(self, action: str) -> Any:
        raise NotImplementedError

    def start_statement(self, job_id: str, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """jobs.insert under `job_id`; 409 means an earlier delivery inserted it: that job is the one."""
        from google.api_core.exceptions import Conflict

        with self._errors("starting a query job"):
            try:
                self._client.query(
                    sql,
                    job_config=self._query_config(params),
                    job_id=job_id,
                    location=self._location,
                    retry=self._retry,
                    timeout=self._timeout,
                    job_retry=None,
                )
            except Conflict:
                return

    def statement_status(self, job_id: str) -> StatementStatus:
        from google.api_core.exceptions import NotFound

        with self._errors("reading a query job"):
            try:
                job = self._client.get_job(job_id, location=self._location, retry=self._retry, timeout=self._timeout)
            except NotFound:
                return StatementStatus(StatementState.MISSING)
        if job.state != StatementState.DONE:
            return StatementStatus(StatementState.RUNNING, bytes_processed=getattr(job, "total_bytes_processed", None))
        failure = job.exception() if job.error_result else None  # type: ignore[no-untyped-call]
        if failure is not None:
            try:
                with self._errors("the query job"):
                    raise failure
            except Exception as mapped:  # the same transient/terminal split as a statement waited on
                return StatementStatus(StatementState.FAILED, error=mapped)
        return StatementStatus(StatementState.DONE, bytes_processed=getattr(job, "total_bytes_processed", None))

    def cancel_statement(self, job_id: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._client.cancel_job(job_id, location=self._location, retry=self._retry, timeout=self._timeout)
        except NotFound:
            return
