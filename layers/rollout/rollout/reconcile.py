"""The reconciler: repairs what lost events and dead invocations leave behind.

EventBridge delivery is best effort. A lost final event would leave a release DEPLOYING forever,
its lock held and its queue stuck. Every few minutes this compares the ledger with CodeDeploy and
applies the same transitions the event path would have (deployment_events.apply_state). It also
recovers uploads nobody recorded, releases whose deployer died and undelivered events, by handing
them back to the function that should have done the work (rollout.recovery).

One bad item never stops a run: each release, lock, queue, upload and event is handled on its own,
and the failures are counted (`items_failed`, the ReconcilerItemsFailed metric). Items are only
started while the invocation has time left; the rest wait for the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from rollout import lambda_ops
from rollout.config import Settings
from rollout.deadlines import NO_DEADLINE, Deadline
from rollout.deployment_facts import DeploymentFacts
from rollout.errors import TransitionRefused
from rollout.held_releases import HeldReport, release_held
from rollout.ledger import Ledger, Release
from rollout.observability import logger
from rollout.outcomes import FINAL_STATUS_TO_STATE, DeploymentState
from rollout.recovery import (
    Deliver,
    Recovery,
    RecoveryReport,
    recover_lost_uploads,
    replay_undelivered,
    resume_stalled_releases,
)
from rollout.release_queue import QueueEffects, QueueReport, advance_queue, finish_release
from rollout.retention import prune_function
from rollout.states import ReasonCode, State
from rollout.transitions import NOT_ENDED, ReleaseContext, move

if TYPE_CHECKING:
    from rollout.deployment_events import Applied

# Longer than any Lambda invocation can run (15 minutes): a lock taken this long ago with no
# deployment attached, or a DEPLOYING release CodeDeploy has no record of, belongs to a start
# that died.
GRACE = timedelta(minutes=16)
# An item is only started with this much of the invocation left (a queued start publishes and waits).
ITEM_TIME_SECONDS = 20.0

Item = TypeVar("Item")


@dataclass
class ReconcileSummary:
    """What one reconciler run repaired, and what it could not."""

    settled: list[dict[str, Any]] = field(default_factory=list)
    locks_released: list[dict[str, str]] = field(default_factory=list)
    queue: QueueReport = field(default_factory=QueueReport)
    # One line per step or item that raised; the run goes on with the next item.
    errors: list[str] = field(default_factory=list)
    items_failed: int = 0
    items_deferred: int = 0  # not started for want of time; the next run takes them
    recovered: RecoveryReport = field(default_factory=RecoveryReport)
    held: HeldReport = field(default_factory=HeldReport)
    versions_deleted: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "held": self.held.as_dict(),
            "versions_deleted": self.versions_deleted,
            "settled": self.settled,
            "locks_released": self.locks_released,
            "queue": self.queue.as_dict(),
            "recovered": self.recovered.as_dict(),
            "errors": self.errors,
            "items_failed": self.items_failed,
            "items_deferred": self.items_deferred,
        }

    @property
    def repaired(self) -> int:
        return (
            len(self.settled)
            + len(self.locks_released)
            + len(self.queue.started)
            + len(self.queue.adopted)
            + len(self.queue.failed)
            + self.recovered.repaired
        )

    def record(self, applied: Applied) -> None:
        if applied.changed:
            self.settled.append(applied.as_dict())
            if applied.queue is not None:
                self.queue.merge(applied.queue)


@dataclass
class _Run:
    """What every step of one reconciler run needs, and what it found."""

    ctx: ReleaseContext
    effects: QueueEffects
    facts: DeploymentFacts
    now: datetime
    grace: timedelta
    summary: ReconcileSummary = field(default_factory=ReconcileSummary)

    def each(
        self, step: str, items: Iterable[Item], name: Callable[[Item], str], act: Callable[[Item], None]
    ) -> None:
        """`act` on every item; one that raises is logged, counted and skipped, never the rest."""
        for item in items:
            if self.ctx.deadline.remaining() < ITEM_TIME_SECONDS:
                self.summary.items_deferred += 1
                continue
            try:
                act(item)
            except Exception as exc:  # one bad item must not stop the run
                label = name(item)
                logger.exception("reconciler item failed", extra={"step": step, "item": label})
                self.summary.errors.append(f"{step} {label}: {type(exc).__name__}: {exc}")
                self.summary.items_failed += 1

    def older_than_grace(self, stamp: str) -> bool:
        try:
            at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return True  # no usable time: treat as old rather than keep it forever
        return self.now - at > self.grace


def reconcile(
    ledger: Ledger,
    settings: Settings,
    effects: QueueEffects,
    facts: DeploymentFacts,
    now: datetime | None = None,
    grace: timedelta = GRACE,
    deliver: Deliver = lambda_ops.invoke_async,
    deadline: Deadline = NO_DEADLINE,
) -> ReconcileSummary:
    """One run: settle ended deployments, free orphaned locks, recover lost work, start queues.

    `deliver` hands an event to a function (an asynchronous invoke); `deadline` is when the
    invocation must stop starting items.
    """
    run = _Run(
        ReleaseContext.from_settings(settings, ledger, deadline),
        effects,
        facts,
        now or datetime.now(UTC),
        grace,
    )
    recovery = Recovery(run.ctx, deliver, run.each, run.now, run.summary.recovered)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("settle finished deployments", lambda: _settle_finished_deployments(run)),
        ("release orphaned locks", lambda: _release_orphaned_locks(run)),
        ("resume stalled releases", lambda: resume_stalled_releases(recovery)),
        ("recover lost uploads", lambda: recover_lost_uploads(recovery)),
        ("replay undelivered events", lambda: replay_undelivered(recovery)),
        ("release held releases", lambda: _release_held(run)),
        ("start waiting queues", lambda: _start_waiting_queues(run)),
        ("delete old versions", lambda: _delete_old_versions(run)),
    ]
    for name, step in steps:
        try:
            step()
        except Exception as exc:
            # One broken step must not keep the others from repairing what they can.
            logger.exception("reconciler step failed", extra={"step": name})
            run.summary.errors.append(f"{name}: {exc}")
    logger.info("reconciled", extra={"summary": run.summary.as_dict()})
    return run.summary


def _settle_finished_deployments(run: _Run) -> None:
    """DEPLOYING releases whose deployment already ended in CodeDeploy."""
    deploying = run.ctx.ledger.open_releases(State.DEPLOYING)
    infos = run.facts.deployments([r.deployment_id for r in deploying if r.deployment_id])

    def settle(release: Release) -> None:
        info = infos.get(release.deployment_id) if release.deployment_id else None
        if info is None:
            if run.older_than_grace(release.deploying_at or release.updated_at):
                _fail_lost(release, run)
            return
        _settle_if_ended(run, release, info)

    run.each("settle release", deploying, _release_name, settle)


def _settle_if_ended(run: _Run, release: Release, info: dict[str, Any]) -> None:
    """Apply the deployment's final state (`info`, its deploymentInfo) to a DEPLOYING release."""
    state = FINAL_STATUS_TO_STATE.get(str(info.get("status")))
    if state is None:
        return  # still running
    # The index's copy trails the table: a hook's verdict recorded a moment ago may be missing
    # from it, and the outcome is judged on that verdict. Judge the item itself.
    current = run.ctx.ledger.get(release.function, release.release_id)
    if current is None or current.state != State.DEPLOYING:
        return
    _apply(run, current, state, info)


def _apply(run: _Run, release: Release, state: DeploymentState, info: dict[str, Any] | None) -> None:
    """Apply a deployment's final state, as its lost event would have (`deployment_events`)."""
    from rollout.deployment_events import apply_state  # only a run with something to settle

    run.summary.record(apply_state(release, state, run.ctx, run.effects, run.facts, deployment=info))


def _release_orphaned_locks(run: _Run) -> None:
    """Locks held by a finished release, a finished deployment, or a start that never deployed."""
    run.each("repair lock", run.ctx.ledger.locks(), _lock_name, lambda lock: _repair_lock(lock, run))


def _repair_lock(lock: dict[str, Any], run: _Run) -> None:
    ledger = run.ctx.ledger
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
        info = run.facts.deployment(deployment_id)
        state = FINAL_STATUS_TO_STATE.get(str((info or {}).get("status")))
        if state is not None:
            # The release's own deployment ended but its release never settled: settle it
            # (which also releases the lock and starts the queue).
            holder.deployment_id = holder.deployment_id or deployment_id
            _apply(run, holder, state, info)
        return
    elif run.older_than_grace(str(lock.get("acquired_at") or "")):
        why = "no deployment started within the grace period"
    # Only the lock as read: one its release took again since (a new acquired_at) is a start under way.
    if why and ledger.release_lock(function, release_id, str(lock.get("acquired_at") or "")):
        run.summary.locks_released.append({"function": function, "release_id": release_id, "why": why})
        logger.warning("released an orphaned lock", extra={"function": function, "why": why})
        if holder is not None and holder.is_terminal:
            run.summary.queue.merge(finish_release(holder, run.ctx, run.effects))


def _start_waiting_queues(run: _Run) -> None:
    """Queued releases of functions nothing is deploying."""
    functions = sorted({r.function for r in run.ctx.ledger.open_releases(State.QUEUED)})

    def advance(function: str) -> None:
        report = advance_queue(function, run.ctx, run.effects)
        run.summary.queue.merge(report)
        for release_id in report.adopted:
            _settle_adopted(run, function, release_id)

    run.each("advance queue", functions, str, advance)


def _settle_adopted(run: _Run, function: str, release_id: str) -> None:
    """A deployment adopted from a dead start may have ended already, its events long gone: settle
    it now, so the queue behind it moves on in this run rather than the next."""
    release = run.ctx.ledger.get(function, release_id)
    if release is None or not release.deployment_id:
        return
    info = run.facts.deployment(release.deployment_id)
    if info is not None:
        _settle_if_ended(run, release, info)


def _release_held(run: _Run) -> None:
    """Held releases whose hold has ended (an unfreeze it missed, a freeze's --until that passed, an
    alarm that cleared): the newest of each function starts (`held_releases`)."""
    functions = sorted({r.function for r in run.ctx.ledger.open_releases(State.HELD)})
    run.each("release held", functions, str, lambda f: run.summary.held.merge(release_held(run.ctx, f)))


def _delete_old_versions(run: _Run) -> None:
    """Version retention for every managed function Rollout has released (`retention`)."""

    def prune(function: str) -> None:
        tags = lambda_ops.managed_tags(function)
        deleted = prune_function(run.ctx, function, tags) if tags is not None else []
        if deleted:
            run.summary.versions_deleted[function] = deleted

    run.each("delete old versions", run.ctx.ledger.functions(), str, prune)


def _release_name(release: Release) -> str:
    return f"{release.function}/{release.release_id}"


def _lock_name(lock: dict[str, Any]) -> str:
    return f"{lock.get('function') or lock.get('pk', '?')}/{lock.get('release_id', '?')}"


def _fail_lost(release: Release, run: _Run) -> None:
    """A DEPLOYING release whose deployment CodeDeploy does not know: record it, never leave it open."""
    reason = (
        f"CodeDeploy has no record of deployment {release.deployment_id}"
        if release.deployment_id
        else "no deployment was recorded for this release"
    )
    try:
        failed = move(
            run.ctx,
            release,
            State.FAILED,
            only_from=NOT_ENDED,
            reason_code=ReasonCode.DEPLOYMENT_LOST,
            reason=reason,
        )
    except TransitionRefused:
        return
    from rollout.deployment_events import Applied

    queue = finish_release(failed, run.ctx, run.effects)
    applied = Applied(failed.release_id, failed.function, str(release.state), str(failed.state), True, queue)
    run.summary.record(applied)
