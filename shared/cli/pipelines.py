"""`cloudact pipelines`: validate pipeline YAML (errors as file:line:column) and export the editor JSON Schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group("pipelines")
def pipelines_group() -> None:
    """Pipeline YAML: validate, export the JSON Schema."""


@pipelines_group.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def pipelines_validate(paths: tuple[Path, ...]) -> None:
    """Validate pipeline files or folders (default: every tenant_configs/*/pipelines/*.yaml).

    Prints `ok` or one line per problem, `file:line:column: key: message`, and exits 1 if any file is invalid.
    """
    from shared.pipelines.loader import PipelineValidationError, list_pipeline_files, load_pipeline
    from shared.runtime.settings import Settings

    files = _expand(paths) if paths else list_pipeline_files(Settings.from_env().config_dir)
    if not files:
        raise click.ClickException("no pipeline files found")
    failed = 0
    for path in files:
        try:
            load_pipeline(path)
        except PipelineValidationError as exc:
            failed += 1
            for issue in exc.issues:
                click.echo(str(issue))
    if failed:
        click.echo(f"{failed} of {len(files)} pipeline file(s) invalid", err=True)
        sys.exit(1)
    click.echo(f"ok ({len(files)} pipeline file(s))")


@pipelines_group.command("schema")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="File (default: stdout).")
def pipelines_schema(out: Path | None) -> None:
    """Write the JSON Schema of a pipeline file, for editor completion and checks."""
    from shared.pipelines.json_schema import pipeline_json_schema

    text = json.dumps(pipeline_json_schema(), indent=2, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given; a folder means its `*/pipelines/*.yaml` (a tenant_configs folder), else its `*.yaml`."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            nested = sorted(path.glob("*/pipelines/*.yaml")) or sorted(path.glob("pipelines/*.yaml"))
            files += nested or sorted(path.glob("*.yaml"))
        else:
            files.append(path)
    return files
