"""Cases whose feature has not landed yet. Each prints "not measured yet: needs <feature>" and carries no number.

When the feature lands, write bench/cases/pN_<name>.py with `CASE = Case("PN", ..., measure)` and swap it in
bench/cases/__init__.py.
"""

from __future__ import annotations

from bench.harness import pending

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
