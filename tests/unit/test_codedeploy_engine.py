"""The CodeDeploy engine through its wire entry point, with the other services faked in memory."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.clock import Clock
from sandbox.codedeploy import api
from sandbox.codedeploy.alarm_poller import alarm_poll_interval
from sandbox.codedeploy.appspec import content_sha256
from sandbox.codedeploy.engine import CodeDeployEngine
from tests.support.fake_lambda_aws import FakeLambdaAws

APP, GROUP, FN = "rollout-app", "orders", "orders"
ROLE = "arn:aws:iam::123456789012:role/codedeploy"
PRE, POST = "CodeDeployHook_test_PreTraffic", "CodeDeployHook_test_PostTraffic"
ROLLBACK_ALL = ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"]


def call(operation: str, **body: Any) -> dict[str, Any]:
    return api.dispatch(operation, body)


def error_code(operation: str, **body: Any) -> str:
    with pytest.raises(api.CodeDeployError) as refused:
        call(operation, **body)
    return refused.value.code


def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def appspec(
    current: str = "1", target: str = "2", hooks: dict[str, str] | None = None, function: str = FN
) -> str:
    doc: dict[str, Any] = {
        "version": 0.0,
        "Resources": [
            {
                function: {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": function,
                        "Alias": "live",
                        "CurrentVersion": current,
                        "TargetVersion": target,
                    },
                }
            }
        ],
    }
    if hooks:
        doc["Hooks"] = [{event: fn} for event, fn in hooks.items()]
    return json.dumps(doc)


def revision(content: str) -> dict[str, Any]:
    return {
        "revisionType": "AppSpecContent",
        "appSpecContent": {"content": content, "sha256": content_sha256(content)},
    }


def canary_config(name: str, percentage: int, minutes: int) -> None:
    routing = {
        "type": "TimeBasedCanary",
        "timeBasedCanary": {"canaryPercentage": percentage, "canaryInterval": minutes},
    }
    call(
        "CreateDeploymentConfig",
        deploymentConfigName=name,
        computePlatform="Lambda",
        trafficRoutingConfig=routing,
    )


class World:
    def __init__(self, engine: CodeDeployEngine, aws: FakeLambdaAws) -> None:
        self.engine, self.aws = engine, aws

    def group(self, config: str = "CodeDeployDefault.LambdaAllAtOnce", **extra: Any) -> None:
        call(
            "CreateDeploymentGroup",
            applicationName=APP,
            deploymentGroupName=GROUP,
            serviceRoleArn=ROLE,
            deploymentConfigName=config,
            deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            **extra,
        )

    def deploy(self, content: str | None = None, **extra: Any) -> str:
        body = {
            "applicationName": APP,
            "deploymentGroupName": GROUP,
            "revision": revision(content or appspec()),
        }
        return call("CreateDeployment", **body, **extra)["deploymentId"]

    def info(self, deployment_id: str) -> dict[str, Any]:
        return call("GetDeployment", deploymentId=deployment_id)["deploymentInfo"]

    def finished(self, deployment_id: str, timeout: float = 10.0) -> dict[str, Any]:
        return wait_until(
            lambda: (i := self.info(deployment_id))["status"] in ("Succeeded", "Failed", "Stopped") and i,
            timeout,
        )

    def target(self, deployment_id: str) -> dict[str, Any]:
        target = call("GetDeploymentTarget", deploymentId=deployment_id, targetId=f"{FN}:live")
        return target["deploymentTarget"]["lambdaTarget"]

    def reporting(self, status: str, delay: float = 0.0) -> Callable[[dict[str, Any]], None]:
        def hook(payload: dict[str, Any]) -> None:
            time.sleep(delay)
            call(
                "PutLifecycleEventHookExecutionStatus",
                deploymentId=payload["DeploymentId"],
                lifecycleEventHookExecutionId=payload["LifecycleEventHookExecutionId"],
                status=status,
            )

        return hook


@pytest.fixture
def world() -> Iterator[World]:
    aws = FakeLambdaAws()
    aws.add_function(FN, ["1", "2", "3"], "live", "1")
    engine = CodeDeployEngine(clock=Clock(speed=6000), endpoint_url="http://unused", aws=aws)
    api.bind(engine)
    call("CreateApplication", applicationName=APP, computePlatform="Lambda")
    try:
        yield World(engine, aws)
    finally:
        engine.shutdown()
        api.unbind(engine)


def test_canary_shifts_p_then_everything_after_one_interval(world):
    world.group("CodeDeployDefault.LambdaCanary10Percent5Minutes")
    deployment_id = world.deploy()
    assert deployment_id.startswith("d-") and len(deployment_id) == 11
    info = world.finished(deployment_id)
    assert info["status"] == "Succeeded"
    assert world.aws.alias_history == [(FN, "live", "1", {"2": 0.1}), (FN, "live", "2", {})]
    assert world.aws.alias(FN, "live") == ("2", {})
    events = {e["lifecycleEventName"]: e for e in world.target(deployment_id)["lifecycleEvents"]}
    assert list(events) == ["Start", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic", "End"]
    assert [e["status"] for e in events.values()] == [
        "Succeeded",
        "Skipped",
        "Succeeded",
        "Skipped",
        "Succeeded",
    ]
    shift = events["AllowTraffic"]["endTime"] - events["AllowTraffic"]["startTime"]
    assert 300 <= shift < 300 + 120  # one 5-minute interval of sandbox time (generous for a busy machine)
    assert info["createTime"] <= info["startTime"] <= info["completeTime"]
    assert info["deploymentOverview"]["Succeeded"] == 1
    assert world.aws.states() == ["START", "SUCCESS"]
    detail = world.aws.events[0]["detail"]
    assert detail["deploymentId"] == deployment_id and detail["application"] == APP
    assert detail["deploymentGroup"] == GROUP and detail["instanceGroupId"]
    assert world.aws.events[0]["resources"] == [
        f"arn:aws:codedeploy:us-east-1:123456789012:application:{APP}",
        f"arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:{APP}/{GROUP}",
    ]


def test_linear_steps_each_interval(world):
    world.group("CodeDeployDefault.LambdaLinear10PercentEvery1Minute")
    info = world.finished(world.deploy())
    assert info["status"] == "Succeeded"
    weights = [w.get("2", 1.0) for _, _, _, w in world.aws.alias_history]
    assert weights == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def test_deployment_config_on_the_deployment_overrides_the_groups(world):
    world.group("CodeDeployDefault.LambdaLinear10PercentEvery10Minutes")
    info = world.finished(world.deploy(deploymentConfigName="CodeDeployDefault.LambdaAllAtOnce"))
    assert info["deploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert world.aws.alias_history == [(FN, "live", "2", {})]


def test_hooks_get_the_exact_payload_and_are_awaited(world):
    world.aws.hooks[PRE] = world.reporting("Succeeded", delay=0.2)
    world.aws.hooks[POST] = world.reporting("Succeeded")
    world.group()
    deployment_id = world.deploy(appspec(hooks={"BeforeAllowTraffic": PRE, "AfterAllowTraffic": POST}))
    info = world.finished(deployment_id)
    assert info["status"] == "Succeeded"
    assert [fn for fn, _ in world.aws.invocations] == [PRE, POST]
    for _, payload in world.aws.invocations:
        assert set(payload) == {"DeploymentId", "LifecycleEventHookExecutionId"}
        assert payload["DeploymentId"] == deployment_id
    events = {e["lifecycleEventName"]: e for e in world.target(deployment_id)["lifecycleEvents"]}
    # BeforeAllowTraffic waited for the (slow) report: 0.2 s real is 1200 sandbox seconds at speed 6000.
    assert events["BeforeAllowTraffic"]["endTime"] - events["BeforeAllowTraffic"]["startTime"] >= 1000
    assert events["BeforeAllowTraffic"]["endTime"] <= events["AllowTraffic"]["startTime"]
    assert events["AfterAllowTraffic"]["startTime"] >= events["AllowTraffic"]["endTime"]


def test_put_lifecycle_status_errors(world):
    captured: list[dict[str, Any]] = []
    release = threading.Event()

    def hold(payload: dict[str, Any]) -> None:
        captured.append(payload)
        release.wait(10)

    world.aws.hooks[PRE] = hold
    world.group()
    deployment_id = world.deploy(appspec(hooks={"BeforeAllowTraffic": PRE}))
    payload = wait_until(lambda: captured and captured[0])
    execution = payload["LifecycleEventHookExecutionId"]
    put = "PutLifecycleEventHookExecutionStatus"
    assert error_code(
        put, deploymentId=deployment_id, lifecycleEventHookExecutionId=execution, status="Pending"
    ) == ("InvalidLifecycleEventHookExecutionStatusException")
    assert error_code(
        put, deploymentId=deployment_id, lifecycleEventHookExecutionId="bogus", status="Succeeded"
    ) == ("InvalidLifecycleEventHookExecutionIdException")
    assert (
        error_code(put, lifecycleEventHookExecutionId=execution, status="Succeeded")
        == "DeploymentIdRequiredException"
    )
    assert error_code(
        put, deploymentId="d-NOTTHERE0", lifecycleEventHookExecutionId=execution, status="Succeeded"
    ) == ("DeploymentDoesNotExistException")
    assert error_code(
        put, deploymentId="nonsense", lifecycleEventHookExecutionId=execution, status="Succeeded"
    ) == ("InvalidDeploymentIdException")
    answer = call(
        put, deploymentId=deployment_id, lifecycleEventHookExecutionId=execution, status="Succeeded"
    )
    assert answer == {"lifecycleEventHookExecutionId": execution}
    assert error_code(
        put, deploymentId=deployment_id, lifecycleEventHookExecutionId=execution, status="Failed"
    ) == ("LifecycleEventAlreadyCompletedException")
    release.set()
    assert world.finished(deployment_id)["status"] == "Succeeded"


def test_failed_hook_fails_the_deployment_and_rolls_back(world):
    world.aws.hooks[POST] = world.reporting("Failed")
    world.group(autoRollbackConfiguration={"enabled": True, "events": ROLLBACK_ALL})
    deployment_id = world.deploy(appspec(hooks={"AfterAllowTraffic": POST}))
    info = world.finished(deployment_id)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert (
        POST in info["errorInformation"]["message"]
        and "AfterAllowTraffic" in info["errorInformation"]["message"]
    )
    rollback_id = info["rollbackInfo"]["rollbackDeploymentId"]
    rollback = world.info(rollback_id)
    assert rollback["creator"] == "codeDeployRollback"
    assert rollback["status"] == "Succeeded"
    assert rollback["rollbackInfo"]["rollbackTriggeringDeploymentId"] == deployment_id
    assert world.aws.alias(FN, "live") == ("1", {})
    assert world.aws.alias_history[-1] == (FN, "live", "1", {})
    lifecycle = {e["lifecycleEventName"]: e for e in world.target(deployment_id)["lifecycleEvents"]}
    assert lifecycle["AfterAllowTraffic"]["status"] == "Failed"
    assert lifecycle["AfterAllowTraffic"]["diagnostics"]["scriptName"] == POST
    assert lifecycle["End"]["status"] == "Skipped"
    ids_states = [(e["detail"]["deploymentId"], e["detail"]["state"]) for e in world.aws.events]
    assert ids_states == [
        (deployment_id, "START"),
        (deployment_id, "FAILURE"),
        (rollback_id, "START"),
        (rollback_id, "SUCCESS"),
    ]


def test_failed_hook_without_rollback_leaves_the_alias(world):
    world.aws.hooks[POST] = world.reporting("Failed")
    world.group()
    info = world.finished(world.deploy(appspec(hooks={"AfterAllowTraffic": POST})))
    assert info["status"] == "Failed"
    assert "rollbackInfo" not in info
    assert world.aws.alias(FN, "live") == ("2", {})


def test_silent_hook_times_out_after_an_hour_of_sandbox_time(world):
    world.aws.hooks[PRE] = lambda payload: None
    world.group()
    deployment_id = world.deploy(appspec(hooks={"BeforeAllowTraffic": PRE}))
    info = world.finished(deployment_id, timeout=15)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "TIMEOUT"
    assert PRE in info["errorInformation"]["message"]
    event = next(
        e
        for e in world.target(deployment_id)["lifecycleEvents"]
        if e["lifecycleEventName"] == "BeforeAllowTraffic"
    )
    assert event["endTime"] - event["startTime"] >= 3600
    assert world.aws.alias_history == []


def test_missing_hook_function_fails_the_deployment(world):
    world.group()
    info = world.finished(world.deploy(appspec(hooks={"BeforeAllowTraffic": "CodeDeployHook_missing"})))
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert "CodeDeployHook_missing" in info["errorInformation"]["message"]


def test_alarm_stops_the_deployment_and_rolls_back(world):
    world.aws.alarms = {"orders-errors": "OK", "orders-latency": "OK"}
    world.group(
        "CodeDeployDefault.LambdaCanary10Percent30Minutes",
        alarmConfiguration={
            "enabled": True,
            "alarms": [{"name": "orders-errors"}, {"name": "orders-latency"}],
        },
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_STOP_ON_ALARM"]},
    )
    deployment_id = world.deploy()
    wait_until(lambda: world.aws.alias(FN, "live") == ("1", {"2": 0.1}))
    world.aws.alarms["orders-latency"] = "ALARM"
    info = world.finished(deployment_id)
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert "orders-latency" in info["errorInformation"]["message"]
    assert "orders-errors" not in info["errorInformation"]["message"]
    assert world.info(info["rollbackInfo"]["rollbackDeploymentId"])["status"] == "Succeeded"
    assert world.aws.alias(FN, "live") == ("1", {})
    assert world.aws.states()[:2] == ["START", "STOP"]


def test_alarm_already_firing_at_start_fails_it(world):
    world.aws.alarms = {"orders-errors": "ALARM"}
    world.group(alarmConfiguration={"enabled": True, "alarms": [{"name": "orders-errors"}]})
    info = world.finished(world.deploy())
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert world.aws.alias_history == []


def test_missing_alarm_fails_unless_poll_failures_are_ignored(world):
    world.group(alarmConfiguration={"enabled": True, "alarms": [{"name": "nope"}]})
    info = world.finished(world.deploy())
    assert info["status"] == "Failed" and "nope" in info["errorInformation"]["message"]
    call(
        "UpdateDeploymentGroup",
        applicationName=APP,
        currentDeploymentGroupName=GROUP,
        alarmConfiguration={"enabled": True, "ignorePollAlarmFailure": True, "alarms": [{"name": "nope"}]},
    )
    world.aws.add_function(FN, ["1", "2"], "live", "1")
    assert world.finished(world.deploy())["status"] == "Succeeded"


def test_deployments_of_one_role_poll_their_alarms_once_per_tick_and_each_judges_its_own(world):
    """Six running deployments of one service role read their alarms about once per poll tick between
    them, not six times (each polled on its own before); the alarm that fires stops only its deployment."""
    canary_config("Hold", percentage=10, minutes=600)
    deployments = {}
    for n in range(6):
        function = f"fn{n}"
        world.aws.add_function(function, ["1", "2"], "live", "1")
        world.aws.alarms[f"{function}-errors"] = "OK"
        call(
            "CreateDeploymentGroup",
            applicationName=APP,
            deploymentGroupName=function,
            serviceRoleArn=ROLE,
            deploymentConfigName="Hold",
            alarmConfiguration={"enabled": True, "alarms": [{"name": f"{function}-errors"}]},
        )
        deployments[function] = call(
            "CreateDeployment",
            applicationName=APP,
            deploymentGroupName=function,
            revision=revision(appspec(function=function)),
        )["deploymentId"]
    wait_until(lambda: all(world.aws.alias(f, "live") == ("1", {"2": 0.1}) for f in deployments))

    clock = world.engine.clock
    interval = alarm_poll_interval(clock.real_seconds)
    began = clock.now()
    reads_before = len(world.aws.alarm_reads)
    wait_until(lambda: clock.now() >= began + 50 * interval)
    reads = len(world.aws.alarm_reads) - reads_before
    ended = clock.now()
    ticks = int(ended // interval - began // interval) + 1
    assert 0 < reads <= ticks + 1
    assert all(len(names) == 6 for names in world.aws.alarm_reads[reads_before:])

    world.aws.alarms["fn3-errors"] = "ALARM"
    info = world.finished(deployments["fn3"])
    assert info["status"] == "Stopped" and info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert "fn3-errors" in info["errorInformation"]["message"]
    for function, deployment_id in deployments.items():
        if function != "fn3":
            assert world.info(deployment_id)["status"] == "InProgress"
            call("StopDeployment", deploymentId=deployment_id, autoRollbackEnabled=False)
            assert world.finished(deployment_id)["errorInformation"]["code"] == "MANUAL_STOP"


@pytest.mark.parametrize(("rollback", "alias"), [(True, ("1", {})), (False, ("1", {"2": 0.1}))])
def test_manual_stop_with_and_without_rollback(world, rollback, alias):
    world.group("CodeDeployDefault.LambdaCanary10Percent30Minutes")
    deployment_id = world.deploy()
    wait_until(lambda: world.aws.alias(FN, "live") == ("1", {"2": 0.1}))
    answer = call("StopDeployment", deploymentId=deployment_id, autoRollbackEnabled=rollback)
    assert answer["status"] in ("Pending", "Succeeded")
    info = world.finished(deployment_id)
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "MANUAL_STOP"
    assert ("rollbackInfo" in info) is rollback
    assert world.aws.alias(FN, "live") == alias
    assert error_code("StopDeployment", deploymentId=deployment_id) == "DeploymentAlreadyCompletedException"


def test_stop_follows_the_groups_rollback_setting_when_not_told(world):
    world.group(
        "CodeDeployDefault.LambdaCanary10Percent30Minutes",
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_STOP_ON_REQUEST"]},
    )
    deployment_id = world.deploy()
    wait_until(lambda: world.aws.alias(FN, "live") == ("1", {"2": 0.1}))
    call("StopDeployment", deploymentId=deployment_id)
    assert "rollbackInfo" in world.finished(deployment_id)
    assert world.aws.alias(FN, "live") == ("1", {})


def test_one_active_deployment_per_group(world):
    world.group("CodeDeployDefault.LambdaCanary10Percent30Minutes")
    first = world.deploy()
    with pytest.raises(api.CodeDeployError) as refused:
        world.deploy(appspec("1", "3"))
    assert refused.value.code == "DeploymentLimitExceededException"
    assert (
        refused.value.message == f"The Deployment Group '{GROUP}' already has an active Deployment '{first}'"
    )
    call("StopDeployment", deploymentId=first, autoRollbackEnabled=True)
    world.finished(first)
    # the rollback deployment completes too, then the group is free again
    wait_until(
        lambda: (
            not call("ListDeployments", applicationName=APP, includeOnlyStatuses=["InProgress", "Created"])[
                "deployments"
            ]
        )
    )
    assert world.deploy(appspec("1", "3"))


def test_current_version_must_match_the_alias(world):
    world.group()
    info = world.finished(world.deploy(appspec("3", "2")))
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "INVALID_LAMBDA_CONFIGURATION"
    assert "version 1" in info["errorInformation"]["message"]
    assert world.aws.alias_history == []
    assert world.aws.states() == ["START", "FAILURE"]


def test_missing_target_version_and_function(world):
    world.group()
    info = world.finished(world.deploy(appspec("1", "9")))
    assert info["errorInformation"]["code"] == "INVALID_LAMBDA_CONFIGURATION"
    world.aws.versions.pop(FN)
    info = world.finished(world.deploy())
    assert info["errorInformation"]["code"] == "INVALID_LAMBDA_FUNCTION"


def test_create_deployment_refusals(world):
    world.group()
    same = appspec("1", "1")
    assert error_code(
        "CreateDeployment", applicationName=APP, deploymentGroupName=GROUP, revision=revision(same)
    ) == ("InvalidRevisionException")
    bad_sha = {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec(), "sha256": "0" * 64}}
    assert error_code(
        "CreateDeployment", applicationName=APP, deploymentGroupName=GROUP, revision=bad_sha
    ) == ("InvalidRevisionException")
    assert error_code(
        "CreateDeployment", applicationName="nope", deploymentGroupName=GROUP, revision=revision(appspec())
    ) == ("ApplicationDoesNotExistException")
    assert error_code(
        "CreateDeployment", applicationName=APP, deploymentGroupName="nope", revision=revision(appspec())
    ) == ("DeploymentGroupDoesNotExistException")
    assert (
        error_code("CreateDeployment", applicationName=APP, deploymentGroupName=GROUP)
        == "RevisionRequiredException"
    )
    assert (
        error_code(
            "CreateDeployment",
            applicationName=APP,
            deploymentGroupName=GROUP,
            revision=revision(appspec()),
            deploymentConfigName="CodeDeployDefault.OneAtATime",
        )
        == "InvalidDeploymentConfigNameException"
    )
    assert call("ListDeployments")["deployments"] == []


def test_application_revision_returns_the_content(world):
    world.group()
    content = appspec(hooks={"BeforeAllowTraffic": PRE})
    world.aws.hooks[PRE] = world.reporting("Succeeded")
    deployment_id = world.deploy(content)
    info = world.finished(deployment_id)
    assert "content" not in info["revision"]["appSpecContent"]
    answer = call("GetApplicationRevision", applicationName=APP, revision=info["revision"])
    assert answer["revision"]["appSpecContent"]["content"] == content
    assert answer["revisionInfo"]["deploymentGroups"] == [GROUP]
    missing = {"revisionType": "AppSpecContent", "appSpecContent": {"sha256": "1" * 64}}
    assert (
        error_code("GetApplicationRevision", applicationName=APP, revision=missing)
        == "RevisionDoesNotExistException"
    )


def test_targets_and_listing(world):
    world.group("CodeDeployDefault.LambdaCanary10Percent5Minutes")
    deployment_id = world.deploy()
    world.finished(deployment_id)
    assert call("ListDeploymentTargets", deploymentId=deployment_id)["targetIds"] == [f"{FN}:live"]
    assert call(
        "ListDeploymentTargets", deploymentId=deployment_id, targetFilters={"TargetStatus": ["Failed"]}
    ) == {"targetIds": []}
    target = world.target(deployment_id)
    assert target["status"] == "Succeeded"
    assert target["targetArn"].endswith(f":function:{FN}:live")
    assert target["lambdaFunctionInfo"] == {
        "functionName": FN,
        "functionAlias": "live",
        "currentVersion": "1",
        "targetVersion": "2",
        "targetVersionWeight": 1.0,
    }
    batch = call("BatchGetDeploymentTargets", deploymentId=deployment_id, targetIds=[f"{FN}:live"])
    assert batch["deploymentTargets"][0]["lambdaTarget"] == target
    assert error_code("GetDeploymentTarget", deploymentId=deployment_id, targetId="other:live") == (
        "DeploymentTargetDoesNotExistException"
    )
    assert call("ListDeployments", applicationName=APP, deploymentGroupName=GROUP)["deployments"] == [
        deployment_id
    ]
    assert call("ListDeployments", includeOnlyStatuses=["Failed"])["deployments"] == []
    batch_infos = call("BatchGetDeployments", deploymentIds=[deployment_id, "d-AAAAAAAAA"])["deploymentsInfo"]
    assert [i["deploymentId"] for i in batch_infos] == [deployment_id]
    group = call("GetDeploymentGroup", applicationName=APP, deploymentGroupName=GROUP)["deploymentGroupInfo"]
    assert group["lastSuccessfulDeployment"]["deploymentId"] == deployment_id
    assert group["computePlatform"] == "Lambda"


def test_applications_groups_and_configs(world):
    assert error_code("CreateApplication", applicationName=APP) == "ApplicationAlreadyExistsException"
    assert call("GetApplication", applicationName=APP)["application"]["computePlatform"] == "Lambda"
    assert call("ListApplications")["applications"] == [APP]
    assert error_code("GetApplication", applicationName="ghost") == "ApplicationDoesNotExistException"
    assert (
        error_code(
            "CreateDeploymentGroup",
            applicationName=APP,
            deploymentGroupName=GROUP,
            serviceRoleArn="not-an-arn",
        )
        == "InvalidRoleException"
    )
    assert (
        error_code(
            "CreateDeploymentGroup",
            applicationName=APP,
            deploymentGroupName=GROUP,
            serviceRoleArn=ROLE,
            deploymentConfigName="Custom.Nope",
        )
        == "DeploymentConfigDoesNotExistException"
    )
    assert (
        error_code(
            "CreateDeploymentGroup",
            applicationName=APP,
            deploymentGroupName=GROUP,
            serviceRoleArn=ROLE,
            alarmConfiguration={"enabled": True, "alarms": [{"name": f"a{i}"} for i in range(11)]},
        )
        == "AlarmsLimitExceededException"
    )
    call("CreateDeploymentGroup", applicationName=APP, deploymentGroupName=GROUP, serviceRoleArn=ROLE)
    info = call("GetDeploymentGroup", applicationName=APP, deploymentGroupName=GROUP)["deploymentGroupInfo"]
    assert info["deploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert info["deploymentStyle"] == {
        "deploymentType": "BLUE_GREEN",
        "deploymentOption": "WITH_TRAFFIC_CONTROL",
    }

    custom = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 25, "canaryInterval": 2}}
    call(
        "CreateDeploymentConfig",
        deploymentConfigName="Canary25",
        computePlatform="Lambda",
        trafficRoutingConfig=custom,
    )
    assert (
        call("GetDeploymentConfig", deploymentConfigName="Canary25")["deploymentConfigInfo"][
            "trafficRoutingConfig"
        ]
        == custom
    )
    assert (
        error_code(
            "CreateDeploymentConfig",
            deploymentConfigName="Canary25",
            computePlatform="Lambda",
            trafficRoutingConfig=custom,
        )
        == "DeploymentConfigAlreadyExistsException"
    )
    assert "Canary25" in call("ListDeploymentConfigs")["deploymentConfigsList"]
    call(
        "UpdateDeploymentGroup",
        applicationName=APP,
        currentDeploymentGroupName=GROUP,
        deploymentConfigName="Canary25",
    )
    assert (
        error_code("DeleteDeploymentConfig", deploymentConfigName="Canary25")
        == "DeploymentConfigInUseException"
    )
    assert error_code("DeleteDeploymentConfig", deploymentConfigName="CodeDeployDefault.LambdaAllAtOnce") == (
        "InvalidOperationException"
    )
    call(
        "UpdateDeploymentGroup",
        applicationName=APP,
        currentDeploymentGroupName=GROUP,
        newDeploymentGroupName="renamed",
    )
    assert call("ListDeploymentGroups", applicationName=APP)["deploymentGroups"] == ["renamed"]
    call("DeleteDeploymentGroup", applicationName=APP, deploymentGroupName="renamed")
    call("DeleteDeploymentConfig", deploymentConfigName="Canary25")
    assert (
        error_code("GetDeploymentConfig", deploymentConfigName="Canary25")
        == "DeploymentConfigDoesNotExistException"
    )
    call("DeleteApplication", applicationName=APP)
    assert call("ListApplications")["applications"] == []


def test_custom_canary_config_drives_the_schedule(world):
    canary_config("Canary25", percentage=25, minutes=2)
    world.group("Canary25")
    assert world.finished(world.deploy())["status"] == "Succeeded"
    assert world.aws.alias_history == [(FN, "live", "1", {"2": 0.25}), (FN, "live", "2", {})]


def test_unknown_and_unimplemented_operations(world):
    assert error_code("LaunchRocket") == "UnknownOperationException"
    assert error_code("ListOnPremisesInstances") == "InvalidOperationException"


def test_shutdown_stops_running_deployments_promptly(world):
    world.aws.hooks[PRE] = lambda payload: None
    world.group()
    world.deploy(appspec(hooks={"BeforeAllowTraffic": PRE}))
    wait_until(lambda: world.aws.invocations)
    started = time.monotonic()
    world.engine.shutdown()
    assert time.monotonic() - started < 2
    assert not [t for t in threading.enumerate() if t.name.startswith("codedeploy-")]
