"""The tenant's pipeline list (GET .../pipelines): valid files described, a broken one listed with file:line:col."""

from __future__ import annotations

from pathlib import Path

from shared.catalog.listing import describe_pipelines


def test_a_broken_pipeline_is_listed_with_its_problems(config_dir: Path) -> None:
    folder = config_dir / "acme" / "pipelines"
    (folder / "broken.yaml").write_text("pipeline_id: broken\nsteps:\n  - step_id: a\n    ps_type: no.such_type\n")
    listed = {p["pipeline_id"]: p for p in describe_pipelines(config_dir, "acme")}
    assert listed["daily_sales"]["valid"] and [s["step_id"] for s in listed["daily_sales"]["steps"]]
    broken = listed["broken"]
    assert broken["valid"] is False and broken["errors"]
    assert all(str(folder / "broken.yaml") in e or "broken.yaml:" in e for e in broken["errors"]), broken["errors"]
