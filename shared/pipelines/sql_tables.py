"""Which tables a tenant's query names: every reference resolved after CTE scoping, and required to be inside the
tenant's own datasets.

- An unqualified name must be a CTE visible at that point: a CTE of an enclosing WITH, and inside a CTE's own body
  only the CTEs defined before it (and itself, in WITH RECURSIVE). Anything else is refused, so a name never falls
  through to the warehouse's catalog (`duckdb_tables`, `sqlite_master`, a file path, another tenant's table).
- CTE names are plain identifiers, unique in the statement (no shadowing between nested WITHs), and neither CTEs nor
  aliases may take a catalog/system name (`duckdb_tables`, `pg_settings`, `INFORMATION_SCHEMA`).
- A qualified name is `[project.]dataset.table` where dataset is `{tenant_id}_<name>` (compared case-insensitively
  against other tenants: DuckDB folds case) and table a plain name. INFORMATION_SCHEMA is refused in every form,
  even a dataset's own (DuckDB has no such per-dataset view, and the catalog is not a step's business).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Set
from dataclasses import dataclass, field

from sqlglot import exp

from shared.pipelines.sql_allowlist import is_system_name
from shared.pipelines.tenant_folders import OtherTenants, as_other_tenants

PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
"""A dataset, table or CTE name a tenant's query may use: ASCII letters, digits and '_' (no path, no dot, no unicode
look-alikes that one engine folds and the other does not)."""

RESERVED_DATASETS = frozenset({"metadata"})
"""`{tenant}_metadata` holds run history and DQ results: steps may read it, never write it."""


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class TableScope:
    tenant_marker: str
    """The tenant id, or (at validation time, when the file's tenant is unknown) the sentinel standing for it."""
    project_markers: frozenset[str] = frozenset()
    """Accepted project qualifiers: the configured project and/or the rendering of `{project}`."""
    other_tenants: Set[str] = frozenset()
    """Tenants whose datasets are refused; held as an OtherTenants (a literal set is indexed once, here)."""
    describe: Callable[[str], str] = field(default=_same)
    """Turns rendered text back into what the user wrote (sentinels -> `{name}`), for messages."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "other_tenants", as_other_tenants(self.other_tenants))

    @property
    def others(self) -> OtherTenants:
        others = self.other_tenants
        assert isinstance(others, OtherTenants)  # set by __post_init__
        return others


@dataclass(frozen=True)
class SqlIssue:
    offset: int | None
    """Character offset in the checked SQL text, or None for the statement as a whole."""
    message: str


def dataset_problem(dataset: str, scope: TableScope) -> str | None:
    """Why `dataset` is not one of the scope's tenant's datasets, or None if it is."""
    shown = scope.describe(dataset)
    folded = dataset.lower()
    if folded == "information_schema" or folded.startswith("region-"):
        return (
            f"`{shown}` is project/region-wide and shows other tenants: INFORMATION_SCHEMA is not available to "
            "pipeline steps"
        )
    prefix = scope.tenant_marker + "_"
    if not PLAIN_NAME.match(dataset) or not dataset.startswith(prefix) or len(dataset) == len(prefix):
        return (
            f"dataset `{shown}` is not one of this tenant's datasets: a step may only use datasets named "
            f"{scope.describe(prefix)}<name>"
        )
    # the first, in sorted order, of the tenants whose datasets the name would be (a lookup per `_`, not a scan)
    owner = next((other for other in scope.others.owners_of(dataset) if other != scope.tenant_marker), None)
    if owner is not None:
        return f"dataset `{shown}` belongs to tenant {owner!r}"
    return None


def writable_dataset_problem(dataset: str, scope: TableScope) -> str | None:
    """Why a step may not write into `dataset` (the full, rendered name, e.g. `acme_sales`), or None. On top of
    `dataset_problem`: the reserved run-history datasets, compared case-insensitively (`Metadata`, or a placeholder
    whose value is `metadata`, is still the reserved one)."""
    problem = dataset_problem(dataset, scope)
    if problem:
        return problem
    name = dataset[len(scope.tenant_marker) + 1 :]
    if name.lower() in RESERVED_DATASETS:
        return f"{name!r} is reserved for run history (`{scope.describe(dataset)}`): steps may read it, never write it"
    return None


def table_issues(tree: exp.Expr, scope: TableScope) -> list[SqlIssue]:
    """Every table reference, CTE name and alias of `tree` that breaks the module's rules."""
    issues = _name_issues(tree)
    for table in tree.find_all(exp.Table):
        problem = _table_problem(table, scope)
        if problem:
            issues.append(SqlIssue(node_offset(table), problem))
    for unnest in tree.find_all(exp.Unnest):
        for argument in unnest.expressions:
            problem = _unnest_problem(argument, scope)
            if problem:
                issues.append(SqlIssue(node_offset(argument), problem))
    return issues


def _range_variables(node: exp.Expr) -> set[str]:
    """Lower-cased aliases of the FROM/JOIN items of every SELECT around `node`: names a path may start with."""
    names: set[str] = set()
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.Select):
            from_ = parent.args.get("from_")
            items = [from_.this] if isinstance(from_, exp.From) else []
            items += [join.this for join in parent.args.get("joins") or []]
            names.update(item.alias_or_name.lower() for item in items if item.alias_or_name)
        parent = parent.parent
    return names


def _unnest_problem(argument: exp.Expr, scope: TableScope) -> str | None:
    """UNNEST takes an array: a column or a path into a STRUCT (`credits`, `e.credits`, `project.labels`), an array
    literal, parameter or function. A path that starts with a dataset or project name would name a table, which no
    engine reads as an array; it is refused by name rather than left to each engine's name resolution."""
    if not isinstance(argument, exp.Column) or not (argument.table or argument.db or argument.catalog):
        return None
    head = next(argument.args[k] for k in ("catalog", "db", "table") if argument.args.get(k) is not None).name
    folded = head.lower()
    datasetish = (
        folded.startswith(scope.tenant_marker.lower() + "_")
        or head in scope.project_markers
        or folded == "information_schema"
        or folded.startswith("region-")
        or bool(scope.others.owners_of(head))
    )
    if not datasetish or folded in _range_variables(argument):
        return None
    shown = scope.describe(argument.sql("bigquery"))[:80]
    return (
        f"UNNEST({shown}) names a table, not an array: UNNEST takes an array column or path (join the table and "
        "UNNEST its array column: FROM {tenant_id}_<dataset>.<table> AS t, UNNEST(t.<array_column>) AS x)"
    )


def node_offset(node: exp.Expr) -> int | None:
    """Where `node` starts in the parsed text (the smallest start offset of its tokens), if the parser recorded it."""
    starts = [int(n.meta["start"]) for n in node.walk() if isinstance(n, exp.Expr) and "start" in n.meta]
    return min(starts) if starts else None


# -- names --------------------------------------------------------------------------------------------------------


def _name_issues(tree: exp.Expr) -> list[SqlIssue]:
    issues: list[SqlIssue] = []
    seen: set[str] = set()
    for cte in tree.find_all(exp.CTE):
        name = cte.alias_or_name
        at = node_offset(cte.args["alias"]) if cte.args.get("alias") else node_offset(cte)
        if not PLAIN_NAME.match(name):
            issues.append(SqlIssue(at, f"CTE name {name!r} is not a plain name (letters, digits and '_')"))
        elif name.lower() in seen:
            issues.append(SqlIssue(at, f"CTE `{name}` is defined twice: give each CTE its own name"))
        seen.add(name.lower())
    for alias in tree.find_all(exp.TableAlias):
        names = [alias.name, *(column.name for column in alias.columns)]
        for name in names:
            if is_system_name(name):
                what = "CTE" if isinstance(alias.parent, exp.CTE) else "alias"
                issues.append(
                    SqlIssue(
                        node_offset(alias),
                        f"{what} `{name}` takes the name of a catalog/system table or schema: choose another name",
                    )
                )
    return issues


def _visible_ctes(table: exp.Table) -> set[str]:
    """Lower-cased names of the CTEs `table` may refer to without a dataset (see the module docstring)."""
    visible: set[str] = set()
    child: exp.Expr = table
    entered: exp.CTE | None = None
    node = table.parent
    while node is not None:
        if isinstance(child, exp.CTE):
            entered = child
        with_ = node.args.get("with_")
        if isinstance(with_, exp.With):
            ctes = list(with_.expressions)
            if child is with_:
                index = next((i for i, cte in enumerate(ctes) if cte is entered), len(ctes))
                ctes = ctes[: index + 1] if with_.args.get("recursive") else ctes[:index]
            visible.update(cte.alias_or_name.lower() for cte in ctes)
        child, node = node, node.parent
    return visible


# -- tables -------------------------------------------------------------------------------------------------------


def _table_problem(table: exp.Table, scope: TableScope) -> str | None:
    if not isinstance(table.this, exp.Identifier):
        return f"table functions are not allowed here: {table.sql('bigquery')[:80]}"
    project, dataset, name = table.catalog, table.db, table.name
    if not dataset:
        if not project and name.lower() in _visible_ctes(table):
            return None
        shown = scope.describe(name)
        if not PLAIN_NAME.match(name):
            return f"table `{shown}` is not a table of this tenant: write {{tenant_id}}_<dataset>.<table>"
        return f"table `{shown}` needs its dataset: write {{tenant_id}}_<dataset>.{shown} (or define a CTE `{shown}`)"
    if project and project not in scope.project_markers:
        return (
            f"project `{scope.describe(project)}` is not allowed: a step reads only this deployment's project; "
            "write {project}. or leave the project out"
        )
    problem = dataset_problem(dataset, scope)
    if problem:
        return problem
    if name.upper().startswith("INFORMATION_SCHEMA."):
        return (
            "INFORMATION_SCHEMA is the warehouse's catalog and is not available to pipeline steps: "
            "read your own tables instead"
        )
    if not PLAIN_NAME.match(name):
        return f"table name {scope.describe(name)!r} is not a plain name (letters, digits and '_')"
    return None
