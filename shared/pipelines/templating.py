"""`{name}` placeholders: substituted into identifiers only, and only with values that are identifier fragments.

A placeholder names a built-in (`tenant_id`, `run_id`, `run_date`, `pipeline_id`, `project`), a declared parameter or
a variable. Its value must read as `[A-Za-z0-9_]+` (a date becomes `YYYYMMDD`) before it is pasted, so a placeholder
can never open a string, end a statement or add a clause: values meant as data go to SQL as `@name` query parameters.
Where in the SQL a placeholder may stand (inside a table or column name, not in a literal or comment) is checked on
the parsed statement by `sql_scope`. `{{name}}` is a literal `{name}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from shared.errors import TerminalError

PLACEHOLDER = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
FRAGMENT = re.compile(r"^[A-Za-z0-9_]{1,256}$")
"""What a substituted value may look like: letters, digits and underscores only."""
PATH_FRAGMENT = re.compile(r"^[A-Za-z0-9_.=\-]+$")
"""What a value substituted into a file path or URL may look like: no '/', so it cannot walk into another folder."""
PATH_KEYS = frozenset({"path", "url", "params"})
"""Keys of a step's `source` whose placeholders are filled as path/URL text (render_path_template), not identifiers."""
_SENTINEL = "zzcdph{}zz"
"""Validation-time stand-in for a placeholder whose value is not known yet (an identifier fragment itself)."""


class TemplateError(TerminalError):
    """A placeholder that is unknown or whose value cannot be pasted into an identifier; `name` is the placeholder."""

    def __init__(self, name: str, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.offset = offset


def identifier_fragment(name: str, value: Any) -> str:
    """The text a value contributes to an identifier, or TemplateError: dates as YYYYMMDD, ints as digits, strings
    only if they are made of letters, digits and underscores."""
    if isinstance(value, bool | datetime | float) or value is None:
        raise TemplateError(name, f"{{{name}}}: a {type(value).__name__} value cannot be part of a table name")
    text = value.strftime("%Y%m%d") if isinstance(value, date) else str(value)
    if not FRAGMENT.match(text):
        raise TemplateError(
            name,
            f"{{{name}}} = {text[:80]!r} cannot be part of a table name: only letters, digits and '_' are allowed "
            f"(pass data as the query parameter @{name} instead)",
        )
    return text


def placeholders(text: str) -> Iterator[tuple[str, int]]:
    """(name, offset) of each placeholder in `text`; escaped `{{name}}` is skipped."""
    for match in PLACEHOLDER.finditer(text):
        if match.group(2) is not None:
            yield match.group(2), match.start()


def path_fragment_problem(value: Any) -> str | None:
    """Why `value` cannot be pasted into a file path or URL, or None when it can."""
    text = str(value)
    if not PATH_FRAGMENT.match(text) or text in (".", ".."):
        return f"{text[:80]!r} is not allowed in a path or URL (letters, digits and _ . = - only)"
    return None


def placeholder_locations(value: Any, where: tuple[str | int, ...]) -> Iterator[tuple[str, tuple[str | int, ...]]]:
    """(name, key path) of each placeholder in a nested structure, e.g. ("run_date", ("source", "path"))."""
    if isinstance(value, str):
        for name, _ in placeholders(value):
            yield name, where
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from placeholder_locations(item, (*where, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from placeholder_locations(item, (*where, index))


def placeholders_in(value: Any) -> set[str]:
    """Names used as placeholders anywhere in a nested structure of strings, lists and mappings."""
    if isinstance(value, str):
        return {name for name, _ in placeholders(value)}
    if isinstance(value, Mapping):
        return set().union(*(placeholders_in(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(placeholders_in(v) for v in value)) if value else set()
    return set()


@dataclass(frozen=True)
class Rendered:
    """Template text after substitution, with what each substituted span was, so an offset in the rendered text can
    be reported against the template the user wrote."""

    text: str
    spans: tuple[tuple[int, int, int, int], ...] = ()
    """(rendered_start, rendered_end, template_start, template_end) per substituted placeholder, in order."""
    substituted: tuple[tuple[int, int, str], ...] = ()
    """(rendered_start, rendered_end, name) of every placeholder replaced by a value (escapes excluded)."""
    markers: Mapping[str, str] = field(default_factory=dict)
    """placeholder name -> the text it was rendered as (a sentinel for values unknown at validation time)."""

    def template_offset(self, offset: int) -> int:
        """Offset in the template of the character at `offset` in the rendered text (a character inside a
        substituted value maps to the start of its placeholder)."""
        shift = 0
        for r_start, r_end, t_start, t_end in self.spans:
            if offset < r_start:
                break
            if offset < r_end:
                return t_start
            shift = t_end - r_end
        return offset + shift


def render(template: str, values: Mapping[str, Any]) -> Rendered:
    """Substitute each placeholder with its value, after checking the value is an identifier fragment.

    Only the placeholders used are checked, so a parameter holding free text is fine as long as it is used as
    `@name`. An unknown name or a bad value is a TemplateError carrying the placeholder's offset.
    """
    out: list[str] = []
    spans: list[tuple[int, int, int, int]] = []
    substituted: list[tuple[int, int, str]] = []
    used: dict[str, str] = {}
    pos = 0
    length = 0
    for match in PLACEHOLDER.finditer(template):
        out.append(template[pos : match.start()])
        length += match.start() - pos
        if match.group(1) is not None:  # escaped {{name}}
            text = "{" + match.group(1) + "}"
        else:
            name = match.group(2)
            if name not in values:
                allowed = ", ".join("{" + n + "}" for n in sorted(values))
                raise TemplateError(name, f"unknown placeholder {{{name}}} (known: {allowed})", match.start())
            try:
                text = used[name] if name in used else identifier_fragment(name, values[name])
            except TemplateError as exc:
                raise TemplateError(name, str(exc), match.start()) from None
            used[name] = text
            substituted.append((length, length + len(text), name))
        out.append(text)
        spans.append((length, length + len(text), match.start(), match.end()))
        length += len(text)
        pos = match.end()
    out.append(template[pos:])
    return Rendered("".join(out), tuple(spans), tuple(substituted), used)


def run_values(
    *,
    tenant_id: str,
    run_id: str,
    run_date: date,
    pipeline_id: str,
    project: str,
    parameters: Mapping[str, Any],
    variables: Mapping[str, Any],
) -> dict[str, Any]:
    """Every name a placeholder may use in a run (built-ins win: a spec cannot declare them)."""
    return {
        **variables,
        **parameters,
        "tenant_id": tenant_id,
        "run_id": run_id,
        "run_date": run_date,
        "pipeline_id": pipeline_id,
        "project": project,
    }


def sentinel(index: int) -> str:
    """A stand-in for a value not known at validation time: an identifier fragment no user would write."""
    return _SENTINEL.format(index)


def describe_sentinels(values: Mapping[str, Any]) -> Callable[[str], str]:
    """A function turning sentinels in rendered text back into the `{name}` the user wrote, for messages."""
    pairs = [(str(v), "{" + k + "}") for k, v in values.items() if isinstance(v, str) and "zzcdph" in v]

    def describe(text: str) -> str:
        for marker, name in pairs:
            text = text.replace(marker, name)
        return text

    return describe


TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
_FRAGMENT_TYPES = ("string", "int", "date")
_BUILTINS = ("tenant_id", "run_id", "run_date", "pipeline_id", "project")


@dataclass(frozen=True)
class ValidationScope:
    """What a step's validator knows about its pipeline: the tenant (when the file sits in tenant_configs/), the other
    tenants, and the declared parameters and variables. Values only known per run stand in as sentinels."""

    tenant_id: str | None = None
    other_tenants: Set[str] = frozenset()
    """Every tenant but this one (`shared.pipelines.tenant_folders.other_tenants`)."""
    parameter_types: Mapping[str, str] = field(default_factory=dict)
    parameter_defaults: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    config_dir: Path | None = None
    """The tenant_configs folder the pipeline file sits in (for checks against the tenant's tenant.yaml, such as
    its declared gs:// buckets); None for a text validated on its own."""

    def values(self) -> dict[str, Any]:
        """Validation-time placeholder values: tenant_id and variables as they are, a sentinel for the rest."""
        names = sorted({*_BUILTINS, *self.parameter_types, *self.variables})
        out: dict[str, Any] = {name: sentinel(i) for i, name in enumerate(names)}
        out.update(self.variables)
        if self.tenant_id:
            out["tenant_id"] = self.tenant_id
        return out

    def tenant_marker(self) -> str:
        return str(self.values()["tenant_id"])

    def placeholder_problems(self, template: str) -> list[tuple[int, str]]:
        """(offset, message) for each placeholder naming a parameter that cannot be part of an identifier: its type
        is not string/int/date, or its default is not an identifier fragment. Run values are checked at run time."""
        problems: list[tuple[int, str]] = []
        for name, offset in placeholders(template):
            ptype = self.parameter_types.get(name)
            if ptype is None:
                continue
            if ptype not in _FRAGMENT_TYPES:
                problems.append((offset, f"{{{name}}}: a {ptype} parameter cannot be part of a table name"))
                continue
            default = self.parameter_defaults.get(name)
            if default is not None:
                try:
                    identifier_fragment(name, date.fromisoformat(default) if ptype == "date" else default)
                except TemplateError as exc:
                    problems.append((offset, f"default of parameter {name!r}: {exc}"))
        return problems


def validate_identifier_template(text: str, scope: ValidationScope) -> list[tuple[int, str]]:
    """(offset, message) problems of a templated name such as `orders_{run_date}`."""
    problems = scope.placeholder_problems(text)
    try:
        rendered = render(text, scope.values())
    except TemplateError as exc:
        return [*problems, (exc.offset or 0, str(exc))]
    if not problems and not TABLE_NAME.match(rendered.text):
        problems.append((0, f"{text!r} is not a valid name: letters, digits and '_', starting with a letter or '_'"))
    return problems


def render_identifier(text: str, values: Mapping[str, Any], what: str) -> str:
    """A templated name for a run; TemplateError unless the result is a valid table/dataset name."""
    rendered = render(text, values).text
    if not TABLE_NAME.match(rendered):
        raise TemplateError(what, f"{what} {rendered!r} is not a valid name: letters, digits and '_'")
    return rendered
