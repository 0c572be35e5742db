"""Deployment entry points: one source bundle, one Cloud Function per entry point (see cloudbuild.yaml)."""

from functions.api import api
from functions.maintenance import maintenance
from functions.notifier import notifier
from functions.run_starter import run_starter
from functions.scheduled_trigger import scheduled_trigger
from functions.stage_worker import stage_worker

__all__ = ["api", "maintenance", "notifier", "run_starter", "scheduled_trigger", "stage_worker"]
