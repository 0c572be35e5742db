"""Reading what the `file` trace exporter (shared/observability/file_exporter.py) wrote: one JSON span per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_span_file(path: Path) -> list[dict[str, Any]]:
    """Every span in `path`; none when the exporter has not written the file yet."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
