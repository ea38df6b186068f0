"""The per-function release queue: what happens when a release ends, and how the next one starts.

At most one deployment runs per function (the ledger lock). When a release ends, its lock and its
per-release canary alarms go, and the newest queued release starts; older queued releases are
superseded by it. A start that fails is retried a few times and then recorded as FAILED (with a
notification), and the next queued release is tried: the queue never stalls and nothing is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from rollout import claims
from rollout.errors import TransitionRefused
from rollout.ledger import Release
from rollout.observability import logger
from rollout.states import ReasonCode, State
from rollout.transitions import ReleaseContext, move, supersede

# Pauses between attempts to start a queued release whose start raised (one attempt more than pauses).
START_RETRY_PAUSES: tuple[float, ...] = (0.5, 2.0)

StartRelease = Callable[[ReleaseContext, Release], Release]
AdoptDeadStart = Callable[[ReleaseContext, Release], Release | None]
DeleteAlarms = Callable[[list[str]], None]


# The start path (starter, and the publishing, gate and deployment modules under it) and the alarm
# adapter are imported when a queued release is started or a finished one's alarms are deleted: the
# functions that only read or settle the queue (deployment events, the reconciler) skip them at init.
def _start_release(ctx: ReleaseContext, release: Release) -> Release:
    from rollout import starter

    return starter.start_release(ctx, release)


def _adopt_dead_start(ctx: ReleaseContext, release: Release) -> Release | None:
    from rollout import starter

    return starter.adopt_dead_start(ctx, release)


def _delete_alarms(names: list[str]) -> None:
    from rollout import canary_alarms

    canary_alarms.delete_alarms(names)


@dataclass
class QueueEffects:
    """The operations the queue uses, behind a seam so tests can watch them."""

    start_release: StartRelease = _start_release
    adopt_dead_start: AdoptDeadStart = _adopt_dead_start
    delete_alarms: DeleteAlarms = _delete_alarms
    retry_pauses: Sequence[float] | None = None  # None: START_RETRY_PAUSES as it is when used
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def default(cls) -> QueueEffects:
        return cls()

    def pauses(self) -> Sequence[float]:
        return START_RETRY_PAUSES if self.retry_pauses is None else self.retry_pauses


@dataclass
class QueueReport:
    """What advancing a function's queue did, by release id."""

    started: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # still queued (the function is busy)
    # Claimed by another caller's start (claims.py): that caller publishes and deploys it, not this one.
    starting_elsewhere: list[str] = field(default_factory=list)
    # DEPLOYING on the deployment a start that died had created (starter.adopt_dead_start).
    adopted: list[str] = field(default_factory=list)

    def merge(self, other: QueueReport) -> None:
        self.started += other.started
        self.adopted += other.adopted
        self.superseded += other.superseded
        self.failed += other.failed
        self.waiting += other.waiting
        self.starting_elsewhere += other.starting_elsewhere

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "started": self.started,
            "superseded": self.superseded,
            "failed": self.failed,
            "waiting": self.waiting,
            "starting_elsewhere": self.starting_elsewhere,
            "adopted": self.adopted,
        }


def finish_release(release: Release, ctx: ReleaseContext, effects: QueueEffects | None = None) -> QueueReport:
    """Clean up after a release that ended and start what is queued behind it.

    Safe to repeat: every step is conditional or idempotent, so a retried event or the reconciler
    can run it again after a crash half-way through.
    """
    effects = effects or QueueEffects()
    if ctx.ledger.release_lock(release.function, release.release_id):
        logger.info("lock released", extra={"function": release.function, "release_id": release.release_id})
    if release.alarms:
        try:
            effects.delete_alarms(list(release.alarms))
        except (ClientError, BotoCoreError):
            # Leftover alarms cost a little and watch a version no longer deployed; never block the queue.
            logger.exception("could not delete canary alarms", extra={"alarms": release.alarms})
    return advance_queue(release.function, ctx, effects)


def advance_queue(function: str, ctx: ReleaseContext, effects: QueueEffects | None = None) -> QueueReport:
    """Start the newest queued release of `function` if nothing else holds it.

    Older queued releases are superseded once a newer one has started. When a start fails for
    good, that release is recorded FAILED and the next newest is tried. A release another caller
    has claimed is left to it (`starting_elsewhere`), and so is the rest of the queue. First, a
    release whose start died after creating its deployment is recorded on it (`adopted`), and the
    rest waits for that deployment: starting it, or a newer one, would only meet it in CodeDeploy,
    or deploy its build a second time once it ended.
    """
    effects = effects or QueueEffects()
    report = QueueReport()
    holder = _function_busy(function, ctx)
    queued = ctx.ledger.queued(function)
    if holder is not None:
        _report_waiting(report, queued, holder)
        return report
    dead = _adopt_dead_starts(queued, ctx, effects)
    if dead is not None and dead.state == State.DEPLOYING:
        report.adopted.append(dead.release_id)
        report.waiting = [r.release_id for r in queued if r.release_id != dead.release_id]
        return report
    if dead is not None:
        # Whether its start left a deployment is not known yet (being looked for elsewhere, or
        # CodeDeploy did not answer): fail closed, nothing starts until it is.
        _report_waiting(report, queued, dead)
        return report
    queued = _drop_stale(function, queued, ctx, report)
    candidates = list(reversed(queued))  # newest first
    for index, candidate in enumerate(candidates):
        outcome = _start_with_retries(candidate, ctx, effects)
        if outcome.state == State.DEPLOYING:
            report.started.append(outcome.release_id)
            for older in candidates[index + 1 :]:
                if supersede(ctx, older, outcome):
                    report.superseded.append(older.release_id)
            return report
        if outcome.state in (State.QUEUED, State.HELD):
            # CodeDeploy or another release holds the function, a freeze or a pre-flight rule holds
            # the release, or another caller is starting it: everything waits (its start supersedes
            # the older ones).
            _report_waiting(report, candidates[index:], outcome)
            return report
        # It ended without deploying (failed, rejected, unchanged...): the function is free, try the next.
        report.failed.append(outcome.release_id)
    return report


def _report_waiting(report: QueueReport, queued: list[Release], blocker: Release) -> None:
    """`queued` wait; `blocker` (the lock's holder, or the release just tried) is named as being
    started elsewhere when another caller's claim on it still counts."""
    elsewhere = claims.claimed_elsewhere(blocker, claims.wall_clock())
    if elsewhere:
        report.starting_elsewhere.append(blocker.release_id)
    report.waiting = [r.release_id for r in queued if not (elsewhere and r.release_id == blocker.release_id)]


def _function_busy(function: str, ctx: ReleaseContext) -> Release | None:
    """The release that holds the function while it has not ended; a stale lock is released: one
    left by a finished (or vanished) release, or by a start that died (its claim expired)."""
    lock = ctx.ledger.get_lock(function)
    if lock is None:
        return None
    holder = ctx.ledger.get(function, str(lock.get("release_id", "")))
    if holder is not None and not holder.is_terminal:
        if not claims.start_died(holder, claims.wall_clock()):
            return holder
        # Its claimer's invocation has ended, so nothing can be using the lock; unless the release
        # was claimed and locked again since (the lock's time changed), which keeps it busy.
        if not ctx.ledger.release_lock(function, holder.release_id, str(lock.get("acquired_at") or "")):
            return holder
        logger.warning("released the lock of a start that died", extra={"function": function, "lock": lock})
        return None
    # A lock left by a finished (or vanished) release: it no longer protects anything.
    ctx.ledger.release_lock(function, str(lock.get("release_id", "")))
    logger.warning("released a stale lock", extra={"function": function, "lock": lock})
    return None


def _adopt_dead_starts(queued: list[Release], ctx: ReleaseContext, effects: QueueEffects) -> Release | None:
    """The first queued release whose start died that is now DEPLOYING on the deployment that start
    created, or still QUEUED because that is not known yet; None when no dead start left one.
    Releases whose claim never expired cost no call here."""
    now = claims.wall_clock()
    for release in queued:
        if not claims.start_died(release, now):
            continue
        outcome = effects.adopt_dead_start(ctx, release)
        if outcome is not None and not outcome.is_terminal:
            return outcome
    return None


def _drop_stale(
    function: str, queued: list[Release], ctx: ReleaseContext, report: QueueReport
) -> list[Release]:
    """The queued releases newer than the newest that went out; older ones are superseded by it.

    An upload can start straight away while older ones wait (the lock was free for a moment):
    whatever is older than the newest release that went out must never deploy over it.
    """
    newest_out = ctx.ledger.newest_out(function)
    if newest_out is None:
        return queued
    for stale in (r for r in queued if r.order < newest_out.order):
        if supersede(ctx, stale, newest_out):
            report.superseded.append(stale.release_id)
    return [r for r in queued if r.order > newest_out.order]


def _start_with_retries(release: Release, ctx: ReleaseContext, effects: QueueEffects) -> Release:
    """The release after trying to start it: DEPLOYING, still QUEUED, or terminal (recorded)."""
    pauses = effects.pauses()
    attempts = len(pauses) + 1
    last_error: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            started = effects.start_release(ctx, release)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then recorded
            last_error = exc
            logger.warning(
                "starting a queued release failed",
                extra={"release_id": release.release_id, "attempt": attempt, "error": repr(exc)},
            )
            current = ctx.ledger.get(release.function, release.release_id)
            if current is None or current.state != State.QUEUED:
                # It moved on despite the error (started, or recorded as failed by the starter).
                return current or release
            if attempt < attempts:
                effects.sleep(pauses[attempt - 1])
            continue
        if started.is_terminal:
            _drop_lock_of(started, ctx)
        return started
    return _record_start_failure(release, ctx, last_error)


def _record_start_failure(release: Release, ctx: ReleaseContext, error: Exception | None) -> Release:
    reason = f"could not start the deployment: {_describe(error)}"
    try:
        failed = move(
            ctx,
            release,
            State.FAILED,
            only_from=frozenset({State.QUEUED}),
            reason_code=ReasonCode.START_FAILED,
            reason=reason,
        )
    except TransitionRefused as refused:
        logger.info("start failure already settled", extra={"release_id": release.release_id})
        return refused.release or release
    _drop_lock_of(failed, ctx)
    logger.error("queued release failed to start", extra={"release_id": release.release_id, "reason": reason})
    return failed


def _drop_lock_of(release: Release, ctx: ReleaseContext) -> None:
    """A release that ended while starting must not keep the function locked."""
    ctx.ledger.release_lock(release.function, release.release_id)


def _describe(error: Exception | None) -> str:
    if error is None:
        return "unknown error"
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]
