"""`file.load`: parquet / csv / ndjson files from a tenant folder or `gs://` into a table, streamed in record batches.

source:
  path: exports/{run_date}/*.parquet      local (relative to the tenant's landing folder) or gs://bucket/object;
                                          a glob in the file name loads every match; placeholders: run_date, run_id,
                                          tenant_id, parameters, variables (values may not contain '/')
  format: parquet | csv | ndjson          optional: inferred from the extension (.gz allowed for csv / ndjson)
  csv: {delimiter: ",", skip_rows: 0}
destination: {dataset: billing, table: gcp_billing_export, write_mode: truncate | append}
config:
  schema: {column: TYPE, ...}             optional explicit columns + types (GoogleSQL names: STRING, INT64, FLOAT64,
                                          NUMERIC, BOOL, DATE, TIMESTAMP ...); without it the file's schema is used
  batch_rows: 65536

Local paths outside the tenant's folders are refused (see file_sources), and so is a gs:// bucket the tenant has not
declared in its tenant.yaml (`sources.gcs_buckets`): at validation time when the bucket is written literally, and at
run time after rendering. Memory holds one flush of rows at a time (table_sink), however big the files are.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import ConfigDict, Field

from shared.adapters.gcp_identity import tenant_credentials
from shared.errors import TerminalError
from shared.pipelines.spec import StepIssue, StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors.base import StepContext, StepResult
from shared.processors.contract import ProcessorSpec
from shared.processors.file_sources import FileFormat, ReadOptions, infer_format, read_batches, split_gs
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
from shared.tenancy.sources import undeclared_bucket_problem


class CsvOptions(StrictModel):
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    skip_rows: int = Field(default=0, ge=0, description="Lines to skip before the header.")


class FileSource(StrictModel):
    path: str = Field(min_length=1, description="Local path (tenant folders only) or gs://bucket/object; globs ok.")
    format: FileFormat | None = Field(default=None, description="Inferred from the extension when omitted.")
    csv: CsvOptions = Field(default_factory=CsvOptions)


class FileLoadSettings(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    columns: dict[ColumnName, ColumnTypeName] | None = Field(
        default=None, alias="schema", description="Explicit column -> type; the file's own schema when omitted."
    )
    batch_rows: int = Field(default=65_536, ge=1, le=1_000_000)

    def arrow_schema(self) -> pa.Schema | None:
        if self.columns is None:
            return None
        return pa.schema([(name, arrow_type(kind)) for name, kind in self.columns.items()])


class FileLoadStep(StrictModel):
    source: FileSource
    destination: Destination
    config: FileLoadSettings = Field(default_factory=FileLoadSettings)


def validate_step(step: StepSpec, scope: ValidationScope) -> list[StepIssue]:
    issues = step_issues(FileLoadStep, step)
    path = step.source.get("path") if isinstance(step.source, dict) else None
    if scope.tenant_id and scope.config_dir and isinstance(path, str) and path.startswith("gs://"):
        bucket = path.removeprefix("gs://").partition("/")[0]
        if "{" not in bucket:  # a templated bucket is checked at run time, once rendered
            try:
                split_gs(path)
            except TerminalError as exc:
                return [*issues, StepIssue(("source", "path"), str(exc))]
            problem = undeclared_bucket_problem(scope.config_dir, scope.tenant_id, bucket)
            if problem:
                issues.append(StepIssue(("source", "path"), problem))
    return issues


class FileLoad:
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        cfg = parse_step(FileLoadStep, step)
        location = render_path_template(cfg.source.path, ctx)
        options = ReadOptions(
            format=cfg.source.format or infer_format(location),
            schema=cfg.config.arrow_schema(),
            batch_rows=cfg.config.batch_rows,
            csv_delimiter=cfg.source.csv.delimiter,
            csv_skip_rows=cfg.source.csv.skip_rows,
        )
        table = cfg.destination.qualified(ctx)
        ctx.warehouse.require_dataset(ctx.dataset(cfg.destination.dataset))
        sink = TableSink(ctx.warehouse, table, cfg.destination.write_mode, ctx.run_id, step.step_id)
        try:
            # gs:// objects are read as the tenant's own service account on GCP (None elsewhere: the emulators check
            # no identity), so a bucket the tenant was never granted stays unreadable even past the declared-bucket
            # check.
            credentials = tenant_credentials(ctx.settings, ctx.tenant_id)
            for batch in read_batches(location, ctx, options, credentials=credentials):
                check_deadline(ctx, step)
                sink.write(batch)
            rows = sink.commit(empty_schema=options.schema)
        except BaseException:
            sink.abort()
            raise
        details: dict[str, Any] = {
            "table": table,
            "write_mode": cfg.destination.write_mode,
            "source": location,
            "format": options.format,
        }
        return StepResult(rows_in=rows, rows_out=rows, bytes_processed=sink.bytes_written, details=details)


SPEC = ProcessorSpec(
    ps_type="file.load",
    summary="parquet / csv / ndjson files from a tenant folder or `gs://` into a table, streamed in record batches.",
    processor=FileLoad(),
    validate=validate_step,
    # the optional `config` is left out: the editor schema marks every section listed here required
    config_models={"source": FileSource, "destination": Destination},
)
