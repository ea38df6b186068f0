"""The reconciler: repairs what lost EventBridge events leave behind.

EventBridge delivery is best effort. A lost final event would leave a release DEPLOYING forever,
its lock held and its queue stuck. Every few minutes this compares the ledger with CodeDeploy and
applies the same transitions the event path would have (deployment_events.apply_state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rollout.config import Settings
from rollout.deployment_events import Applied, DeploymentFacts, apply_state
from rollout.ledger import Ledger, Release, TransitionRefused
from rollout.notifications import Notifier, build
from rollout.observability import logger
from rollout.outcomes import FINAL_STATUS_TO_STATE
from rollout.release_queue import QueueEffects, QueueReport, advance_queue, finish_release
from rollout.states import State

# Longer than any Lambda invocation can run (15 minutes): a lock taken this long ago with no
# deployment attached, or a DEPLOYING release CodeDeploy has no record of, belongs to a start
# that died.
GRACE = timedelta(minutes=16)


@dataclass
class ReconcileSummary:
    settled: list[dict[str, Any]] = field(default_factory=list)
    locks_released: list[dict[str, str]] = field(default_factory=list)
    queue: QueueReport = field(default_factory=QueueReport)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "settled": self.settled,
            "locks_released": self.locks_released,
            "queue": self.queue.as_dict(),
            "errors": self.errors,
        }

    @property
    def repaired(self) -> int:
        return len(self.settled) + len(self.locks_released) + len(self.queue.started) + len(self.queue.failed)


def reconcile(
    ledger: Ledger,
    settings: Settings,
    effects: QueueEffects,
    facts: DeploymentFacts,
    now: datetime | None = None,
    grace: timedelta = GRACE,
) -> ReconcileSummary:
    now = now or datetime.now(UTC)
    summary = ReconcileSummary()
    for step in (_settle_finished_deployments, _release_orphaned_locks, _start_waiting_queues):
        try:
            step(ledger, settings, effects, facts, now, grace, summary)
        except Exception as exc:
            # One broken step must not keep the others from repairing what they can.
            logger.exception("reconciler step failed", extra={"step": step.__name__})
            summary.errors.append(f"{step.__name__}: {exc}")
    logger.info("reconciled", extra={"summary": summary.as_dict()})
    return summary


def _settle_finished_deployments(
    ledger: Ledger,
    settings: Settings,
    effects: QueueEffects,
    facts: DeploymentFacts,
    now: datetime,
    grace: timedelta,
    summary: ReconcileSummary,
) -> None:
    """DEPLOYING releases whose deployment already ended in CodeDeploy."""
    deploying = ledger.open_releases(State.DEPLOYING)
    infos = facts.deployments([r.deployment_id for r in deploying if r.deployment_id])
    for release in deploying:
        info = infos.get(release.deployment_id) if release.deployment_id else None
        if info is None:
            if _older_than(release.deploying_at or release.updated_at, now, grace):
                _fail_lost(release, ledger, settings, effects, summary)
            continue
        state = FINAL_STATUS_TO_STATE.get(str(info.get("status")))
        if state is None:
            continue  # still running
        applied = apply_state(release, state, ledger, settings, effects, facts, deployment=info)
        _record(applied, summary)


def _release_orphaned_locks(
    ledger: Ledger,
    settings: Settings,
    effects: QueueEffects,
    facts: DeploymentFacts,
    now: datetime,
    grace: timedelta,
    summary: ReconcileSummary,
) -> None:
    """Locks held by a finished release, a finished deployment, or a start that never deployed."""
    for lock in ledger.locks():
        function = str(lock.get("function") or str(lock.get("pk", "")).removeprefix("FN#"))
        release_id = str(lock.get("release_id") or "")
        deployment_id = str(lock.get("deployment_id") or "")
        holder = ledger.get(function, release_id) if release_id else None
        why = ""
        if holder is None:
            why = "held by a release the ledger does not have"
        elif holder.is_terminal:
            why = f"held by a release that ended {holder.state}"
        elif deployment_id:
            info = facts.deployment(deployment_id)
            state = FINAL_STATUS_TO_STATE.get(str((info or {}).get("status")))
            if state is not None:
                # The release's own deployment ended but its release never settled: settle it
                # (which also releases the lock and starts the queue).
                holder.deployment_id = holder.deployment_id or deployment_id
                _record(
                    apply_state(holder, state, ledger, settings, effects, facts, deployment=info), summary
                )
                continue
        elif _older_than(str(lock.get("acquired_at") or ""), now, grace):
            why = "no deployment started within the grace period"
        if not why:
            continue
        if ledger.release_lock(function, release_id):
            summary.locks_released.append({"function": function, "release_id": release_id, "why": why})
            logger.warning("released an orphaned lock", extra={"function": function, "why": why})
            if holder is not None and holder.is_terminal:
                summary.queue.merge(finish_release(holder, ledger, settings, effects))


def _start_waiting_queues(
    ledger: Ledger,
    settings: Settings,
    effects: QueueEffects,
    facts: DeploymentFacts,
    now: datetime,
    grace: timedelta,
    summary: ReconcileSummary,
) -> None:
    """Queued releases of functions nothing is deploying."""
    functions = sorted({r.function for r in ledger.open_releases(State.QUEUED)})
    for function in functions:
        report = advance_queue(function, ledger, settings, effects)
        summary.queue.merge(report)


def _fail_lost(
    release: Release, ledger: Ledger, settings: Settings, effects: QueueEffects, summary: ReconcileSummary
) -> None:
    """A DEPLOYING release whose deployment CodeDeploy does not know: record it, never leave it open."""
    reason = (
        f"CodeDeploy has no record of deployment {release.deployment_id}"
        if release.deployment_id
        else "no deployment was recorded for this release"
    )
    try:
        failed = ledger.transition(release, State.FAILED, reason_code="DEPLOYMENT_LOST", reason=reason)
    except TransitionRefused:
        return
    try:
        Notifier(settings.topic_arn).publish(build("deployment.failed", failed, settings.region))
    except (ClientError, BotoCoreError):
        logger.exception("could not publish the notification")
    queue = finish_release(failed, ledger, settings, effects)
    summary.settled.append(
        Applied(
            failed.release_id, failed.function, str(release.state), str(failed.state), True, queue
        ).as_dict()
    )
    summary.queue.merge(queue)


def _record(applied: Applied, summary: ReconcileSummary) -> None:
    if applied.changed:
        summary.settled.append(applied.as_dict())
        if applied.queue is not None:
            summary.queue.merge(applied.queue)


def _older_than(stamp: str, now: datetime, grace: timedelta) -> bool:
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return True  # no usable time: treat as old rather than keep it forever
    return now - at > grace
