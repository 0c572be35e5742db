"""The emulator stack: Pub/Sub + Firestore emulators and bqemulator (started by scripts/test.sh), plus one real
functions-framework process per function, wired with push subscriptions as in production."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, REPO
from tests.servers import server_missing

REQUIRED = ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "CLOUDACT_BIGQUERY_ENDPOINT")


def require_emulators() -> None:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if not missing:
        return
    message = (
        f"emulator stack not running ({', '.join(missing)} unset): run `make test`, which starts it; "
        "install the Google emulators with `gcloud components install pubsub-emulator cloud-firestore-emulator`"
    )
    server_missing(message)


@pytest.fixture(scope="module")
def emulator_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_emulators()
    from bench.local_stack import start_stack

    root = tmp_path_factory.mktemp("stack")
    configs = root / "tenant_configs"
    shutil.copytree(REPO / "tenant_configs", configs)
    shutil.copytree(DATA / "tenant_configs", configs, dirs_exist_ok=True)
    project = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {
        "CLOUDACT_RUNTIME": "emulators",
        "CLOUDACT_WAREHOUSE": "bigquery",
        "CLOUDACT_CONFIG_DIR": str(configs),
        "CLOUDACT_HOME": str(root / "home"),
        "CLOUDACT_LOG_LEVEL": "INFO",
        "CLOUDACT_ADMIN_TOKEN": "e2e-admin-" + uuid.uuid4().hex + uuid.uuid4().hex,  # as production: from a secret
    }
    extra = getattr(request.module, "STACK_EXTRA_ENV", lambda _root: {})(root)  # e.g. a trace exporter
    if "PYTHONPATH" in extra and os.environ.get("PYTHONPATH"):
        # A test's own start-up hook goes after the caller's (make gcp-parity's API recorder, which chains to it).
        extra["PYTHONPATH"] = os.pathsep.join([os.environ["PYTHONPATH"], extra["PYTHONPATH"]])
    env.update(extra)
    stack = start_stack(project, env, Path(os.environ.get("CLOUDACT_TEST_ARTIFACTS", root)) / "function-logs")
    stack.env = {**env, "CLOUDACT_PROJECT": project}
    provision_like_terraform(stack, configs)
    try:
        yield stack
    finally:
        stack.stop()


def provision_like_terraform(stack: Any, configs: Path) -> None:
    """Every tenant folder's datasets, created from the test process as Terraform's tenant module would on GCP: the
    api function does not create datasets on BigQuery (its identity holds no BigQuery role)."""
    from shared.lifecycle.provisioning import provision_tenant

    ctx = stack_context(stack)
    try:
        for folder in sorted(configs.iterdir()):
            if (folder / "tenant.yaml").is_file():
                provision_tenant(ctx, folder.name)
    finally:
        ctx.close()


def stack_context(stack: Any) -> Any:
    """A Context in the test process pointed at the same emulators, to inspect state and warehouse."""
    from shared.runtime.context import Context
    from shared.runtime.settings import Settings

    return Context(Settings.from_env({**os.environ, **stack.env}))
