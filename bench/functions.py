"""One function as its own functions-framework process, started the way bench/local_stack.py starts them.

For figures that need a single function (P4: the `api` function alone) and for drills that restart one on its port
(reliability: kill -9 of the stage_worker).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from bench.harness import REPO_ROOT
from bench.servers import free_port

HTTP_FUNCTIONS = ("api",)


def spawn_function(
    name: str, env: Mapping[str, str], log_path: Path, port: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `name` on 127.0.0.1:`port` (a free one by default) and wait until it accepts connections."""
    port = port or free_port()
    binary = str(Path(sys.executable).with_name("functions-framework"))
    signature = "http" if name in HTTP_FUNCTIONS else "cloudevent"
    command = [binary, "--target", name, "--source", str(REPO_ROOT / "main.py"), "--signature-type", signature]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log_path.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{name} did not listen on :{port} within 60 s")


def stop_function(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
