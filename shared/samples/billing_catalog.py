"""The fixed catalog behind the synthetic GCP billing export: services, SKUs, projects, locations, credit programs.

IDs and descriptions follow the shapes of a real Cloud Billing export (service ids like `6F81-5844-456A`, SKU ids
like `2E27-4F75-95CD`); prices are plausible list prices, not quotes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sku:
    sku_id: str
    description: str
    usage_unit: str
    pricing_unit: str
    usage_per_pricing_unit: float
    """How many usage units make one pricing unit (seconds per hour, bytes per GiB ...)."""
    price: float
    """USD per pricing unit."""
    typical_units: float
    """Median pricing units per hourly line item."""
    scope: str
    """zonal | regional | multi_regional | global: which location fields a line item gets."""
    machine_spec: str | None = None


@dataclass(frozen=True)
class Service:
    service_id: str
    description: str
    weight: float
    skus: tuple[Sku, ...]


GIB = 1024.0**3
TIB = 1024.0**4
MONTH_HOURS = 730.0

SERVICES: tuple[Service, ...] = (
    Service(
        "6F81-5844-456A",
        "Compute Engine",
        0.34,
        (
            Sku(
                "2E27-4F75-95CD",
                "N2 Instance Core running in Americas",
                "seconds",
                "hour",
                3600,
                0.031611,
                8,
                "zonal",
                "n2-standard-8",
            ),
            Sku(
                "6F8D-8C5D-1E66",
                "N2 Instance Ram running in Americas",
                "byte-seconds",
                "gibibyte hour",
                GIB * 3600,
                0.004237,
                32,
                "zonal",
                "n2-standard-8",
            ),
            Sku(
                "D973-5D65-BAB2",
                "Storage PD Capacity",
                "byte-seconds",
                "gibibyte month",
                GIB * 3600 * MONTH_HOURS,
                0.04,
                0.7,
                "zonal",
            ),
            Sku(
                "9DE9-9092-B3BC",
                "Network Internet Egress from Americas to Americas",
                "bytes",
                "gibibyte",
                GIB,
                0.12,
                3.0,
                "global",
            ),
        ),
    ),
    Service(
        "95FF-2EF5-5EA1",
        "Cloud Storage",
        0.14,
        (
            Sku(
                "E5F0-6A5D-7BAD",
                "Standard Storage US Multi-region",
                "byte-seconds",
                "gibibyte month",
                GIB * 3600 * MONTH_HOURS,
                0.026,
                1.4,
                "multi_regional",
            ),
            Sku(
                "1E88-85E3-2A1A",
                "Multi-Region Standard Class A Operations",
                "requests",
                "10 thousand requests",
                10_000,
                0.05,
                2.0,
                "multi_regional",
            ),
        ),
    ),
    Service(
        "24E6-581D-38E5",
        "BigQuery",
        0.16,
        (
            Sku("3362-E469-6BEF", "Analysis", "bytes", "tebibyte", TIB, 6.25, 0.08, "multi_regional"),
            Sku(
                "95FF-2EF5-B22C",
                "Active Logical Storage",
                "byte-seconds",
                "gibibyte month",
                GIB * 3600 * MONTH_HOURS,
                0.02,
                4.0,
                "multi_regional",
            ),
        ),
    ),
    Service(
        "9662-B51E-5089",
        "Cloud SQL",
        0.10,
        (
            Sku(
                "D5D3-2E27-0C6A",
                "Cloud SQL for PostgreSQL: Zonal - vCPU in Americas",
                "seconds",
                "hour",
                3600,
                0.0413,
                4,
                "regional",
            ),
            Sku(
                "6F5B-2E1B-3C3E",
                "Cloud SQL for PostgreSQL: Zonal - RAM in Americas",
                "byte-seconds",
                "gibibyte hour",
                GIB * 3600,
                0.007,
                16,
                "regional",
            ),
        ),
    ),
    Service(
        "152E-C115-5142",
        "Cloud Run",
        0.09,
        (
            Sku(
                "8C2E-7A41-D0E5",
                "CPU Allocation Time (tier 1)",
                "seconds",
                "vCPU-second",
                1,
                0.000024,
                2400,
                "regional",
            ),
            Sku(
                "C8E1-3A8B-6B9A",
                "Requests (tier 1)",
                "requests",
                "1 million requests",
                1_000_000,
                0.40,
                0.05,
                "regional",
            ),
        ),
    ),
    Service(
        "A1E8-BE35-7EBC",
        "Cloud Pub/Sub",
        0.05,
        (Sku("9F36-5A0B-8C61", "Message Delivery Basic", "bytes", "tebibyte", TIB, 40.0, 0.0008, "global"),),
    ),
    Service(
        "5490-F7B7-8DF6",
        "Cloud Logging",
        0.06,
        (Sku("143F-A1B0-E0BE", "Log Volume", "bytes", "gibibyte", GIB, 0.50, 0.9, "global"),),
    ),
    Service(
        "CCD8-9BF1-090E",
        "Kubernetes Engine",
        0.06,
        (
            Sku(
                "B561-BFBD-1264",
                "Autopilot Pod mCPU Requests (us-central1)",
                "seconds",
                "hour",
                3600,
                0.0445,
                6,
                "regional",
            ),
        ),
    ),
)

# project id, display name, 12-digit number, labels (env, team, cost-center)
PROJECTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "globex-web-prod",
        "Globex Web (prod)",
        "412038475012",
        (("env", "prod"), ("team", "web"), ("cost-center", "cc-100")),
    ),
    ("globex-web-staging", "Globex Web (staging)", "412038475013", (("env", "staging"), ("team", "web"))),
    (
        "globex-data-prod",
        "Globex Data Platform",
        "412038475020",
        (("env", "prod"), ("team", "data"), ("cost-center", "cc-200")),
    ),
    ("globex-data-dev", "Globex Data (dev)", "412038475021", (("env", "dev"), ("team", "data"))),
    (
        "globex-ml-prod",
        "Globex ML Serving",
        "412038475030",
        (("env", "prod"), ("team", "ml"), ("cost-center", "cc-300")),
    ),
    ("globex-ml-research", "Globex ML Research", "412038475031", (("env", "dev"), ("team", "ml"))),
    (
        "globex-payments-prod",
        "Globex Payments",
        "412038475040",
        (("env", "prod"), ("team", "payments"), ("cost-center", "cc-400")),
    ),
    ("globex-payments-dev", "Globex Payments (dev)", "412038475041", (("env", "dev"), ("team", "payments"))),
    ("globex-shared-net", "Globex Shared Network", "412038475050", (("env", "prod"), ("team", "platform"))),
    ("globex-sandbox", "Globex Sandbox", "412038475060", (("env", "sandbox"),)),
)
PROJECT_WEIGHTS = (0.22, 0.05, 0.2, 0.06, 0.12, 0.08, 0.14, 0.04, 0.06, 0.03)
ANCESTRY = "/841726354901/215987034112/"

# region, country, zone suffixes
REGIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("us-central1", "US", ("a", "b", "c", "f")),
    ("us-east1", "US", ("b", "c", "d")),
    ("us-west1", "US", ("a", "b")),
    ("europe-west1", "BE", ("b", "c", "d")),
    ("europe-west4", "NL", ("a", "b")),
    ("asia-northeast1", "JP", ("a", "b", "c")),
)
REGION_WEIGHTS = (0.38, 0.2, 0.1, 0.16, 0.08, 0.08)
MULTI_REGIONS = (("us", "US"), ("eu", "EU"))

# credit program: (name, id, full_name, type, probability per row, share of cost credited (low, high))
CREDIT_PROGRAMS: tuple[tuple[str, str, str, str, float, float, float], ...] = (
    ("Sustained Usage Discount", "SUD", "Sustained Usage Discount", "SUSTAINED_USAGE_DISCOUNT", 0.30, 0.10, 0.30),
    (
        "Committed Usage Discount: CPU",
        "CUD-CPU",
        "Committed Usage Discount: CPU",
        "COMMITTED_USAGE_DISCOUNT",
        0.08,
        0.37,
        0.37,
    ),
    ("Free Tier", "FREE_TIER", "Free Tier", "FREE_TIER", 0.06, 0.05, 1.00),
    ("Startup Program Promotion", "PROMO-2026", "Startup Program Promotion (2026)", "PROMOTION", 0.04, 0.20, 0.50),
)

RESOURCE_LABELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("app", ("checkout", "catalog", "search", "ingest", "reporting", "recommender")),
    ("component", ("api", "worker", "db", "cache", "batch")),
)

ADJUSTMENT_SHARE = 0.002
"""Share of rows that are billing adjustments (negative cost, `cost_type = adjustment`)."""
