"""The tenant-attack drill's own machinery (reliability/attacks/): a harness that calls everything "blocked" would
hide breaches, so its judging, batching and network watch are tested here without the runtime."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from reliability.attacks import bombs, netguard, runner
from reliability.attacks.judge import Attack, Markers, judge_run, tally
from reliability.attacks.step_corpus import reserved_attacks, ssrf_urls


def _attack(expect: str = "refuse", sql: str = "SELECT 1 AS x") -> Attack:
    step = {"ps_type": "bigquery.query", "source": {"query": sql}, "destination": {"dataset": "atk", "table": "x"}}
    return Attack("k", "a", step, expect)  # type: ignore[arg-type]


def test_markers_ignore_what_the_attacker_wrote_itself() -> None:
    markers = Markers({"victim": "victimco", "canary": "CNRY-1", "empty": ""})
    assert markers.found("table VICTIMCO_vault.x has CNRY-1") == ["canary", "victim"]
    assert markers.found("dataset victimco_vault refused", payload="SELECT * FROM victimco_vault.t") == []
    assert markers.without(["... victimco ..."]).markers == {"canary": "CNRY-1"}


@pytest.mark.parametrize(
    ("expect", "status", "seen", "outcome"),
    [
        ("refuse", "SUCCEEDED", "[]", "breached"),  # a table function that ran is a breach even without a marker
        ("refuse", "FAILED", "no such table", "blocked"),
        ("refuse", "FAILED", "Did you mean victimco_vault.ledger?", "breached"),
        ("no-leak", "SUCCEEDED", "[1]", "ran-clean"),
        ("no-leak", "RUNNING", "", "not-measured"),
    ],
)
def test_run_verdicts(expect: str, status: str, seen: str, outcome: str) -> None:
    verdict = judge_run(_attack(expect), status, seen, Markers({"victim": "victimco"}), [])
    assert verdict.outcome == outcome


def test_a_harm_found_elsewhere_is_a_breach() -> None:
    verdict = judge_run(_attack(), "FAILED", "", Markers({}), ["wrote mallory_metadata.pwn_1"])
    assert verdict.outcome == "breached" and verdict.leaks == ["wrote mallory_metadata.pwn_1"]


def test_tally_counts_each_outcome_per_class() -> None:
    verdicts = [
        judge_run(_attack(), "FAILED", "", Markers({}), []),
        judge_run(_attack(), "SUCCEEDED", "", Markers({}), []),
        judge_run(_attack("no-leak"), "SUCCEEDED", "", Markers({}), []),
    ]
    overall, per_class = tally(verdicts)
    assert overall.render() == "tried 3 / blocked 1 / breached 1 (ran without a leak 1)"
    assert per_class["k"].breached == 1


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "::ffff:a9fe:a9fe",
        "64:ff9b::a9fe:a9fe",
        "::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "fd00:ec2::254",
        "fe80::1%eth0",
        "169.254.1.1",
    ],
)
def test_network_watch_knows_every_metadata_disguise(host: str) -> None:
    assert netguard.forbidden(host)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "::1", "8.8.8.8", "2001:db8::1", "metadata.google.internal", "::ffff:10.0.0.1"]
)
def test_network_watch_leaves_other_addresses_alone(host: str) -> None:
    assert not netguard.forbidden(host)


def test_network_watch_stops_and_records_a_metadata_connection() -> None:
    import socket

    with netguard.watching() as seen, pytest.raises(ConnectionRefusedError):
        socket.create_connection(("169.254.169.254", 18099), timeout=1)
    assert ("169.254.169.254", 18099) in seen


def test_every_ssrf_url_has_a_port_slot() -> None:
    assert all("{port}" in url for url in ssrf_urls().values())


def test_batches_keep_attacks_with_their_own_values_alone() -> None:
    attacks = [_attack() for _ in range(runner.BATCH + 1)] + reserved_attacks()
    batched = runner.batches(attacks, "b")
    assert all(len(b.attacks) <= runner.BATCH for b in batched)
    assert all(len(b.attacks) == 1 for b in batched if any(a.pipeline or a.parameters for a in b.attacks))
    assert sum(len(b.attacks) for b in batched) == len(attacks)


def test_pipeline_puts_the_control_first_and_gives_each_attack_its_table() -> None:
    batch = runner.Batch("b0", [_attack(), _attack()])
    doc = yaml.safe_load(runner.pipeline_yaml(batch, list(enumerate(batch.attacks))))
    assert doc["steps"][0]["step_id"] == "ctl"
    assert [s["destination"]["table"] for s in doc["steps"][1:]] == ["b0_0", "b0_1"]
    assert all(s["retries"] == {"max_attempts": 1} for s in doc["steps"][1:])


def test_validation_refusals_are_pinned_to_their_own_step(tmp_path: Path) -> None:
    pipelines = tmp_path / "tenant_configs" / "mallory" / "pipelines"
    pipelines.mkdir(parents=True)
    reserved = Attack("k", "metadata", {**_attack().step, "destination": {"dataset": "metadata", "table": "t"}})
    batch = runner.Batch("b0", [_attack(), reserved])
    refused = runner.validate(SimpleNamespace(pipelines=pipelines), batch, Markers({}))
    assert batch.control_ok is True
    assert list(refused) == [1] and refused[1].outcome == "blocked"


def test_bomb_files_are_pipelines_named_after_their_file(tmp_path: Path) -> None:
    files = bombs.write_bombs(tmp_path)
    assert len(files) == len(bombs.bomb_files())
    for path in files.values():
        assert path.read_text(encoding="utf-8").startswith(f"pipeline_id: {path.stem}\n")


def test_dollar_quote_payloads_read_as_one_string_to_the_checker_and_as_code_to_duckdb() -> None:
    """The class 9 payloads keep their shape: sqlglot sees a column and a string literal (no function call), so a
    refusal must come from the checker knowing DuckDB's dollar quoting, not from a malformed payload."""
    import sqlglot
    from sqlglot import exp

    from reliability.attacks.sql_corpus import Paths, differential_attacks

    attacks = {a.name: a for a in differential_attacks(Paths("/c", "/v", "/cr", "/w", "/h"))}
    sql = str(attacks["dollar-quoted column hides current_setting"].step["source"]["query"])  # type: ignore[index]
    tree = sqlglot.parse_one(sql.replace("{tenant_id}", "mallory"), read="bigquery")
    assert not list(tree.find_all(exp.Anonymous)) and "current_setting" in tree.sql("duckdb")
    assert all(a.klass == "9 parser differentials" for a in attacks.values())
    assert attacks["dollar-quoted column hides duckdb_settings()"].expect == "refuse"


def test_sql_cost_bombs_fit_the_attackers_plan() -> None:
    files = bombs.bomb_files()
    for name in ("refused query of 150,000 additions (300 KB)", "refused query with an IN list of 100,000"):
        assert len(files[name].encode()) < 1 << 20
        assert yaml.safe_load(files[name])["steps"][0]["ps_type"] == "bigquery.query"
