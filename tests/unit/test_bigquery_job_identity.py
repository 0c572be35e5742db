"""What identifies a step's BigQuery jobs, and the error a query over the plan's bytes cap gives (no server needed)."""

from __future__ import annotations

import re

import pytest

from shared.adapters.bigquery_errors import mapped_errors
from shared.errors import TerminalError
from shared.ports.warehouse import StepJobs, label_value


def test_a_query_over_the_cap_is_terminal_naming_the_step_the_bytes_and_the_cap() -> None:
    """BigQuery's own error for a job over maximum_bytes_billed (reason bytesBilledLimitExceeded, this message text);
    bqemulator never bills, so the error object is built here as the client would raise it."""
    from google.api_core import exceptions as gexc

    message = "Query exceeded limit for bytes billed: 10485760. 20971520 or higher required."
    error = gexc.BadRequest(message, errors=[{"reason": "bytesBilledLimitExceeded", "message": message}])
    with pytest.raises(TerminalError) as caught, mapped_errors("query", "acme", "step load_orders"):
        raise error
    assert str(caught.value).startswith(
        "step load_orders would bill 20,971,520 bytes, over the plan's cap of 10,485,760 bytes per query"
    )


@pytest.mark.parametrize(
    ("raw", "label"),
    [("Acme", "acme"), ("run_1", "run_1"), ("a.b c", "a_b_c"), ("x" * 70, "x" * 54 + "-")],
)
def test_label_values_are_lower_case_safe_characters_at_most_63(raw: str, label: str) -> None:
    value = label_value(raw)
    assert value.startswith(label) and len(value) <= 63 and re.fullmatch(r"[a-z0-9_-]*", value)


def test_job_ids_follow_run_stage_attempt_and_the_statement() -> None:
    jobs = StepJobs("acme", "daily", "run_0a1b", "load", 3)
    first = jobs.job_id(0, "SELECT 1")
    assert re.fullmatch(r"cdp_run_0a1b_load_3_0_[0-9a-f]{16}", first)
    assert jobs.job_id(0, "SELECT 1") == first  # a redelivery computes the same id
    assert len({first, jobs.job_id(1, "SELECT 1"), jobs.job_id(0, "SELECT 2")}) == 3
    assert StepJobs("acme", "daily", "run_0a1b", "load", 4).job_id(0, "SELECT 1") != first
