"""Every command's arguments, output, exit code and --json shape, against moto and a scripted CodeDeploy."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from cli.backend import Backend
from cli.errors import ExitCode
from cli.main import app
from rollout import aws
from rollout.ledger import Ledger, Release
from rollout.states import ReasonCode, State
from tests.support.aws_stack import (
    APPLICATION,
    LEDGER_TABLE,
    StackUnderTest,
    create_stack,
    moto_client,
)

STACK = "rollout-dev"
FUNCTION = "orders"
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def zip_bytes(label: str = "v1") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("app.py", f"def lambda_handler(event, context):\n    return {label!r}\n")
    return buffer.getvalue()


@pytest.fixture
def world(moto: None) -> StackUnderTest:
    """The stack's resources in moto, a CloudFormation stack reporting them, and a function to release."""
    created = create_stack()
    outputs = {
        "ArtifactBucketName": created.bucket,
        "LedgerTableName": LEDGER_TABLE,
        "NotificationTopicArn": created.topic_arn,
        "CodeDeployApplicationName": APPLICATION,
    }
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    moto_client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    moto_client("lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.13",
        Role=created.function_role_arn,
        Handler="app.lambda_handler",
        Code={"ZipFile": zip_bytes("v0")},
    )
    return created


def tags() -> dict[str, str]:
    lam = moto_client("lambda")
    arn = lam.get_function(FunctionName=FUNCTION)["Configuration"]["FunctionArn"]
    return dict(lam.list_tags(Resource=arn)["Tags"])


def artifact(tmp_path: Path, name: str = "build.zip", data: bytes | None = None) -> Path:
    path = tmp_path / name
    path.write_bytes(zip_bytes() if data is None else data)
    return path


# --- register --------------------------------------------------------------------------------------
def test_register_tags_the_function(world: StackUnderTest) -> None:
    result = invoke("register", FUNCTION, "--config", "Linear10PercentEvery1Minute")
    assert result.exit_code == 0, result.output
    assert "orders is managed by Rollout" in result.stdout
    assert "none yet: the first release creates it" in result.stdout
    assert f"s3://{world.bucket}/orders/" in result.stdout
    assert tags() == {
        "rollout:managed": "true",
        "rollout:alias": "live",
        "rollout:deployment-config": "Linear10PercentEvery1Minute",
    }


def test_register_json_and_alarms(world: StackUnderTest) -> None:
    cw = moto_client("cloudwatch")
    for name in ("orders-5xx", "orders-latency"):
        cw.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    result = invoke(
        "register",
        FUNCTION,
        "--alias",
        "prod",
        "--alarm",
        "orders-5xx",
        "--alarm",
        "orders-latency",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["alias"] == "prod" and data["alias_version"] is None
    assert data["alarms"] == ["orders-5xx", "orders-latency"]
    assert data["upload_to"] == f"s3://{world.bucket}/orders/"
    assert tags()["rollout:alarms"] == "orders-5xx orders-latency"
    # Registering again without alarms stops watching them.
    assert invoke("register", FUNCTION, "--alias", "prod").exit_code == 0
    assert "rollout:alarms" not in tags()


def test_register_unknown_function_is_not_found(world: StackUnderTest) -> None:
    result = invoke("register", "nope")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "function nope not found" in result.stderr


def test_register_missing_alarm_is_not_found(world: StackUnderTest) -> None:
    result = invoke("register", FUNCTION, "--alarm", "no-such-alarm")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "alarm not found: no-such-alarm" in result.stderr
    assert "rollout:managed" not in tags()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alias", "42"], "not a valid alias name"),
        (["--config", "CodeDeployDefault.LambdaCanary50Percent1Minute"], "not a Lambda deployment config"),
        (["--alarm", "two words"], "cannot contain spaces"),
    ],
)
def test_register_bad_input_is_a_usage_error(world: StackUnderTest, args: list[str], message: str) -> None:
    result = invoke("register", FUNCTION, *args)
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    assert invoke("register", FUNCTION, "--colour", "red").exit_code == ExitCode.USAGE


# --- deploy ----------------------------------------------------------------------------------------
def test_deploy_uploads_with_metadata(world: StackUnderTest, tmp_path: Path) -> None:
    invoke("register", FUNCTION)
    path = artifact(tmp_path)
    result = invoke(
        "deploy",
        FUNCTION,
        str(path),
        "--commit",
        "abc1234",
        "--message",
        "fix café",
        "--author",
        "ana",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["key"].startswith("orders/") and data["key"].endswith(".zip")
    assert data["key"][-12:-4] == data["sha256"][:8]
    s3 = moto_client("s3")
    head = s3.head_object(Bucket=world.bucket, Key=data["key"], VersionId=data["version_id"])
    assert head["Metadata"]["commit"] == "abc1234"
    assert head["Metadata"]["author"] == "ana"
    assert head["Metadata"]["message"].startswith("=?UTF-8?B?")
    assert s3.get_object(Bucket=world.bucket, Key=data["key"])["Body"].read() == path.read_bytes()
    # Human output names the key and the version.
    human = invoke("deploy", FUNCTION, str(path))
    assert "uploaded s3://" in human.stdout and "version " in human.stdout


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.zip", None, "no such file"),
        ("build.zip", b"plain text", "not a valid zip"),
        ("build.tar", b"x", "must be a .zip"),
        ("empty.zip", b"", "the file is empty"),
    ],
)
def test_deploy_rejects_bad_files(
    world: StackUnderTest, tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    invoke("register", FUNCTION)
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = invoke("deploy", FUNCTION, str(path))
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr
    assert "Versions" not in moto_client("s3").list_object_versions(Bucket=world.bucket)


def test_deploy_refuses_an_unmanaged_function(world: StackUnderTest, tmp_path: Path) -> None:
    result = invoke("deploy", FUNCTION, str(artifact(tmp_path)))
    assert result.exit_code == ExitCode.USAGE
    assert "not managed by Rollout" in result.stderr and "rollout register orders" in result.stderr


class FakeDeployer:
    """Plays the control plane for --wait: each upload becomes a release that ends in `final`."""

    def __init__(self, bucket: str, final: State, reason: str = "", reason_code: str = "") -> None:
        self.bucket = bucket
        self.final = final
        self.reason = reason
        self.reason_code = reason_code
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        s3 = moto_client("s3")
        ledger = Ledger(LEDGER_TABLE)
        seen: set[str] = set()
        while not self.stop.wait(0.05):
            for version in s3.list_object_versions(Bucket=self.bucket).get("Versions", []):
                if version["VersionId"] in seen:
                    continue
                seen.add(version["VersionId"])
                release = ledger.create(
                    Release(
                        function=FUNCTION,
                        release_id=f"r{len(seen)}",
                        bucket=self.bucket,
                        key=version["Key"],
                        object_version=version["VersionId"],
                    )
                )
                if self.final == State.HELD:  # a release a freeze holds never deploys
                    ledger.transition(release, State.HELD, reason=self.reason, reason_code=self.reason_code)
                    continue
                release = ledger.transition(release, State.DEPLOYING, current_version="1", target_version="2")
                ledger.transition(
                    release,
                    self.final,
                    reason=self.reason,
                    reason_code="HOOK_EXECUTION_FAILURE" if self.final == State.ROLLED_BACK else "",
                )

    def __enter__(self) -> FakeDeployer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.mark.parametrize(
    ("final", "exit_code"),
    [(State.SUCCEEDED, ExitCode.OK), (State.ROLLED_BACK, ExitCode.RELEASE_FAILED)],
)
def test_deploy_wait_follows_the_release_to_its_end(
    world: StackUnderTest, tmp_path: Path, final: State, exit_code: ExitCode
) -> None:
    invoke("register", FUNCTION)
    with FakeDeployer(world.bucket, final, reason="pre-traffic check health failed: 503"):
        result = invoke(
            "deploy", FUNCTION, str(artifact(tmp_path)), "--wait", "--timeout", "30", "--interval", "0.05"
        )
    assert result.exit_code == exit_code, result.output
    assert f"{final}:" in result.stdout
    if final == State.ROLLED_BACK:
        assert "pre-traffic check health failed: 503" in result.stdout


def test_deploy_wait_json_carries_the_release(world: StackUnderTest, tmp_path: Path) -> None:
    invoke("register", FUNCTION)
    with FakeDeployer(world.bucket, State.SUCCEEDED):
        result = invoke("deploy", FUNCTION, str(artifact(tmp_path)), "--wait", "--json", "--interval", "0.05")
    data = json.loads(result.stdout)
    assert result.exit_code == 0
    assert data["succeeded"] is True
    assert data["release"]["state"] == "SUCCEEDED"
    assert data["release"]["key"] == data["key"]
    assert data["release"]["object_version"] == data["version_id"]


def test_deploy_wait_on_an_upload_a_freeze_holds_says_so_at_once(
    world: StackUnderTest, tmp_path: Path
) -> None:
    invoke("register", FUNCTION)
    why = "frozen by alice until 2026-12-01T00:00:00+00:00: release weekend"
    with FakeDeployer(world.bucket, State.HELD, reason=why, reason_code=ReasonCode.FROZEN):
        result = invoke(
            "deploy", FUNCTION, str(artifact(tmp_path)), "--wait", "--timeout", "60", "--interval", "0.05"
        )
    assert result.exit_code == ExitCode.HELD, result.output
    assert why in result.stderr
    assert f"rollout unfreeze {FUNCTION}" in result.stderr


def test_deploy_wait_follows_an_upload_a_preflight_alarm_holds_until_timeout(
    world: StackUnderTest, tmp_path: Path
) -> None:
    invoke("register", FUNCTION)
    with FakeDeployer(
        world.bucket,
        State.HELD,
        reason="alarm orders-errors is ALARM",
        reason_code=ReasonCode.PREFLIGHT_ALARM,
    ):
        result = invoke(
            "deploy", FUNCTION, str(artifact(tmp_path)), "--wait", "--timeout", "1", "--interval", "0.05"
        )
    assert result.exit_code == ExitCode.TIMED_OUT, "an alarm hold clears by itself: --wait keeps following"
    assert "still HELD" in result.stderr


def test_deploy_wait_times_out_when_nothing_happens(world: StackUnderTest, tmp_path: Path) -> None:
    invoke("register", FUNCTION)
    result = invoke(
        "deploy", FUNCTION, str(artifact(tmp_path)), "--wait", "--timeout", "1", "--interval", "0.1"
    )
    assert result.exit_code == ExitCode.TIMED_OUT
    assert "not yet in the ledger" in result.stderr


# --- status / history ------------------------------------------------------------------------------
def seed_releases() -> None:
    ledger = Ledger(LEDGER_TABLE)
    first = ledger.create(Release(function=FUNCTION, release_id="0001", key="orders/a.zip"))
    ledger.transition(
        first, State.BOOTSTRAPPED, target_version="1", deployment_config="Canary10Percent5Minutes"
    )
    second = ledger.create(Release(function=FUNCTION, release_id="0002", key="orders/b.zip"))
    second = ledger.transition(
        second, State.DEPLOYING, current_version="1", target_version="2", deployment_id="d-ABCDEFGH1"
    )
    ledger.transition(
        second,
        State.ROLLED_BACK,
        reason_code="ALARM_ACTIVE",
        reason="alarm rollout-dev-canary-orders-v2-errors went into ALARM during the deployment",
    )
    third = ledger.create(Release(function=FUNCTION, release_id="0003", key="orders/c.zip"))
    ledger.transition(
        third, State.DEPLOYING, current_version="1", target_version="3", deployment_id="d-ABCDEFGH2"
    )
    ledger.acquire_lock(FUNCTION, "0003")
    ledger.attach_deployment(FUNCTION, "0003", "d-ABCDEFGH2")


def test_status_lists_managed_functions(world: StackUnderTest) -> None:
    invoke("register", FUNCTION)
    seed_releases()
    result = invoke("status")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("orders"))
    assert "0003" in row and "DEPLOYING" in row and "d-ABCDEFGH2" in row and "held by 0003" in row
    data = json.loads(invoke("status", "--json").stdout)
    assert data["stack"] == STACK
    (fn,) = data["functions"]
    assert fn["function"] == FUNCTION and fn["alias"] == "live" and fn["live_version"] == ""
    assert fn["latest"]["release_id"] == "0003" and fn["lock"]["deployment_id"] == "d-ABCDEFGH2"
    assert fn["queued"] == 0


def test_status_of_one_function_shows_recent_releases(world: StackUnderTest) -> None:
    invoke("register", FUNCTION)
    seed_releases()
    data = json.loads(invoke("status", FUNCTION, "--json").stdout)
    assert [r["release_id"] for r in data["recent"]] == ["0003", "0002", "0001"]
    human = invoke("status", FUNCTION).stdout
    assert "Recent releases of orders" in human and "went into ALARM" in human


def split_alias_after_a_failed_rollback() -> None:
    """v1 and v2 published, the alias left at v1 with 10% on v2, and the release recorded so."""
    lam = moto_client("lambda")
    for label in ("v1", "v2"):
        lam.update_function_code(FunctionName=FUNCTION, ZipFile=zip_bytes(label))
        lam.publish_version(FunctionName=FUNCTION)
    lam.create_alias(
        FunctionName=FUNCTION,
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )
    ledger = Ledger(LEDGER_TABLE)
    release = ledger.create(Release(function=FUNCTION, release_id="0004", key="orders/d.zip"))
    release = ledger.transition(
        release, State.DEPLOYING, current_version="1", target_version="2", deployment_id="d-ABCDEFGH3"
    )
    ledger.transition(
        release,
        State.FAILED,
        reason_code="ROLLBACK_FAILED",
        reason="alarm fired; then rollback deployment d-RB failed: UpdateAlias was refused",
    )


def test_status_says_the_alias_may_be_split_after_a_failed_rollback_and_how_to_fix_it(
    world: StackUnderTest,
) -> None:
    invoke("register", FUNCTION)
    split_alias_after_a_failed_rollback()

    human = invoke("status", FUNCTION).stdout

    flat = " ".join(human.split())
    assert "CodeDeploy's rollback of v2 failed (release 0004); alias live may be split" in flat
    assert "it still sends v2 10% of its traffic elsewhere" in flat
    assert (
        "aws lambda update-alias --function-name orders --name live --function-version 1 "
        "--routing-config AdditionalVersionWeights={}" in flat
    )
    (row,) = json.loads(invoke("status", "--json").stdout)["functions"]
    assert row["alias_weights"] == {"2": 0.1}
    assert row["attention"][0].startswith("orders: CodeDeploy's rollback of v2 failed")


def live_unproven_then(*later: State) -> Ledger:
    """v1 went live (BOOTSTRAPPED), then CodeDeploy completed v2 although its post-traffic hook recorded
    Failed (UNPROVEN_SUCCESS); the alias serves v2. `later` releases follow, moving nothing."""
    lam = moto_client("lambda")
    for label in ("v1", "v2"):
        lam.update_function_code(FunctionName=FUNCTION, ZipFile=zip_bytes(label))
        lam.publish_version(FunctionName=FUNCTION)
    lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="2")
    ledger = Ledger(LEDGER_TABLE)
    first = ledger.create(Release(function=FUNCTION, release_id="0001", key="orders/a.zip"))
    ledger.transition(first, State.BOOTSTRAPPED, target_version="1")
    second = ledger.create(Release(function=FUNCTION, release_id="0002", key="orders/b.zip"))
    second = ledger.transition(
        second, State.DEPLOYING, current_version="1", target_version="2", deployment_id="d-ABCDEFGH2"
    )
    ledger.record_hook_result(
        FUNCTION,
        "0002",
        "post_traffic",
        {"verdict": "Failed", "reason": "post-traffic canary: error rate 9%"},
    )
    ledger.transition(
        second,
        State.FAILED,
        reason_code="UNPROVEN_SUCCESS",
        reason="CodeDeploy completed deployment d-ABCDEFGH2, so alias live serves version 2, but ...",
    )
    for n, state in enumerate(later, start=3):
        ledger.transition(ledger.create(Release(function=FUNCTION, release_id=f"000{n}", key="k.zip")), state)
    return ledger


@pytest.mark.parametrize("later", [(), (State.UNCHANGED, State.REJECTED)], ids=["latest", "past-others"])
def test_status_and_history_say_a_version_is_live_unproven_and_what_to_run(
    world: StackUnderTest, later: tuple[State, ...]
) -> None:
    invoke("register", FUNCTION)
    live_unproven_then(*later)

    for command in ("status", "history"):
        flat = " ".join(invoke(command, FUNCTION).stdout.split())
        assert "orders: v2 is LIVE on alias live but UNPROVEN" in flat, command
        assert "post-traffic canary: error rate 9%" in flat and "rollout rollback orders" in flat, command
    (row,) = json.loads(invoke("status", "--json").stdout)["functions"]
    assert row["live_unproven"] == "0002" and "UNPROVEN" in row["attention"][0]


def test_a_version_live_unproven_is_no_longer_flagged_once_rolled_back(world: StackUnderTest) -> None:
    invoke("register", FUNCTION)
    ledger = live_unproven_then()
    rollback = ledger.create(Release(function=FUNCTION, release_id="0003", key="", kind="rollback"))
    rollback = ledger.transition(
        rollback, State.DEPLOYING, current_version="2", target_version="1", deployment_id="d-ABCDEFGH3"
    )
    ledger.transition(rollback, State.SUCCEEDED)
    moto_client("lambda").update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1")

    (row,) = json.loads(invoke("status", "--json").stdout)["functions"]
    assert row["live_unproven"] is None and row["attention"] == []
    assert "LIVE on alias" not in invoke("history", FUNCTION).stdout
    # The release itself still says what happened to it.
    assert "v2 went live UNPROVEN" in " ".join(invoke("history", FUNCTION).stdout.split())


def test_status_has_nothing_to_say_about_a_healthy_alias(world: StackUnderTest) -> None:
    invoke("register", FUNCTION)
    seed_releases()
    (row,) = json.loads(invoke("status", "--json").stdout)["functions"]
    assert row["attention"] == [] and row["alias_weights"] == {}


def test_status_without_functions_says_how_to_onboard(world: StackUnderTest) -> None:
    result = invoke("status")
    assert result.exit_code == 0
    assert "rollout register FUNCTION" in result.stdout


def test_history_table_and_json(world: StackUnderTest) -> None:
    seed_releases()
    result = invoke("history", FUNCTION, "--limit", "2")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert any("0003" in line and "DEPLOYING" in line for line in lines)
    assert any(
        "0002" in line and "ROLLED_BACK" in line and "1 → 2" in line and "d-ABCDEFGH1" in line
        for line in lines
    )
    assert not any("0001" in line for line in lines)
    data = json.loads(invoke("history", FUNCTION, "--json").stdout)
    assert data["function"] == FUNCTION
    assert [r["state"] for r in data["releases"]] == ["DEPLOYING", "ROLLED_BACK", "BOOTSTRAPPED"]
    assert data["releases"][1]["reason_code"] == "ALARM_ACTIVE"


def test_history_of_a_function_without_releases(world: StackUnderTest) -> None:
    result = invoke("history", FUNCTION)
    assert result.exit_code == 0 and "no releases yet" in result.stdout


@pytest.mark.parametrize("command", [["history", "ghost"], ["status", "ghost"]])
def test_unknown_function_is_not_found(world: StackUnderTest, command: list[str]) -> None:
    result = invoke(*command, "--json")
    assert result.exit_code == ExitCode.NOT_FOUND
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 3 and "ghost not found" in error["message"]


# --- stack and endpoint errors ---------------------------------------------------------------------
def test_missing_stack_is_not_found_with_a_hint(world: StackUnderTest) -> None:
    result = invoke("status", "--stack", "nope")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "stack nope not found" in result.stderr and "rollout sandbox up" in result.stderr


@pytest.fixture
def restore_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """--endpoint sets AWS_ENDPOINT_URL for the process: record it so the test leaves it as it was."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "recorded")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    yield
    aws.reset_clients()


def test_unreachable_endpoint_is_an_aws_error(restore_endpoint: None) -> None:
    result = invoke("status", "--endpoint", "http://127.0.0.1:9")
    assert result.exit_code == ExitCode.AWS_ERROR
    assert "cannot reach" in result.stderr and "rollout sandbox up" in result.stderr


# --- watch / abort ---------------------------------------------------------------------------------
class ScriptedCodeDeploy:
    """A deployment that moves one step per GetDeployment: the statuses and lifecycle events given."""

    def __init__(self, steps: list[tuple[str, dict[str, str]]], error: dict[str, str] | None = None) -> None:
        self.steps = steps
        self.error = error
        self.calls = 0
        self.stopped: list[dict[str, Any]] = []

    def _step(self) -> tuple[str, dict[str, str]]:
        return self.steps[min(self.calls, len(self.steps) - 1)]

    def _check(self, deployment_id: str, operation: str) -> None:
        if not deployment_id.startswith("d-"):
            raise ClientError(
                {"Error": {"Code": "InvalidDeploymentIdException", "Message": "bad id"}}, operation
            )
        if deployment_id != "d-ABCDEFGH1":
            raise ClientError(
                {"Error": {"Code": "DeploymentDoesNotExistException", "Message": "no"}}, operation
            )

    def get_deployment(self, deploymentId: str) -> dict[str, Any]:
        self._check(deploymentId, "GetDeployment")
        status, _ = self._step()
        self.calls += 1
        info: dict[str, Any] = {
            "deploymentId": deploymentId,
            "status": status,
            "deploymentConfigName": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
            "deploymentGroupName": FUNCTION,
            "createTime": datetime(2026, 1, 1, tzinfo=UTC),
        }
        if status in ("Failed", "Stopped") and self.error:
            info["errorInformation"] = self.error
        return {"deploymentInfo": info}

    def list_deployment_targets(self, deploymentId: str) -> dict[str, Any]:
        return {"targetIds": [FUNCTION]}

    def get_deployment_target(self, deploymentId: str, targetId: str) -> dict[str, Any]:
        _, events = self.steps[min(max(self.calls - 1, 0), len(self.steps) - 1)]
        return {
            "deploymentTarget": {
                "lambdaTarget": {
                    "lambdaFunctionInfo": {
                        "functionName": FUNCTION,
                        "functionAlias": "live",
                        "currentVersion": "1",
                        "targetVersion": "2",
                    },
                    "lifecycleEvents": [{"lifecycleEventName": n, "status": s} for n, s in events.items()],
                }
            }
        }

    def stop_deployment(self, deploymentId: str, autoRollbackEnabled: bool) -> dict[str, Any]:
        self.stopped.append({"deploymentId": deploymentId, "autoRollbackEnabled": autoRollbackEnabled})
        return {"status": "Pending", "statusMessage": "Stopping deployment, rolling back"}


@pytest.fixture
def scripted(
    world: StackUnderTest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, ScriptedCodeDeploy]]:
    holder: dict[str, ScriptedCodeDeploy] = {}
    original = Backend.client

    def client(self: Backend, service: str) -> Any:
        return holder["codedeploy"] if service == "codedeploy" else original(self, service)

    monkeypatch.setattr(Backend, "client", client)
    lam = moto_client("lambda")
    lam.publish_version(FunctionName=FUNCTION)
    lam.update_function_code(FunctionName=FUNCTION, ZipFile=zip_bytes("v2"))
    lam.publish_version(FunctionName=FUNCTION)
    lam.create_alias(
        FunctionName=FUNCTION,
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )
    yield holder


CANARY = [
    ("InProgress", {"Start": "Succeeded", "BeforeAllowTraffic": "InProgress"}),
    ("InProgress", {"Start": "Succeeded", "BeforeAllowTraffic": "Succeeded", "AllowTraffic": "InProgress"}),
]


def test_watch_follows_to_success(scripted: dict[str, ScriptedCodeDeploy]) -> None:
    done = {
        n: "Succeeded" for n in ("Start", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic", "End")
    }
    scripted["codedeploy"] = ScriptedCodeDeploy([*CANARY, ("Succeeded", done)])
    result = invoke("watch", "d-ABCDEFGH1", "--interval", "0.05")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "d-ABCDEFGH1: orders:live v1 -> v2" in out
    assert "BeforeAllowTraffic: InProgress" in out and "AllowTraffic: InProgress" in out
    assert "traffic on v2: 10%" in out
    assert "Succeeded: version 2 is live on live" in out


def test_watch_json_reports_the_failure(scripted: dict[str, ScriptedCodeDeploy]) -> None:
    failed = {"Start": "Succeeded", "BeforeAllowTraffic": "Failed", "AllowTraffic": "Skipped"}
    scripted["codedeploy"] = ScriptedCodeDeploy(
        [*CANARY[:1], ("Failed", failed)],
        error={"code": "HOOK_EXECUTION_FAILURE", "message": "BeforeAllowTraffic hook reported Failed"},
    )
    result = invoke("watch", "d-ABCDEFGH1", "--json", "--interval", "0.05")
    assert result.exit_code == ExitCode.RELEASE_FAILED
    data = json.loads(result.stdout)
    assert data["status"] == "Failed" and data["done"] is True
    assert data["error_code"] == "HOOK_EXECUTION_FAILURE"
    assert data["function"] == FUNCTION and data["target_version"] == "2"
    assert [e["status"] for e in data["lifecycle"]] == ["Succeeded", "Failed", "Skipped"]
    assert data["release"] is None


@pytest.mark.parametrize(
    ("deployment_id", "exit_code"), [("d-NOSUCHONE", ExitCode.NOT_FOUND), ("banana", ExitCode.USAGE)]
)
def test_watch_unknown_or_malformed_id(
    scripted: dict[str, ScriptedCodeDeploy], deployment_id: str, exit_code: ExitCode
) -> None:
    scripted["codedeploy"] = ScriptedCodeDeploy(CANARY)
    assert invoke("watch", deployment_id).exit_code == exit_code


def test_abort_stops_with_rollback(scripted: dict[str, ScriptedCodeDeploy]) -> None:
    fake = scripted["codedeploy"] = ScriptedCodeDeploy(CANARY)
    result = invoke("abort", "d-ABCDEFGH1", "--json")
    assert result.exit_code == 0, result.output
    assert fake.stopped == [{"deploymentId": "d-ABCDEFGH1", "autoRollbackEnabled": True}]
    assert json.loads(result.stdout) == {
        "deployment_id": "d-ABCDEFGH1",
        "status_message": "Stopping deployment, rolling back",
        "stop_status": "Pending",
    }


def test_abort_names_the_caller_on_the_release_before_it_stops(
    scripted: dict[str, ScriptedCodeDeploy],
) -> None:
    """CodeDeploy's record of a stop names nobody: the release says who asked (STS GetCallerIdentity),
    written before the stop so its MANUAL_STOP ending can name them."""
    fake = scripted["codedeploy"] = ScriptedCodeDeploy(CANARY)
    ledger = Ledger(LEDGER_TABLE)
    release = ledger.create(Release(function=FUNCTION, release_id="0005", key="orders/e.zip"))
    ledger.transition(
        release, State.DEPLOYING, current_version="1", target_version="2", deployment_id="d-ABCDEFGH1"
    )
    caller = moto_client("sts").get_caller_identity()["Arn"]

    assert invoke("abort", "d-ABCDEFGH1").exit_code == 0

    stored = ledger.get(FUNCTION, "0005")
    assert stored is not None and stored.abort_requested_by == caller and stored.abort_requested_at
    assert fake.stopped == [{"deploymentId": "d-ABCDEFGH1", "autoRollbackEnabled": True}]


def test_abort_still_stops_when_who_asked_cannot_be_recorded(
    scripted: dict[str, ScriptedCodeDeploy], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = scripted["codedeploy"] = ScriptedCodeDeploy(CANARY)
    ledger = Ledger(LEDGER_TABLE)
    release = ledger.create(Release(function=FUNCTION, release_id="0006", key="orders/f.zip"))
    ledger.transition(
        release, State.DEPLOYING, current_version="1", target_version="2", deployment_id="d-ABCDEFGH1"
    )

    def refused(*_: Any, **__: Any) -> Release:
        raise RuntimeError("AccessDenied: dynamodb:UpdateItem")

    monkeypatch.setattr(Ledger, "update", refused)
    result = invoke("abort", "d-ABCDEFGH1", "--json")

    assert result.exit_code == 0, result.output
    assert fake.stopped == [{"deploymentId": "d-ABCDEFGH1", "autoRollbackEnabled": True}]
    assert (
        "could not record who asked to stop d-ABCDEFGH1: AccessDenied" in json.loads(result.stdout)["warning"]
    )


def test_abort_of_a_completed_deployment_says_so(scripted: dict[str, ScriptedCodeDeploy]) -> None:
    fake = scripted["codedeploy"] = ScriptedCodeDeploy([("Succeeded", {"End": "Succeeded"})])
    result = invoke("abort", "d-ABCDEFGH1")
    assert result.exit_code == ExitCode.CONFLICT
    assert "already completed (Succeeded); nothing to stop" in result.stderr
    assert fake.stopped == []
