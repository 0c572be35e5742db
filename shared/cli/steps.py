"""`cloudact steps [PS_TYPE]`: the step reference of docs/steps.md on the terminal (same generator)."""

from __future__ import annotations

import click

from shared.cli import render


@click.command("steps")
@click.argument("ps_type", required=False)
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the Markdown source instead of rendering it.")
def steps_cmd(ps_type: str | None, as_markdown: bool) -> None:
    """Every step type's settings (field, type, default, description) with an example; PS_TYPE for one type."""
    from shared.docgen import steps_reference as ref
    from shared.processors.registry import is_known_type, known_types

    if ps_type is None:
        text = ref.render()
    elif not is_known_type(ps_type):
        raise click.BadParameter(f"unknown step type {ps_type!r}; known: {', '.join(known_types())}")
    else:
        text = ref.step_reference(ps_type)
        if ps_type == "arrow.transform":
            text += "\n" + ref.expression_reference()
        elif ps_type == "quality.check":
            text += "\n" + ref.quality_reference()
    if as_markdown:
        click.echo(text)
        return
    from rich.markdown import Markdown

    render.console.print(Markdown(text))
