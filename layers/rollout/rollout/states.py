"""Release states and the transitions the ledger allows (pure)."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    RECEIVED = "RECEIVED"
    REJECTED = "REJECTED"
    UNCHANGED = "UNCHANGED"
    BOOTSTRAPPED = "BOOTSTRAPPED"
    QUEUED = "QUEUED"
    DEPLOYING = "DEPLOYING"
    SUCCEEDED = "SUCCEEDED"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"
    SUPERSEDED = "SUPERSEDED"


TERMINAL: frozenset[State] = frozenset(
    {
        State.REJECTED,
        State.UNCHANGED,
        State.BOOTSTRAPPED,
        State.SUCCEEDED,
        State.ROLLED_BACK,
        State.FAILED,
        State.SUPERSEDED,
    }
)

# Which states a release may move to from each state. A failed start of a queued release is
# recorded as FAILED rather than dropped, so QUEUED may end in FAILED too.
TRANSITIONS: dict[State, frozenset[State]] = {
    # RECEIVED -> SUPERSEDED: an upload processed after a newer one already went out.
    State.RECEIVED: frozenset(
        {
            State.REJECTED,
            State.UNCHANGED,
            State.BOOTSTRAPPED,
            State.QUEUED,
            State.DEPLOYING,
            State.FAILED,
            State.SUPERSEDED,
        }
    ),
    # A queued release whose code someone else already made live ends UNCHANGED when its turn comes.
    State.QUEUED: frozenset(
        {State.DEPLOYING, State.SUPERSEDED, State.FAILED, State.REJECTED, State.UNCHANGED}
    ),
    State.DEPLOYING: frozenset({State.SUCCEEDED, State.ROLLED_BACK, State.FAILED}),
}


def can_move(current: State, target: State) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def sources_of(target: State) -> frozenset[State]:
    """Every state from which `target` may be reached."""
    return frozenset(src for src, targets in TRANSITIONS.items() if target in targets)


def is_terminal(state: State | str) -> bool:
    return State(state) in TERMINAL
