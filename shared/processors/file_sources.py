"""Read parquet / csv / ndjson files from a tenant's local folders or from `gs://` as a stream of record batches.

Local paths are confined: a tenant may read only below its landing folder (`{CLOUDACT_HOME}/files/{tenant_id}/`,
where relative paths start) or its own config folder (`tenant_configs/{tenant_id}/`). Paths are resolved (symlinks
and `..` included) before the check, so `../../etc/passwd` or a symlink out of the folder is refused; and the file
actually opened is checked again through /proc/self/fd, so a folder swapped for a symlink between the check and the
open cannot lead out either.

GCS objects are read through google-cloud-storage, imported on first use, with seekable ranged reads (a parquet file
is never downloaded whole). `STORAGE_EMULATOR_HOST` points the client at an emulator in tests. Only buckets the
tenant declares in its tenant.yaml (`sources.gcs_buckets`, shared/tenancy/sources.py) are read, whatever the
identity reading them could reach; `credentials` lets the caller read as the tenant's own identity on GCP.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from shared.errors import TerminalError, TransientError
from shared.processors.base import StepContext
from shared.runtime.settings import Settings
from shared.tenancy.sources import undeclared_bucket_problem

FileFormat = Literal["parquet", "csv", "ndjson"]
_EXTENSIONS: dict[str, FileFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
}
_BLOCK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ReadOptions:
    format: FileFormat
    schema: pa.Schema | None = None
    """Explicit columns and types; the file's own (inferred) schema when None."""
    batch_rows: int = 65_536
    csv_delimiter: str = ","
    csv_skip_rows: int = 0


def infer_format(location: str) -> FileFormat:
    name = location.lower().removesuffix(".gz")
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    raise TerminalError(f"cannot tell the format of {location!r} from its extension: set source.format")


def allowed_roots(settings: Settings, tenant_id: str) -> list[Path]:
    return [(settings.home / "files" / tenant_id).resolve(), (settings.config_dir / tenant_id).resolve()]


def resolve_local(location: str, roots: list[Path]) -> list[Path]:
    """The files a local path names (glob patterns allowed: `exports/*/part-*.parquet`), all inside the tenant's
    `roots` (relative paths start at the first); every match is checked on its own, so a symlink cannot lead out."""
    raw = Path(location)
    candidate = raw if raw.is_absolute() else roots[0] / raw
    parts = candidate.parts
    wild = next((i for i, part in enumerate(parts) if any(ch in part for ch in "*?[")), None)
    if wild is not None:
        folder = _confined(Path(*parts[:wild]), roots, location)
        files = sorted(p for p in folder.glob(str(Path(*parts[wild:]))) if p.is_file())
        files = [_confined(p, roots, location) for p in files]
        if not files:
            raise TerminalError(f"no file matches {location!r} (looked in {folder})")
        return files
    path = _confined(candidate, roots, location)
    if not path.is_file():
        raise TerminalError(f"file not found: {location!r} (resolved to {path})")
    return [path]


def _confined(path: Path, roots: list[Path], location: str) -> Path:
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        shown = " or ".join(str(r) for r in roots)
        raise TerminalError(f"path {location!r} is outside the tenant's folders ({shown}): refused")
    return resolved


def read_batches(
    location: str, ctx: StepContext, options: ReadOptions, credentials: Any | None = None
) -> Iterator[pa.RecordBatch]:
    """Every matching file's rows, file after file, as record batches (explicit schema applied when given).

    `credentials` (google.auth credentials) read gs:// objects as that identity (the tenant's own on GCP); None
    uses the process's default identity (the emulator in tests, the local developer's login)."""
    if location.startswith("gs://"):
        check_declared_bucket(location, ctx.settings.config_dir, ctx.tenant_id)
        for blob_name, opener in _gcs_objects(location, ctx.settings.project, credentials):
            with opener() as stream:
                yield from _batches(stream, blob_name, options)
        return
    roots = allowed_roots(ctx.settings, ctx.tenant_id)
    for path in resolve_local(location, roots):
        with _local_stream(path, options.format, roots, location) as stream:
            yield from _batches(stream, str(path), options)


@contextmanager
def _local_stream(path: Path, fmt: FileFormat, roots: list[Path], location: str) -> Iterator[Any]:
    """Open `path`, then check that what was opened is inside the roots (the path was checked before the open)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:  # ELOOP: the checked file became a symlink
        raise TerminalError(f"cannot open {location!r}: {exc.strerror}") from exc
    try:
        opened = Path(f"/proc/self/fd/{fd}")
        readable = str(path)
        if opened.exists():  # Linux: the link names the file the descriptor really holds
            _confined(Path(os.readlink(opened)), roots, location)
            readable = str(opened)  # reopening through the descriptor reads that same file
        if fmt == "parquet":  # buffered reads, not a memory map: a mapped 10 GB file would count as resident memory
            with pa.OSFile(readable) as source:
                yield source
        else:
            gzip = path.name.lower().endswith(".gz")
            with pa.input_stream(readable, compression="gzip" if gzip else None) as source:
                yield source
    finally:
        os.close(fd)


def _batches(source: Any, name: str, options: ReadOptions) -> Iterator[pa.RecordBatch]:
    try:
        if options.format == "parquet":
            yield from _parquet(source, options)
        elif options.format == "csv":
            yield from _csv(source, options)
        else:
            yield from _ndjson(source, options)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise TerminalError(f"cannot read {name} as {options.format}: {exc}") from exc


def _parquet(source: Any, options: ReadOptions) -> Iterator[pa.RecordBatch]:
    file = pq.ParquetFile(source, pre_buffer=False)  # pre-buffering would hold every row group read so far
    schema = options.schema
    if schema is None:
        yield from file.iter_batches(batch_size=options.batch_rows)
        return
    missing = [n for n in schema.names if n not in file.schema_arrow.names]
    if missing:
        raise TerminalError(
            f"the file has no column(s) {', '.join(missing)} (it has {', '.join(file.schema_arrow.names)})"
        )
    for batch in file.iter_batches(batch_size=options.batch_rows, columns=schema.names):
        yield batch.select(schema.names).cast(schema)


def _csv(source: Any, options: ReadOptions) -> Iterator[pa.RecordBatch]:
    schema = options.schema
    convert = pcsv.ConvertOptions(
        column_types=dict(zip(schema.names, schema.types, strict=True)) if schema else None,
        include_columns=schema.names if schema else None,
        timestamp_parsers=[pcsv.ISO8601],
    )
    reader = pcsv.open_csv(
        source,
        read_options=pcsv.ReadOptions(block_size=_BLOCK_BYTES, skip_rows=options.csv_skip_rows),
        parse_options=pcsv.ParseOptions(delimiter=options.csv_delimiter),
        convert_options=convert,
    )
    for batch in reader:
        yield batch.cast(schema) if schema else batch


def _ndjson(source: Any, options: ReadOptions) -> Iterator[pa.RecordBatch]:
    schema = options.schema
    parse = pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore" if schema else "infer")
    reader = pjson.open_json(source, read_options=pjson.ReadOptions(block_size=_BLOCK_BYTES), parse_options=parse)
    for batch in reader:
        yield batch.select(schema.names) if schema else batch


# -- GCS ---------------------------------------------------------------------------------------------------------


def split_gs(location: str) -> tuple[str, str]:
    """`gs://bucket/object` -> (bucket, object)."""
    bucket, _, name = location.removeprefix("gs://").partition("/")
    if not bucket or not name:
        raise TerminalError(f"{location!r} is not gs://bucket/object")
    return bucket, name


def check_declared_bucket(location: str, config_dir: Path, tenant_id: str) -> None:
    """Refuse a gs:// location whose bucket the tenant has not declared (run time, after rendering)."""
    bucket, _ = split_gs(location)
    problem = undeclared_bucket_problem(config_dir, tenant_id, bucket)
    if problem:
        raise TerminalError(f"{location}: {problem}")


def _gcs_objects(location: str, project: str, credentials: Any | None) -> list[tuple[str, Any]]:
    """(gs:// name, opener) for each object; a glob in the object name lists the bucket under its fixed prefix."""
    bucket_name, pattern = split_gs(location)
    with _gcs_errors(location):
        bucket = gcs_client(project, credentials).bucket(bucket_name)
        if any(ch in pattern for ch in "*?["):
            prefix = pattern[: min(pattern.find(c) for c in "*?[" if c in pattern)]
            names = sorted(b.name for b in bucket.list_blobs(prefix=prefix) if fnmatch.fnmatchcase(b.name, pattern))
            if not names:
                raise TerminalError(f"no object matches {location!r}")
        else:
            names = [pattern]
    return [(f"gs://{bucket_name}/{n}", _gcs_opener(bucket, n, location)) for n in names]


def _gcs_opener(bucket: Any, name: str, location: str) -> Any:
    @contextmanager
    def opener() -> Iterator[Any]:
        with _gcs_errors(f"gs://{bucket.name}/{name}"):
            blob = bucket.blob(name)
            reader = blob.open("rb", chunk_size=_BLOCK_BYTES)
            try:
                stream: Any = pa.PythonFile(reader, mode="r")
                if name.endswith(".gz"):
                    stream = pa.CompressedInputStream(stream, "gzip")
                yield stream
            finally:
                reader.close()

    return opener


_CLIENT: Any = None


def gcs_client(project: str, credentials: Any | None = None) -> Any:
    """A storage client: the process-wide one for the default identity, or a new one acting as `credentials`
    (a client per step: it only holds the credentials and a session, and must never serve another tenant)."""
    global _CLIENT
    from google.cloud import storage  # type: ignore[attr-defined]  # lazy: only steps that read gs:// pay for the import

    if credentials is not None:
        return storage.Client(project=project, credentials=credentials)
    if _CLIENT is None:
        _CLIENT = storage.Client(project=project)
    return _CLIENT


def reset_gcs_client() -> None:
    """Forget the cached client (tests point STORAGE_EMULATOR_HOST at a fresh emulator)."""
    global _CLIENT
    _CLIENT = None


@contextmanager
def _gcs_errors(location: str) -> Iterator[None]:
    from google.api_core import exceptions as gexc

    try:
        yield
    except gexc.NotFound as exc:
        raise TerminalError(f"{location}: not found") from exc
    except gexc.Forbidden as exc:
        raise TerminalError(f"{location}: access denied: {exc}") from exc
    except (gexc.ServerError, gexc.TooManyRequests, OSError) as exc:  # OSError: connection failures (requests)
        raise TransientError(f"{location}: {exc}") from exc
    except gexc.GoogleAPICallError as exc:
        raise TerminalError(f"{location}: {exc}") from exc
