"""Pipeline YAML validation as a user meets it: every broken file is refused at its own file:line:column.

tests/data/bad_pipelines/ holds one file per rule; its first line says where the error must be reported
(`# expect: <line>:<col> <part of the message>`).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema_rs
import pytest
import yaml
from click.testing import CliRunner

from shared.catalog.loader import PipelineValidationError, load_pipeline, parse_pipeline, snapshot
from shared.cli.main import cli
from shared.pipelines.spec import PipelineSpec

DATA = Path(__file__).resolve().parents[1] / "data"
BAD = sorted((DATA / "bad_pipelines").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+)$")
REPO = Path(__file__).resolve().parents[2]


def test_the_corpus_has_one_file_per_rule() -> None:
    assert len(BAD) >= 40
    for path in BAD:
        assert EXPECT.match(path.read_text().splitlines()[0]), f"{path.name}: first line must be '# expect: L:C text'"


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_each_broken_pipeline_is_refused_at_its_line_and_column(path: Path) -> None:
    text = path.read_text()
    match = EXPECT.match(text.splitlines()[0])
    assert match is not None
    line, column, expected = int(match.group(1)), int(match.group(2)), match.group(3)
    with pytest.raises(PipelineValidationError) as caught:
        parse_pipeline(text, str(path))
    rendered = [str(issue) for issue in caught.value.issues]
    wanted = f"{path}:{line}:{column}: "
    assert any(r.startswith(wanted) and expected in r for r in rendered), "\n".join(rendered)


def test_cli_validate_prints_file_line_column_and_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "cross_tenant_table.yaml"
    shutil.copy(DATA / "bad_pipelines" / "cross_tenant_table.yaml", broken)
    result = CliRunner().invoke(cli, ["pipelines", "validate", str(broken)])
    assert result.exit_code == 1
    assert f"{broken}:9:14: steps[0].source.query: dataset `globex_sales` is not one of" in result.output


def test_cli_validate_says_ok_for_the_shipped_pipelines() -> None:
    result = CliRunner().invoke(cli, ["pipelines", "validate", str(REPO / "tenant_configs")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok")
    result = CliRunner().invoke(cli, ["pipelines", "validate", str(DATA / "tenant_configs")])
    assert result.exit_code == 0, result.output


def test_cli_schema_describes_valid_files_and_rejects_broken_ones(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.schema.json"
    result = CliRunner().invoke(cli, ["pipelines", "schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    validator = jsonschema_rs.validator_for(json.loads(out.read_text()))
    for path in [*(REPO / "tenant_configs").glob("*/pipelines/*.yaml"), *DATA.glob("tenant_configs/*/pipelines/*")]:
        assert validator.is_valid(yaml.safe_load(path.read_text())), path
    for name in ("unknown_key", "bad_write_mode", "wrong_type", "unknown_ps_type", "empty_steps"):
        assert not validator.is_valid(yaml.safe_load((DATA / "bad_pipelines" / f"{name}.yaml").read_text())), name


# -- a file inside tenant_configs/ is validated for its tenant ---------------------------------------------------


def _tenant_file(tmp_path: Path, tenant: str, pipeline_id: str, body: str) -> Path:
    for name in ("acme", "globex", "acme_eu"):
        (tmp_path / name / "pipelines").mkdir(parents=True, exist_ok=True)
    path = tmp_path / tenant / "pipelines" / f"{pipeline_id}.yaml"
    path.write_text(f"pipeline_id: {pipeline_id}\n{body}")
    return path


def test_own_datasets_pass_written_either_way_other_tenants_are_refused(tmp_path: Path) -> None:
    ok = _tenant_file(
        tmp_path,
        "acme",
        "own",
        """steps:
  - step_id: both
    ps_type: bigquery.query
    source: {query: "SELECT * FROM acme_sales.orders UNION ALL SELECT * FROM {project}.{tenant_id}_sales.returns"}
    destination: {dataset: sales, table: combined}
""",
    )
    assert load_pipeline(ok).pipeline_id == "own"
    theirs = _tenant_file(
        tmp_path,
        "acme",
        "theirs",
        """steps:
  - step_id: peek
    ps_type: bigquery.query
    source: {query: "SELECT * FROM acme_eu_sales.orders"}
    destination: {dataset: eu_copy, table: orders}
""",
    )
    with pytest.raises(PipelineValidationError) as caught:
        load_pipeline(theirs)
    messages = [str(i) for i in caught.value.issues]
    assert any(":5:36: " in m and "belongs to tenant 'acme_eu'" in m for m in messages), messages
    # writing into `acme_eu_copy` would land in acme_eu's dataset namespace too
    assert any("destination.dataset" in m and "belongs to tenant 'acme_eu'" in m for m in messages), messages


def test_pipeline_id_must_match_the_file_name(tmp_path: Path) -> None:
    path = _tenant_file(tmp_path, "globex", "daily", "steps:\n  - {step_id: a, ps_type: debug.noop}\n")
    path.write_text(path.read_text().replace("pipeline_id: daily", "pipeline_id: nightly"))
    with pytest.raises(PipelineValidationError, match=r"daily.yaml:1:14: pipeline_id: must match the file name"):
        load_pipeline(path)


# -- spec semantics ----------------------------------------------------------------------------------------------


def test_pipeline_retries_apply_to_steps_that_set_none_and_survive_the_snapshot() -> None:
    spec = parse_pipeline(
        """pipeline_id: p
retries: {max_attempts: 5, backoff_seconds: 1}
steps:
  - {step_id: a, ps_type: debug.noop}
  - {step_id: b, ps_type: debug.noop, depends_on: [a], retries: {max_attempts: 1}}
""",
        "p.yaml",
    )
    assert [(s.retries.max_attempts, s.retries.backoff_seconds) for s in spec.steps] == [(5, 1.0), (1, 10.0)]
    again = PipelineSpec.model_validate(snapshot(spec))
    assert [s.retries.max_attempts for s in again.steps] == [5, 1]


def test_valid_schedule_and_parameters_are_kept_in_canonical_form() -> None:
    spec = parse_pipeline(
        """pipeline_id: p
schedule: {cron: "*/15 6-18 * * 1-5", timezone: Europe/Berlin}
parameters:
  since: {type: date, default: 2026-11-01}
  at: {type: timestamp, default: "2026-11-01T06:00:00+01:00"}
  limit: {type: int, default: "10"}
steps:
  - {step_id: a, ps_type: debug.noop}
""",
        "p.yaml",
    )
    assert spec.schedule is not None and spec.schedule.timezone == "Europe/Berlin"
    assert {k: p.default for k, p in spec.parameters.items()} == {
        "since": "2026-11-01",
        "at": "2026-11-01T05:00:00+00:00",
        "limit": 10,
    }


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    with pytest.raises(PipelineValidationError) as caught:
        parse_pipeline(
            """pipeline_id: p
schedule: {cron: "bad", timezone: Nowhere/City}
steps:
  - {step_id: a, ps_type: nope}
  - {step_id: b, ps_type: debug.noop, depends_on: [zz]}
""",
            "p.yaml",
        )
    keys = sorted(i.key for i in caught.value.issues)
    assert keys == ["schedule.cron", "schedule.timezone", "steps[0].ps_type", "steps[1].depends_on[0]"]
