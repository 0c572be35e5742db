"""The local outbox: where notifications go on the embedded runtime when no real channel is configured.

One file per notification under `.cloudact/outbox/`, in the channel's own format (an `.eml` you can open in a mail
client, the Slack webhook payload as `.json`, plain `.txt` for the `outbox` channel). The file name derives from the
delivery, so a retried delivery rewrites the same file instead of adding a second one.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from shared.runtime.settings import Settings


def outbox_dir(settings: Settings) -> Path:
    return settings.home / "outbox"


def write_outbox(
    settings: Settings, delivery_id: str, created_at: str, tenant_id: str, channel_key: str, ext: str, data: bytes
) -> Path:
    folder = outbox_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = re.sub(r"[^0-9T]", "", created_at[:19])
    digest = hashlib.sha256(delivery_id.encode()).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", f"{stamp}_{tenant_id}_{channel_key}_{digest}.{ext}")
    path = folder / name
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: a reader never sees half a message
    return path


def list_outbox(settings: Settings) -> list[Path]:
    folder = outbox_dir(settings)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".tmp")), key=lambda p: p.name)


def display_path(path: str | Path) -> str:
    """Relative to the working directory when inside it (what a user would type), absolute otherwise."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def delivery_label(delivery: dict[str, Any]) -> str:
    """What happened to a notification, in words a reader can trust: a message written to the local outbox went to
    no one yet, so it is QUEUED (in the outbox), not SENT; otherwise the delivery log's status (SENT, FAILED, ...)."""
    status = str(delivery.get("status") or "queued")
    if status == "sent" and (delivery.get("outbox_path") or delivery.get("transport") == "outbox"):
        status = "queued"  # the delivery status a message in the outbox stands for (shared/notify/delivery.py)
    return status.upper()
