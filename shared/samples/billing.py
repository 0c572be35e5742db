"""A deterministic synthetic GCP Cloud Billing export (standard usage cost table), vectorised with numpy + pyarrow.

Same seed and row count, same bytes of data: rows are produced in fixed-size chunks, each from its own generator
seeded with (seed, chunk number). Columns follow the export's schema: nested `service`, `sku`, `project` (with
labels), `location`, `usage`, `invoice`, `adjustment_info` records and repeated `labels`, `system_labels` and
`credits` (credit amounts are negative, as in the real export). Millions of rows take seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.samples import billing_catalog as cat

CHUNK_ROWS = 131_072
BILLING_ACCOUNT_ID = "01A2B3-C4D5E6-F7A8B9"
DEFAULT_START = dt.date(2026, 10, 1)
TS = pa.timestamp("us", tz="UTC")
KV = pa.struct([("key", pa.string()), ("value", pa.string())])
CREDIT = pa.struct(
    [
        ("name", pa.string()),
        ("amount", pa.float64()),
        ("full_name", pa.string()),
        ("id", pa.string()),
        ("type", pa.string()),
    ]
)

SCHEMA = pa.schema(
    [
        ("billing_account_id", pa.string()),
        ("service", pa.struct([("id", pa.string()), ("description", pa.string())])),
        ("sku", pa.struct([("id", pa.string()), ("description", pa.string())])),
        ("usage_start_time", TS),
        ("usage_end_time", TS),
        (
            "project",
            pa.struct(
                [
                    ("id", pa.string()),
                    ("number", pa.string()),
                    ("name", pa.string()),
                    ("labels", pa.list_(KV)),
                    ("ancestry_numbers", pa.string()),
                ]
            ),
        ),
        ("labels", pa.list_(KV)),
        ("system_labels", pa.list_(KV)),
        (
            "location",
            pa.struct(
                [("location", pa.string()), ("country", pa.string()), ("region", pa.string()), ("zone", pa.string())]
            ),
        ),
        ("export_time", TS),
        ("cost", pa.float64()),
        ("currency", pa.string()),
        ("currency_conversion_rate", pa.float64()),
        (
            "usage",
            pa.struct(
                [
                    ("amount", pa.float64()),
                    ("unit", pa.string()),
                    ("amount_in_pricing_units", pa.float64()),
                    ("pricing_unit", pa.string()),
                ]
            ),
        ),
        ("credits", pa.list_(CREDIT)),
        ("invoice", pa.struct([("month", pa.string())])),
        ("cost_type", pa.string()),
        (
            "adjustment_info",
            pa.struct(
                [("id", pa.string()), ("description", pa.string()), ("mode", pa.string()), ("type", pa.string())]
            ),
        ),
        ("cost_at_list", pa.float64()),
    ]
)


class _Catalog:
    """The catalog flattened into arrow arrays, so a row's attributes are one `take` by index."""

    def __init__(self) -> None:
        skus = [(svc, sku) for svc in cat.SERVICES for sku in svc.skus]
        self.sku_weights = np.array([svc.weight / len(svc.skus) for svc, _ in skus])
        self.sku_weights /= self.sku_weights.sum()
        self.service_id = pa.array([s.service_id for s, _ in skus])
        self.service_desc = pa.array([s.description for s, _ in skus])
        self.sku_id = pa.array([k.sku_id for _, k in skus])
        self.sku_desc = pa.array([k.description for _, k in skus])
        self.usage_unit = pa.array([k.usage_unit for _, k in skus])
        self.pricing_unit = pa.array([k.pricing_unit for _, k in skus])
        self.per_unit = np.array([k.usage_per_pricing_unit for _, k in skus])
        self.price = np.array([k.price for _, k in skus])
        self.typical = np.array([k.typical_units for _, k in skus])
        self.scope = np.array([k.scope for _, k in skus])
        self.compute = np.array(
            [s.description == "Compute Engine" and k.pricing_unit.endswith("hour") for s, k in skus]
        )
        self.system_labels = pa.array(
            [
                [{"key": "compute.googleapis.com/machine_spec", "value": k.machine_spec}] if k.machine_spec else []
                for _, k in skus
            ],
            pa.list_(KV),
        )
        self.project_weights = np.array(cat.PROJECT_WEIGHTS) / sum(cat.PROJECT_WEIGHTS)
        self.project = pa.StructArray.from_arrays(
            [
                pa.array([p[0] for p in cat.PROJECTS]),
                pa.array([p[2] for p in cat.PROJECTS]),
                pa.array([p[1] for p in cat.PROJECTS]),
                pa.array([[{"key": k, "value": v} for k, v in p[3]] for p in cat.PROJECTS], pa.list_(KV)),
                pa.array([cat.ANCESTRY + p[2] + "/" for p in cat.PROJECTS]),
            ],
            fields=list(SCHEMA.field("project").type),
        )
        self.region_weights = np.array(cat.REGION_WEIGHTS) / sum(cat.REGION_WEIGHTS)
        self.region = pa.array([r[0] for r in cat.REGIONS])
        self.country = pa.array([r[1] for r in cat.REGIONS])
        zones = [f"{r[0]}-{z}" for r in cat.REGIONS for z in r[2]]
        self.zone = pa.array(zones)
        self.zone_start = np.cumsum([0] + [len(r[2]) for r in cat.REGIONS[:-1]])
        self.zone_count = np.array([len(r[2]) for r in cat.REGIONS])


_CATALOG: _Catalog | None = None


def _catalog() -> _Catalog:
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = _Catalog()
    return _CATALOG


def generate_batches(
    rows: int, seed: int = 42, start: dt.date = DEFAULT_START, days: int = 30
) -> Iterator[pa.RecordBatch]:
    """`rows` export rows, spread over `days` days from `start`, as record batches of at most CHUNK_ROWS."""
    if rows < 0 or days < 1:
        raise ValueError("rows must be >= 0 and days >= 1")
    for chunk, first in enumerate(range(0, rows, CHUNK_ROWS)):
        n = min(CHUNK_ROWS, rows - first)
        rng = np.random.default_rng([seed, chunk])
        yield _chunk(rng, n, start, days)


def _chunk(rng: np.random.Generator, n: int, start: dt.date, days: int) -> pa.RecordBatch:
    c = _catalog()
    sku = rng.choice(len(c.sku_weights), size=n, p=c.sku_weights)
    project = rng.choice(len(cat.PROJECTS), size=n, p=c.project_weights)
    region = rng.choice(len(cat.REGIONS), size=n, p=c.region_weights)
    multi = rng.integers(0, len(cat.MULTI_REGIONS), size=n)
    zone = c.zone_start[region] + rng.integers(0, 1 << 30, size=n) % c.zone_count[region]
    hour = rng.integers(0, days * 24, size=n)
    export_delay_us = rng.integers(2 * 3600, 8 * 3600, size=n) * 1_000_000
    # usage in pricing units: lognormal around the SKU's typical hourly amount
    units = np.round(c.typical[sku] * rng.lognormal(0.0, 0.6, size=n), 6)
    cost = np.round(units * c.price[sku], 6)
    adjustment = rng.random(n) < cat.ADJUSTMENT_SHARE
    cost = np.where(adjustment, -np.round(cost * rng.uniform(0.5, 1.0, size=n), 6), cost)

    start_us = int(dt.datetime.combine(start, dt.time(), dt.UTC).timestamp()) * 1_000_000
    usage_start = start_us + hour.astype(np.int64) * 3_600_000_000
    usage_start_arr = pa.array(usage_start, TS)
    usage_end_arr = pa.array(usage_start + 3_600_000_000, TS)

    scope = c.scope[sku]
    zonal, regional, multi_regional = scope == "zonal", scope == "regional", scope == "multi_regional"
    region_name = c.region.take(pa.array(region))
    multi_name = pa.array([m[0] for m in cat.MULTI_REGIONS]).take(pa.array(multi))
    multi_country = pa.array([m[1] for m in cat.MULTI_REGIONS]).take(pa.array(multi))
    located = pa.array(zonal | regional)
    location = pa.StructArray.from_arrays(
        [
            pc.if_else(located, region_name, pc.if_else(pa.array(multi_regional), multi_name, "global")),
            pc.if_else(
                located,
                c.country.take(pa.array(region)),
                pc.if_else(pa.array(multi_regional), multi_country, pa.scalar(None, pa.string())),
            ),
            pc.if_else(located, region_name, pa.scalar(None, pa.string())),
            pc.if_else(pa.array(zonal), c.zone.take(pa.array(zone)), pa.scalar(None, pa.string())),
        ],
        fields=list(SCHEMA.field("location").type),
    )
    sku_idx = pa.array(sku)
    columns: dict[str, Any] = {
        "billing_account_id": pa.repeat(pa.scalar(BILLING_ACCOUNT_ID), n),
        "service": pa.StructArray.from_arrays(
            [c.service_id.take(sku_idx), c.service_desc.take(sku_idx)], ["id", "description"]
        ),
        "sku": pa.StructArray.from_arrays([c.sku_id.take(sku_idx), c.sku_desc.take(sku_idx)], ["id", "description"]),
        "usage_start_time": usage_start_arr,
        "usage_end_time": usage_end_arr,
        "project": c.project.take(pa.array(project)),
        "labels": _resource_labels(rng, n),
        "system_labels": c.system_labels.take(sku_idx),
        "location": location,
        "export_time": pa.array(usage_start + 3_600_000_000 + export_delay_us, TS),
        "cost": pa.array(cost),
        "currency": pa.repeat(pa.scalar("USD"), n),
        "currency_conversion_rate": pa.repeat(pa.scalar(1.0), n),
        "usage": pa.StructArray.from_arrays(
            [
                pa.array(np.round(units * c.per_unit[sku], 3)),
                c.usage_unit.take(sku_idx),
                pa.array(units),
                c.pricing_unit.take(sku_idx),
            ],
            fields=list(SCHEMA.field("usage").type),
        ),
        "credits": _credits(rng, n, cost, c.compute[sku] & ~adjustment, adjustment),
        "invoice": pa.StructArray.from_arrays([_invoice_months(usage_start)], ["month"]),
        "cost_type": pa.array(np.where(adjustment, "adjustment", "regular")),
        "adjustment_info": _adjustments(adjustment),
        "cost_at_list": pa.array(np.where(adjustment, cost, np.round(cost * 1.0, 6))),
    }
    return pa.RecordBatch.from_pydict(columns, schema=SCHEMA)


def _invoice_months(usage_start_us: np.ndarray[Any, Any]) -> pa.Array:
    """YYYYMM of each usage start (a handful of distinct months: format those, then index)."""
    months, index = np.unique(usage_start_us.astype("datetime64[us]").astype("datetime64[M]"), return_inverse=True)
    return pa.array([str(m).replace("-", "") for m in months]).take(pa.array(index))


def _credits(
    rng: np.random.Generator,
    n: int,
    cost: np.ndarray[Any, Any],
    compute: np.ndarray[Any, Any],
    adjustment: np.ndarray[Any, Any],
) -> pa.Array:
    """0..n credits per row, in program order; SUD and CUD apply to Compute Engine core/RAM only."""
    programs = cat.CREDIT_PROGRAMS
    has = np.zeros((n, len(programs)), dtype=bool)
    amount = np.zeros((n, len(programs)))
    for k, (_name, _id, _full, kind, probability, low, high) in enumerate(programs):
        eligible = compute if kind in ("SUSTAINED_USAGE_DISCOUNT", "COMMITTED_USAGE_DISCOUNT") else ~adjustment
        has[:, k] = eligible & (rng.random(n) < probability)
        amount[:, k] = -np.round(cost * rng.uniform(low, high, size=n), 6)
    # credits never exceed what was charged: scale a row's credits down when they would add up to more than its cost
    credited = -(amount * has).sum(axis=1)
    over = credited > np.abs(cost)
    amount[over] = np.round(amount[over] * (np.abs(cost[over]) / credited[over])[:, None], 6)
    rows, kinds = np.nonzero(has)  # row-major: each row's credits together, in program order
    offsets = np.concatenate([[0], np.cumsum(has.sum(axis=1))]).astype(np.int32)
    pick = pa.array(kinds)
    values = pa.StructArray.from_arrays(
        [
            pa.array([p[0] for p in programs]).take(pick),
            pa.array(amount[rows, kinds]),
            pa.array([p[2] for p in programs]).take(pick),
            pa.array([p[1] for p in programs]).take(pick),
            pa.array([p[3] for p in programs]).take(pick),
        ],
        fields=list(CREDIT),
    )
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _resource_labels(rng: np.random.Generator, n: int) -> pa.Array:
    keys = cat.RESOURCE_LABELS
    has = rng.random((n, len(keys))) < 0.55
    choice = rng.integers(0, 1 << 30, size=(n, len(keys)))
    rows, kinds = np.nonzero(has)
    offsets = np.concatenate([[0], np.cumsum(has.sum(axis=1))]).astype(np.int32)
    all_values = [v for _, values in keys for v in values]
    starts = np.cumsum([0] + [len(v) for _, v in keys[:-1]])
    counts = np.array([len(v) for _, v in keys])
    value_index = starts[kinds] + choice[rows, kinds] % counts[kinds]
    values = pa.StructArray.from_arrays(
        [pa.array([k for k, _ in keys]).take(pa.array(kinds)), pa.array(all_values).take(pa.array(value_index))],
        fields=list(KV),
    )
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _adjustments(adjustment: np.ndarray[Any, Any]) -> pa.Array:
    mask = pa.array(~adjustment)
    fields = list(SCHEMA.field("adjustment_info").type)
    n = len(adjustment)
    return pa.StructArray.from_arrays(
        [
            pa.repeat(pa.scalar("ADJ-2026-0042"), n),
            pa.repeat(pa.scalar("Service level credit for an outage"), n),
            pa.repeat(pa.scalar("PARTIAL_CORRECTION"), n),
            pa.repeat(pa.scalar("GENERAL_ADJUSTMENT"), n),
        ],
        fields=fields,
        mask=mask,
    )
