"""The pipeline spec as a JSON Schema, for editors (VS Code's YAML extension: `# yaml-language-server: $schema=...`).

It is derived from the pydantic models, plus what pydantic cannot express on its own: the known `ps_type`s, name
patterns of parameter and variable keys, and, per processor whose SPEC has `config_models`, the schema of its
`source` / `destination` / `config` (as `if ps_type == X then ...`). Rules that need the whole document (cycles,
SQL scope) are only checked by `cloudact pipelines validate`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared import logs
from shared.pipelines.spec import IDENTIFIER, PipelineSpec
from shared.processors import registry

SCHEMA_ID = "https://convergence-data-pipeline.dev/schemas/pipeline.v1.json"
log = logs.get_logger(__name__)


def pipeline_json_schema() -> dict[str, Any]:
    schema = PipelineSpec.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    for section in ("parameters", "variables"):
        schema["properties"][section]["propertyNames"] = {"pattern": IDENTIFIER.pattern}
    step = defs["StepSpec"]
    step["properties"]["ps_type"]["enum"] = registry.known_types()
    conditions = []
    for ps_type in registry.known_types():
        models = _config_models(ps_type)
        if not models:
            continue
        properties = {}
        for field, model in models.items():
            sub = model.model_json_schema(ref_template="#/$defs/{model}")
            defs.update(sub.pop("$defs", {}))
            properties[field] = sub
        conditions.append(
            {
                "if": {"properties": {"ps_type": {"const": ps_type}}, "required": ["ps_type"]},
                "then": {"properties": properties, "required": sorted(models)},
            }
        )
    if conditions:
        step["allOf"] = conditions
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Convergence Data Pipeline: pipeline YAML",
        **schema,
    }


def _config_models(ps_type: str) -> dict[str, type[BaseModel]]:
    try:
        return dict(registry.get_spec(ps_type).config_models)
    except ImportError as exc:  # a processor whose optional dependency is missing still gets the generic schema
        log.warning("no settings schema for %s: %s", ps_type, exc)
        return {}
