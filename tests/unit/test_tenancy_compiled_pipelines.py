"""The compiled-pipeline cache admission and schedule ticks share: one parse per version of the files a pipeline's
validation depends on (the YAML, its tenant.yaml's plan, the config folder's tenant list), never a stale spec."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.catalog.compiled import compiled_pipeline
from shared.catalog.loader import PipelineValidationError
from shared.errors import NotFound

PIPELINE = """pipeline_id: nightly
schedule: {{cron: "{cron}", timezone: UTC}}
steps:
  - {{step_id: noop, ps_type: debug.noop}}
"""


def write(config_dir: Path, cron: str = "0 2 * * *") -> Path:
    path = config_dir / "cacheco" / "pipelines" / "nightly.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    (config_dir / "cacheco" / "tenant.yaml").write_text("tenant_id: cacheco\nname: Cache Co\n")
    path.write_text(PIPELINE.format(cron=cron))
    return path


def test_one_parse_per_file_version(config_dir: Path) -> None:
    path = write(config_dir)
    first = compiled_pipeline(config_dir, "cacheco", "nightly")
    assert compiled_pipeline(config_dir, "cacheco", "nightly") is first  # cached: the same object
    assert first.size == path.stat().st_size
    assert first.spec.schedule is not None and first.spec.schedule.cron == "0 2 * * *"

    write(config_dir, "30 4 * * *")  # same length, new content: the mtime moves
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    changed = compiled_pipeline(config_dir, "cacheco", "nightly")
    assert changed is not first and changed.spec.schedule is not None and changed.spec.schedule.cron == "30 4 * * *"

    plan = config_dir / "cacheco" / "tenant.yaml"
    plan.write_text("tenant_id: cacheco\nname: Cache Co\nplan: enterprise\n")  # another plan: validated again
    assert compiled_pipeline(config_dir, "cacheco", "nightly") is not changed


def test_failures_are_raised_and_not_cached(config_dir: Path) -> None:
    with pytest.raises(NotFound):
        compiled_pipeline(config_dir, "cacheco", "nightly")
    path = write(config_dir)
    path.write_text("pipeline_id: nightly\nsteps: []\nbogus: 1\n")
    with pytest.raises(PipelineValidationError):
        compiled_pipeline(config_dir, "cacheco", "nightly")
    write(config_dir)  # fixed: the next call parses it again
    assert compiled_pipeline(config_dir, "cacheco", "nightly").spec.pipeline_id == "nightly"
    with pytest.raises(NotFound):
        compiled_pipeline(config_dir, "cacheco", "../escape")
