"""Cases whose feature has not landed yet. Each prints "not measured yet: needs <feature>" and carries no number.

When the feature lands, write bench/cases/pN_<name>.py with `CASE = Case("PN", ..., measure)` and swap it in
bench/cases/__init__.py.
"""

from __future__ import annotations

from bench.harness import pending

P3 = pending(
    "P3",
    "API-key check latency with 10 and 10,000 tenants (p50/p99)",
    "API keys and tenant onboarding (tenancy, issue 4)",
)
P4 = pending(
    "P4",
    "execute admission (auth + quota + publish) p50/p99 and requests/s",
    "API keys and quotas (tenancy, issue 4)",
)
P5 = pending(
    "P5",
    "arrow.transform and the billing sample over 1 M / 10 M rows vs plain pyarrow",
    "the arrow.transform processor and the billing sample (processors, issue 3)",
)
P6 = pending(
    "P6",
    "10,000 tenants with a due scheduled pipeline: time to admit all runs",
    "scheduling (issue 6) and tenant onboarding (tenancy, issue 4)",
)
