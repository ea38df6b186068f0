"""Approval gates (rollout/gates.py, the `approval` setting in checks.py, ActionRequest in approvals.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollout import gates
from rollout.approvals import ActionRequest
from rollout.checks import parse_checks
from rollout.errors import ChecksError
from rollout.gates import Approver, Gate, GateStatus

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ALICE = Approver("aws", "arn:aws:iam::123456789012:user/alice")


def a_gate(position: str = "traffic", minutes: int = 30, hook_started: datetime | None = T0) -> Gate:
    return gates.open_gate(
        {"before": position, "timeout_minutes": minutes}, "d-AAAAAAAAA", "exec-1", T0, hook_started
    )


# --- rollout.json ---------------------------------------------------------------------------------
@pytest.mark.parametrize("position", ["traffic", "completion"])
def test_the_approval_setting_is_validated_and_kept(position: str) -> None:
    checks = parse_checks({"approval": {"before": position, "timeout_minutes": 10}})
    assert checks["approval"] == {"before": position, "timeout_minutes": 10}
    assert parse_checks({"approval": {"before": position}})["approval"]["timeout_minutes"] == 30
    assert "approval" not in parse_checks({})


@pytest.mark.parametrize(
    ("approval", "field", "words"),
    [
        ({"before": "lunch"}, "approval.before", "must be one of traffic, completion"),
        ({}, "approval.before", "must be one of"),
        ({"before": "traffic", "timeout_minutes": 60}, "approval.timeout_minutes", "between 1 and 45"),
        ({"before": "traffic", "timeout_minutes": 0}, "approval.timeout_minutes", "between 1 and 45"),
        ({"before": "traffic", "timeout_minutes": True}, "approval.timeout_minutes", "integer"),
        ({"before": "traffic", "who": "me"}, "approval.who", "unknown field"),
        ("traffic", "approval", "must be a mapping"),
    ],
)
def test_a_bad_approval_setting_is_refused_naming_the_field(approval: object, field: str, words: str) -> None:
    with pytest.raises(ChecksError) as refused:
        parse_checks({"approval": approval})
    assert refused.value.field == field and words in str(refused.value)


def test_the_longest_gate_still_ends_before_codedeploys_hook_limit() -> None:
    # Checks may take the hook's five minutes before the gate opens; the reconciler may be a run late.
    assert gates.MAX_TIMEOUT_MINUTES * 60 + 300 + gates.RECONCILER_PERIOD.total_seconds() < 3600
    assert gates.LATEST_DEADLINE_AFTER_HOOK_START + gates.RECONCILER_PERIOD < gates.HOOK_LIMIT


# --- opening ----------------------------------------------------------------------------------------
def test_the_gate_belongs_to_the_hook_of_its_position() -> None:
    checks = parse_checks({"approval": {"before": "completion"}})
    assert gates.wanted(checks, "post_traffic") == checks["approval"]
    assert gates.wanted(checks, "pre_traffic") is None
    assert gates.wanted(parse_checks({}), "post_traffic") is None
    assert a_gate("traffic").hook == "pre_traffic" and a_gate("completion").hook == "post_traffic"


def test_the_deadline_is_the_timeout_but_never_past_the_hooks_safe_limit() -> None:
    assert a_gate(minutes=30).deadline_at == gates.iso(T0 + timedelta(minutes=30))
    # The hook started 40 minutes before the gate opened (slow checks, a late invocation).
    late = a_gate(minutes=30, hook_started=T0 - timedelta(minutes=40))
    assert (
        gates.parse_iso(late.deadline_at)
        == T0 - timedelta(minutes=40) + gates.LATEST_DEADLINE_AFTER_HOOK_START
    )


def test_the_public_view_never_carries_the_execution_id() -> None:
    gate = a_gate()
    assert "exec-1" not in str(gate.public()) and gate.to_record()["execution_id"] == "exec-1"
    assert Gate.from_record(gate.to_record()) == gate
    assert Gate.from_record({"status": "AWAITING"}) is None  # no execution id: not a gate


# --- answering: fail closed -----------------------------------------------------------------------
def test_an_open_gate_may_be_approved_or_rejected_once() -> None:
    gate = a_gate()
    assert gates.refusal(gate, "d-AAAAAAAAA", "approve", T0 + timedelta(minutes=1)) == ""
    approved = gates.answered(gate, "approve", ALICE, T0 + timedelta(minutes=1), "  ship   it ")
    assert approved.status == GateStatus.APPROVED and approved.verdict == "Succeeded"
    assert approved.comment == "ship it" and approved.answered_by["id"] == ALICE.id
    why = gates.refusal(approved, "d-AAAAAAAAA", "reject", T0 + timedelta(minutes=2))
    assert "already answered: approved by arn:aws:iam::123456789012:user/alice" in why
    with pytest.raises(ValueError, match="cannot become"):
        gates.answered(approved, "reject", ALICE, T0, "no")
    rejected = gates.answered(gate, "reject", Approver("slack", "U1", "bob"), T0, "too risky")
    assert rejected.verdict == "Failed"
    assert (
        gates.failure_reason(rejected) == "approval before traffic rejected by Slack user bob (U1): too risky"
    )


def test_answers_for_another_deployment_or_no_gate_or_unknown_actions_are_refused() -> None:
    gate = a_gate()
    assert "belongs to deployment d-AAAAAAAAA, not d-BBBBBBBBB" in gates.refusal(
        gate, "d-BBBBBBBBB", "approve", T0
    )
    assert "has no approval gate" in gates.refusal(None, "d-AAAAAAAAA", "approve", T0)
    assert "unknown action 'promote'" in gates.refusal(gate, "d-AAAAAAAAA", "promote", T0)


def test_an_expired_gate_cannot_be_approved_and_only_an_expired_one_expires() -> None:
    gate = a_gate(minutes=5)
    before, after = T0 + timedelta(minutes=4), T0 + timedelta(minutes=5)
    assert "expired at" in gates.refusal(gate, "d-AAAAAAAAA", "approve", after)
    assert "open until" in gates.refusal(gate, "d-AAAAAAAAA", "expire", before)
    assert gates.refusal(gate, "d-AAAAAAAAA", "expire", after) == ""
    assert not gates.due(gate, before) and gates.due(gate, after)
    expired = gates.answered(gate, "expire", Approver("rollout", "reconciler"), after, "")
    assert not gates.due(expired, after + timedelta(hours=1))  # answered: nothing more to do
    assert "nobody answered within 5 minute(s)" in gates.failure_reason(expired)


def test_a_gate_with_an_unreadable_deadline_counts_as_expired() -> None:
    gate = a_gate()
    gate.deadline_at = "garbage"
    assert gates.due(gate, T0) and "expired" in gates.refusal(gate, "d-AAAAAAAAA", "approve", T0)


# --- requests to deployment_actions ---------------------------------------------------------------
def test_action_requests_name_an_action_a_deployment_and_an_approver() -> None:
    request = ActionRequest.parse(
        {
            "action": "reject",
            "deployment_id": "d-AAAAAAAAA",
            "by": {"kind": "aws", "id": ALICE.id},
            "text": "no",
        }
    )
    assert (request.action, request.by.id, request.text) == ("reject", ALICE.id, "no")
    for bad, words in [
        ({"action": "promote", "deployment_id": "d-A", "by": {"kind": "aws", "id": "x"}}, "unknown action"),
        (
            {"action": "approve", "deployment_id": "x", "by": {"kind": "aws", "id": "x"}},
            "not a deployment id",
        ),
        ({"action": "approve", "deployment_id": "d-A", "by": {"kind": "aws", "id": ""}}, "no approver"),
        ({"action": "approve", "deployment_id": "d-A", "by": {"kind": "god", "id": "x"}}, "no approver"),
        ({"action": "reject", "deployment_id": "d-A", "by": {"kind": "aws", "id": "x"}}, "needs a reason"),
        (["approve"], "JSON object"),
    ]:
        with pytest.raises(ValueError, match=words):
            ActionRequest.parse(bad)
