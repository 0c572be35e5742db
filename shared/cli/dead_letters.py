"""`cloudact dead-letters list | show | replay | purge`: the dead-letter queue of the configured runtime.

Embedded (CLOUDACT_BUS=inprocess): the queue is the file the embedded bus keeps (.cloudact/dead_letters.sqlite3) and a
replay starts the embedded runtime so the functions really handle the replayed messages, then waits for them.
Emulators/GCP (CLOUDACT_BUS=pubsub): the dead-letter topic's pull subscription, with the operator's own credentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

from shared.cli.tenants import _actor, _context, _echo


@dataclass
class _Session:
    ctx: Any
    queue: Any
    bus: Any
    runtime: Any = None


@contextmanager
def _operator_errors() -> Iterator[None]:
    from shared.errors import ClientError, TerminalError

    try:
        yield
    except (ClientError, TerminalError) as exc:
        raise click.ClickException(getattr(exc, "message", str(exc))) from exc


@contextmanager
def _session(replaying: bool = False) -> Iterator[_Session]:
    from shared.runs.dead_letters import dead_letter_queue
    from shared.runtime.settings import Settings

    settings = Settings.from_env()
    if settings.bus != "inprocess":
        with _context() as ctx:
            yield _Session(ctx, dead_letter_queue(ctx), ctx.bus)
        return
    if replaying:  # the functions must run to handle what is replayed: the embedded runtime, as `cloudact run` does
        from shared import logs
        from shared.app import embedded

        logs.configure(level="WARNING")
        runtime = embedded.start(settings)
        try:
            with _operator_errors():
                yield _Session(runtime.context, runtime.bus, runtime.bus, runtime)
        finally:
            runtime.close()
        return
    from shared.adapters.dead_letter_file import DeadLetterFile
    from shared.app.embedded import dead_letter_file_path

    queue = DeadLetterFile(dead_letter_file_path(settings))
    try:
        with _context() as ctx:
            yield _Session(ctx, queue, None)
    finally:
        queue.close()


def _selection(ids: tuple[str, ...], all_: bool, verb: str) -> list[str] | None:
    if bool(ids) == all_:
        raise click.UsageError(f"{verb} needs dead-letter IDs or --all (not both)")
    return None if all_ else list(ids)


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Messages Pub/Sub gave up on: inspect, replay after a fix, or purge (audited)."""


@dead_letters_group.command("list")
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's dead letters.")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dl_list(tenant_id: str | None, limit: int, as_json: bool) -> None:
    """What sits in the dead-letter queue (oldest first), its run/stage and why it died. Consumes nothing."""
    from shared.runs.dead_letters import list_dead_letters

    with _session() as session:
        letters = list_dead_letters(session.ctx, session.queue, tenant_id, limit)
    if as_json:
        _echo(letters)
        return
    if not letters:
        click.echo("no dead letters")
        return
    for d in letters:
        where = "/".join(x for x in (d["tenant_id"], d["run_id"], d["stage_id"]) if x) or "-"
        now = " ".join(f"{k}={d[k]}" for k in ("run_status", "stage_status") if d[k])
        click.echo(f"{d['dead_letter_id']}  {d['dead_lettered_at']}  {d['kind'] or '?'}  {where}  {now}")
        click.echo(f"    from {d['source_subscription'] or d['source_topic'] or '?'}: {d['reason']}")
        if d["last_error"]:
            click.echo(f"    last error: {d['last_error']}")


@dead_letters_group.command("show")
@click.argument("dead_letter_id")
def dl_show(dead_letter_id: str) -> None:
    """One dead letter with its attributes and decoded message."""
    from shared.runs.dead_letters import describe, find_dead_letter

    with _session() as session:
        _echo(describe(session.ctx, find_dead_letter(session.queue, dead_letter_id), with_message=True))


@dead_letters_group.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Replay every dead letter in the queue.")
@click.option("--timeout", default=120.0, show_default=True, help="Embedded: seconds to wait for the replays' work.")
def dl_replay(ids: tuple[str, ...], all_: bool, timeout: float) -> None:
    """Send dead letters back (after fixing what killed them); each is acked once its replay is accepted.

    A finished stage's task does nothing again; a run the maintenance function ended FAILED is resumed once.
    """
    from shared.runs.dead_letters import replay

    selected = _selection(ids, all_, "replay")
    with _session(replaying=True) as session:
        outcomes = replay(session.ctx, session.queue, session.bus, selected, _actor(), None)
        if session.runtime is not None and not session.runtime.wait_idle(timeout):
            click.echo(f"still working after {timeout:g} s", err=True)
    for o in outcomes:
        click.echo(f"{o['dead_letter_id']}: {o['action']} - {o['detail']}")
    if not outcomes:
        click.echo("no dead letters")


@dead_letters_group.command("purge")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Purge every dead letter in the queue.")
@click.option("--yes", is_flag=True, help="Confirm: purged dead letters are gone for good.")
def dl_purge(ids: tuple[str, ...], all_: bool, yes: bool) -> None:
    """Drop dead letters for good (audited with what each was)."""
    from shared.runs.dead_letters import purge

    selected = _selection(ids, all_, "purge")
    if not yes:
        raise click.UsageError("purge deletes dead letters for good: add --yes")
    with _session() as session:
        outcomes = purge(session.ctx, session.queue, selected, _actor(), None)
    click.echo(json.dumps({"purged": [o["dead_letter_id"] for o in outcomes]}))
