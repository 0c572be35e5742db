"""What a tenant reads from outside the platform: the `sources:` section of `tenant_configs/{tenant}/tenant.yaml`.

    sources:
      gcs_buckets: [acme-exports, acme-billing-export]

Why a declaration: the platform's own identity can read many buckets (every tenant's, its own), so "whatever the
platform can read" is no boundary. `file.load` reads `gs://` only from buckets listed here, checked when a pipeline
is validated (literal URIs) and again at run time after placeholders are rendered. On GCP the declared list is also
what the tenant's service account is granted read on, so the grant and the check name the same buckets.
Problems are reported as `tenant.yaml:line:column: sources.gcs_buckets[i]: message`, like the notifications section.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import TerminalError
from shared.yaml_source import SourceIssue, compose_and_load, key_path, locate

_TENANT_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_IPV4_LIKE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def bucket_name_problem(name: str) -> str | None:
    """Why `name` is not a Cloud Storage bucket name (its naming rules), or None."""
    if not _BUCKET.match(name):
        return (
            "3-222 characters: lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        )
    if "." not in name and len(name) > 63:
        return "at most 63 characters (222 only for dotted names)"
    if any(len(part) > 63 or not part for part in name.split(".")):
        return "each dot-separated part must be 1-63 characters"
    if _IPV4_LIKE.match(name) or name.startswith("goog") or "google" in name:
        return "may not look like an IP address, start with 'goog' or contain 'google'"
    return None


class TenantSources(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gcs_buckets: tuple[str, ...] = Field(
        default=(), description="Cloud Storage buckets file.load may read gs:// objects from (names, no gs://)."
    )

    @field_validator("gcs_buckets", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value  # pydantic reports the type
        for name in value:
            if not isinstance(name, str):
                continue
            problem = bucket_name_problem(name)
            if problem:
                hint = " (write the bucket name alone)" if name.startswith("gs://") or "/" in name else ""
                raise ValueError(f"{name!r} is not a bucket name: {problem}{hint}")
        if len(set(value)) != len(value):
            raise ValueError("a bucket is listed twice")
        return value


class TenantSourcesError(TerminalError):
    def __init__(self, issues: list[SourceIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def tenant_yaml_path(config_dir: Path, tenant_id: str) -> Path:
    if not _TENANT_ID.match(tenant_id):
        raise TerminalError(f"invalid tenant id {tenant_id!r}")
    return config_dir / tenant_id / "tenant.yaml"


def parse_sources(text: str, file: str) -> TenantSources:
    """The `sources:` section of one tenant.yaml text (defaults when absent); TenantSourcesError with positions."""
    try:
        node, data = compose_and_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise TenantSourcesError([SourceIssue(file, line, col, "<document>", f"invalid YAML: {exc}")]) from exc
    section = data.get("sources") if isinstance(data, dict) else None
    if section is None:
        return TenantSources()
    if not isinstance(section, dict):
        line, col = locate(node, ("sources",))
        raise TenantSourcesError([SourceIssue(file, line, col, "sources", "must be a mapping")])
    try:
        return TenantSources.model_validate(section)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = ("sources", *err["loc"])
            line, col = locate(node, loc)
            issues.append(SourceIssue(file, line, col, key_path(loc), str(err["msg"]).removeprefix("Value error, ")))
        raise TenantSourcesError(issues) from exc


_cache: dict[tuple[str, int], TenantSources] = {}
_cache_lock = threading.Lock()


def load_tenant_sources(config_dir: Path, tenant_id: str) -> TenantSources:
    """A tenant's declared sources (none when it has no tenant.yaml), parsed once per file version."""
    path = tenant_yaml_path(config_dir, tenant_id)
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        return TenantSources()
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    sources = parse_sources(path.read_text(encoding="utf-8"), str(path))
    with _cache_lock:
        if len(_cache) > 1024:
            _cache.clear()
        _cache[key] = sources
    return sources


def undeclared_bucket_problem(config_dir: Path, tenant_id: str, bucket: str) -> str | None:
    """Why tenant `tenant_id` may not read `gs://{bucket}/...`, or None when its tenant.yaml declares the bucket."""
    try:
        declared = load_tenant_sources(config_dir, tenant_id).gcs_buckets
    except TenantSourcesError as exc:
        return f"the tenant's sources cannot be read: {exc}"
    if bucket in declared:
        return None
    listed = ", ".join(declared) if declared else "none"
    return (
        f"bucket {bucket!r} is not declared in tenant.yaml sources.gcs_buckets (declared: {listed}); "
        "add it there to read from it"
    )
