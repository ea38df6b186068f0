"""Releasing what a hold kept: when a freeze ends (unfreeze, or its time passes) or a pre-flight
rule clears, the newest held release of each function starts; older held ones are superseded.

`rollout unfreeze` calls `release_held` at once for the functions it unfroze; the reconciler calls
`release_all_held` every run, which also notices a freeze whose `--until` has passed. A held release
goes through `starter.start_release` again, so the gate decides afresh: one still frozen stays HELD.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rollout.actions import hold_newest
from rollout.errors import TransitionRefused
from rollout.ledger import Release
from rollout.observability import logger
from rollout.release_queue import advance_queue
from rollout.states import ReasonCode, State
from rollout.transitions import ReleaseContext, move, supersede

# The newest held release went on its way (or ended without deploying) in these states.
MOVED_ON = frozenset({State.DEPLOYING, State.QUEUED, State.BOOTSTRAPPED, State.UNCHANGED})


@dataclass
class HeldReport:
    """What releasing the held releases did, by release id."""

    started: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    still_held: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def merge(self, other: HeldReport) -> None:
        self.started += other.started
        self.superseded += other.superseded
        self.still_held += other.still_held
        self.failed += other.failed

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "started": self.started,
            "superseded": self.superseded,
            "still_held": self.still_held,
            "failed": self.failed,
        }


def release_held(ctx: ReleaseContext, function: str) -> HeldReport:
    """Start the newest held release of `function` if nothing holds it any more; newest first, a
    release that fails to start gives way to the next, older held releases are superseded."""
    report = HeldReport()
    newest, older = hold_newest(ctx.ledger.queued(function, State.HELD))
    candidates = [newest, *reversed(older)] if newest else []
    for index, candidate in enumerate(candidates):
        claimed = _claim(ctx, candidate)
        if claimed is None:
            return report  # another caller (an unfreeze, the reconciler) is starting them
        # Imported once a held release is there to start: the reconciler, which looks every run,
        # skips the start path at init when nothing is held.
        from rollout import starter

        outcome = starter.start_release(ctx, claimed)
        if outcome.state == State.HELD:
            report.still_held = [r.release_id for r in candidates[index:]]
            return report
        if outcome.state in MOVED_ON:
            report.started.append(outcome.release_id)
            for stale in candidates[index + 1 :]:
                if supersede(ctx, stale, outcome):
                    report.superseded.append(stale.release_id)
            if outcome.is_terminal:
                advance_queue(function, ctx)
            return report
        report.failed.append(outcome.release_id)
    return report


def _claim(ctx: ReleaseContext, release: Release) -> Release | None:
    """The held release, QUEUED by this caller alone once nothing holds it (a conditional move: of an
    unfreeze and the reconciler, only one starts it, so only one publishes); None if another caller
    claimed it first. Still held: returned as it is, and the start path keeps it HELD."""
    from rollout import release_gate  # with the start path (see release_held)

    if release_gate.hold_reason(ctx, release) is not None:
        return release
    try:
        return move(ctx, release, State.QUEUED, reason_code=ReasonCode.WAITING, reason="its hold ended")
    except TransitionRefused:
        logger.info("Held release claimed by another caller", extra={"release_id": release.release_id})
        return None


def release_all_held(ctx: ReleaseContext, functions: list[str] | None = None) -> HeldReport:
    """`release_held` for every function with a held release (or the ones named)."""
    names = functions if functions is not None else _functions_with_held(ctx)
    report = HeldReport()
    for function in names:
        try:
            report.merge(release_held(ctx, function))
        except Exception:  # one function's trouble must not keep the others held
            logger.exception("Could not release held releases", extra={"function": function})
            report.failed.append(function)
    return report


def _functions_with_held(ctx: ReleaseContext) -> list[str]:
    held: list[Release] = ctx.ledger.open_releases(State.HELD)
    return sorted({r.function for r in held})
