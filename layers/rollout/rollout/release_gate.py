"""Whether a release may start now: a freeze or a pre-flight rule holds it (HELD), with the reason.

`starter.start_release` asks `hold_if_needed` before it takes the function's lock, so an upload, a
queued release and a held release all pass the same gate. Fail closed: a freeze record or an alarm
state that cannot be read holds the release rather than let it deploy, and an alarm the function's
tag names that does not exist rejects it (REJECTED, `ALARM_NOT_FOUND`: nothing would end a hold).
A rollback passes the gate: it returns to a version that went live before, and the function's
alarms are usually firing because of the version it replaces.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rollout import canary_alarms, lambda_ops
from rollout.actions import (
    KIND_ROLLBACK,
    Freeze,
    active_freeze,
    alarm_hold_reason,
    concurrency_hold_reason,
    missing_alarm_reason,
)
from rollout.errors import Rejected, TransitionRefused
from rollout.ledger import Release
from rollout.observability import logger
from rollout.states import ReasonCode, State
from rollout.targets import ManagedFunction
from rollout.transitions import ReleaseContext, move, reject

# Pre-flight findings that end the release REJECTED instead of holding it: nothing would end the hold.
REJECTING = frozenset({ReasonCode.ALARM_NOT_FOUND})


def hold_reason(
    ctx: ReleaseContext,
    release: Release,
    now: datetime | None = None,
    managed: ManagedFunction | None = None,
) -> tuple[str, str] | None:
    """(reason code, sentence) when `release` must wait; None when it may start. `managed` is the
    target as the caller has just read it (not read again)."""
    if release.kind == KIND_ROLLBACK:
        return None
    now = now or datetime.now(UTC)
    try:
        freezes = [Freeze.from_record(record) for record in ctx.ledger.freezes()]
    except Exception as exc:  # fail closed: an unreadable freeze is a freeze
        logger.exception("Could not read the freezes")
        return ReasonCode.FREEZE_UNKNOWN, f"the freeze records could not be read ({type(exc).__name__}); held"
    freeze = active_freeze(freezes, release.function, now)
    if freeze is not None:
        return ReasonCode.FROZEN, freeze.describe()
    return _preflight(ctx, release, managed)


def _preflight(
    ctx: ReleaseContext, release: Release, managed: ManagedFunction | None
) -> tuple[str, str] | None:
    if managed is None:
        try:
            managed = lambda_ops.get_managed_function(
                release.function, ctx.settings.default_deployment_config
            )
        except Rejected:
            return None  # the start path rejects it with the reason
    try:
        states = canary_alarms.alarm_states(managed.alarms)
    except Exception as exc:  # fail closed: CodeDeploy would refuse an alarm it cannot read anyway
        logger.exception("Could not read the function's alarms")
        return (
            ReasonCode.PREFLIGHT_ALARM,
            f"the function's alarms could not be read ({type(exc).__name__}); held",
        )
    missing = missing_alarm_reason([name for name in managed.alarms if name not in states])
    if missing:
        return ReasonCode.ALARM_NOT_FOUND, missing
    reason = alarm_hold_reason([name for name, state in states.items() if state == "ALARM"])
    if reason:
        return ReasonCode.PREFLIGHT_ALARM, reason
    try:
        concurrency = lambda_ops.alias_provisioned_concurrency(release.function, managed.alias)
    except Exception as exc:  # fail closed: a shift that may throttle waits until it can be read
        logger.exception("Could not read the alias's provisioned concurrency")
        return (
            ReasonCode.PREFLIGHT_CONCURRENCY,
            f"provisioned concurrency unreadable ({type(exc).__name__}); held",
        )
    reason = concurrency_hold_reason(managed.alias, concurrency)
    return (ReasonCode.PREFLIGHT_CONCURRENCY, reason) if reason else None


def hold_if_needed(
    ctx: ReleaseContext, release: Release, managed: ManagedFunction | None = None
) -> Release | None:
    """The release as HELD when something holds it (recorded and announced once), REJECTED when
    pre-flight finds a rule no wait can mend (`REJECTING`), else None."""
    held = hold_reason(ctx, release, managed=managed)
    if held is None:
        return None
    code, reason = held
    if code in REJECTING:
        return reject(ctx, release, Rejected(code, reason))
    if release.state == State.HELD:
        if release.reason_code == code and release.reason == reason:
            return release
        try:
            # Only while still HELD: `release` may be a copy read before another caller started it.
            return ctx.ledger.update(
                release.function, release.release_id, only_in=State.HELD, reason_code=code, reason=reason
            )
        except TransitionRefused as refused:
            return refused.release or release
    logger.info("Release held", extra={"reason_code": code, "reason": reason})
    try:
        return move(ctx, release, State.HELD, reason_code=code, reason=reason)
    except TransitionRefused as refused:
        return refused.release or release
