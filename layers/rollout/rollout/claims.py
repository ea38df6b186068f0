"""Claiming a queued release for one start (pure): which caller goes on to publish and deploy it.

A queued release can be started by several callers at once: deployment events and the reconciler
both advance a function's queue when a release ends, an unfreeze and a rollback start one too. The
function's lock cannot tell them apart (it is re-entrant for the release), so before anything is
published the starter claims the release with one conditional write (`Ledger.claim_start`): an
owner token and an expiry. Only the caller whose write succeeds publishes and creates the
deployment; the others see the claim and stop.

A claim must never outlive its claimer, or a claimer that dies (Lambda timeout, out of memory)
would leave the release queued forever; nor expire while the claimer still works, or two callers
would publish. So it lasts as long as the claimer's invocation can: until Lambda ends it (its
`Deadline`), at most Lambda's 15-minute maximum (a caller without an invocation limit, such as the
CLI, gets that maximum), plus a few seconds for clocks of different hosts.
"""

from __future__ import annotations

import secrets
import time

from rollout.deadlines import Deadline
from rollout.ledger import Release
from rollout.states import State

# Lambda's maximum timeout: no invocation, so no claimer, lives longer.
LAMBDA_MAX_SECONDS = 900.0
# Claims are compared across hosts whose clocks agree only roughly (NTP keeps them within
# milliseconds; the margin is generous because a claim that ends too early means a second publish).
CLOCK_SKEW_SECONDS = 5.0


def wall_clock() -> float:
    """Seconds since the epoch: claims are compared by other hosts, so not `time.monotonic()`."""
    return time.time()


def new_owner() -> str:
    """A token naming one start: unique without coordination, so no two callers share a claim."""
    return secrets.token_hex(8)


def claim_expiry(deadline: Deadline, now: float) -> float:
    """When a claim taken at `now` by an invocation with `deadline` stops counting (epoch seconds):
    once that invocation has certainly ended, never more than LAMBDA_MAX_SECONDS (+ skew) away."""
    return now + min(deadline.until_end(), LAMBDA_MAX_SECONDS) + CLOCK_SKEW_SECONDS


def claim_live(release: Release, now: float) -> bool:
    """Whether `release` carries a claim that still counts at `now`."""
    return bool(release.starting_by) and (release.starting_until or 0.0) > now


def claimed_elsewhere(release: Release, now: float) -> bool:
    """A queued release another caller is starting (the starter returns its own claim stripped)."""
    return release.state == State.QUEUED and claim_live(release, now)


def start_died(release: Release, now: float) -> bool:
    """A queued release whose claimer is gone: it was claimed, and the claim has expired. Whatever
    that start held (the function's lock) protects nothing any more."""
    return release.state == State.QUEUED and bool(release.starting_by) and not claim_live(release, now)
