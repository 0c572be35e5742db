"""`cloudact sample-data ...`: write deterministic synthetic data sets (numpy/pyarrow are imported only when used)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import click

FORMATS = ("parquet", "ndjson", "csv")
_EXTENSIONS = {"parquet": ".parquet", "ndjson": ".ndjson", "csv": ".csv"}


@click.group("sample-data")
def sample_data_group() -> None:
    """Synthetic data sets for demos and benchmarks."""


@sample_data_group.command("billing")
@click.option("--rows", type=click.IntRange(min=0), default=100_000, show_default=True, help="Export rows to write.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write. Default: the tenant's landing folder, exports/gcp_billing_export.<format>, "
    "where the globex billing_costs pipeline reads it.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="Default: from --out, else parquet.")
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed and rows, same data.")
@click.option(
    "--start-date",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="First usage day. Default: --days days back from today (UTC), so the export ends yesterday and the "
    "billing_costs freshness check (48 h before the run date) passes on a run today.",
)
@click.option("--days", type=click.IntRange(min=1, max=3660), default=30, show_default=True)
@click.option(
    "--tenant", "tenant_id", default="globex", show_default=True, help="Whose landing folder --out defaults to."
)
def billing_cmd(
    rows: int, out: Path | None, fmt: str | None, seed: int, start_date: dt.datetime | None, days: int, tenant_id: str
) -> None:
    """A GCP Cloud Billing export (standard usage cost schema: service, sku, project, labels, location, credits...)."""
    from shared.runtime.settings import Settings
    from shared.samples.billing import SCHEMA, generate_batches
    from shared.samples.export_files import write_batches

    if fmt is None:
        suffix = out.suffix.lower().lstrip(".") if out else ""
        fmt = {"parquet": "parquet", "pq": "parquet", "ndjson": "ndjson", "jsonl": "ndjson", "csv": "csv"}.get(
            suffix, "parquet"
        )
    if out is None:
        home = Settings.from_env().home
        out = home / "files" / tenant_id / "exports" / f"gcp_billing_export{_EXTENSIONS[fmt]}"
    start = start_date.date() if start_date else dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)
    started = time.perf_counter()
    written = write_batches(out, SCHEMA, generate_batches(rows, seed, start, days), fmt)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    click.echo(
        f"wrote {written.rows:,} billing export rows ({fmt}, {written.bytes / 1e6:.1f} MB) to {written.path} "
        f"in {seconds:.1f}s (seed {seed}, {days} days from {start})"
    )
