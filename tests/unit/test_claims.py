"""`rollout/claims.py` and `Deadline.until_end`: how long a start's claim on a queued release counts."""

from __future__ import annotations

import math
import time

import pytest

from rollout import claims
from rollout.deadlines import RESERVE_SECONDS, Deadline
from rollout.ledger import Release
from rollout.states import State


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_an_invocation_ends_when_lambda_ends_it_not_when_its_waits_must_stop() -> None:
    deadline = Deadline.of_invocation(Context(120_000))

    assert deadline.until_end() == pytest.approx(120, abs=0.5)
    assert deadline.remaining() == pytest.approx(120 - RESERVE_SECONDS, abs=0.5)


def test_an_invocation_with_less_time_than_the_reserve_still_ends_when_lambda_ends_it() -> None:
    deadline = Deadline.of_invocation(Context(4_000))

    assert deadline.remaining() == 0.0
    assert deadline.until_end() == pytest.approx(4, abs=0.5)


def test_without_an_invocation_there_is_no_end_and_a_bare_deadline_ends_at_its_time() -> None:
    assert Deadline().until_end() == math.inf
    assert Deadline(time.monotonic() + 7).until_end() == pytest.approx(7, abs=0.5)


def test_a_claim_counts_until_the_claimers_invocation_has_certainly_ended() -> None:
    now = 1_000_000.0

    expiry = claims.claim_expiry(Deadline.of_invocation(Context(120_000)), now)

    assert expiry == pytest.approx(now + 120 + claims.CLOCK_SKEW_SECONDS, abs=0.5)


def test_a_claim_never_counts_longer_than_lambdas_longest_invocation() -> None:
    now = 1_000_000.0
    longest = now + claims.LAMBDA_MAX_SECONDS + claims.CLOCK_SKEW_SECONDS

    assert claims.claim_expiry(Deadline(), now) == longest, "the CLI: no invocation limit"
    assert claims.claim_expiry(Deadline.of_invocation(Context(3_600_000)), now) == longest


def queued(
    starting_by: str = "", starting_until: float | None = None, state: State = State.QUEUED
) -> Release:
    return Release("orders", "r1", state=state, starting_by=starting_by, starting_until=starting_until)


@pytest.mark.parametrize(
    ("release", "elsewhere", "died"),
    [
        (queued(), False, False),  # nobody is starting it
        (queued("a", 101.0), True, False),  # a live claim
        (queued("a", 100.0), False, True),  # expired at this very moment
        (queued("a", 99.0), False, True),
        (queued("a", None), False, True),  # a claim without an expiry never blocks anyone
        (queued("a", 101.0, State.DEPLOYING), False, False),  # started: the claim no longer matters
        (queued("a", 99.0, State.HELD), False, False),
    ],
)
def test_a_claim_is_live_until_its_expiry_and_only_a_queued_release_is_claimed(
    release: Release, elsewhere: bool, died: bool
) -> None:
    assert claims.claimed_elsewhere(release, 100.0) is elsewhere
    assert claims.start_died(release, 100.0) is died


def test_every_start_has_its_own_owner_token() -> None:
    owners = {claims.new_owner() for _ in range(1000)}

    assert len(owners) == 1000
    assert all(len(owner) == 16 for owner in owners)
