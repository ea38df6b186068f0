"""What each CodeDeploy state means for a release, and the reason people read."""

from __future__ import annotations

from typing import Any

import pytest

from rollout.ledger import Release
from rollout.outcomes import (
    FINAL_STATUS_TO_STATE,
    DeploymentState,
    alarm_names,
    decide,
    failed_hook_reason,
)
from rollout.states import State
from rollout.targets import AliasRouting


def release(**fields: Any) -> Release:
    defaults: dict[str, Any] = {
        "function": "orders",
        "release_id": "r1",
        "state": State.DEPLOYING,
        "alias": "live",
        "current_version": "3",
        "target_version": "4",
        "deployment_id": "d-ABCDEFGHI",
    }
    defaults.update(fields)
    return Release(**defaults)


FAILED_PRE_HOOK = {
    "pre_traffic": {
        "verdict": "Failed",
        "checks": [
            {"name": "health", "verdict": "Succeeded", "duration_ms": 12},
            {
                "name": "checkout",
                "verdict": "Failed",
                "duration_ms": 40,
                "error": "statusCode: expected 200, got 500",
                "excerpt": '{"statusCode": 500, "body": "KeyError: \'cart\'"}',
            },
        ],
        "canary": None,
        "warnings": [],
        "reason": "",
    }
}
ON_OLD_VERSION = AliasRouting("3", {})


def test_start_success_and_ready() -> None:
    assert decide(DeploymentState.START, release(state=State.QUEUED)).target == State.DEPLOYING
    assert decide(DeploymentState.START, release()).kind == "deployment.started"
    success = decide(DeploymentState.SUCCESS, release())
    assert (success.target, success.kind, success.reason) == (State.SUCCEEDED, "deployment.succeeded", "")
    assert decide(DeploymentState.READY, release()).target is None


def test_hook_failure_names_the_failing_check_and_its_excerpt() -> None:
    deployment = {
        "status": "Failed",
        "errorInformation": {"code": "HOOK_EXECUTION_FAILURE", "message": "Hook BeforeAllowTraffic failed"},
        "rollbackInfo": {"rollbackDeploymentId": "d-ROLLBACK1", "rollbackMessage": "rolled back"},
    }
    outcome = decide(
        DeploymentState.FAILURE, release(hook_results=FAILED_PRE_HOOK), deployment, ON_OLD_VERSION
    )
    assert outcome.target == State.ROLLED_BACK
    assert outcome.kind == "deployment.rolled_back"
    assert outcome.reason_code == "HOOK_EXECUTION_FAILURE"
    assert "pre-traffic" in outcome.reason
    assert "checkout" in outcome.reason
    assert "expected 200, got 500" in outcome.reason
    assert "KeyError: 'cart'" in outcome.reason, "the excerpt shows what the function returned"


def test_hook_reason_recorded_by_the_hook_is_kept_and_the_excerpt_added() -> None:
    results = {
        "pre_traffic": {"verdict": "Succeeded", "checks": []},
        "post_traffic": {
            "verdict": "Failed",
            "checks": [
                {"name": "via alias", "verdict": "Failed", "excerpt": "Task timed out after 3.00 seconds"}
            ],
            "reason": "check 'via alias' failed: FunctionError Unhandled",
        },
    }
    reason = failed_hook_reason(release(hook_results=results))
    assert reason.startswith("post-traffic check 'via alias' failed: FunctionError Unhandled")
    assert reason.endswith("excerpt: Task timed out after 3.00 seconds")


def test_canary_verdict_without_failing_checks_uses_the_hook_reason() -> None:
    results = {
        "post_traffic": {
            "verdict": "Failed",
            "checks": [],
            "canary": {"verdict": "Failed"},
            "reason": "canary error rate 12.0% above 1.0% (v4) vs 0.0% (v3)",
        }
    }
    outcome = decide(
        DeploymentState.FAILURE,
        release(hook_results=results),
        {"errorInformation": {"code": "HOOK_EXECUTION_FAILURE", "message": "x"}},
        ON_OLD_VERSION,
    )
    assert outcome.reason == "post-traffic hook failed: canary error rate 12.0% above 1.0% (v4) vs 0.0% (v3)"


def test_hook_failure_without_recorded_results_falls_back_to_the_release_reason_then_codedeploy() -> None:
    deployment = {"errorInformation": {"code": "HOOK_EXECUTION_FAILURE", "message": "The hook failed"}}
    reported = release(reason="pre-traffic hook crashed: Runtime.ExitError")
    assert decide(DeploymentState.FAILURE, reported, deployment, ON_OLD_VERSION).reason == (
        "pre-traffic hook crashed: Runtime.ExitError"
    )
    assert decide(DeploymentState.FAILURE, release(), deployment, ON_OLD_VERSION).reason == (
        "The hook failed; no hook result was recorded"
    )


def test_a_hook_failure_nothing_recorded_says_so_rather_than_that_a_hook_reported_failed() -> None:
    silent = {"errorInformation": {"code": "HOOK_EXECUTION_FAILURE"}}
    reason = decide(DeploymentState.FAILURE, release(), silent, ON_OLD_VERSION).reason
    assert reason == "CodeDeploy failed a lifecycle hook; no hook result was recorded"
    passed = {"verdict": "Succeeded", "checks": []}
    for recorded in ({"pre_traffic": passed}, {"pre_traffic": passed, "post_traffic": passed}):
        assert (
            decide(DeploymentState.FAILURE, release(hook_results=recorded), silent, ON_OLD_VERSION).reason
            == "CodeDeploy failed a lifecycle hook; no hook recorded Failed"
        )


def test_alarm_stop_names_the_alarm() -> None:
    own = "rollout-canary-orders-v4-errors"
    deployment = {
        "status": "Stopped",
        "errorInformation": {
            "code": "ALARM_ACTIVE",
            "message": f"One or more alarms have been activated. Activated alarms: {own}, orders-p99 latency",
        },
        "rollbackInfo": {"rollbackDeploymentId": "d-ROLLBACK1"},
    }
    outcome = decide(DeploymentState.STOP, release(alarms=[own]), deployment, ON_OLD_VERSION)
    assert outcome.target == State.ROLLED_BACK
    assert outcome.reason_code == "ALARM_ACTIVE"
    assert outcome.reason == f"alarm {own}, orders-p99 latency went into ALARM during the deployment"


def test_alarm_stop_with_an_unhelpful_message_uses_the_alarms_cloudwatch_reports_firing() -> None:
    deployment = {"errorInformation": {"code": "ALARM_ACTIVE", "message": "Alarms were activated"}}
    outcome = decide(
        DeploymentState.STOP, release(alarms=["a", "b"]), deployment, ON_OLD_VERSION, firing_alarms=["b"]
    )
    assert outcome.reason == "alarm b went into ALARM during the deployment"


def test_manual_stop_without_rollback_leaves_a_split_alias_and_fails() -> None:
    deployment = {
        "status": "Stopped",
        "errorInformation": {"code": "MANUAL_STOP", "message": "stopped by request"},
    }
    split = AliasRouting("3", {"4": 0.1})
    outcome = decide(DeploymentState.STOP, release(), deployment, split)
    assert outcome.target == State.FAILED
    assert outcome.kind == "deployment.failed"
    assert outcome.reason_code == "MANUAL_STOP"
    assert "stopped on request" in outcome.reason
    assert "alias live: traffic split: v3 main, v4 10%" in outcome.reason


def test_a_stop_names_who_asked_for_it() -> None:
    asked = release(abort_requested_by="arn:aws:iam::123456789012:user/dana")
    deployment = {"status": "Stopped", "errorInformation": {"code": "MANUAL_STOP", "message": "stopped"}}
    outcome = decide(DeploymentState.STOP, asked, deployment, ON_OLD_VERSION)
    assert outcome.reason == "deployment stopped on request by arn:aws:iam::123456789012:user/dana: stopped"


def test_stop_without_error_information_counts_as_manual() -> None:
    outcome = decide(DeploymentState.STOP, release(), {"status": "Stopped"}, ON_OLD_VERSION)
    assert (outcome.target, outcome.reason_code) == (State.ROLLED_BACK, "MANUAL_STOP")


def test_failure_with_traffic_on_the_new_version_is_failed_not_rolled_back() -> None:
    deployment = {"errorInformation": {"code": "INTERNAL_ERROR", "message": "An internal error occurred"}}
    outcome = decide(DeploymentState.FAILURE, release(), deployment, AliasRouting("4", {}))
    assert outcome.target == State.FAILED
    assert outcome.reason == "An internal error occurred (alias live: all traffic on v4)"


def test_rollback_in_progress_counts_as_rolled_back() -> None:
    deployment = {
        "errorInformation": {"code": "TIMEOUT", "message": "The deployment timed out"},
        "rollbackInfo": {"rollbackDeploymentId": "d-ROLLBACK9"},
    }
    results = {"pre_traffic": {"verdict": "Succeeded", "checks": []}}
    outcome = decide(
        DeploymentState.FAILURE, release(hook_results=results), deployment, AliasRouting("3", {"4": 1.0})
    )
    assert outcome.target == State.ROLLED_BACK
    assert outcome.reason_code == "TIMEOUT"
    assert "post-traffic hook never reported" in outcome.reason
    assert "rollback deployment d-ROLLBACK9 restores v3" in outcome.reason


def test_unknown_deployment_details_fail_cautiously() -> None:
    outcome = decide(DeploymentState.FAILURE, release(), None, None)
    assert outcome.target == State.FAILED
    assert outcome.reason_code == "DEPLOYMENT_FAILED"
    assert "no error information" in outcome.reason
    assert "alias state unknown" in outcome.reason


@pytest.mark.parametrize(
    "code", ["INVALID_LAMBDA_CONFIGURATION", "INVALID_LAMBDA_FUNCTION", "THROTTLED", "INTERNAL_ERROR"]
)
def test_other_codes_keep_codedeploys_message(code: str) -> None:
    deployment = {"errorInformation": {"code": code, "message": f"message for {code}"}}
    outcome = decide(DeploymentState.FAILURE, release(), deployment, ON_OLD_VERSION)
    assert (outcome.target, outcome.reason_code, outcome.reason) == (
        State.ROLLED_BACK,
        code,
        f"message for {code}",
    )


def test_reasons_stay_short_enough_for_a_notification() -> None:
    results = {
        "pre_traffic": {
            "verdict": "Failed",
            "checks": [{"name": "big", "verdict": "Failed", "error": "boom", "excerpt": "x" * 5000}],
        }
    }
    outcome = decide(
        DeploymentState.FAILURE,
        release(hook_results=results),
        {"errorInformation": {"code": "HOOK_EXECUTION_FAILURE"}},
        ON_OLD_VERSION,
    )
    assert len(outcome.reason) <= 700
    assert "check 'big' failed: boom" in outcome.reason


def test_alarm_names_from_text() -> None:
    assert alarm_names("Activated alarms: a-1, b 2.", []) == ["a-1", "b 2"]
    assert alarm_names("alarm mine fired", ["mine", "other"]) == ["mine"]
    assert alarm_names("nothing here", ["mine"]) == []


def test_final_statuses_map_to_the_states_their_events_carry() -> None:
    assert FINAL_STATUS_TO_STATE == {
        "Succeeded": DeploymentState.SUCCESS,
        "Failed": DeploymentState.FAILURE,
        "Stopped": DeploymentState.STOP,
    }


def test_a_hook_reason_that_names_its_phase_is_not_prefixed_twice() -> None:
    results = {
        "pre_traffic": {
            "verdict": "Failed",
            "reason": "pre-traffic check 'health' failed against version 3: response does not match",
            "checks": [{"name": "health", "verdict": "Failed", "error": "response does not match"}],
        }
    }

    reason = failed_hook_reason(release(hook_results=results))

    assert reason.startswith("pre-traffic check 'health' failed against version 3")
    assert "pre-traffic pre-traffic" not in reason


REJECTED_GATE = {
    "position": "traffic",
    "hook": "pre_traffic",
    "deployment_id": "d-ABCDEFGHI",
    "execution_id": "exec-1",
    "timeout_minutes": 30,
    "opened_at": "2026-11-29T12:00:00.000Z",
    "deadline_at": "2026-11-29T12:30:00.000Z",
    "status": "REJECTED",
    "answered_by": {"kind": "aws", "id": "arn:aws:iam::123456789012:user/alice"},
    "answered_at": "2026-11-29T12:05:00.000Z",
    "comment": "not during the sale",
}


def test_a_rejected_gate_whose_answer_never_reached_the_hooks_record_still_names_who_and_why() -> None:
    # The answer was written to the gate; its invocation died before it recorded why on the hook's
    # record (which still shows the tests that passed before the gate opened), and the deployment
    # ended before anyone reported the answer again.
    passed = {"pre_traffic": {"verdict": "Succeeded", "awaiting_approval": True, "checks": [], "reason": ""}}
    gated = release(hook_results=passed, approval=REJECTED_GATE)
    deployment = {
        "errorInformation": {"code": "HOOK_EXECUTION_FAILURE", "message": "BeforeAllowTraffic failed"}
    }

    outcome = decide(DeploymentState.FAILURE, gated, deployment, ON_OLD_VERSION)

    assert (outcome.target, outcome.reason_code) == (State.ROLLED_BACK, "HOOK_EXECUTION_FAILURE")
    assert outcome.reason == (
        "pre-traffic hook failed: approval before traffic rejected by "
        "arn:aws:iam::123456789012:user/alice: not during the sale"
    )
    still_awaiting = release(hook_results=passed, approval={**REJECTED_GATE, "status": "AWAITING"})
    assert decide(DeploymentState.FAILURE, still_awaiting, deployment, ON_OLD_VERSION).reason == (
        "BeforeAllowTraffic failed; no hook recorded Failed"
    )


def test_a_success_is_a_success_only_when_nothing_rollout_recorded_refused_the_version() -> None:
    passed = {"pre_traffic": {"verdict": "Succeeded", "awaiting_approval": True, "checks": [], "reason": ""}}
    assert decide(DeploymentState.SUCCESS, release(hook_results=passed)).target == State.SUCCEEDED
    approved = {**REJECTED_GATE, "status": "APPROVED", "comment": ""}
    assert decide(DeploymentState.SUCCESS, release(hook_results=passed, approval=approved)).target == (
        State.SUCCEEDED
    )

    # A person refused the gate, yet CodeDeploy was told Succeeded by someone else first.
    refused = decide(DeploymentState.SUCCESS, release(hook_results=passed, approval=REJECTED_GATE))

    assert (refused.target, refused.reason_code) == (State.FAILED, "UNPROVEN_SUCCESS")
    assert refused.reason == (
        "CodeDeploy completed deployment d-ABCDEFGHI, so alias live serves version 4, but Rollout did not "
        "pass it: pre-traffic hook failed: approval before traffic rejected by "
        "arn:aws:iam::123456789012:user/alice: not during the sale; roll it back (rollout rollback orders)"
    )
