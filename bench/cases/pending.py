"""Cases not measured yet. Each prints "not measured yet: needs <what>" and carries no number.

To add one: write bench/cases/pN_<name>.py with `CASE = Case("PN", ..., measure)` (see p3_api_keys.py for a case
that builds its own population, p4_admission.py for one that starts its own emulators and function process) and
swap it in bench/cases/__init__.py.
"""

from __future__ import annotations

from bench.harness import pending

P5 = pending(
    "P5",
    "arrow.transform and the billing sample over 1 M / 10 M rows vs plain pyarrow",
    "a P5 case over the arrow.transform processor and the globex billing sample (issue 3; both landed in 326ad1a): "
    "rows/s, peak RSS, ratio to the same pyarrow.compute calls",
)
P6 = pending(
    "P6",
    "10,000 tenants with a due scheduled pipeline: time to admit all runs",
    "a P6 case once scheduling (issue 6) is complete: 10,000 onboarded tenants (see p3_api_keys.population) each "
    "with a due schedule, embedded and on the emulators",
)
