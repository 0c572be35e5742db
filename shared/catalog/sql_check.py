"""SQL steps checked against the warehouse they will run on, before they run.

The loader already checks every query's syntax and tenant scope (sql_scope) without a warehouse. This module adds
what needs one, reported at the YAML file:line:column of the query like the loader's own problems:

- translation (embedded warehouse): the GoogleSQL must translate to DuckDB (`duckdb_sql.transpile`);
- tables: every `{tenant_id}_<dataset>.<table>` a query reads must exist, unless a step this one depends on
  (directly or not) writes it. If that step is a bigquery.query whose own dry run passed, its result columns stand
  in for the table (sql_stand_ins), so the query is still dry-run; otherwise the table is *known later* and the
  query waits for a real run. A table written only by a step this one does not depend on is an error (the run could
  read it before it exists);
- a dry run: DuckDB binds and plans the translated statement (EXPLAIN); BigQuery runs a dry-run job. Unknown columns,
  functions and type errors are found here, without reading a row.

Where each runs, and why (execute's latency):
- `cloudact pipelines validate` runs all of it (`check_pipeline`): one dry run per SQL text, milliseconds on DuckDB,
  one round trip of ~0.2-1 s per query on BigQuery, acceptable for a command a person runs.
- The execute API runs only `translation_issues`: pure CPU, cached per file version, no warehouse round trip, so on
  GCP (where a dry run per SQL step would add a BigQuery round trip per step to every execute) it adds nothing, and
  on the embedded runtime it opens no DuckDB file. The dry run's answer also depends on what an earlier run left in
  the warehouse; a step that then fails does so with the same message, at that step.

Values used for a check: the tenant, the configured project, the pipeline id, variables, parameter defaults;
`@name`s without a default get a sample of their declared type. A table whose name depends on a value known only per
run (`{run_date}`, a parameter without default) is not looked up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

from shared.catalog.loader import (
    PipelineValidationError,
    display_name,
    find_pipeline,
    locate_issues,
    pipeline_path,
    tenant_of,
)
from shared.errors import BadRequest, ClientError, PipelineError, TerminalError
from shared.pipelines.parameters import typed
from shared.pipelines.spec import PipelineSpec, StepSpec
from shared.pipelines.sql_engine_messages import clean, offset_of_name
from shared.pipelines.sql_scope import TableScope, checked_query, query_parameter_names
from shared.pipelines.sql_stand_ins import Columns, tables_read, with_stand_ins
from shared.pipelines.templating import TemplateError, render, sentinel
from shared.ports.warehouse import Warehouse, WarehouseCatalog
from shared.yaml_source import SourceIssue

Severity = Literal["error", "note"]
YamlPath = tuple[str | int, ...]
_SENTINEL_MARK = "zzcdph"
_SAMPLES: dict[str, Any] = {
    "string": "",
    "int": 0,
    "number": 0.0,
    "bool": False,
    "date": date(2026, 1, 1),
    "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
}
"""A value per parameter type for `@name`s without a default: the dry run needs a type, not a meaningful value."""


@dataclass(frozen=True)
class SqlFinding:
    severity: Severity
    issue: SourceIssue

    def __str__(self) -> str:
        return str(self.issue) if self.severity == "error" else f"{self.issue} (note)"


@dataclass
class CheckReport:
    """What `check_pipeline` found in one file, plus how many queries it dry-ran and how many waited."""

    findings: list[SqlFinding] = field(default_factory=list)
    dry_runs: int = 0
    known_later: int = 0

    @property
    def errors(self) -> list[SqlFinding]:
        return [f for f in self.findings if f.severity == "error"]


@dataclass(frozen=True)
class SqlText:
    """One SQL text of a step: where it sits in the YAML and its template."""

    step_index: int
    step: StepSpec
    path: YamlPath
    template: str


def sql_texts(spec: PipelineSpec) -> Iterator[SqlText]:
    """Every SQL text the steps run: bigquery.query's `source.query` and quality.check's custom_sql `sql`s."""
    for index, step in enumerate(spec.steps):
        if step.ps_type == "bigquery.query" and isinstance(step.source.get("query"), str):
            yield SqlText(index, step, ("source", "query"), step.source["query"])
        elif step.ps_type == "quality.check":
            for n, check in enumerate(step.config.get("checks") or []):
                if isinstance(check, dict) and check.get("type") == "custom_sql" and isinstance(check.get("sql"), str):
                    yield SqlText(index, step, ("config", "checks", n, "sql"), check["sql"])


# -- the checks ----------------------------------------------------------------------------------------------------


def check_pipeline(path: Path, spec: PipelineSpec, warehouse: Warehouse, project: str) -> CheckReport:
    """Tables and a dry run for every SQL text of a validated pipeline file, against the tenant's warehouse."""
    tenant_id, others = tenant_of(path)
    report = CheckReport()
    if tenant_id is None or not isinstance(warehouse, WarehouseCatalog):
        return report
    context = _Context(tenant_id, others, project, spec, warehouse)
    problems: list[tuple[Severity, YamlPath, str, int | None]] = []
    # upstream steps first (a step has more ancestors than each of its own): their result columns stand in for the
    # tables they will write when their dependants are checked
    for text in sorted(sql_texts(spec), key=lambda t: len(context.ancestors.get(t.step.step_id, ()))):
        where = ("steps", text.step_index, *text.path)
        verdict = context.check(text)
        problems += [(severity, where, message, offset) for severity, message, offset in verdict.findings]
        report.dry_runs += verdict.dry_ran
        report.known_later += verdict.waits
    report.findings = sorted(_located(path, problems), key=lambda f: (f.issue.line, f.issue.column))
    return report


Translate = Callable[[str], object]
"""GoogleSQL -> the embedded engine's SQL, raising TerminalError when it cannot (`duckdb_sql.transpile`)."""


def translation_issues(path: Path, spec: PipelineSpec, project: str, translate: Translate) -> list[SourceIssue]:
    """Execute's cheap check on the embedded warehouse: every SQL text translates to DuckDB (module docstring).
    Cached per file version: an execute of an unchanged pipeline costs a dictionary lookup."""
    mtime = path.stat().st_mtime_ns
    return list(_translation_issues_cached(str(path), mtime, project, spec.model_dump_json(), translate))


@lru_cache(maxsize=256)
def _translation_issues_cached(
    path: str, _mtime_ns: int, project: str, spec_json: str, translate: Translate
) -> tuple[SourceIssue, ...]:
    file = Path(path)
    tenant_id, others = tenant_of(file)
    spec = PipelineSpec.model_validate_json(spec_json)
    if tenant_id is None:
        return ()
    context = _Context(tenant_id, others, project, spec, None)
    problems: list[tuple[Severity, YamlPath, str, int | None]] = []
    for text in sql_texts(spec):
        prepared = context.prepare(text)
        if prepared is None:
            continue
        try:
            translate(prepared.canonical)
        except TerminalError as exc:
            message = clean(str(exc))
            offset = offset_of_name(message, prepared.rendered)
            at = None if offset is None else prepared.template_offset(offset)
            problems.append(("error", ("steps", text.step_index, *text.path), message, at))
    return tuple(f.issue for f in _located(file, problems))


def _located(path: Path, problems: list[tuple[Severity, YamlPath, str, int | None]]) -> list[SqlFinding]:
    if not problems:
        return []
    text = path.read_text(encoding="utf-8")
    issues = locate_issues(
        text, display_name(path), [(where, message, offset) for _, where, message, offset in problems]
    )
    return [SqlFinding(severity, issue) for (severity, *_), issue in zip(problems, issues, strict=True)]


class _Verdict(NamedTuple):
    findings: list[tuple[Severity, str, int | None]]
    dry_ran: int = 0
    waits: int = 0
    """1 when a table the query reads is known only later (an upstream step creates it, or its name is per run)."""


@dataclass(frozen=True)
class _Prepared:
    rendered: str
    template_offset: Callable[[int], int]
    canonical: str
    params: dict[str, Any]


class _Context:
    """One pipeline's values, producers and warehouse, shared by the checks of its SQL texts."""

    def __init__(
        self,
        tenant_id: str,
        others: Set[str],
        project: str,
        spec: PipelineSpec,
        warehouse: WarehouseCatalog | None,
    ) -> None:
        self.tenant_id, self.others, self.project, self.spec, self.warehouse = (
            tenant_id,
            others,
            project,
            spec,
            warehouse,
        )
        self.values = self._values()
        self.destination_of: dict[str, str] = {}
        self.producers = self._producers()
        self.ancestors = _ancestors(spec)
        self._tables: dict[str, set[str]] = {}
        self.written: dict[str, Columns] = {}
        """Tables a checked bigquery.query step will write (lower-cased `dataset.table`) -> its result columns."""

    def _values(self) -> dict[str, Any]:
        """Placeholder values: known ones as they are, a sentinel for those known only per run."""
        spec = self.spec
        names = sorted({"run_id", "run_date", *spec.parameters})
        values: dict[str, Any] = {name: sentinel(i) for i, name in enumerate(names)}
        values.update({k: v for k, v in spec.variables.items()})
        for name, param in spec.parameters.items():
            if param.default is not None:
                values[name] = typed(param.type, param.default)
        values.update(tenant_id=self.tenant_id, project=self.project, pipeline_id=spec.pipeline_id)
        return values

    def _params(self, names: list[str]) -> dict[str, Any]:
        """`@name` values for a dry run: defaults, variables, built-ins, else a sample of the declared type."""
        spec = self.spec
        out: dict[str, Any] = {}
        for name in names:
            param = spec.parameters.get(name)
            if param is not None:
                out[name] = typed(param.type, param.default) if param.default is not None else _SAMPLES[param.type]
            elif name in spec.variables:
                out[name] = spec.variables[name]
            elif name == "run_date":
                out[name] = date.today()
            elif name in ("run_id", "tenant_id", "pipeline_id"):
                out[name] = {"run_id": "run_0", "tenant_id": self.tenant_id, "pipeline_id": spec.pipeline_id}[name]
        return out

    def _producers(self) -> list[tuple[re.Pattern[str], str]]:
        """(pattern of the table a step writes, step_id); a name part known only per run matches any name."""
        out: list[tuple[re.Pattern[str], str]] = []
        for step in self.spec.steps:
            dest = step.destination or {}
            dataset, table = dest.get("dataset"), dest.get("table")
            if not isinstance(dataset, str) or not isinstance(table, str):
                continue
            try:
                name = f"{self.tenant_id}_{render(dataset, self.values).text}.{render(table, self.values).text}"
            except TemplateError:
                continue
            pattern = re.escape(name.lower())
            pattern = re.sub(r"zzcdph\d+zz", "[a-z0-9_]+", pattern)
            out.append((re.compile(f"^{pattern}$"), step.step_id))
            if step.ps_type == "bigquery.query" and _SENTINEL_MARK not in name:
                self.destination_of[step.step_id] = name.lower()
        return out

    def prepare(self, text: SqlText) -> _Prepared | None:
        """The query as a run would send it, or None if the loader refuses it (and reports why already)."""
        try:
            rendered = render(text.template, self.values)
        except TemplateError:
            return None
        scope = TableScope(self.tenant_id, frozenset({self.project}), self.others)
        canonical, issues = checked_query(rendered.text, scope, rendered.substituted)
        if canonical is None or issues:
            return None
        return _Prepared(
            rendered.text, rendered.template_offset, canonical, self._params(query_parameter_names(canonical))
        )

    def check(self, text: SqlText) -> _Verdict:
        prepared = self.prepare(text)
        if prepared is None or self.warehouse is None:
            return _Verdict([])
        found: list[tuple[Severity, str, int | None]] = []
        waiting = False
        stand_ins: dict[str, Columns] = {}
        for dataset, table, offset in tables_read(prepared.rendered):
            at = None if offset is None else prepared.template_offset(offset)
            full = f"{dataset}.{table}"
            if _SENTINEL_MARK in full:
                waiting = True  # named per run: looked up by the run itself
                continue
            try:
                if table.lower() in self._dataset_tables(dataset):
                    continue
            except PipelineError as exc:
                return _Verdict(
                    [("note", f"tables not checked: the warehouse did not answer ({clean(str(exc))})", None)]
                )
            writers = [step_id for pattern, step_id in self.producers if pattern.match(full.lower())]
            upstream = [w for w in writers if w in self.ancestors.get(text.step.step_id, set())]
            if upstream and full.lower() in self.written:
                stand_ins[full.lower()] = self.written[full.lower()]
                note = f"`{full}` does not exist yet: checked against the columns step {upstream[0]!r} writes"
                found.append(("note", note, at))
            elif upstream:
                waiting = True
                found.append(("note", f"`{full}` is known later: step {upstream[0]!r} creates it", at))
            elif writers:
                found.append(
                    (
                        "error",
                        f"`{full}` does not exist yet and step {writers[0]!r} writes it, but this step does not depend "
                        f"on it: add {writers[0]!r} to depends_on (else the query may run before the table exists)",
                        at,
                    )
                )
            else:
                found.append(("error", f"table `{full}` does not exist and no step of this pipeline creates it", at))
        if any(severity == "error" for severity, *_ in found):
            return _Verdict(found)
        sql = with_stand_ins(prepared.rendered, stand_ins) if stand_ins else prepared.canonical
        if waiting or sql is None:
            return _Verdict(found, waits=1)
        try:
            result = self.warehouse.dry_run(sql, prepared.params)
        except TerminalError as exc:
            message = clean(str(exc))
            offset = offset_of_name(message, prepared.rendered)
            at = None if offset is None else prepared.template_offset(offset)
            return _Verdict([*found, ("error", f"dry run: {message}", at)])
        except PipelineError as exc:  # transient: the warehouse is busy (a local server holds the file) or away
            note = f"dry run skipped: the warehouse did not answer ({clean(str(exc))})"
            return _Verdict([*found, ("note", note, None)])
        if text.path == ("source", "query") and text.step.step_id in self.destination_of:
            self.written[self.destination_of[text.step.step_id]] = result.columns
        return _Verdict(found, dry_ran=1)

    def _dataset_tables(self, dataset: str) -> set[str]:
        if dataset not in self._tables:
            assert self.warehouse is not None
            self._tables[dataset] = {t.table.lower() for t in self.warehouse.list_tables(dataset)}
        return self._tables[dataset]


def _ancestors(spec: PipelineSpec) -> dict[str, set[str]]:
    """step_id -> every step it depends on, directly or not."""
    direct = {s.step_id: set(s.depends_on) for s in spec.steps}
    out: dict[str, set[str]] = {}

    def walk(step_id: str, seen: frozenset[str]) -> set[str]:
        if step_id in out:
            return out[step_id]
        found: set[str] = set()
        for dep in direct.get(step_id, set()):
            if dep not in seen:
                found |= {dep, *walk(dep, seen | {dep})}
        out[step_id] = found
        return found

    for step in spec.steps:
        walk(step.step_id, frozenset({step.step_id}))
    return out


def require_translatable(
    config_dir: Path, tenant_id: str, pipeline_id: str, project: str, translate: Translate
) -> None:
    """Execute's 400 when a SQL step of the pipeline cannot run on the embedded warehouse (the issues as the loader's:
    file:line:col). A pipeline that is missing or invalid is left to admission, which answers for it."""
    try:
        spec = find_pipeline(config_dir, tenant_id, pipeline_id)
    except (PipelineValidationError, ClientError):
        return
    issues = translation_issues(pipeline_path(config_dir, tenant_id, pipeline_id), spec, project, translate)
    if issues:
        raise BadRequest(
            f"pipeline {pipeline_id!r} has SQL the local warehouse cannot run; fix its YAML (`cloudact pipelines "
            "validate`)",
            {"field": "pipeline_id", "issues": [str(issue) for issue in issues][:50]},
        )
