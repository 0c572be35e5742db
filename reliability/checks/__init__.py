"""Every drill of the reliability/security suite, in the order they run (the slow emulator drill in the middle).

A check whose feature has not landed is a `pending(...)` entry naming what it needs; replace it with a module when the
feature lands.
"""

from __future__ import annotations

from reliability.checks import (
    bad_yaml,
    capacity,
    crashes,
    cross_tenant,
    duplicates,
    fuzz,
    injection,
    kill_worker,
    long_step,
    poison,
    quota,
    secrets_at_rest,
    tenant_attacks,
    warehouse_down,
)
from reliability.harness import Check

CHECKS: tuple[Check, ...] = (
    Check("duplicates", duplicates.NAME, duplicates.run),
    Check("crashes", crashes.NAME, crashes.run),
    Check("warehouse-down", warehouse_down.NAME, warehouse_down.run),
    Check("capacity", capacity.NAME, capacity.run),
    Check("long-step", long_step.NAME, long_step.run),
    Check("kill", kill_worker.NAME, kill_worker.run),
    Check("poison", poison.NAME, poison.run),
    Check("bad-yaml", bad_yaml.NAME, bad_yaml.run),
    Check("quota", quota.NAME, quota.run),
    Check("injection", injection.NAME, injection.run),
    Check("cross-tenant", cross_tenant.NAME, cross_tenant.run),
    Check("secrets", secrets_at_rest.NAME, secrets_at_rest.run),
    Check("attacks", tenant_attacks.NAME, tenant_attacks.run),
    Check("fuzz", fuzz.NAME, fuzz.run),
)
