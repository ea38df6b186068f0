"""The reconciler's sweep of approval gates (rollout.gate_sweep), with a ledger and CodeDeploy faked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollout import codedeploy_ops, gate_sweep
from rollout.config import Settings
from rollout.ledger import Release
from rollout.states import State

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class _Ledger:
    def __init__(self, releases: list[Release]) -> None:
        self.releases = releases

    def open_releases(self, state: State) -> list[Release]:
        return [r for r in self.releases if r.state == state]


class _Ctx:
    def __init__(self, releases: list[Release]) -> None:
        self.ledger = _Ledger(releases)
        self.settings = Settings.from_mapping({"RECONCILER_FUNCTION": "rollout-reconciler"})


def _gated(release_id: str, deadline: datetime, **gate: Any) -> Release:
    record = {
        "position": "traffic",
        "hook": "pre_traffic",
        "deployment_id": f"d-{release_id}",
        "execution_id": f"exec-{release_id}",
        "timeout_minutes": 30,
        "opened_at": (deadline - timedelta(minutes=30)).isoformat(),
        "deadline_at": deadline.isoformat(),
        "status": "AWAITING",
        **gate,
    }
    return Release(
        "orders", release_id, State.DEPLOYING, deployment_id=record["deployment_id"], approval=record
    )


@pytest.fixture
def codedeploy(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    statuses: dict[str, str] = {}
    monkeypatch.setattr(
        codedeploy_ops,
        "deployment_and_clock",
        lambda deployment_id: ({"status": statuses.get(deployment_id, "InProgress")}, NOW),
    )
    return statuses


def sweep(releases: list[Release]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    handed: list[dict[str, Any]] = []
    ctx: Any = _Ctx(releases)
    counts = gate_sweep.sweep(ctx, "rollout-actions", lambda function, event: handed.append(event))
    return counts, handed


def test_a_gate_past_its_deadline_is_handed_over_to_expire(codedeploy: dict[str, str]) -> None:
    counts, handed = sweep(
        [_gated("r1", NOW - timedelta(minutes=1)), _gated("r2", NOW + timedelta(minutes=5))]
    )

    assert counts == {"expired": 1, "reported": 0, "failed": 0}
    assert handed == [
        {"action": "expire", "deployment_id": "d-r1", "by": {"kind": "rollout", "id": "rollout-reconciler"}}
    ]


def test_an_answer_whose_report_was_lost_is_handed_over_to_report(codedeploy: dict[str, str]) -> None:
    counts, handed = sweep([_gated("r1", NOW + timedelta(minutes=5), status="APPROVED", reported=False)])

    assert counts["reported"] == 1 and handed[0]["action"] == "report"


def test_releases_without_a_gate_or_whose_deployment_ended_are_left_alone(codedeploy: dict[str, str]) -> None:
    ungated = Release("orders", "r0", State.DEPLOYING, deployment_id="d-r0")
    ended = _gated("r1", NOW - timedelta(minutes=1))
    codedeploy["d-r1"] = "Succeeded"

    assert sweep([ungated]) == ({"expired": 0, "reported": 0, "failed": 0}, [])
    assert sweep([ungated, ended]) == ({"expired": 0, "reported": 0, "failed": 0}, [])
