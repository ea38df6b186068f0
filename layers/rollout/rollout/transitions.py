"""The one way a release changes state: a conditional ledger write, then its announcement.

Every path (the deployer, the starter, the queue, deployment events, the reconciler) moves releases
through `move`, so each transition is recorded, counted and announced the same way:

1. `Ledger.transition` writes the new state only if the stored state allows it
   (`states.TRANSITIONS`); a refused move raises `TransitionRefused` and announces nothing.
2. The metric for the transition is added.
3. The notification kind comes from `states.notification_kind` and is published by
   `Notifier.announce`, whose one policy is: a failed publish is logged and counted, never raised.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from aws_lambda_powertools.metrics import MetricUnit

from rollout.config import Settings
from rollout.deadlines import NO_DEADLINE, Deadline
from rollout.errors import Rejected, TransitionRefused
from rollout.ledger import Ledger, Release
from rollout.notifications import Notifier, seconds_between
from rollout.observability import logger, metrics
from rollout.states import OPEN, ReasonCode, State, notification_kind

REASON_LIMIT = 1000  # a reason is a sentence for people; stack traces belong in the logs

# Count metrics by the state a release reaches; FAILED is counted by what failed (see _metric_name).
_METRIC_BY_STATE: dict[State, str] = {
    State.REJECTED: "ReleasesRejected",
    State.QUEUED: "ReleasesQueued",
    State.HELD: "ReleasesHeld",
    State.SUPERSEDED: "ReleasesSuperseded",
    State.DEPLOYING: "DeploymentsStarted",
    State.SUCCEEDED: "DeploymentsSucceeded",
    State.ROLLED_BACK: "DeploymentsRolledBack",
}
# A release that never deployed can only fail from these states.
NOT_YET_DEPLOYED = frozenset({State.RECEIVED, State.QUEUED, State.HELD})
# A deployment's own ending may only move a release that has not ended: never a ROLLED_BACK one to
# FAILED, which is reserved for a rollback that failed (states.TRANSITIONS).
NOT_ENDED = OPEN


class ReleaseContext(NamedTuple):
    """What every step on a release's path needs: where releases are kept, the settings, the
    announcer, and when the invocation doing the work must stop waiting."""

    ledger: Ledger
    settings: Settings
    notifier: Notifier
    deadline: Deadline = NO_DEADLINE

    @classmethod
    def from_settings(
        cls, settings: Settings, ledger: Ledger | None = None, deadline: Deadline = NO_DEADLINE
    ) -> ReleaseContext:
        return cls(
            ledger=ledger or Ledger(settings.ledger_table),
            settings=settings,
            notifier=Notifier(settings.topic_arn, settings.region),
            deadline=deadline,
        )


def move(
    ctx: ReleaseContext,
    release: Release,
    target: State,
    *,
    only_from: frozenset[State] | None = None,
    announce: dict[str, Any] | None = None,
    **changes: Any,
) -> Release:
    """Move `release` to `target`, count it, announce it; returns the release as stored.

    `changes` are written in the same conditional update; `announce` adds fields to the
    notification. Raises TransitionRefused when the stored state does not allow the move.
    """
    moved = ctx.ledger.transition(release, target, only_from=only_from, **changes)
    _count_and_announce(ctx, release, moved, announce)
    return moved


def start(ctx: ReleaseContext, release: Release, deployment_id: str, **changes: Any) -> Release:
    """`move` to DEPLOYING, with the deployment id written to the release and the function's lock
    in one transaction (Ledger.start_deployment). Raises TransitionRefused like `move`."""
    moved = ctx.ledger.start_deployment(release, deployment_id, **changes)
    _count_and_announce(ctx, release, moved, None)
    return moved


def _count_and_announce(
    ctx: ReleaseContext, release: Release, moved: Release, announce: dict[str, Any] | None
) -> None:
    before = _state_before(moved, release)
    target = moved.state
    metric = _metric_name(before, target, moved.reason_code)
    if metric:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    if before == State.DEPLOYING and moved.is_terminal:
        seconds = seconds_between(moved.received_at, moved.completed_at)
        if seconds is not None:
            metrics.add_metric(name="ReleaseDurationSeconds", unit=MetricUnit.Seconds, value=seconds)
    kind = notification_kind(before, target, moved.reason_code)
    if kind:
        ctx.notifier.announce(kind, moved, **(announce or {}))


def reject(ctx: ReleaseContext, release: Release, rejected: Rejected, **changes: Any) -> Release:
    """End a release that breaks a rule: REJECTED with the rule's code and sentence (and `changes`,
    written in the same update)."""
    logger.warning("Release rejected", extra={"reason_code": rejected.code, "reason": rejected.reason})
    return _settle(
        ctx,
        release,
        State.REJECTED,
        only_from=None,
        reason_code=rejected.code,
        reason=rejected.reason,
        **changes,
    )


def fail(
    ctx: ReleaseContext, release: Release, reason: str, code: str = ReasonCode.INTERNAL_ERROR
) -> Release:
    """End a release that never deployed as FAILED with the error.

    Only from RECEIVED or QUEUED: if the release reached another state before the error (another
    invocation started it, say), that state stands and is returned.
    """
    return _settle(
        ctx, release, State.FAILED, only_from=NOT_YET_DEPLOYED, reason_code=code, reason=reason[:REASON_LIMIT]
    )


def supersede(ctx: ReleaseContext, older: Release, newer: Release) -> Release | None:
    """Mark `older` SUPERSEDED by `newer` and announce it; None if it had already moved on."""
    reason = f"superseded by release {newer.release_id}" + (
        f" (commit {newer.commit})" if newer.commit else ""
    )
    try:
        superseded = move(
            ctx,
            older,
            State.SUPERSEDED,
            announce={"superseded_by": newer.release_id},
            reason_code=ReasonCode.SUPERSEDED,
            reason=reason,
        )
    except TransitionRefused:
        return None
    logger.info("Release superseded", extra={"release_id": older.release_id, "newer": newer.release_id})
    return superseded


def _settle(
    ctx: ReleaseContext,
    release: Release,
    target: State,
    only_from: frozenset[State] | None,
    **changes: Any,
) -> Release:
    try:
        return move(ctx, release, target, only_from=only_from, **changes)
    except TransitionRefused as refused:
        logger.error(
            f"Release not marked {target}: it already moved on",
            extra={"state": str(refused.release.state if refused.release else "missing")},
        )
        return refused.release or release


def _state_before(moved: Release, release: Release) -> State:
    # The history is appended in the same conditional write, so its second-last entry is the stored
    # state the release left (the caller's copy may be stale).
    if len(moved.history) >= 2:
        try:
            return State(str(moved.history[-2].get("state")))
        except ValueError:
            pass
    return release.state


def _metric_name(before: State, target: State, reason_code: str = "") -> str | None:
    if target == State.FAILED:
        if before == State.ROLLED_BACK or reason_code == ReasonCode.ROLLBACK_FAILED:
            return "RollbacksFailed"
        return "DeploymentsFailed" if before == State.DEPLOYING else "ReleasesFailed"
    return _METRIC_BY_STATE.get(target)
