"""A step works with what its StepContext hands it: the deployment's settings, the tenant's secrets and the state store
of the runtime the engine built it with, never the process-wide `get_context()`.

Each test installs a different process-wide Context beside the step's own, so a processor that still reached for the
global one would read the wrong folder, store or keyring and fail here."""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.errors import TerminalError
from shared.pipelines.spec import StepSpec
from shared.processors.base import StepContext
from shared.processors.debug_job import job_path
from shared.processors.jobs import JobProcessor, stage_job_id
from shared.processors.registry import get_processor
from shared.runtime.context import Context, set_context
from shared.runtime.settings import Settings
from shared.secrets.store import put_secret

PROCESSORS = Path(__file__).resolve().parents[2] / "shared" / "processors"


def _runtime(root: Path) -> Context:
    (root / "configs" / "acme").mkdir(parents=True)
    return Context(Settings(home=root / "home", config_dir=root / "configs", project=f"project-{root.name}"))


@pytest.fixture
def runtimes(tmp_path: Path) -> Iterator[tuple[Context, Context]]:
    """(the step's runtime, a different process-wide one installed beside it)."""
    step_runtime, global_runtime = _runtime(tmp_path / "step"), _runtime(tmp_path / "global")
    previous = set_context(global_runtime)
    yield step_runtime, global_runtime
    set_context(previous)
    for ctx in (step_runtime, global_runtime):
        ctx.close()


def _step_context(runtime: Context, tenant_id: str = "acme") -> StepContext:
    return StepContext(
        tenant_id, "p", "run_1", "s", 1, date(2026, 11, 2), {}, {}, DuckDBWarehouse(":memory:"), time.monotonic() + 60,
        runtime,
    )  # fmt: skip


def test_settings_secrets_and_other_tenants_come_from_the_steps_runtime(runtimes: tuple[Context, Context]) -> None:
    step_runtime, global_runtime = runtimes
    (step_runtime.settings.config_dir / "globex").mkdir()
    put_secret(step_runtime, "acme", "api_token", b"from-the-step")
    put_secret(global_runtime, "acme", "api_token", b"from-the-process")
    put_secret(step_runtime, "globex", "only_globex", b"x")
    ctx = _step_context(step_runtime)
    assert ctx.settings is step_runtime.settings and ctx.state is step_runtime.state
    assert ctx.secret("api_token") == "from-the-step"
    with pytest.raises(TerminalError, match="tenant 'acme' has no secret 'only_globex'"):
        ctx.secret("only_globex")  # bound to the step's tenant
    assert set(ctx.other_tenants()) == {"globex"}  # the step's config folder, not the process's (only acme there)


def test_a_job_processor_keeps_its_documents_in_the_steps_state_store(runtimes: tuple[Context, Context]) -> None:
    step_runtime, global_runtime = runtimes
    ctx = _step_context(step_runtime)
    step = StepSpec.model_validate({"step_id": "s", "ps_type": "debug.job", "config": {"duration_s": 0, "rows": 3}})
    job_id = stage_job_id(ctx.run_id, ctx.stage_id, ctx.attempt)
    job = get_processor("debug.job")
    assert isinstance(job, JobProcessor)
    job.submit(step, ctx, job_id)
    assert step_runtime.state.get(job_path(job_id)) is not None
    assert global_runtime.state.get(job_path(job_id)) is None
    done = job.poll(step, ctx, job_id)
    assert done.done and done.result is not None and done.result.rows_out == 3


def test_no_processor_module_reaches_for_the_process_wide_context() -> None:
    """`get_context` / `set_context` are not imported anywhere in shared/processors."""
    offenders = []
    for path in sorted(PROCESSORS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "shared.runtime.context":
                names = {alias.name for alias in node.names} & {"get_context", "set_context"}
                offenders += [f"{path.name}: {name}" for name in sorted(names)]
    assert offenders == []
