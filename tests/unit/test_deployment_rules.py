"""Pure deployment rules: managed-function tags, the deployment group's shape, canary alarm definitions."""

from __future__ import annotations

from typing import Any

import pytest

import rollout
from rollout.canary_alarms import (
    CanaryScope,
    alarm_definitions,
    first_step_seconds,
    seconds_to_fire,
    step_outruns_alarms,
)
from rollout.codedeploy_ops import desired_group, group_differences
from rollout.errors import Rejected
from rollout.notifications import KINDS
from rollout.states import REASON_CODES, TERMINAL, State, can_move, notification_kind, sources_of
from rollout.targets import deployment_config_name, managed_function


@pytest.mark.parametrize(
    ("tag", "full"),
    [
        ("Canary10Percent5Minutes", "CodeDeployDefault.LambdaCanary10Percent5Minutes"),
        ("Linear10PercentEvery10Minutes", "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes"),
        ("AllAtOnce", "CodeDeployDefault.LambdaAllAtOnce"),
        ("LambdaAllAtOnce", "CodeDeployDefault.LambdaAllAtOnce"),
        (
            "CodeDeployDefault.LambdaCanary10Percent30Minutes",
            "CodeDeployDefault.LambdaCanary10Percent30Minutes",
        ),
        (" Canary10Percent15Minutes ", "CodeDeployDefault.LambdaCanary10Percent15Minutes"),
        ("Team.Canary1Percent60Minutes", "Team.Canary1Percent60Minutes"),
    ],
)
def test_deployment_config_tags_map_to_codedeploy_names(tag: str, full: str) -> None:
    assert deployment_config_name(tag) == full


def test_tags_give_alias_config_and_alarms_with_defaults() -> None:
    plain = managed_function("orders", {"rollout:managed": "true"}, "Canary10Percent5Minutes")
    assert (plain.alias, plain.deployment_config, plain.alarms) == (
        "live",
        "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        [],
    )
    tagged = managed_function(
        "orders",
        {
            "rollout:managed": "TRUE",
            "rollout:alias": "prod",
            "rollout:deployment-config": "AllAtOnce",
            "rollout:alarms": " a  b a ",
        },
        "Canary10Percent5Minutes",
    )
    assert (tagged.alias, tagged.deployment_config, tagged.alarms) == (
        "prod",
        "CodeDeployDefault.LambdaAllAtOnce",
        ["a", "b"],
    )


@pytest.mark.parametrize(
    ("tags", "code", "phrase"),
    [
        ({}, "FUNCTION_NOT_MANAGED", "rollout:managed is missing"),
        ({"rollout:managed": "yes"}, "FUNCTION_NOT_MANAGED", "is 'yes'"),
        ({"rollout:managed": "true", "rollout:alias": "42"}, "BAD_TAG", "rollout:alias '42'"),
        ({"rollout:managed": "true", "rollout:alias": "live now"}, "BAD_TAG", "rollout:alias"),
        (
            {"rollout:managed": "true", "rollout:deployment-config": "bad name!"},
            "BAD_TAG",
            "rollout:deployment-config",
        ),
        ({"rollout:managed": "true", "rollout:alarms": " ".join("abcdefghi")}, "BAD_TAG", "at most 8"),
    ],
)
def test_unusable_tags_are_rejected_naming_the_tag(tags: dict[str, str], code: str, phrase: str) -> None:
    with pytest.raises(Rejected) as caught:
        managed_function("orders", tags, "Canary10Percent5Minutes")
    assert caught.value.code == code
    assert phrase in caught.value.reason


def test_the_group_is_blue_green_with_traffic_control_rollback_and_alarms() -> None:
    group = desired_group("app", "orders", "CodeDeployDefault.LambdaAllAtOnce", "arn:role", ["x", "y"])
    assert group["deploymentGroupName"] == "orders"
    assert group["deploymentStyle"] == {
        "deploymentType": "BLUE_GREEN",
        "deploymentOption": "WITH_TRAFFIC_CONTROL",
    }
    assert group["autoRollbackConfiguration"] == {
        "enabled": True,
        "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"],
    }
    assert group["alarmConfiguration"] == {
        "enabled": True,
        "ignorePollAlarmFailure": False,
        "alarms": [{"name": "x"}, {"name": "y"}],
    }


def test_group_differences_ignore_order_and_name_what_changed() -> None:
    want = desired_group("app", "orders", "CodeDeployDefault.LambdaAllAtOnce", "arn:role", ["x", "y"])
    have = {
        **want,
        "autoRollbackConfiguration": {
            "enabled": True,
            "events": list(reversed(want["autoRollbackConfiguration"]["events"])),
        },
        "alarmConfiguration": {**want["alarmConfiguration"], "alarms": [{"name": "y"}, {"name": "x"}]},
        "computePlatform": "Lambda",
    }
    assert group_differences(have, want) == []
    changed = {
        **have,
        "deploymentConfigName": "CodeDeployDefault.OneAtATime",
        "alarmConfiguration": {"enabled": False},
    }
    assert group_differences(changed, want) == ["deploymentConfigName", "alarmConfiguration"]


def test_canary_alarms_watch_the_new_version_through_the_alias() -> None:
    rate, errors = alarm_definitions(
        "stack-canary", CanaryScope("orders", "live", "8"), {"max_error_rate": 0.05, "min_invocations": 30}
    )
    assert rate["AlarmName"] == "stack-canary-orders-v8-error-rate"
    assert errors["AlarmName"] == "stack-canary-orders-v8-errors"
    dimensions = {"FunctionName": "orders", "Resource": "orders:live", "ExecutedVersion": "8"}
    assert {d["Name"]: d["Value"] for d in errors["Dimensions"]} == dimensions
    for metric in rate["Metrics"][:2]:
        assert {d["Name"]: d["Value"] for d in metric["MetricStat"]["Metric"]["Dimensions"]} == dimensions
    assert rate["Threshold"] == 0.05
    assert rate["Metrics"][2]["Expression"] == "IF(invocations >= 30, errors / invocations, 0)"
    assert [m["ReturnData"] for m in rate["Metrics"]] == [False, False, True]
    assert errors["Threshold"] == 5.0
    assert {rate["TreatMissingData"], errors["TreatMissingData"]} == {"notBreaching"}


def test_a_zero_error_budget_alarms_on_the_first_error() -> None:
    _, errors = alarm_definitions("p", CanaryScope("f", "live", "2"), {"max_error_rate": 0.0})
    assert errors["Threshold"] == 1.0


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (State.RECEIVED, State.REJECTED),
        (State.RECEIVED, State.UNCHANGED),
        (State.RECEIVED, State.BOOTSTRAPPED),
        (State.RECEIVED, State.QUEUED),
        (State.RECEIVED, State.DEPLOYING),
        (State.RECEIVED, State.FAILED),
        (State.QUEUED, State.DEPLOYING),
        (State.QUEUED, State.REJECTED),
        (State.QUEUED, State.FAILED),
    ],
)
def test_every_outcome_the_deployer_records_is_an_allowed_transition(source: State, target: State) -> None:
    assert can_move(source, target)


def test_reason_codes_include_every_codedeploy_error_code() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("codedeploy")
    codedeploy_codes = set(model.shape_for("ErrorCode").enum)
    assert codedeploy_codes <= REASON_CODES


def test_every_reason_code_the_package_writes_is_in_the_enum() -> None:
    """Literal codes passed to Rejected(...) or reason_code=... anywhere in the package."""
    import ast
    from pathlib import Path

    package = Path(rollout.__file__).parent
    written: set[str] = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name == "Rejected" and node.args and isinstance(node.args[0], ast.Constant):
                written.add(str(node.args[0].value))
            for keyword in node.keywords:
                if (
                    keyword.arg == "reason_code"
                    and isinstance(keyword.value, ast.Constant)
                    and keyword.value.value
                ):
                    written.add(str(keyword.value.value))
    assert written, "the scan found no codes: it is not looking at the package"
    assert written <= REASON_CODES, written - REASON_CODES


@pytest.mark.parametrize("target", sorted(TERMINAL | {State.QUEUED, State.DEPLOYING}))
def test_every_state_a_release_reaches_has_a_known_notification_kind(target: State) -> None:
    for source in sources_of(target):
        kind = notification_kind(source, target)
        assert kind in KINDS, (source, target, kind)
    assert notification_kind(State.DEPLOYING, State.FAILED) == "deployment.failed"
    assert notification_kind(State.QUEUED, State.FAILED) == "release.failed"
    assert notification_kind(State.ROLLED_BACK, State.FAILED) == "deployment.rollback_failed"
    assert notification_kind(State.DEPLOYING, State.FAILED, "ROLLBACK_FAILED") == "deployment.rollback_failed"


def test_a_first_traffic_step_the_canary_alarms_cannot_act_within_is_warned_of() -> None:
    definitions = alarm_definitions("p", CanaryScope("f", "live", "2"), None)
    # Lambda publishes a minute's errors a minute after it ends; each alarm then needs one minute in breach.
    to_fire = seconds_to_fire(definitions)
    assert to_fire == 120

    def warning(config: str, routing: dict[str, Any] | None = None) -> str:
        return step_outruns_alarms(config, first_step_seconds(config, routing), to_fire)

    assert "after 60 s" in warning("CodeDeployDefault.LambdaLinear10PercentEvery1Minute")
    # A step exactly as long as the alarms need still moves traffic before they can have fired.
    assert "after 120 s" in warning("CodeDeployDefault.LambdaLinear10PercentEvery2Minutes")
    for long_enough in (
        "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes",
        "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        "CodeDeployDefault.LambdaAllAtOnce",  # no step: the post-traffic analysis is all there is
    ):
        assert warning(long_enough) == ""
    linear = {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 20, "linearInterval": 1}}
    canary = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 5, "canaryInterval": 2}}
    assert "Team.Linear moves more traffic" in warning("Team.Linear", linear)
    assert "after 120 s" in warning("Team.Canary", canary)
    assert warning("Team.AllAtOnce", {"type": "AllAtOnce"}) == ""
    # Two datapoints to alarm double the period the alarms need.
    slower = [{**definitions[1], "DatapointsToAlarm": 2, "EvaluationPeriods": 2}]
    assert seconds_to_fire(slower) == 180
