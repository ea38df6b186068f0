"""Version retention never deletes a version something still uses (`rollout/retention.py`).

Each test names a way a version in use could have been deleted: a release recorded after the plan
was made, an event source mapping or provisioned concurrency on the version, a list call refused,
an alias that moved onto it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from rollout import retention
from rollout.ledger import Release
from rollout.states import State
from rollout.transitions import ReleaseContext

TAGS = {"rollout:managed": "true", "rollout:retain-versions": "2"}


def rel(n: int, state: State, target: str, current: str = "", kind: str = "") -> Release:
    return Release(
        function="fn",
        release_id=f"{n:013x}aaaaaaaaaa",
        state=state,
        target_version=target,
        current_version=current,
        alias="live",
        kind=kind,
        received_at=f"2026-11-28T10:{n:02d}:00.000Z",
    )


class Ledger:
    """Releases 1..6 each put their version live; `arriving` are recorded once the plan was read."""

    def __init__(self) -> None:
        self.history = [rel(n, State.SUCCEEDED, str(n), str(n - 1)) for n in range(1, 7)]
        self.arriving: list[Release] = []
        self.retention: list[dict[str, Any]] = []

    def releases(self, function: str, limit: int = 50) -> list[Release]:
        return list(reversed(self.history))

    def open_releases(self, state: State | None = None) -> list[Release]:
        return []

    def in_states(self, function: str, states: frozenset[State]) -> list[Release]:
        return [r for r in self.history + self.arriving if r.state in states]

    def record_retention(self, function: str, record: dict[str, Any]) -> None:
        self.retention.append(record)


class Lambda:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.deleted: list[str] = []
        self.in_use: dict[str, str] | Exception = {}
        self.conflict: set[str] = set()
        self.before_delete: list[Any] = []
        ops = retention.lambda_ops
        monkeypatch.setattr(ops, "aliases", lambda fn: {"live": ("6", {})})
        monkeypatch.setattr(ops, "published_versions", lambda fn: [str(n) for n in range(1, 7)])
        monkeypatch.setattr(ops, "versions_in_use", self.versions_in_use)
        monkeypatch.setattr(ops, "delete_version", self.delete_version)

    def versions_in_use(self, function: str) -> dict[str, str]:
        if isinstance(self.in_use, Exception):
            raise self.in_use
        return self.in_use

    def delete_version(self, function: str, version: str) -> None:
        for hook in self.before_delete:
            hook(version)
        if version in self.conflict:
            error = {"Code": "ResourceConflictException", "Message": "alias live references it"}
            raise ClientError({"Error": error}, "DeleteFunction")
        self.deleted.append(version)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> tuple[Ledger, Lambda, ReleaseContext]:
    ledger = Ledger()
    ctx = ReleaseContext(
        ledger=cast(Any, ledger), settings=cast(Any, SimpleNamespace()), notifier=cast(Any, None)
    )
    return ledger, Lambda(monkeypatch), ctx


def test_without_anything_in_use_the_oldest_versions_go(world: Any) -> None:
    _ledger, lam, ctx = world
    # keep 5 and 6; 5 is also where a rollback returns
    assert retention.prune_function(ctx, "fn", TAGS) == ["4", "3", "2", "1"]
    assert lam.deleted == ["4", "3", "2", "1"]


def test_a_rollback_recorded_after_the_plan_keeps_the_version_it_returns_to(world: Any) -> None:
    ledger, lam, ctx = world

    def rollback_arrives(version: str) -> None:
        # `rollout rollback --to 2` is recorded while retention deletes version 4.
        if version == "4" and not ledger.arriving:
            ledger.arriving.append(rel(7, State.QUEUED, "2", "6", kind="rollback"))

    lam.before_delete.append(rollback_arrives)

    deleted = retention.prune_function(ctx, "fn", TAGS)

    assert deleted == ["4", "3", "1"] and "2" not in lam.deleted
    (record,) = ledger.retention
    assert "release 0000000000007aaaaaaaaaa (QUEUED) names it" in record["protected"]["2"]


@pytest.mark.parametrize("state", [State.RECEIVED, State.QUEUED, State.HELD, State.DEPLOYING])
def test_any_unfinished_release_naming_a_version_keeps_it(world: Any, state: State) -> None:
    ledger, _lam, ctx = world
    ledger.arriving.append(rel(7, state, "", current="3"))  # it would roll back to version 3
    assert "3" not in retention.prune_function(ctx, "fn", TAGS)


def test_versions_an_event_source_mapping_or_provisioned_concurrency_uses_are_kept(world: Any) -> None:
    ledger, lam, ctx = world
    lam.in_use = {
        "2": "event source mapping u-1 invokes it",
        "1": "provisioned concurrency is configured on it",
    }
    assert retention.prune_function(ctx, "fn", TAGS) == ["4", "3"]
    assert ledger.retention[0]["protected"]["2"] == "event source mapping u-1 invokes it"


def test_a_refused_list_deletes_nothing_and_says_why(world: Any) -> None:
    ledger, lam, ctx = world
    error = {"Code": "AccessDeniedException", "Message": "not authorized"}
    lam.in_use = ClientError({"Error": error}, "ListEventSourceMappings")
    assert retention.prune_function(ctx, "fn", TAGS) == []
    assert lam.deleted == []
    assert ledger.retention == [
        {"skipped": "could not list what invokes its versions (AccessDeniedException): nothing deleted"}
    ]


def test_a_version_lambda_refuses_to_delete_is_kept_with_lambdas_reason(world: Any) -> None:
    ledger, lam, ctx = world
    lam.conflict = {"3"}
    assert retention.prune_function(ctx, "fn", TAGS) == ["4", "2", "1"]
    assert "alias live references it" in ledger.retention[0]["protected"]["3"]


def test_only_a_numbered_version_of_the_same_function_is_in_use() -> None:
    version_in = retention.lambda_ops._version_in
    assert version_in("fn", "arn:aws:lambda:us-east-1:1:function:fn:3") == "3"
    assert version_in("fn", "arn:aws:lambda:us-east-1:1:function:fn:live") == ""
    assert version_in("fn", "arn:aws:lambda:us-east-1:1:function:fn") == ""
    assert version_in("fn", "arn:aws:lambda:us-east-1:1:function:other:3") == ""


def test_a_function_with_no_more_versions_than_it_keeps_costs_one_listing(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Most reconciler runs: nothing beyond the newest N exists, so nothing else is read or recorded.
    ledger, lam, ctx = world
    asked: list[str] = []
    monkeypatch.setattr(retention.lambda_ops, "versions_in_use", lambda fn: asked.append("in use") or {})
    monkeypatch.setattr(retention.lambda_ops, "aliases", lambda fn: asked.append("aliases") or {})
    monkeypatch.setattr(ledger, "releases", lambda fn, limit=50: asked.append("releases") or [])
    tags = {**TAGS, "rollout:retain-versions": "6"}
    assert retention.prune_function(ctx, "fn", tags) == []
    assert asked == [] and lam.deleted == [] and ledger.retention == []
    # One version more than it keeps, and the whole plan is read: the oldest goes.
    assert retention.prune_function(ctx, "fn", {**TAGS, "rollout:retain-versions": "5"}) == ["1"]
    assert asked == ["in use", "aliases", "releases"]
