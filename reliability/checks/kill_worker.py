"""kill -9 on the emulator stack: two runs each hold a long stage (the first, the last) on the stage_worker
functions-framework process; the process and its gunicorn worker are SIGKILLed mid-stage and a new one is started on
the same port. Pub/Sub redelivers the unacked pushes; the leases (step timeout + grace) expire; the next delivery
takes over with attempt 2, and every run must still end SUCCEEDED.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.functions import spawn_function
from bench.harness import Skip
from bench.servers import emulator_servers, process_env
from bench.tenants import onboard_unthrottled
from reliability.drill import CONFIGS, TENANT, TERMINAL
from reliability.harness import Figure, NotMeasured, Options, figure, info, ratio

NAME = "crash injection (kill -9, emulators)"
PIPELINES = {"kill_at_1": "s1", "kill_at_3": "s3"}
"""pipeline -> its long stage. Two, not three: the Pub/Sub emulator pushes at most two messages of a subscription at
once here, so a third long stage would only start after the kill."""
REPO_ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), so a kill takes the gunicorn worker down with its master."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    for pid in [process.pid, *descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def run(options: Options) -> list[Figure]:
    try:
        with emulator_servers("reliability") as servers:
            return _on_servers(servers)
    except Skip as exc:  # no Google emulators on this machine: say so, do not invent a figure
        raise NotMeasured(str(exc)) from exc


def _on_servers(servers: Any) -> list[Figure]:
    from bench.local_stack import start_stack
    from shared.runtime.context import Context
    from shared.runtime.settings import Settings

    with tempfile.TemporaryDirectory(prefix="cloudact-reliability-kill-") as tmp, process_env(servers.env):
        config_dir = Path(tmp) / "tenant_configs"
        shutil.copytree(CONFIGS, config_dir)
        project = f"drill-{uuid.uuid4().hex[:8]}"
        env = {"CLOUDACT_RUNTIME": "emulators", "CLOUDACT_CONFIG_DIR": str(config_dir),
               "CLOUDACT_HOME": str(Path(tmp) / "home"), "CLOUDACT_LOG_LEVEL": "INFO", **servers.env,
               "CLOUDACT_PROJECT": project}  # fmt: skip
        ctx = Context(Settings.from_env({**os.environ, **env}))
        try:
            headers = onboard_unthrottled(ctx, TENANT)
        finally:
            ctx.close()
        stack = start_stack(project, env, Path(tmp) / "function-logs")
        try:
            return _drill(stack, env, headers)
        except Exception as exc:  # the function logs die with the temp folder: keep their errors in the report
            raise RuntimeError(f"{exc}\n{_log_errors(stack)}") from exc
        finally:
            stack.stop()


WATCHDOG_TICK_S = 10.0


@contextlib.contextmanager
def _watchdog_ticks(env: dict[str, str]) -> Iterator[None]:
    """Publish a maintenance tick to the stack's topic every WATCHDOG_TICK_S, as Cloud Scheduler does."""
    from shared.contracts import topics
    from shared.contracts.envelope import OutboundMessage
    from shared.contracts.messages import MaintenanceTick
    from shared.runtime.context import Context
    from shared.runtime.settings import Settings

    ctx = Context(Settings.from_env({**os.environ, **env}))
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(WATCHDOG_TICK_S):
            ctx.bus.publish(topics.MAINTENANCE_TICKS, [OutboundMessage(MaintenanceTick().to_bytes())])

    ticker = threading.Thread(target=tick, name="drill-scheduler", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join(5)
        ctx.close()


def _log_errors(stack: Any) -> str:
    lines = []
    for server in stack.servers.values():
        text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
        bad = [line for line in text.splitlines() if '"ERROR"' in line or "Traceback" in line or "Error" in line]
        lines += [f"{server.name}: {line[:300]}" for line in bad[-3:]]
    return "\n".join(lines) or "(no errors in the function logs)"


def _drill(stack: Any, env: dict[str, str], headers: dict[str, str]) -> list[Figure]:
    from bench.local_stack import http_json

    base = f"{stack.api_url}/api/v1/tenants/{TENANT}"

    def get(run_id: str) -> dict[str, Any]:
        status, body = http_json("GET", f"{base}/metadata/executions/{run_id}", headers=headers)
        if status != 200:
            raise RuntimeError(f"get {run_id}: {status} {body}")
        return dict(body)

    def start(pipeline_id: str) -> str:
        status, body = http_json("POST", f"{base}/pipelines/execute", json.dumps({"pipeline_id": pipeline_id}).encode(),
                                 headers)  # fmt: skip
        if status != 202:
            raise RuntimeError(f"execute {pipeline_id}: {status} {body}")
        return str(body["run_id"])

    warm = start("seq3")  # cold function processes import on first use: warm them so the long stages overlap
    deadline = time.monotonic() + 120
    while (warm_status := get(warm)["status"]) not in TERMINAL:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the warm-up run is still {warm_status} after 120 s")
        time.sleep(0.2)
    run_ids = {pipeline_id: start(pipeline_id) for pipeline_id in PIPELINES}

    def long_stage(run: dict[str, Any], pipeline_id: str) -> dict[str, Any]:
        return next((s for s in run.get("stages") or [] if s["stage_id"] == PIPELINES[pipeline_id]), {"status": "-"})

    deadline = time.monotonic() + 120
    while True:  # until every run is inside its long stage (8 s each, started within a second of each other)
        runs = {p: get(r) for p, r in run_ids.items()}
        if all(long_stage(runs[p], p)["status"] == "RUNNING" for p in PIPELINES):
            break
        if time.monotonic() > deadline:
            states = {p: long_stage(runs[p], p)["status"] for p in PIPELINES}
            raise RuntimeError(f"the long stages were never all RUNNING together: {states}")
        time.sleep(0.1)
    worker = stack.servers["stage_worker"]
    killed_at = time.monotonic()
    kill_hard(worker.process)
    worker.process, _ = spawn_function(worker.name, env, worker.log_path, worker.port)  # same port: same push URL
    # Cloud Scheduler ticks the watchdog on GCP (every 5 min): here every WATCHDOG_TICK_S. Pub/Sub's redelivery of the
    # killed pushes is not relied on alone: how soon the emulator pushes again to an endpoint that refused
    # connections varies from run to run, while the watchdog re-publishes a stage whose lease ran out, by design.
    with _watchdog_ticks(env):
        deadline = time.monotonic() + 240
        while True:
            runs = {p: get(r) for p, r in run_ids.items()}
            if all(r["status"] in TERMINAL for r in runs.values()) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    recovered_s = time.monotonic() - killed_at
    n = len(PIPELINES)
    terminal = sum(r["status"] in TERMINAL for r in runs.values())
    succeeded = sum(r["status"] == "SUCCEEDED" for r in runs.values())
    open_stages = sum(s["status"] not in TERMINAL for r in runs.values() for s in r["stages"])
    taken_over = sum(
        int(long_stage(runs[p], p).get("attempt") or 0) == 2 and long_stage(runs[p], p)["status"] == "SUCCEEDED"
        for p in PIPELINES
    )
    detail = "; ".join(f"{p}: {r['status']} {str(r.get('error') or '')[:80]}" for p, r in runs.items())
    return [
        figure(
            NAME,
            "runs reaching a terminal state",
            ratio(terminal, n),
            terminal == n,
            "100 %",
            "stage_worker SIGKILLed mid-stage, in a first and in a last stage",
        ),
        figure(NAME, "messages lost", (n - terminal) + open_stages, terminal == n and open_stages == 0, "0"),
        figure(NAME, "runs still SUCCEEDED", ratio(succeeded, n), succeeded == n, "100 %", detail),
        figure(
            NAME,
            "killed stages taken over by attempt 2 after the lease",
            ratio(taken_over, n),
            taken_over == n,
            "100 %",
        ),
        info(
            NAME,
            "kill -> every run terminal",
            f"{recovered_s:.1f} s",
            f"lease = step timeout (12 s) + 60 s grace; watchdog tick {WATCHDOG_TICK_S:g} s",
        ),
    ]
