"""Where each live document lives in the state store: the store's schema, shared by every package that reads it.

Paths alternate collection/document like Firestore. Kept apart from the run state machine so that reading a run
(the notifier, the CLI, the API) does not pull in the code that moves it.
"""

from __future__ import annotations


def run_path(run_id: str) -> str:
    return f"runs/{run_id}"


def stages_collection(run_id: str) -> str:
    return f"runs/{run_id}/stages"


def stage_path(run_id: str, stage_id: str) -> str:
    return f"runs/{run_id}/stages/{stage_id}"


def spec_path(run_id: str) -> str:
    """The run's pipeline snapshot, apart from the run document so that every stage's read of the run stays small."""
    return f"runs/{run_id}/snapshot/spec"


def claim_path(run_id: str, stage_id: str, attempt: int) -> str:
    return f"claims/{run_id}:{stage_id}:{attempt}"
