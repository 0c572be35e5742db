"""The `emulators` runtime: every function as its own functions-framework process behind Pub/Sub emulator push
subscriptions, exactly wired as terraform/ wires production (retry policy + dead-letter topic on every push
subscription, and a pull subscription on the dead-letter topic).

A harness of tests/e2e, the benchmarks and the reliability drills (it lives here, beside the other process and server
helpers they share, and not in shared/, so it is not in the deployed bundle).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.contracts import topics
from shared.runtime.settings import REPO_ROOT

HTTP_FUNCTIONS = ("api",)
DEAD_LETTER_PULL_SUBSCRIPTION = topics.DEAD_LETTER_PULL_SUBSCRIPTION


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports. All are held bound until every one is chosen: picking them one at a time, the
    kernel may hand the same port out twice before the first server binds it, and functions-framework's server binds
    with SO_REUSEPORT, so two functions would then share a port and split its requests between them."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def provision_pubsub(
    project: str,
    push_urls: Mapping[str, str],
    min_backoff_s: float = 0.1,
    max_backoff_s: float = 2.0,
    max_delivery_attempts: int = 10,
    ack_deadline_s: int = 60,
) -> None:
    """Create every topic and push subscription (idempotent). `push_urls`: function name -> base URL."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]
    from google.protobuf import duration_pb2

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    for topic in topics.ALL_TOPICS:
        with contextlib.suppress(gexc.AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(project, topic))
    dead_letter_topic = publisher.topic_path(project, topics.DEAD_LETTERS)
    for topic, function in topics.SUBSCRIBERS.items():
        request: dict[str, Any] = {
            "name": subscriber.subscription_path(project, topics.subscription_name(topic)),
            "topic": publisher.topic_path(project, topic),
            "push_config": {"push_endpoint": f"{push_urls[function]}/projects/{project}/topics/{topic}"},
            "ack_deadline_seconds": ack_deadline_s,
            "retry_policy": {
                "minimum_backoff": duration_pb2.Duration(nanos=int(min_backoff_s * 1e9)),
                "maximum_backoff": duration_pb2.Duration(seconds=int(max_backoff_s)),
            },
        }
        if topic != topics.DEAD_LETTERS:
            request["dead_letter_policy"] = {
                "dead_letter_topic": dead_letter_topic,
                "max_delivery_attempts": max_delivery_attempts,
            }
        with contextlib.suppress(gexc.AlreadyExists):
            subscriber.create_subscription(request=request)
    with contextlib.suppress(gexc.AlreadyExists):
        subscriber.create_subscription(
            name=subscriber.subscription_path(project, DEAD_LETTER_PULL_SUBSCRIPTION), topic=dead_letter_topic
        )


@dataclass
class FunctionServer:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class LocalStack:
    project: str
    servers: dict[str, FunctionServer] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return self.servers["api"].url

    def stop(self) -> None:
        for server in self.servers.values():
            if server.process.poll() is None:
                server.process.terminate()
        for server in self.servers.values():
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()


def _wait_port(port: int, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"function server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"function server on :{port} not ready in {timeout_s}s:\n{log_path.read_text()[-3000:]}")


def start_stack(
    project: str, env: Mapping[str, str], log_dir: Path, functions: tuple[str, ...] | None = None, **provision_args: Any
) -> LocalStack:
    """Start one functions-framework process per function (host 127.0.0.1), then wire Pub/Sub push to them."""
    names = functions or ("api", *sorted(set(topics.SUBSCRIBERS.values())))
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(project)
    binary = str(Path(sys.executable).with_name("functions-framework"))
    child_env = {**os.environ, **env, "CLOUDACT_PROJECT": project, "PYTHONUNBUFFERED": "1"}
    try:
        for name, port in zip(names, free_ports(len(names)), strict=True):
            log_path = log_dir / f"{name}.log"
            signature = "http" if name in HTTP_FUNCTIONS else "cloudevent"
            process = subprocess.Popen(
                [
                    binary,
                    "--target",
                    name,
                    "--source",
                    str(REPO_ROOT / "main.py"),
                    "--signature-type",
                    signature,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=REPO_ROOT,
                env=child_env,
                stdout=log_path.open("wb"),
                stderr=subprocess.STDOUT,
            )
            stack.servers[name] = FunctionServer(name, port, process, log_path)
        for server in stack.servers.values():
            _wait_port(server.port, server.process, server.log_path)
        push_urls = {name: server.url for name, server in stack.servers.items()}
        provision_pubsub(project, push_urls, **provision_args)
    except BaseException:
        stack.stop()
        raise
    return stack


def http_json(
    method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None, timeout_s: float = 30.0
) -> tuple[int, Any]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")
