"""Class 5, work that outlives its time: a step whose query never ends, with a timeout of a few seconds.

The runtime runs in a child process (`python -m reliability.attacks.outlive HOME VARIANT`) so its CPU can be read
from /proc on its own and, if the query is never stopped, the drill ends it by killing that child (by its pid). The
child: starts the embedded runtime with one tenant, says `ready`, waits for `go`, executes the pipeline, and once
the run is terminal says so and waits for its stdin to close.

Judged by the child's CPU: busy while the step runs (else the burner did not burn: not measured), and back to idle
within IDLE_BOUND_S of the stage being TIMED_OUT (else the query outlived its time: breached).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TENANT = "mallory"
STEP_TIMEOUT_MIN = 0.05
"""3 s: timeout_minutes takes fractions."""
IDLE_BOUND_S = 10.0
WINDOW_S = 1.0
IDLE_CORES = 0.3
"""A window using less CPU than this (in cores) counts as idle; a running DuckDB query uses about 1."""

_RECURSIVE = "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) AS c FROM r"
_CROSS = (
    "SELECT COUNT(*) AS c FROM UNNEST(GENERATE_ARRAY(1, 1000000)) AS a, UNNEST(GENERATE_ARRAY(1, 1000000)) AS b, "
    "UNNEST(GENERATE_ARRAY(1, 1000)) AS d"
)
VARIANTS: dict[str, dict[str, Any]] = {
    "WITH RECURSIVE unbounded (bigquery.query)": {
        "ps_type": "bigquery.query",
        "source": {"query": _RECURSIVE},
        "destination": {"dataset": "atk", "table": "burn", "write_mode": "truncate"},
    },
    "cross join 10^15 rows (bigquery.query)": {
        "ps_type": "bigquery.query",
        "source": {"query": _CROSS},
        "destination": {"dataset": "atk", "table": "burn", "write_mode": "truncate"},
    },
    "WITH RECURSIVE in quality.check custom_sql": {
        "ps_type": "quality.check",
        "config": {"checks": [{"type": "custom_sql", "sql": _RECURSIVE, "max_failures": 0}]},
    },
}


@dataclass
class Measured:
    variant: str
    stage_status: str
    busy_cores: float
    """CPU (cores) of the child while the step ran: proves the burner burned."""
    idle_after_s: float | None
    """Seconds from TIMED_OUT until a window was idle; None when it never was within IDLE_BOUND_S."""
    error: str = ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a whole process (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(variant: str, workdir: Path) -> Measured:
    home = workdir / variant_slug(variant)
    home.mkdir(parents=True)
    child = subprocess.Popen(
        [sys.executable, "-m", "reliability.attacks.outlive", str(home), variant],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TMPDIR": str(home)},
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline().strip() != "ready":
            return Measured(variant, "child did not start", 0.0, None)
        cpu0, t0 = cpu_seconds(child.pid), time.monotonic()
        child.stdin.write("go\n")
        child.stdin.flush()
        line = child.stdout.readline()  # the child answers once the run is terminal (its own bound: 120 s)
        cpu1, t1 = cpu_seconds(child.pid), time.monotonic()
        done = json.loads(line) if line.strip() else {"stage": "child gave no answer", "error": ""}
        busy = (cpu1 - cpu0) / max(t1 - t0, 1e-6)
        idle_after: float | None = None
        deadline = t1 + IDLE_BOUND_S
        while time.monotonic() < deadline:  # wait on the condition "a whole window idle", within a bound
            w0, c0 = time.monotonic(), cpu_seconds(child.pid)
            time.sleep(WINDOW_S)
            rate = (cpu_seconds(child.pid) - c0) / (time.monotonic() - w0)
            if rate < IDLE_CORES:
                idle_after = time.monotonic() - t1
                break
        return Measured(variant, str(done.get("stage")), busy, idle_after, str(done.get("error") or ""))
    finally:
        child.kill()  # our own child, by its pid: ends a query nobody stopped
        child.wait()
        shutil.rmtree(home, ignore_errors=True)


def variant_slug(variant: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in variant)[:40]


def _child(home: Path, variant: str) -> None:
    import yaml

    from bench.tenants import onboard_unthrottled
    from shared.app import embedded
    from shared.runtime.settings import Settings

    config_dir = home / "tenant_configs"
    pipelines = config_dir / TENANT / "pipelines"
    pipelines.mkdir(parents=True)
    (config_dir / TENANT / "tenant.yaml").write_text(f"tenant_id: {TENANT}\nname: {TENANT}\nplan: enterprise\n")
    step = {"step_id": "burn", "timeout_minutes": STEP_TIMEOUT_MIN, "retries": {"max_attempts": 1}, **VARIANTS[variant]}
    (pipelines / "burn.yaml").write_text(yaml.safe_dump({"pipeline_id": "burn", "steps": [step]}))
    runtime = embedded.start(Settings(runtime="embedded", home=home / "home", config_dir=config_dir))
    headers = onboard_unthrottled(runtime.context, TENANT)
    print("ready", flush=True)
    sys.stdin.readline()
    base = f"/api/v1/tenants/{TENANT}"
    response = runtime.call_api("POST", f"{base}/pipelines/execute", {"pipeline_id": "burn"}, headers)
    run_id = response.body.get("run_id")
    stage: dict[str, Any] = {"status": f"execute answered {response.status}", "error": str(response.body)[:200]}
    deadline = time.monotonic() + 120
    while run_id and time.monotonic() < deadline:
        view = runtime.call_api("GET", f"{base}/metadata/executions/{run_id}", headers=headers).body
        stages = view.get("stages") or []
        stage = next((s for s in stages if s.get("stage_id") == "burn"), {"status": "no stage"})
        if stage.get("status") in ("SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "SKIPPED"):
            break
        time.sleep(0.2)
    print(json.dumps({"stage": stage.get("status"), "error": str(stage.get("error") or "")[:200]}), flush=True)
    sys.stdin.readline()  # hold the process (and whatever still runs in it) until the drill has measured
    os._exit(0)  # skip closing DuckDB: a query nobody stopped would make close() wait for it


if __name__ == "__main__":
    _child(Path(sys.argv[1]), sys.argv[2])
