"""Releasing what a hold kept: when a freeze ends (unfreeze, or its time passes) or a pre-flight
rule clears, the newest held release of each function starts; older held ones are superseded.

`rollout unfreeze` calls `release_held` at once for the functions it unfroze; the reconciler calls
`release_all_held` every run, which also notices a freeze whose `--until` has passed. A held release
goes through `starter.start_release` again, so the gate decides afresh: one still frozen stays HELD.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    """What became of the held releases a caller found, by release id. A release another caller
    (the reconciler, a second unfreeze) took out of HELD first is reported where it went, read again."""

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


def release_held(ctx: ReleaseContext, function: str, seen_held: Iterable[Release] = ()) -> HeldReport:
    """Start the newest held release of `function` if nothing holds it any more; newest first, a
    release that fails to start gives way to the next, older held releases are superseded.

    `seen_held` are the releases the caller found held before it ended the hold (an unfreeze): one
    no longer held now was moved by another caller meanwhile, and is reported where it went."""
    report = HeldReport()
    held = ctx.ledger.queued(function, State.HELD)
    still = {r.release_id for r in held}
    for gone in (r for r in seen_held if r.release_id not in still):
        _report_moved_elsewhere(ctx, report, gone)
    newest, older = hold_newest(held)
    candidates = [newest, *reversed(older)] if newest else []
    for index, candidate in enumerate(candidates):
        claimed = _claim(ctx, candidate)
        if claimed is None:
            # Another caller (an unfreeze, the reconciler) saw the hold end first and starts them.
            _report_moved_elsewhere(ctx, report, candidate)
            return report
        outcome = _start(ctx, claimed) if claimed.state == State.QUEUED else claimed
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


def _start(ctx: ReleaseContext, claimed: Release) -> Release:
    # Imported once a held release is there to start: the reconciler, which looks every run, skips
    # the start path at init when nothing is held.
    from rollout import starter

    return starter.start_release(ctx, claimed)


def _claim(ctx: ReleaseContext, release: Release) -> Release | None:
    """The held release QUEUED by this caller alone once nothing holds it; as the gate recorded it
    while something still does (HELD, or REJECTED by a rule no wait mends); None if another caller
    moved it out of HELD first.

    Only a release this caller moved out of HELD is handed to the start path, which claims it there
    (`starter.StartClaim`). A release still HELD must never be: the start path claims QUEUED releases
    only, so a caller that found it frozen and asked the gate again after an unfreeze deleted the
    freeze would publish and deploy it unclaimed, beside the unfreeze's own start of it (two versions
    of one build, the release recording the one its deployment does not target).
    """
    from rollout import release_gate  # with the start path (see release_held)

    held = release_gate.hold_if_needed(ctx, release)
    if held is not None:
        return held
    try:
        return move(
            ctx,
            release,
            State.QUEUED,
            only_from=frozenset({State.HELD}),
            reason_code=ReasonCode.WAITING,
            reason="its hold ended",
        )
    except TransitionRefused:
        logger.info("Held release claimed by another caller", extra={"release_id": release.release_id})
        return None


def _report_moved_elsewhere(ctx: ReleaseContext, report: HeldReport, release: Release) -> None:
    """Report a held release another caller took out of HELD by where it went, read again: the hold
    ended for this caller too, and its user asks whether the upload is on its way."""
    current = ctx.ledger.get(release.function, release.release_id) or release
    if current.state == State.HELD:
        report.still_held.append(current.release_id)
    elif current.state == State.SUPERSEDED:
        report.superseded.append(current.release_id)
    elif current.state in (State.FAILED, State.REJECTED):
        report.failed.append(current.release_id)
    else:
        report.started.append(current.release_id)


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
