"""Every benchmark case, in the order of issue 7's table. Pending cases name the feature they wait for."""

from __future__ import annotations

from bench.cases import (
    p1_embedded,
    p1s_scaling,
    p2_emulators,
    p3_api_keys,
    p4_admission,
    p5_arrow,
    p6_schedules,
    p7_admission_rate,
    p8_burst,
    p9_long_step,
    p10_sql_checks,
)
from bench.harness import Case

CASES: tuple[Case, ...] = (
    p1_embedded.CASE,
    p1s_scaling.CASE,
    p2_emulators.CASE,
    p3_api_keys.CASE,
    p4_admission.CASE,
    p5_arrow.CASE,
    p6_schedules.CASE,
    p7_admission_rate.CASE,
    p8_burst.CASE,
    p9_long_step.CASE,
    p10_sql_checks.CASE,
)
