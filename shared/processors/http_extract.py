"""`http.extract`: page through a REST API and land the records in a table.

source:
  url: https://api.example.com/v1/invoices      placeholders as in file.load ({run_date} ...)
  method: GET | POST          params: {status: paid}        headers: {...}        body: {...} (POST, JSON)
  auth: {secret: billing_api_token, header: Authorization, scheme: Bearer}
        the token is the tenant secret (sealed with the tenant's KMS-wrapped key, `cloudact secrets set`), sent as
        `<header>: <scheme> <token>` and never logged (it is masked in error messages)
  records_path: data.items    where the list of records is in each JSON response (omit if the response is the list)
  pagination:
    type: none | cursor | offset | page
    cursor:  {cursor_path: meta.next_cursor, cursor_param: cursor}     stops when the next cursor is empty
    offset:  {offset_param: offset, limit_param: limit, limit: 100}   stops on a short page
    page:    {page_param: page, size_param: per_page, size: 100, start_page: 1}
    max_pages: 10000          more pages than this fails the step rather than silently truncating
  rate_limit: {requests_per_second: 10}
  retries: {max_attempts: 5, backoff_seconds: 1, max_backoff_seconds: 60}    429 / 5xx / connection errors
  timeout_seconds: 30
destination: {dataset, table, write_mode}
config: {schema: {column: TYPE}}   explicit columns; otherwise inferred from the first page (all-null -> STRING)
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any, Literal

import pyarrow as pa
from pydantic import ConfigDict, Field, field_validator

from shared.errors import TerminalError
from shared.pipelines.spec import StepIssue, StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors.base import StepContext, StepResult
from shared.processors.contract import ProcessorSpec
from shared.processors.egress_guard import egress_policy
from shared.processors.http_client import JsonClient, RateLimiter, RetryPolicy
from shared.processors.step_config import (
    ColumnName,
    ColumnTypeName,
    Destination,
    StrictModel,
    arrow_type,
    check_deadline,
    parse_step,
    render_path_template,
    step_issues,
)
from shared.processors.table_sink import TableSink
from shared.secrets.store import SECRET_NAME

Scalar = str | int | float | bool


class Auth(StrictModel):
    secret: str = Field(description="Name of the tenant secret holding the token.")
    header: str = Field(default="Authorization", pattern=r"^[A-Za-z0-9-]{1,100}$")
    scheme: str | None = Field(default="Bearer", description="Prefix before the token; null sends the token alone.")

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        if not SECRET_NAME.match(value):
            raise ValueError(f"invalid secret name {value!r}: lower-case letters, digits, '_' and '-' only")
        return value


class Pagination(StrictModel):
    type: Literal["none", "cursor", "offset", "page"] = "none"
    cursor_path: str | None = Field(default=None, description="cursor: dot path of the next cursor in a response.")
    cursor_param: str = "cursor"
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(default=100, ge=1, le=100_000)
    page_param: str = "page"
    size_param: str | None = "per_page"
    size: int = Field(default=100, ge=1, le=100_000)
    start_page: int = Field(default=1, ge=0)
    max_pages: int = Field(default=10_000, ge=1, le=1_000_000)

    @field_validator("cursor_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return value if value is None else _dot_path(value)


class RateLimit(StrictModel):
    requests_per_second: float = Field(default=10.0, gt=0, le=1000)


class Retries(StrictModel):
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0, le=600)
    max_backoff_seconds: float = Field(default=60.0, ge=0, le=3600)


def _dot_path(value: str) -> str:
    if not all(part for part in value.split(".")):
        raise ValueError(f"{value!r} is not a dot path like data.items")
    return value


class HttpSource(StrictModel):
    url: str = Field(pattern=r"^https?://", description="http(s) URL; placeholders allowed.")
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, Scalar] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    auth: Auth | None = None
    records_path: str | None = None
    pagination: Pagination = Field(default_factory=Pagination)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    retries: Retries = Field(default_factory=Retries)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("records_path")
    @classmethod
    def _records(cls, value: str | None) -> str | None:
        return value if value is None else _dot_path(value)


class HttpSettings(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    columns: dict[ColumnName, ColumnTypeName] | None = Field(default=None, alias="schema")


class HttpExtractStep(StrictModel):
    source: HttpSource
    destination: Destination
    config: HttpSettings = Field(default_factory=HttpSettings)


def validate_step(step: StepSpec, scope: ValidationScope) -> list[StepIssue]:
    issues = step_issues(HttpExtractStep, step)
    pagination = (step.source.get("pagination") or {}) if isinstance(step.source, dict) else {}
    if isinstance(pagination, dict) and pagination.get("type") == "cursor" and not pagination.get("cursor_path"):
        issues.append(StepIssue(("source", "pagination", "cursor_path"), "cursor pagination needs cursor_path"))
    return issues


def dig(document: Any, path: str | None, what: str) -> Any:
    """`data.items` inside a decoded JSON document."""
    if path is None:
        return document
    node = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            keys = ", ".join(sorted(node)) if isinstance(node, dict) else type(node).__name__
            raise TerminalError(f"{what}: the response has no {path!r} (at {part!r}; found: {keys})")
        node = node[part]
    return node


def _pages(
    src: HttpSource, client: JsonClient, url: str, headers: dict[str, str], params: dict[str, Any]
) -> Iterator[list[Any]]:
    """Each page's records, following the pagination until it says stop."""
    pag = src.pagination
    cursor: Any = None
    offset, page = 0, pag.start_page
    for number in range(pag.max_pages + 1):
        if number == pag.max_pages:
            raise TerminalError(f"more than max_pages={pag.max_pages} pages: raise pagination.max_pages")
        query = dict(params)
        if pag.type == "cursor" and cursor is not None:
            query[pag.cursor_param] = cursor
        elif pag.type == "offset":
            query.update({pag.offset_param: offset, pag.limit_param: pag.limit})
        elif pag.type == "page":
            query[pag.page_param] = page
            if pag.size_param:
                query[pag.size_param] = pag.size
        full = url + ("&" if "?" in url else "?") + urllib.parse.urlencode(query) if query else url
        document, _ = client.request(src.method, full, headers, src.body)
        records = dig(document, src.records_path, "records_path")
        if not isinstance(records, list):
            raise TerminalError(f"records_path {src.records_path!r} is a {type(records).__name__}, not a list")
        yield records
        if pag.type == "none" or (not records and pag.type != "cursor"):
            return
        if pag.type == "cursor":
            assert pag.cursor_path is not None
            following = dig(document, pag.cursor_path, "cursor_path") if _has(document, pag.cursor_path) else None
            if following in (None, "") or following == cursor:
                return
            cursor = following
        elif pag.type == "offset":
            if len(records) < pag.limit:
                return
            offset += len(records)
        else:
            if pag.size_param and len(records) < pag.size:
                return
            page += 1


def _has(document: Any, path: str) -> bool:
    node = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _to_batch(records: list[Any], schema: pa.Schema | None) -> pa.RecordBatch:
    if not all(isinstance(r, dict) for r in records):
        raise TerminalError("every record must be a JSON object")
    try:
        table = pa.Table.from_pylist(records)
        if schema is not None:  # JSON's own types first, then the declared ones (a float amount -> NUMERIC)
            table = pa.table(
                [
                    table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
                    for f in schema
                ],
                schema=schema,
            )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise TerminalError(
            f"records do not fit the columns ({', '.join(schema.names if schema else [])}): {exc} (set config.schema)"
        ) from exc
    if schema is None:  # all-null columns have no type yet: make them STRING so every warehouse can store them
        fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
        table = table.cast(pa.schema(fields))
    return table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], table.schema)


class HttpExtract:
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        cfg = parse_step(HttpExtractStep, step)
        src = cfg.source
        url = render_path_template(src.url, ctx)
        params = {k: render_path_template(v, ctx) if isinstance(v, str) else v for k, v in src.params.items()}
        headers = dict(src.headers)
        redact: tuple[str, ...] = ()
        if src.auth is not None:
            token = ctx.secret(src.auth.secret)
            headers[src.auth.header] = f"{src.auth.scheme} {token}" if src.auth.scheme else token
            redact = (token,)
        client = JsonClient(
            retries=RetryPolicy(src.retries.max_attempts, src.retries.backoff_seconds, src.retries.max_backoff_seconds),
            limiter=RateLimiter(src.rate_limit.requests_per_second),
            timeout_seconds=src.timeout_seconds,
            seconds_left=ctx.seconds_left,
            policy=egress_policy(ctx.settings),
            redact=redact,
            sensitive_headers=frozenset({src.auth.header.lower()} if src.auth is not None else ()),
        )
        schema = pa.schema([(n, arrow_type(t)) for n, t in cfg.config.columns.items()]) if cfg.config.columns else None
        table = cfg.destination.qualified(ctx)
        ctx.warehouse.require_dataset(ctx.dataset(cfg.destination.dataset))
        sink = TableSink(ctx.warehouse, table, cfg.destination.write_mode, ctx.run_id, step.step_id)
        pages = 0
        columns = schema
        ignored: set[str] = set()
        try:
            for records in _pages(src, client, url, headers, params):
                check_deadline(ctx, step)
                pages += 1
                if not records:
                    continue
                if columns is not None:
                    ignored.update(k for r in records if isinstance(r, dict) for k in r if k not in columns.names)
                batch = _to_batch(records, columns)
                columns = columns or batch.schema  # later pages are read with the first page's columns
                sink.write(batch)
            rows = sink.commit(empty_schema=schema)
        except BaseException:
            sink.abort()
            raise
        details = {
            "table": table,
            "write_mode": cfg.destination.write_mode,
            "pages": pages,
            "requests": client.requests_sent,
            "retries": client.retried,
            "redirects": client.redirects_followed,
            "ignored_fields": sorted(ignored)[:50],
        }
        return StepResult(rows_in=rows, rows_out=rows, bytes_processed=sink.bytes_written, details=details)


SPEC = ProcessorSpec(
    ps_type="http.extract",
    summary="page through a REST API and land the records in a table.",
    processor=HttpExtract(),
    validate=validate_step,
    # the optional `config` is left out: the editor schema marks every section listed here required
    config_models={"source": HttpSource, "destination": Destination},
)
