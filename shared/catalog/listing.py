"""A tenant's pipelines as its users see them (the `GET .../pipelines` route, the run-history page): each file of its
pipelines/ folder with its steps, parameters and schedule, or, for a file that does not validate, its problems as
`file:line:column: key: message` so a broken file shows up instead of vanishing from the list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.catalog.loader import PipelineValidationError, list_pipeline_files, load_pipeline


def describe_pipelines(config_dir: Path, tenant_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in list_pipeline_files(config_dir, tenant_id):
        try:
            spec = load_pipeline(path)
        except PipelineValidationError as exc:
            out.append({"pipeline_id": path.stem, "valid": False, "errors": [str(i) for i in exc.issues]})
            continue
        out.append(
            {
                "pipeline_id": spec.pipeline_id,
                "valid": True,
                "description": spec.description,
                "parameters": {k: v.model_dump(mode="json") for k, v in spec.parameters.items()},
                "schedule": spec.schedule.model_dump(mode="json") if spec.schedule else None,
                "steps": [{"step_id": s.step_id, "ps_type": s.ps_type, "depends_on": s.depends_on} for s in spec.steps],
            }
        )
    return out
