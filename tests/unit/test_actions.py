"""The pure rules of a release manager's actions (rollout/actions.py): rollback target, freezes,
hotfix, retention, pre-flight reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollout.actions import (
    ALL_AT_ONCE,
    DEFAULT_RETAIN,
    KIND_ROLLBACK,
    Freeze,
    active_freeze,
    alarm_hold_reason,
    concurrency_hold_reason,
    hold_newest,
    hotfix_config,
    hotfix_requested,
    missing_alarm_reason,
    parse_until,
    parse_version,
    protected_versions,
    release_of_version,
    retain_count,
    retention_plan,
    rollback_checks,
    rollback_target,
)
from rollout.errors import Rejected
from rollout.ledger import FREEZE_ALL, Release
from rollout.states import ReasonCode, State, can_move, is_terminal, notification_kind

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def rel(n: int, state: State, target: str, current: str = "", kind: str = "", **extra: object) -> Release:
    return Release(
        function="fn",
        release_id=f"{n:013x}aaaaaaaaaa",
        state=state,
        target_version=target,
        current_version=current,
        kind=kind,
        received_at=f"2026-11-28T10:{n:02d}:00.000Z",
        **extra,  # type: ignore[arg-type]
    )


# --- rollback target -------------------------------------------------------------------------------


def test_the_rollback_target_is_the_newest_other_version_that_went_live() -> None:
    releases = [
        rel(1, State.BOOTSTRAPPED, "1"),
        rel(2, State.SUCCEEDED, "2", "1"),
        rel(3, State.ROLLED_BACK, "3", "2"),  # never went live
        rel(4, State.SUPERSEDED, ""),
        rel(5, State.SUCCEEDED, "4", "2"),
    ]
    target = rollback_target(releases, live_version="4")
    assert target is not None and target.target_version == "2"


def test_rolling_back_twice_goes_further_back_never_forward_again() -> None:
    releases = [
        rel(1, State.BOOTSTRAPPED, "1"),
        rel(2, State.SUCCEEDED, "2", "1"),
        rel(3, State.SUCCEEDED, "3", "2"),
        rel(4, State.SUCCEEDED, "2", "3", kind=KIND_ROLLBACK),  # rolled back from 3 to 2
    ]
    target = rollback_target(releases, live_version="2")
    assert target is not None and target.target_version == "1"


def test_a_version_live_unproven_is_rolled_back_from_and_never_returned_to() -> None:
    unproven = {"reason_code": ReasonCode.UNPROVEN_SUCCESS}
    releases = [
        rel(1, State.BOOTSTRAPPED, "1"),
        rel(2, State.SUCCEEDED, "2", "1"),
        rel(3, State.FAILED, "3", "2", **unproven),  # CodeDeploy put 3 live although its hook failed it
    ]
    first = rollback_target(releases, live_version="3")
    assert first is not None and first.target_version == "2"
    releases.append(rel(4, State.SUCCEEDED, "2", "3", kind=KIND_ROLLBACK))
    second = rollback_target(releases, live_version="2")
    assert second is not None and second.target_version == "1"


def test_a_rollback_that_went_live_unproven_still_left_its_version_behind() -> None:
    # The rollback from 3 to 2 went live, its own check failed: rolling back again goes further back,
    # never forward to the version 3 it left.
    releases = [
        rel(1, State.BOOTSTRAPPED, "1"),
        rel(2, State.SUCCEEDED, "2", "1"),
        rel(3, State.SUCCEEDED, "3", "2"),
        rel(4, State.FAILED, "2", "3", kind=KIND_ROLLBACK, reason_code=ReasonCode.UNPROVEN_SUCCESS),
    ]
    target = rollback_target(releases, live_version="2")
    assert target is not None and target.target_version == "1"


def test_no_rollback_target_when_only_the_live_version_went_live() -> None:
    assert rollback_target([rel(1, State.BOOTSTRAPPED, "1")], "1") is None
    assert rollback_target([], "1") is None


def test_the_release_of_a_version_gives_its_checks_and_skip_checks_keeps_only_the_probe() -> None:
    checks = {"pre_traffic": [{"name": "health"}], "canary": {"min_invocations": 2}}
    releases = [rel(1, State.BOOTSTRAPPED, "1", checks=checks), rel(2, State.ROLLED_BACK, "1")]
    source = release_of_version(releases, "1")
    assert source is not None and source.release_id == releases[0].release_id
    assert rollback_checks(source, skip_checks=False) == checks
    assert rollback_checks(source, skip_checks=True) == {**checks, "pre_traffic": []}
    assert rollback_checks(None, skip_checks=False) == {}


@pytest.mark.parametrize("text", ["0", "v2", "$LATEST", "1.5", "", "12345678901"])
def test_a_rollback_names_a_published_version_number(text: str) -> None:
    with pytest.raises(Rejected):
        parse_version(text)
    assert parse_version(" 12 ") == "12"


# --- freezes ---------------------------------------------------------------------------------------


def test_a_function_is_held_by_its_own_freeze_or_by_one_for_every_function() -> None:
    own = Freeze("orders", "release week")
    everyone = Freeze(FREEZE_ALL, "black friday")
    assert active_freeze([everyone, own], "orders", NOW) == own
    assert active_freeze([everyone, own], "billing", NOW) == everyone
    assert active_freeze([own], "billing", NOW) is None


def test_a_freeze_ends_at_its_until_and_an_unreadable_until_keeps_it() -> None:
    ends = Freeze("fn", "why", until="2026-11-28T12:30:00Z")
    assert ends.active(NOW) and not ends.active(NOW + timedelta(minutes=30))
    assert Freeze("fn", "why", until="next tuesday").active(NOW + timedelta(days=365))
    assert active_freeze([ends], "fn", NOW + timedelta(hours=1)) is None


def test_until_takes_an_iso_time_or_a_duration_and_never_the_past() -> None:
    assert parse_until("2h", NOW) == "2026-11-28T14:00:00Z"
    assert parse_until("90m", NOW) == "2026-11-28T13:30:00Z"
    assert parse_until("2026-11-29T08:00:00+01:00", NOW) == "2026-11-29T07:00:00Z"
    assert parse_until("2026-11-29T08:00", NOW) == "2026-11-29T08:00:00Z"  # no zone: UTC
    for bad in ("2026-11-27T08:00:00Z", "soon", "0m"):
        with pytest.raises(Rejected):
            parse_until(bad, NOW)


def test_a_freeze_record_round_trips() -> None:
    freeze = Freeze("fn", "why", "arn:aws:iam::1:user/me", "2026-11-28T12:00:00Z", "2026-11-29T00:00:00Z")
    assert Freeze.from_record(freeze.to_record()) == freeze
    assert freeze.describe() == "fn frozen by arn:aws:iam::1:user/me until 2026-11-29T00:00:00Z: why"


def test_of_the_held_releases_the_newest_starts_and_the_others_are_superseded() -> None:
    held = [rel(3, State.HELD, ""), rel(1, State.HELD, ""), rel(2, State.HELD, "")]
    newest, older = hold_newest(held)
    assert newest is not None and newest.release_id == held[0].release_id
    assert [r.release_id for r in older] == [held[1].release_id, held[2].release_id]
    assert hold_newest([]) == (None, [])


def test_held_is_a_state_a_release_leaves_only_forwards() -> None:
    assert not is_terminal(State.HELD)
    for source in (State.RECEIVED, State.QUEUED):
        assert can_move(source, State.HELD)
    for target in (State.DEPLOYING, State.QUEUED, State.SUPERSEDED, State.FAILED):
        assert can_move(State.HELD, target)
    assert not can_move(State.DEPLOYING, State.HELD) and not can_move(State.SUCCEEDED, State.HELD)
    assert notification_kind(State.RECEIVED, State.HELD) == "release.held"


# --- hotfix ----------------------------------------------------------------------------------------


def test_a_hotfix_is_all_at_once_only_where_the_function_allows_it() -> None:
    assert hotfix_requested("true") and hotfix_requested(" Yes ") and not hotfix_requested("")
    assert hotfix_config("fn", requested=False, tags={}) == ""
    assert hotfix_config("fn", requested=True, tags={"rollout:hotfix": "allowed"}) == ALL_AT_ONCE
    with pytest.raises(Rejected) as refused:
        hotfix_config("fn", requested=True, tags={"rollout:hotfix": "no"})
    assert refused.value.code == "HOTFIX_NOT_ALLOWED"


# --- pre-flight ------------------------------------------------------------------------------------


def test_a_missing_alarm_is_named_in_the_rejection() -> None:
    assert missing_alarm_reason([]) == ""
    assert "names alarm orders-5xx, which does not exist" in missing_alarm_reason(["orders-5xx"])
    assert "names alarms a, b, which do not exist" in missing_alarm_reason(["b", "a"])


def test_a_firing_alarm_is_named_in_the_hold_reason() -> None:
    assert alarm_hold_reason([]) == ""
    assert "orders-5xx is in ALARM" in alarm_hold_reason(["orders-5xx"])
    assert "a, b are in ALARM" in alarm_hold_reason(["b", "a"])


# --- retention -------------------------------------------------------------------------------------


def test_retention_keeps_the_newest_and_every_protected_version() -> None:
    versions = [str(v) for v in range(1, 9)] + ["$LATEST"]
    plan = retention_plan(versions, keep=3, protected={"2": "alias pinned points to it", "7": "live"})
    assert plan.delete == ["5", "4", "3", "1"]
    assert plan.protected == {"2": "alias pinned points to it"}  # 7 is among the newest three anyway


def test_protected_versions_cover_aliases_weights_open_releases_and_the_rollback_target() -> None:
    aliases = {"live": ("5", {"6": 0.1}), "pinned": ("1", {})}
    open_release = rel(9, State.DEPLOYING, "6", "5")
    queued_rollback = rel(10, State.QUEUED, "3", "5", kind=KIND_ROLLBACK)
    protected = protected_versions(aliases, [open_release, queued_rollback], rollback_to="4")
    assert set(protected) == {"1", "3", "4", "5", "6"}
    assert "alias live points" in protected["5"] and "rollback" in protected["4"]


def test_the_retention_tag_is_a_bounded_number_and_a_bad_one_deletes_nothing() -> None:
    assert retain_count({}) == DEFAULT_RETAIN == 10
    assert retain_count({"rollout:retain-versions": "25"}) == 25
    for bad in ("1", "0", "-3", "ten", "100000"):
        assert retain_count({"rollout:retain-versions": bad}) is None


def test_a_shift_waits_for_the_alias_provisioned_concurrency_to_be_ready() -> None:
    assert concurrency_hold_reason("live", None) == ""
    assert (
        concurrency_hold_reason("live", {"Status": "READY", "AllocatedProvisionedConcurrentExecutions": 5})
        == ""
    )
    waiting = concurrency_hold_reason("live", {"Status": "IN_PROGRESS"})
    assert "alias live is IN_PROGRESS" in waiting and "READY" in waiting
    assert "FAILED: no capacity" in concurrency_hold_reason(
        "live", {"Status": "FAILED", "StatusReason": "no capacity"}
    )
