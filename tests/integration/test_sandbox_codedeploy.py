"""CodeDeploy Lambda deployments in the local sandbox, through plain boto3 clients only.

Real hook functions (tiny zips run by the sandbox's Lambda runtime) report their status with
PutLifecycleEventHookExecutionStatus; state-change events are read back from an SQS queue that an
EventBridge rule feeds. The sandbox runs fast (speed 600: a sandbox minute in 0.1 s)."""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sandbox import Sandbox
from sandbox.codedeploy.alarm_poller import alarm_poll_interval
from sandbox.queue_policy import let_aws_services_send
from tests.support.sandbox_support import trust_policy

SPEED = 600
APP = "rollout-sandbox"
FINAL = ("Succeeded", "Failed", "Stopped")

HOOK_SOURCE = """
import json
import os
import boto3

def handler(event, context):
    # what CodeDeploy sent goes to a queue the test reads
    boto3.client("sqs").send_message(QueueUrl=os.environ["PAYLOAD_QUEUE"], MessageBody=json.dumps(event))
    status = os.environ["HOOK_STATUS"]
    if status != "Silent":
        boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
            deploymentId=event["DeploymentId"],
            lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
            status=status,
        )
    return {"keys": sorted(event)}
"""


def zipped(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


class Env:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        kwargs = {
            "endpoint_url": sb.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "config": Config(retries={"max_attempts": 5, "mode": "standard"}),
        }
        self.codedeploy = boto3.client("codedeploy", **kwargs)
        self.lambda_ = boto3.client("lambda", **kwargs)
        self.cloudwatch = boto3.client("cloudwatch", **kwargs)
        self.events = boto3.client("events", **kwargs)
        self.sqs = boto3.client("sqs", **kwargs)
        self.iam = iam = boto3.client("iam", **kwargs)
        # CodeDeploy acts with the group's service role (AWS's managed policy for Lambda deployments);
        # the functions and hooks run with a role of their own.
        self.role = iam.create_role(
            RoleName="sandbox-codedeploy", AssumeRolePolicyDocument=trust_policy("codedeploy")
        )["Role"]["Arn"]
        iam.attach_role_policy(
            RoleName="sandbox-codedeploy",
            PolicyArn="arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda",
        )
        self.function_role = iam.create_role(
            RoleName="sandbox-hooks", AssumeRolePolicyDocument=trust_policy("lambda")
        )["Role"]["Arn"]
        iam.put_role_policy(
            RoleName="sandbox-hooks",
            PolicyName="report-and-record",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["codedeploy:PutLifecycleEventHookExecutionStatus", "sqs:SendMessage"],
                            "Resource": "*",
                        }
                    ],
                }
            ),
        )
        self.codedeploy.create_application(applicationName=APP, computePlatform="Lambda")
        self.hooks: dict[str, str] = {}
        self.payload_queue = self.sqs.create_queue(QueueName="hook-payloads")["QueueUrl"]

    # --- functions ---------------------------------------------------------------------------------
    def function(self, versions: int = 2) -> tuple[str, list[str]]:
        """A fresh function with `versions` published versions and alias live on the first."""
        name = f"fn-{uuid.uuid4().hex[:8]}"
        source = 'def handler(event, context):\n    return "v{n}"\n'
        self.lambda_.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=self.function_role,
            Handler="app.handler",
            Code={"ZipFile": zipped(source.format(n=1))},
        )
        self.lambda_.get_waiter("function_active_v2").wait(FunctionName=name)
        published = [self.lambda_.publish_version(FunctionName=name)["Version"]]
        for n in range(2, versions + 1):
            self.lambda_.update_function_code(FunctionName=name, ZipFile=zipped(source.format(n=n)))
            self.lambda_.get_waiter("function_updated_v2").wait(FunctionName=name)
            published.append(self.lambda_.publish_version(FunctionName=name)["Version"])
        self.lambda_.create_alias(FunctionName=name, Name="live", FunctionVersion=published[0])
        return name, published

    def hook(self, status: str) -> str:
        """A hook function that reports `status` (Succeeded, Failed) or never reports (Silent)."""
        if status not in self.hooks:
            name = f"CodeDeployHook_sandbox_{status}"
            self.lambda_.create_function(
                FunctionName=name,
                Runtime="python3.13",
                Role=self.function_role,
                Handler="app.handler",
                Code={"ZipFile": zipped(HOOK_SOURCE)},
                Environment={"Variables": {"HOOK_STATUS": status, "PAYLOAD_QUEUE": self.payload_queue}},
                Timeout=30,
            )
            self.lambda_.get_waiter("function_active_v2").wait(FunctionName=name)
            self.hooks[status] = name
        return self.hooks[status]

    def alias(self, function: str) -> tuple[str, dict[str, float]]:
        alias = self.lambda_.get_alias(FunctionName=function, Name="live")
        return alias["FunctionVersion"], (alias.get("RoutingConfig") or {}).get(
            "AdditionalVersionWeights"
        ) or {}

    # --- CodeDeploy --------------------------------------------------------------------------------
    def group(self, function: str, config: str, role: str | None = None, **extra: Any) -> None:
        self.codedeploy.create_deployment_group(
            applicationName=APP,
            deploymentGroupName=function,
            serviceRoleArn=role or self.role,
            deploymentConfigName=config,
            deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            **extra,
        )

    @staticmethod
    def appspec(function: str, current: str, target: str, **hooks: str) -> str:
        document: dict[str, Any] = {
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
            document["Hooks"] = [{event: name} for event, name in hooks.items()]
        return json.dumps(document)

    def deploy(self, function: str, content: str) -> str:
        revision = {
            "revisionType": "AppSpecContent",
            "appSpecContent": {"content": content, "sha256": hashlib.sha256(content.encode()).hexdigest()},
        }
        answer = self.codedeploy.create_deployment(
            applicationName=APP, deploymentGroupName=function, revision=revision
        )
        return answer["deploymentId"]

    def info(self, deployment_id: str) -> dict[str, Any]:
        return self.codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]

    def finished(self, deployment_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_until(
            lambda: (info := self.info(deployment_id))["status"] in FINAL and info, timeout, interval=0.05
        )

    def lifecycle(self, deployment_id: str, function: str) -> dict[str, dict[str, Any]]:
        target = self.codedeploy.get_deployment_target(
            deploymentId=deployment_id, targetId=f"{function}:live"
        )
        events = target["deploymentTarget"]["lambdaTarget"]["lifecycleEvents"]
        return {event["lifecycleEventName"]: event for event in events}

    # --- events ------------------------------------------------------------------------------------
    def event_queue(self, group: str) -> str:
        """An SQS queue receiving the CodeDeploy state-change events of `group`."""
        queue_url = self.sqs.create_queue(QueueName=f"events-{group}")["QueueUrl"]
        queue_arn = let_aws_services_send(self.sqs, queue_url)
        pattern = {
            "source": ["aws.codedeploy"],
            "detail-type": ["CodeDeploy Deployment State-change Notification"],
            "detail": {"deploymentGroup": [group]},
        }
        self.events.put_rule(Name=f"codedeploy-{group}", EventPattern=json.dumps(pattern))
        self.events.put_targets(Rule=f"codedeploy-{group}", Targets=[{"Id": "queue", "Arn": queue_arn}])
        return queue_url

    def received(
        self,
        queue_url: str,
        count: int,
        timeout: float = 15.0,
        keep: Callable[[dict[str, Any]], bool] = lambda body: True,
    ) -> list[dict[str, Any]]:
        """The first `count` message bodies on the queue that `keep` accepts (others are dropped)."""
        events: list[dict[str, Any]] = []

        def enough() -> bool:
            answer = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            for message in answer.get("Messages", []):
                body = json.loads(message["Body"])
                if keep(body):
                    events.append(body)
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            return len(events) >= count

        wait_until(enough, timeout, interval=0.1)
        return events


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with Sandbox(speed=SPEED) as sb:
        yield Env(sb)


def test_canary_shifts_ten_percent_then_everything(env):
    function, (v1, v2) = env.function()
    env.group(function, "CodeDeployDefault.LambdaCanary10Percent30Minutes")  # 3 s real at speed 600
    deployment_id = env.deploy(function, env.appspec(function, v1, v2))
    assert deployment_id.startswith("d-") and len(deployment_id) == 11 and deployment_id[2:].isalnum()
    wait_until(lambda: env.alias(function) == (v1, {v2: 0.1}), timeout=10)
    assert env.info(deployment_id)["status"] == "InProgress"
    info = env.finished(deployment_id)
    assert info["status"] == "Succeeded"
    assert env.alias(function) == (v2, {})
    allow = env.lifecycle(deployment_id, function)["AllowTraffic"]
    shifted_minutes = (allow["endTime"] - allow["startTime"]).total_seconds() / 60
    assert 30 <= shifted_minutes < 40  # sandbox time; a slow machine may add a little
    assert info["completeTime"] >= info["startTime"] >= info["createTime"]


def test_linear_steps_over_sandbox_time(env, monkeypatch):
    # Every weight CodeDeploy sets is recorded as it sets it: sampling the alias could miss a step
    # that lasts one real second on a busy machine.
    from sandbox.codedeploy.aws import RoleAws

    shifts: list[tuple[str, str, dict[str, float]]] = []
    real_update = RoleAws.update_alias

    def recorded(self, function, alias, version, weights):
        real_update(self, function, alias, version, weights)
        shifts.append((function, version, dict(weights)))

    monkeypatch.setattr(RoleAws, "update_alias", recorded)
    function, (v1, v2) = env.function()
    linear = {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 25, "linearInterval": 10}}
    env.codedeploy.create_deployment_config(
        deploymentConfigName=f"Linear25-{function}", computePlatform="Lambda", trafficRoutingConfig=linear
    )
    env.group(function, f"Linear25-{function}")  # a step per real second at speed 600
    deployment_id = env.deploy(function, env.appspec(function, v1, v2))

    assert env.finished(deployment_id)["status"] == "Succeeded"
    weights = [1.0 if version == v2 else w.get(v2, 0.0) for fn, version, w in shifts if fn == function]
    assert weights == [0.25, 0.5, 0.75, 1.0]
    assert env.alias(function) == (v2, {})


def test_all_at_once(env):
    function, (v1, v2) = env.function()
    env.group(function, "CodeDeployDefault.LambdaAllAtOnce")
    info = env.finished(env.deploy(function, env.appspec(function, v1, v2)))
    assert info["status"] == "Succeeded"
    assert info["deploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert env.alias(function) == (v2, {})


def test_hooks_are_invoked_with_the_real_payload_and_awaited(env):
    function, (v1, v2) = env.function()
    env.group(function, "CodeDeployDefault.LambdaAllAtOnce")
    hook = env.hook("Succeeded")
    content = env.appspec(function, v1, v2, BeforeAllowTraffic=hook, AfterAllowTraffic=hook)
    deployment_id = env.deploy(function, content)
    info = env.finished(deployment_id)
    assert info["status"] == "Succeeded"
    events = env.lifecycle(deployment_id, function)
    assert [e["status"] for e in events.values()] == ["Succeeded"] * 5
    assert events["BeforeAllowTraffic"]["endTime"] <= events["AllowTraffic"]["startTime"]
    assert events["AllowTraffic"]["endTime"] <= events["AfterAllowTraffic"]["startTime"]
    payloads = env.received(env.payload_queue, 2, keep=lambda body: body.get("DeploymentId") == deployment_id)
    for payload in payloads:
        assert set(payload) == {"DeploymentId", "LifecycleEventHookExecutionId"}
    assert payloads[0]["LifecycleEventHookExecutionId"] != payloads[1]["LifecycleEventHookExecutionId"]
    revision = env.codedeploy.get_application_revision(applicationName=APP, revision=info["revision"])
    assert revision["revision"]["appSpecContent"]["content"] == content
    assert "content" not in info["revision"]["appSpecContent"]


def test_the_service_role_decides_which_hooks_codedeploy_may_invoke(env):
    """AWSCodeDeployRoleForLambda allows lambda:InvokeFunction only on CodeDeployHook_* functions."""
    function, (v1, v2) = env.function()
    env.group(function, "CodeDeployDefault.LambdaAllAtOnce")
    hook = f"validate-{uuid.uuid4().hex[:6]}"
    env.lambda_.create_function(
        FunctionName=hook,
        Runtime="python3.13",
        Role=env.function_role,
        Handler="app.handler",
        Code={"ZipFile": zipped(HOOK_SOURCE)},
        Environment={"Variables": {"HOOK_STATUS": "Succeeded", "PAYLOAD_QUEUE": env.payload_queue}},
    )
    deployment_id = env.deploy(function, env.appspec(function, v1, v2, BeforeAllowTraffic=hook))
    info = env.finished(deployment_id)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert "AccessDeniedException" in info["errorInformation"]["message"]
    assert (
        "assumed-role/sandbox-codedeploy/AWSCodeDeploy is not authorized to perform: lambda:InvokeFunction"
        in (info["errorInformation"]["message"])
    )
    assert env.alias(function) == (v1, {})


def test_failed_hook_rolls_back_and_sends_failure(env):
    function, (v1, v2) = env.function()
    queue = env.event_queue(function)
    env.group(
        function,
        "CodeDeployDefault.LambdaAllAtOnce",
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
    )
    hook = env.hook("Failed")
    deployment_id = env.deploy(function, env.appspec(function, v1, v2, AfterAllowTraffic=hook))
    info = env.finished(deployment_id)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert hook in info["errorInformation"]["message"]
    assert "AfterAllowTraffic" in info["errorInformation"]["message"]
    rollback_id = info["rollbackInfo"]["rollbackDeploymentId"]
    assert rollback_id != deployment_id and rollback_id.startswith("d-")
    rollback = env.finished(rollback_id)
    assert rollback["status"] == "Succeeded" and rollback["creator"] == "codeDeployRollback"
    assert rollback["rollbackInfo"]["rollbackTriggeringDeploymentId"] == deployment_id
    assert env.alias(function) == (v1, {})
    events = env.received(queue, 4)
    mine = state_changes(events, deployment_id)
    assert set(mine) == {"START", "FAILURE"} and mine["START"] <= mine["FAILURE"]
    rolled_back = state_changes(events, rollback_id)
    assert set(rolled_back) == {"START", "SUCCESS"} and rolled_back["START"] <= rolled_back["SUCCESS"]
    first = events[0]
    assert first["source"] == "aws.codedeploy"
    assert first["detail-type"] == "CodeDeploy Deployment State-change Notification"
    assert first["detail"]["application"] == APP and first["detail"]["deploymentGroup"] == function
    assert first["detail"]["region"] == "us-east-1"
    assert any(arn.endswith(f":deploymentgroup:{APP}/{function}") for arn in first["resources"])


def state_changes(events: list[dict[str, Any]], deployment_id: str) -> dict[str, str]:
    """Each state a deployment announced, with the event's time. EventBridge promises no delivery order
    (the sandbox delivers targets from a pool, so two events a moment apart can arrive either way round):
    when they happened is the events' own time, and each state is announced once."""
    found = [
        (e["detail"]["state"], e["time"]) for e in events if e["detail"]["deploymentId"] == deployment_id
    ]
    assert len(found) == len(dict(found)), f"a state announced twice: {found}"
    return dict(found)


def test_silent_hook_times_out(env):
    function, (v1, v2) = env.function()
    env.group(function, "CodeDeployDefault.LambdaAllAtOnce")
    hook = env.hook("Silent")
    deployment_id = env.deploy(function, env.appspec(function, v1, v2, BeforeAllowTraffic=hook))
    info = env.finished(deployment_id, timeout=3600 / SPEED + 20)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "TIMEOUT"
    waited = env.lifecycle(deployment_id, function)["BeforeAllowTraffic"]
    assert (waited["endTime"] - waited["startTime"]).total_seconds() >= 3600
    assert env.alias(function) == (v1, {})


def errors_alarm(env, name, function):
    """An alarm on the function's errors over an hour: not in ALARM until a test sets it so."""
    env.cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        Statistic="Sum",
        Period=3600,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    return name


def long_canary(env, function):
    """A canary holding 10% for ten sandbox hours (a real minute at speed 600), for tests that act during
    the 10% step: the predefined 30-minute canary gives them only 3 real seconds, which a loaded machine
    can spend before the test acts, and the deployment then succeeds first."""
    name = f"Canary10Long-{function}"
    canary = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 600}}
    env.codedeploy.create_deployment_config(
        deploymentConfigName=name, computePlatform="Lambda", trafficRoutingConfig=canary
    )
    return name


def test_alarm_stops_and_rolls_back(env):
    function, (v1, v2) = env.function()
    queue = env.event_queue(function)
    alarm = errors_alarm(env, f"{function}-errors", function)
    env.group(
        function,
        long_canary(env, function),
        alarmConfiguration={"enabled": True, "alarms": [{"name": alarm}]},
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_STOP_ON_ALARM"]},
    )
    deployment_id = env.deploy(function, env.appspec(function, v1, v2))
    wait_until(lambda: env.alias(function) == (v1, {v2: 0.1}), timeout=10)
    env.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test")
    info = env.finished(deployment_id)
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert alarm in info["errorInformation"]["message"]
    assert env.finished(info["rollbackInfo"]["rollbackDeploymentId"])["status"] == "Succeeded"
    assert env.alias(function) == (v1, {})
    events = env.received(queue, 4)
    stopped = state_changes(events, deployment_id)
    assert set(stopped) == {"START", "STOP"} and stopped["START"] <= stopped["STOP"]


@pytest.mark.parametrize("rollback", [True, False])
def test_manual_stop(env, rollback):
    function, (v1, v2) = env.function()
    env.group(function, long_canary(env, function))
    deployment_id = env.deploy(function, env.appspec(function, v1, v2))
    wait_until(lambda: env.alias(function) == (v1, {v2: 0.1}), timeout=10)
    answer = env.codedeploy.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=rollback)
    assert answer["status"] in ("Pending", "Succeeded")
    info = env.finished(deployment_id)
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "MANUAL_STOP"
    if rollback:
        assert env.finished(info["rollbackInfo"]["rollbackDeploymentId"])["status"] == "Succeeded"
        assert env.alias(function) == (v1, {})
    else:
        assert "rollbackInfo" not in info
        assert env.alias(function) == (v1, {v2: 0.1})  # stopping without rollback leaves the split
    with pytest.raises(ClientError) as refused:
        env.codedeploy.stop_deployment(deploymentId=deployment_id)
    assert refused.value.response["Error"]["Code"] == "DeploymentAlreadyCompletedException"


def test_second_deployment_in_a_group_is_refused(env):
    function, (v1, v2, v3) = env.function(versions=3)
    env.group(function, "CodeDeployDefault.LambdaCanary10Percent30Minutes")
    first = env.deploy(function, env.appspec(function, v1, v2))
    with pytest.raises(ClientError) as refused:
        env.deploy(function, env.appspec(function, v1, v3))
    error = refused.value.response["Error"]
    assert error["Code"] == "DeploymentLimitExceededException"
    assert first in error["Message"]
    env.codedeploy.stop_deployment(deploymentId=first, autoRollbackEnabled=False)
    env.finished(first)


def test_current_version_must_match_the_alias(env):
    function, (v1, v2, v3) = env.function(versions=3)
    env.group(function, "CodeDeployDefault.LambdaAllAtOnce")
    info = env.finished(env.deploy(function, env.appspec(function, v2, v3)))
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "INVALID_LAMBDA_CONFIGURATION"
    assert env.alias(function) == (v1, {})


def test_bad_requests_get_aws_error_codes(env):
    function, (v1, _) = env.function()
    env.group(function, "CodeDeployDefault.LambdaAllAtOnce")

    def code(call: Callable[[], Any]) -> str:
        with pytest.raises(ClientError) as refused:
            call()
        return str(refused.value.response["Error"]["Code"])

    assert code(lambda: env.deploy(function, env.appspec(function, v1, v1))) == "InvalidRevisionException"
    assert (
        code(lambda: env.codedeploy.get_deployment(deploymentId="d-NOPE00000"))
        == "DeploymentDoesNotExistException"
    )
    assert (
        code(
            lambda: env.codedeploy.put_lifecycle_event_hook_execution_status(
                deploymentId="d-NOPE00000", lifecycleEventHookExecutionId="x", status="Succeeded"
            )
        )
        == "DeploymentDoesNotExistException"
    )
    assert (
        code(lambda: env.codedeploy.get_application(applicationName="ghost"))
        == "ApplicationDoesNotExistException"
    )
    configs = env.codedeploy.list_deployment_configs()["deploymentConfigsList"]
    assert sum(1 for c in configs if c.startswith("CodeDeployDefault.Lambda")) == 9


def test_codedeploy_reads_each_alarm_state_as_describe_alarms_answers_it(env):
    """CodeDeploy's own client parses only the name and state of each alarm (sandbox/codedeploy/aws.py):
    it reads them as a full client reads the same answer, for a hundred names at once, and
    a refusal reaches it with the service's code and message."""
    from sandbox.codedeploy.aws import AwsCallError, BotoAws

    names = []
    for index in range(99):
        names.append(errors_alarm(env, f"states-{uuid.uuid4().hex[:8]}", f"fn-{index}"))
        if index % 3 == 0:
            env.cloudwatch.set_alarm_state(AlarmName=names[-1], StateValue="ALARM", StateReason="test")
    names.append("states-no-such-alarm")
    credentials = env.sb.iam.issue(env.role, "AWSCodeDeploy").boto3_arguments()
    read = BotoAws(env.sb.endpoint_url, "us-east-1", credentials).alarm_states(names)
    answer = env.cloudwatch.describe_alarms(AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    expected = {a["AlarmName"]: a["StateValue"] for a in answer["MetricAlarms"] + answer["CompositeAlarms"]}
    assert read == expected and len(read) == 99 and "states-no-such-alarm" not in read
    assert list(read.values()).count("ALARM") == 33

    blind = env.iam.create_role(
        RoleName=f"blind-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument=trust_policy("codedeploy")
    )["Role"]["Arn"]
    credentials = env.sb.iam.issue(blind, "AWSCodeDeploy").boto3_arguments()
    with pytest.raises(AwsCallError) as refused:
        BotoAws(env.sb.endpoint_url, "us-east-1", credentials).alarm_states(names[:1])
    assert refused.value.code == "AccessDenied"
    assert "is not authorized to perform: cloudwatch:DescribeAlarms" in refused.value.message


def test_deployments_of_one_role_read_their_alarms_once_per_poll_tick(env):
    """Six deployments running as one service role make about one DescribeAlarms per poll tick between them
    (each made its own before: six a tick), and each still judges its own alarms."""
    deployments = {}
    for _ in range(6):
        function, (v1, v2) = env.function()
        alarm = errors_alarm(env, f"{function}-errors", function)
        env.group(
            function,
            long_canary(env, function),
            alarmConfiguration={"enabled": True, "alarms": [{"name": alarm}]},
        )
        deployments[function] = (env.deploy(function, env.appspec(function, v1, v2)), v1, v2)
    for function, (_, v1, v2) in deployments.items():
        wait_until(lambda f=function, v1=v1, v2=v2: env.alias(f) == (v1, {v2: 0.1}), timeout=10)

    clock = env.sb.clock
    interval = alarm_poll_interval(clock.real_seconds)
    began = clock.now()
    mark = env.sb.calls.mark()
    wait_until(lambda: clock.now() >= began + 30 * interval)
    polls = [
        call
        for call in env.sb.calls.since(mark)
        if (call.service, call.operation, call.role) == ("cloudwatch", "DescribeAlarms", "sandbox-codedeploy")
    ]
    ended = clock.now()
    ticks = int(ended // interval - began // interval) + 1
    assert 0 < len(polls) <= ticks + 1  # a call logged after the mark may have begun in the tick before
    assert all(call.ok for call in polls)

    fired = next(iter(deployments))
    env.cloudwatch.set_alarm_state(AlarmName=f"{fired}-errors", StateValue="ALARM", StateReason="test")
    info = env.finished(deployments[fired][0])
    assert info["status"] == "Stopped" and info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert f"{fired}-errors" in info["errorInformation"]["message"]
    for function, (deployment_id, _, _) in deployments.items():
        if function != fired:
            assert env.info(deployment_id)["status"] == "InProgress"
            env.codedeploy.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=False)
            assert env.finished(deployment_id)["errorInformation"]["code"] == "MANUAL_STOP"


def test_each_service_role_reads_the_alarms_itself(env):
    """Two roles' deployments watch the same alarm at once: the one whose role may not DescribeAlarms fails
    after its tolerated poll failures (or, told to ignore them, goes on blind), the other reads it and stops
    when it fires. Neither is answered from the other role's reads."""
    blind = "sandbox-codedeploy-blind"
    blind_role = env.iam.create_role(RoleName=blind, AssumeRolePolicyDocument=trust_policy("codedeploy"))[
        "Role"
    ]["Arn"]
    env.iam.put_role_policy(
        RoleName=blind,
        PolicyName="lambda-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["lambda:GetAlias", "lambda:UpdateAlias"], "Resource": "*"}
                ],
            }
        ),
    )
    alarm = errors_alarm(env, f"shared-{uuid.uuid4().hex[:8]}", "any")
    started = {}
    for name, role, ignore in (
        ("reads", env.role, False),
        ("fails", blind_role, False),
        ("ignores", blind_role, True),
    ):
        function, (v1, v2) = env.function()
        env.group(
            function,
            long_canary(env, function),
            role=role,
            alarmConfiguration={
                "enabled": True,
                "ignorePollAlarmFailure": ignore,
                "alarms": [{"name": alarm}],
            },
        )
        started[name] = (function, env.deploy(function, env.appspec(function, v1, v2)), v1, v2)

    _, fails_id, v1, _ = started["fails"]
    info = env.finished(fails_id)
    assert info["status"] == "Failed" and info["errorInformation"]["code"] == "INTERNAL_ERROR"
    assert (
        f"assumed-role/{blind}/AWSCodeDeploy is not authorized to perform: cloudwatch:DescribeAlarms"
        in info["errorInformation"]["message"]
    )
    for name in ("reads", "ignores"):
        function, deployment_id, v1, v2 = started[name]
        wait_until(lambda f=function, v1=v1, v2=v2: env.alias(f) == (v1, {v2: 0.1}), timeout=10)
        assert env.info(deployment_id)["status"] == "InProgress"

    env.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test")
    info = env.finished(started["reads"][1])
    assert info["status"] == "Stopped" and info["errorInformation"]["code"] == "ALARM_ACTIVE"
    # The blind role never learns of the alarm: its deployment goes on, as one polling alone did. Two of its
    # polls after the alarm fired: the first one's verdict is in by the time the second is made.
    ignores_id = started["ignores"][1]
    mark = env.sb.calls.mark()
    wait_until(
        lambda: (
            sum(1 for c in env.sb.calls.since(mark) if c.role == blind and c.operation == "DescribeAlarms")
            >= 2
        )
    )
    assert env.info(ignores_id)["status"] == "InProgress"
    env.codedeploy.stop_deployment(deploymentId=ignores_id, autoRollbackEnabled=False)
    assert env.finished(ignores_id)["errorInformation"]["code"] == "MANUAL_STOP"
