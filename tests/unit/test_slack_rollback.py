"""The Roll back button after a release SUCCEEDED, or went live unproven (FAILED, UNPROVEN_SUCCESS): on the
message, through the endpoint, and what deployment_actions does with it (fail closed: only the release
still live is rolled back)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from rollout import approvals, rollback
from rollout import slack_interactions as si
from rollout.actions import not_live_reason
from rollout.appspec import release_description
from rollout.ledger import Release
from rollout.slack import render
from rollout.states import ReasonCode, State
from rollout.targets import AliasRouting
from rollout.transitions import ReleaseContext

DEPLOYMENT = "d-ABCDEFGHI"
APP = "rollout-app"


def rel(n: int, state: State, target: str, deployment: str = "", reason_code: str = "") -> Release:
    return Release(
        function="fn",
        release_id=f"{n:013x}aaaaaaaaaa",
        state=state,
        target_version=target,
        alias="live",
        deployment_id=deployment,
        received_at=f"2026-11-28T10:{n:02d}:00.000Z",
        reason_code=reason_code,
    )


def unproven(n: int, target: str, deployment: str = "") -> Release:
    """CodeDeploy completed the release's deployment although Rollout's hook had failed it."""
    return rel(n, State.FAILED, target, deployment, ReasonCode.UNPROVEN_SUCCESS)


# --- the button -------------------------------------------------------------------------------------
def _rollout_buttons(kind: str, interactive: bool = True, code: str = "") -> list[dict[str, Any]]:
    message = {"kind": kind, "title": "x", "function": "fn", "deployment_id": DEPLOYMENT}
    if code:
        message["reason"] = {"code": code, "text": "why"}
    blocks = render(message, interactive)["attachments"][0]["blocks"]
    return [e for b in blocks if b.get("block_id") == "rollout-actions" for e in b["elements"]]


def test_only_the_success_message_carries_roll_back_and_only_with_interactivity() -> None:
    [button] = _rollout_buttons("deployment.succeeded")
    assert button["action_id"] == "rollout-rollback" and button["value"] == DEPLOYMENT
    assert button["text"]["text"] == "Roll back" and button["confirm"]  # asks before acting
    assert si.ACTION_IDS[button["action_id"]] == "rollback"
    assert _rollout_buttons("deployment.succeeded", interactive=False) == []
    for kind in ("deployment.started", "approval.requested", "deployment.rolled_back", "deployment.failed"):
        assert "rollout-rollback" not in [b["action_id"] for b in _rollout_buttons(kind)], kind


def test_a_failure_whose_version_went_live_unproven_carries_the_same_roll_back_button() -> None:
    assert _rollout_buttons("deployment.failed", code=ReasonCode.UNPROVEN_SUCCESS) == _rollout_buttons(
        "deployment.succeeded"
    )
    assert _rollout_buttons("deployment.failed", interactive=False, code=ReasonCode.UNPROVEN_SUCCESS) == []
    for code in ("HOOK_EXECUTION_FAILURE", "MANUAL_STOP", ReasonCode.ROLLBACK_FAILED):
        assert _rollout_buttons("deployment.failed", code=code) == [], code
    # Only a deployment's failure: the reason code on another kind adds nothing.
    assert _rollout_buttons("deployment.rolled_back", code=ReasonCode.UNPROVEN_SUCCESS) == []


# --- the endpoint -----------------------------------------------------------------------------------
def _click() -> si.Click:
    return si.Click("U0OPS", "alice", "rollback", DEPLOYMENT, "https://hooks.slack.com/actions/T/1/x", "1.2")


def test_a_roll_back_click_asks_deployment_actions_naming_the_slack_user() -> None:
    assert si.action_request(_click()) == {
        "action": "rollback",
        "deployment_id": DEPLOYMENT,
        "by": {"kind": "slack", "id": "U0OPS", "name": "alice"},
        "text": "rolled back from Slack by alice",
    }


def test_the_thread_hears_the_rollback_started_or_why_it_was_refused() -> None:
    started = si.reply_text(
        _click(),
        {"ok": True, "status": "DEPLOYING", "function": "fn", "target_version": "1", "release_id": "r1"},
    )
    assert started.startswith(":rewind: <@U0OPS> started a rollback of `fn` to version 1")
    refused = si.reply_text(_click(), {"ok": False, "reason": "deployment d-X of fn is running"})
    assert refused == f"<@U0OPS>: rollback of `{DEPLOYMENT}` refused: deployment d-X of fn is running"
    failed = si.reply_text(_click(), {"ok": True, "status": "FAILED", "function": "fn", "reason": "boom"})
    assert "ended FAILED: boom" in failed


# --- the rule: only the live release ------------------------------------------------------------------
def test_only_the_release_still_live_may_be_rolled_back_from_its_message() -> None:
    first, live = rel(1, State.SUCCEEDED, "1"), rel(2, State.SUCCEEDED, "2")
    assert not_live_reason(live, [live, first], AliasRouting("2")) == ""
    newer = rel(3, State.SUCCEEDED, "3")
    assert "no longer the live one" in not_live_reason(live, [newer, live, first], AliasRouting("3"))
    assert "not SUCCEEDED" in not_live_reason(rel(2, State.ROLLED_BACK, "2"), [first], AliasRouting("1"))
    assert "no longer serves only" in not_live_reason(live, [live], AliasRouting("2", {"3": 0.1}))
    assert "no alias" in not_live_reason(live, [live], None)


def test_a_release_live_unproven_may_be_rolled_back_only_while_it_is_the_last_to_go_out() -> None:
    first, live = rel(1, State.SUCCEEDED, "1"), unproven(2, "2")
    assert not_live_reason(live, [live, first], AliasRouting("2")) == ""
    newer = rel(3, State.SUCCEEDED, "3")
    assert "no longer the live one" in not_live_reason(live, [newer, live, first], AliasRouting("3"))
    # ...even when the alias was put back on its version since: a newer release went out after it.
    assert "no longer the live one" in not_live_reason(live, [newer, live, first], AliasRouting("2"))
    assert "no longer serves only" in not_live_reason(live, [live, first], AliasRouting("2", {"3": 0.1}))
    assert "no longer serves only" in not_live_reason(live, [live, first], AliasRouting("1"))
    assert "no alias" in not_live_reason(live, [live, first], None)
    # A failure that never went live is no rollback's business, whatever else it says.
    failed = rel(2, State.FAILED, "2", reason_code="HOOK_EXECUTION_FAILURE")
    assert "not SUCCEEDED" in not_live_reason(failed, [failed, first], AliasRouting("2"))
    assert "not SUCCEEDED" in not_live_reason(rel(2, State.FAILED, "2"), [first], AliasRouting("2"))


def test_a_success_is_no_longer_live_once_a_newer_release_went_live_unproven() -> None:
    first, later = rel(1, State.SUCCEEDED, "1"), unproven(2, "2")
    # Whatever the alias says now, the newer release went out after the clicked one.
    assert "no longer the live one" in not_live_reason(first, [later, first], AliasRouting("1"))


# --- deployment_actions ---------------------------------------------------------------------------
class FakeLedger:
    def __init__(self, releases: list[Release]) -> None:
        self._releases = releases

    def releases(self, function: str, limit: int = 50) -> list[Release]:
        return sorted(self._releases, key=lambda r: r.order, reverse=True)[:limit]

    def get(self, function: str, release_id: str) -> Release | None:
        return next((r for r in self._releases if r.release_id == release_id), None)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Release 2 (deployment DEPLOYMENT) succeeded over release 1; the alias serves version 2."""
    state = SimpleNamespace(
        releases=[rel(1, State.SUCCEEDED, "1"), rel(2, State.SUCCEEDED, "2", DEPLOYMENT)],
        alias=AliasRouting("2", name="live"),
        status="Succeeded",
        asked=[],
    )

    def deployment(deployment_id: str) -> tuple[dict[str, Any] | None, None]:
        if deployment_id != DEPLOYMENT:
            return None, None
        description = release_description(state.releases[1].release_id, "fn/build-2.zip")
        info = {"deploymentId": deployment_id, "applicationName": APP, "status": state.status}
        return {**info, "deploymentGroupName": "fn", "description": description}, None

    def request_rollback(ctx: Any, request: rollback.RollbackRequest) -> rollback.RollbackResult:
        state.asked.append(request)
        return rollback.RollbackResult(rel(9, State.DEPLOYING, "1", "d-ROLLBACK1"))

    monkeypatch.setattr(approvals, "_deployment", deployment)
    monkeypatch.setattr(approvals.lambda_ops, "get_alias", lambda function, alias: state.alias)
    monkeypatch.setattr(rollback, "request_rollback", request_rollback)
    return state


def _act(world: SimpleNamespace, deployment: str = DEPLOYMENT, kind: str = "slack") -> dict[str, Any]:
    ctx = ReleaseContext(
        ledger=cast(Any, FakeLedger(world.releases)),
        settings=cast(Any, SimpleNamespace(codedeploy_application=APP)),
        notifier=cast(Any, None),
    )
    by = {"kind": kind, "id": "U0OPS", "name": "alice"}
    event = {
        "action": "rollback",
        "deployment_id": deployment,
        "by": by,
        "text": "rolled back from Slack by alice",
    }
    return approvals.act(ctx, approvals.ActionRequest.parse(event))


def test_the_live_release_is_rolled_back_through_request_rollback(world: SimpleNamespace) -> None:
    answer = _act(world)
    assert answer["ok"] and answer["status"] == "DEPLOYING" and answer["target_version"] == "1"
    [asked] = world.asked
    assert asked.function == "fn" and asked.requested_by == "Slack user alice (U0OPS)"
    assert asked.reason == "rolled back from Slack by alice" and not asked.abort_current


def test_a_release_live_unproven_is_rolled_back_through_request_rollback(world: SimpleNamespace) -> None:
    world.releases[1] = unproven(2, "2", DEPLOYMENT)  # CodeDeploy: Succeeded; Rollout: FAILED
    answer = _act(world)
    assert answer["ok"] and answer["rolled_back_release"] == world.releases[1].release_id
    assert answer["from_version"] == "2" and [a.function for a in world.asked] == ["fn"]


def test_an_unknown_deployment_is_refused(world: SimpleNamespace) -> None:
    answer = _act(world, deployment="d-UNKNOWN00")
    assert answer == {"ok": False, "refused": "not_found", "reason": "deployment d-UNKNOWN00 does not exist"}
    assert world.asked == []


def test_a_stale_click_after_a_newer_release_went_live_is_refused(world: SimpleNamespace) -> None:
    world.releases.append(rel(3, State.SUCCEEDED, "3", "d-NEWER0000"))
    world.alias = AliasRouting("3", name="live")
    answer = _act(world)
    assert answer["ok"] is False and answer["refused"] == "nothing_to_do"
    assert "no longer the live one" in answer["reason"]
    assert world.asked == []


@pytest.mark.parametrize("status", ["InProgress", "Failed", "Stopped"])
def test_a_deployment_that_did_not_succeed_is_not_rolled_back(world: SimpleNamespace, status: str) -> None:
    world.status = status
    answer = _act(world)
    assert answer["ok"] is False and "did not succeed" in answer["reason"] and world.asked == []


def test_the_reconciler_never_rolls_back(world: SimpleNamespace) -> None:
    assert _act(world, kind="rollout")["refused"] == "bad_request" and world.asked == []


def test_a_refusal_of_request_rollback_is_answered_not_raised(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def running(ctx: Any, request: rollback.RollbackRequest) -> rollback.RollbackResult:
        raise approvals.RefusedAction("deployment d-OTHER of fn is running")

    monkeypatch.setattr(rollback, "request_rollback", running)
    assert _act(world) == {
        "ok": False,
        "refused": "nothing_to_do",
        "reason": "deployment d-OTHER of fn is running",
    }


def test_an_action_runs_within_its_invocations_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # A rollback started from DeploymentActions claims its release only for as long as the invocation
    # can live: a claim without the invocation's deadline would hold for Lambda's 15-minute maximum.
    from rollout.config import Settings
    from rollout.deadlines import Deadline

    seen: list[ReleaseContext] = []

    def act(ctx: ReleaseContext, request: Any) -> dict[str, Any]:
        seen.append(ctx)
        return {"ok": True}

    monkeypatch.setattr(approvals, "act", act)
    # Who asks is proven elsewhere (test_identity.py, test_slack_interactions.py); here, the deadline.
    monkeypatch.setattr(approvals, "proven", lambda request, event: request)
    settings = SimpleNamespace(ledger_table="ledger", topic_arn="", region="us-east-1")
    monkeypatch.setattr(Settings, "from_env", classmethod(lambda cls: cast(Any, settings)))
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: 30_000)
    request = {"action": "rollback", "deployment_id": "d-ABCDEFGH1", "by": {"kind": "slack", "id": "U0X"}}

    approvals.handle(request, deadline=Deadline.of_invocation(context))

    assert len(seen) == 1
    assert 0 < seen[0].deadline.until_end() <= 30
