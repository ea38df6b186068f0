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
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rollout.config import Settings
from rollout.ledger import Ledger, Release, TransitionRefused
from rollout.notifications import Notifier, build
from rollout.observability import logger
from rollout.states import State

# Pauses between attempts to start a queued release whose start raised (one attempt more than pauses).
START_RETRY_PAUSES: tuple[float, ...] = (0.5, 2.0)

StartDeployment = Callable[[Release, Ledger, Settings], Release]
DeleteAlarms = Callable[[list[str]], None]


@dataclass
class QueueEffects:
    """The deployer's operations the queue uses, behind a seam so tests can watch them."""

    start_deployment: StartDeployment
    delete_alarms: DeleteAlarms
    retry_pauses: Sequence[float] = START_RETRY_PAUSES
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def default(cls) -> QueueEffects:
        from rollout import canary_alarms, deployer

        return cls(
            start_deployment=deployer.start_deployment,
            delete_alarms=canary_alarms.delete_alarms,
            retry_pauses=START_RETRY_PAUSES,
        )


@dataclass
class QueueReport:
    """What advancing a function's queue did, by release id."""

    started: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # still queued (the function is busy)

    def merge(self, other: QueueReport) -> None:
        self.started += other.started
        self.superseded += other.superseded
        self.failed += other.failed
        self.waiting += other.waiting

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "started": self.started,
            "superseded": self.superseded,
            "failed": self.failed,
            "waiting": self.waiting,
        }


def finish_release(
    release: Release, ledger: Ledger, settings: Settings, effects: QueueEffects
) -> QueueReport:
    """Clean up after a release that ended and start what is queued behind it.

    Safe to repeat: every step is conditional or idempotent, so a retried event or the reconciler
    can run it again after a crash half-way through.
    """
    if ledger.release_lock(release.function, release.release_id):
        logger.info("lock released", extra={"function": release.function, "release_id": release.release_id})
    if release.alarms:
        try:
            effects.delete_alarms(list(release.alarms))
        except (ClientError, BotoCoreError):
            # Leftover alarms cost a little and watch a version no longer deployed; never block the queue.
            logger.exception("could not delete canary alarms", extra={"alarms": release.alarms})
    return advance_queue(release.function, ledger, settings, effects)


def advance_queue(function: str, ledger: Ledger, settings: Settings, effects: QueueEffects) -> QueueReport:
    """Start the newest queued release of `function` if nothing else holds it.

    Older queued releases are superseded once a newer one has started. When a start fails for
    good, that release is recorded FAILED and the next newest is tried.
    """
    report = QueueReport()
    lock = ledger.get_lock(function)
    if lock is not None:
        holder = ledger.get(function, str(lock.get("release_id", "")))
        if holder is not None and not holder.is_terminal:
            report.waiting = [r.release_id for r in ledger.queued(function)]
            return report
        # A lock left by a finished (or vanished) release: it no longer protects anything.
        ledger.release_lock(function, str(lock.get("release_id", "")))
        logger.warning("released a stale lock", extra={"function": function, "lock": lock})

    notifier = Notifier(settings.topic_arn)
    queued = ledger.queued(function)
    # An upload can start straight away while older ones wait (the lock was free for a moment):
    # whatever is older than the newest release that went out is stale and must never deploy over it.
    newest_out = ledger.newest_out(function)
    if newest_out is not None:
        for stale in (r for r in queued if r.order < newest_out.order):
            if supersede(stale, newest_out, ledger, settings, notifier):
                report.superseded.append(stale.release_id)
        queued = [r for r in queued if r.order > newest_out.order]
    candidates = list(reversed(queued))  # newest first
    for index, candidate in enumerate(candidates):
        outcome = _start_with_retries(candidate, ledger, settings, effects)
        if outcome.state == State.DEPLOYING:
            report.started.append(outcome.release_id)
            for older in candidates[index + 1 :]:
                if supersede(older, outcome, ledger, settings, notifier):
                    report.superseded.append(older.release_id)
            return report
        if outcome.state == State.QUEUED:
            # CodeDeploy or another release holds the function: everything waits for the next end.
            report.waiting = [r.release_id for r in candidates[index:]]
            return report
        report.failed.append(outcome.release_id)
    return report


def _start_with_retries(
    release: Release, ledger: Ledger, settings: Settings, effects: QueueEffects
) -> Release:
    """The release after trying to start it: DEPLOYING, still QUEUED, or terminal (recorded)."""
    attempts = len(effects.retry_pauses) + 1
    last_error: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            started = effects.start_deployment(release, ledger, settings)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then recorded
            last_error = exc
            logger.warning(
                "starting a queued release failed",
                extra={"release_id": release.release_id, "attempt": attempt, "error": repr(exc)},
            )
            current = ledger.get(release.function, release.release_id)
            if current is None or current.state != State.QUEUED:
                # It moved on despite the error (started, or recorded as failed by the deployer).
                return current or release
            if attempt < attempts:
                effects.sleep(effects.retry_pauses[attempt - 1])
            continue
        if started.is_terminal:
            _drop_lock_of(started, ledger)
        return started
    return _record_start_failure(release, ledger, settings, last_error)


def _record_start_failure(
    release: Release, ledger: Ledger, settings: Settings, error: Exception | None
) -> Release:
    reason = f"could not start the deployment: {_describe(error)}"
    try:
        failed = ledger.transition(release, State.FAILED, reason_code="START_FAILED", reason=reason)
    except TransitionRefused as refused:
        logger.info("start failure already settled", extra={"release_id": release.release_id})
        return refused.release or release
    _drop_lock_of(failed, ledger)
    _publish(Notifier(settings.topic_arn), "release.failed", failed, settings)
    logger.error("queued release failed to start", extra={"release_id": release.release_id, "reason": reason})
    return failed


def supersede(
    older: Release, newer: Release, ledger: Ledger, settings: Settings, notifier: Notifier | None = None
) -> Release | None:
    """Mark `older` SUPERSEDED by `newer` and announce it; None if it had already moved on."""
    reason = f"superseded by release {newer.release_id}" + (
        f" (commit {newer.commit})" if newer.commit else ""
    )
    try:
        superseded = ledger.transition(older, State.SUPERSEDED, reason_code="SUPERSEDED", reason=reason)
    except TransitionRefused:
        return None
    logger.info("release superseded", extra={"release_id": older.release_id, "newer": newer.release_id})
    notifier = notifier or Notifier(settings.topic_arn)
    _publish(notifier, "release.superseded", superseded, settings, superseded_by=newer.release_id)
    return superseded


def _drop_lock_of(release: Release, ledger: Ledger) -> None:
    """A release that ended while starting must not keep the function locked."""
    ledger.release_lock(release.function, release.release_id)


def _publish(notifier: Notifier, kind: str, release: Release, settings: Settings, **extra: Any) -> None:
    notifier.publish(build(kind, release, settings.region, **extra))


def _describe(error: Exception | None) -> str:
    if error is None:
        return "unknown error"
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]
