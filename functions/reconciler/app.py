"""Scheduled repair of what lost deployment events leave behind (see rollout.reconcile)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# boto3 before anything else: its import, the largest, run nested inside other imports hits CPython
# 3.13's frame-stack chunk churn (gh-142183, fixed in 3.13 releases after March 2026), up to ~30 ms.
import boto3  # noqa: F401
from aws_lambda_powertools.metrics import MetricUnit

from rollout.config import Settings
from rollout.deadlines import Deadline
from rollout.deployment_facts import DeploymentFacts
from rollout.gate_sweep import sweep
from rollout.ledger import Ledger
from rollout.observability import logger, metrics, tracer
from rollout.reconcile import reconcile
from rollout.release_queue import QueueEffects
from rollout.transitions import ReleaseContext

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    deadline = Deadline.of_invocation(context)
    ledger = Ledger(settings.ledger_table)
    summary = reconcile(ledger, settings, QueueEffects(), DeploymentFacts(), deadline=deadline)
    metrics.add_metric(name="ReconcilerRepairs", unit=MetricUnit.Count, value=summary.repaired)
    gates = sweep(ReleaseContext.from_settings(settings, ledger), settings.deployment_actions_function)
    metrics.add_metric(
        name="ReconcilerItemsFailed", unit=MetricUnit.Count, value=summary.items_failed + gates["failed"]
    )
    return {**summary.as_dict(), "gates": gates}
