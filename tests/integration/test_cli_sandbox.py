"""The `rollout` command against the stack provisioned in the local sandbox: real releases, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from cli.errors import ExitCode
from cli.main import TEMPLATE, app
from cli.sandbox_run import RunningSandbox, running_sandbox
from examples.hello.build import artifact_bytes, build_artifact
from rollout import aws
from tests.support.e2e_world import E2E_CHECKS

pytestmark = pytest.mark.e2e

STACK = "rollout-cli"
SPEED = 120.0
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    saved = {
        k: os.environ.get(k)
        for k in (
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
        )
    }
    try:
        with running_sandbox(0, SPEED, STACK, TEMPLATE) as running:
            yield running
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        aws.reset_clients()


@pytest.fixture
def at_sandbox(sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> RunningSandbox:
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox.endpoint_url)
    monkeypatch.setenv("ROLLOUT_STACK", STACK)
    aws.reset_clients()
    return sandbox


def client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")


def rollout(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def create_function(name: str) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))
    lam = client("lambda")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role["Role"]["Arn"],
        Handler="app.lambda_handler",
        Code={"ZipFile": artifact_bytes("healthy", "v0")},
        Timeout=10,
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


@pytest.fixture
def artifacts(tmp_path: Path) -> Callable[[str, str], Path]:
    def make(variant: str, label: str) -> Path:
        # No traffic reaches these releases: their canary passes unjudged only with strict off (E2E_CHECKS).
        return build_artifact(variant, label, tmp_path, checks=E2E_CHECKS)

    return make


def deploy_wait(function: str, path: Path) -> tuple[int, dict[str, Any]]:
    result = rollout(
        "deploy",
        function,
        str(path),
        "--wait",
        "--json",
        "--timeout",
        "120",
        "--interval",
        "0.2",
        "--commit",
        "c0ffee1",
        "--message",
        f"release {path.name}",
    )
    return result.exit_code, json.loads(result.stdout)


def alias_version(function: str) -> str:
    return str(client("lambda").get_alias(FunctionName=function, Name="live")["FunctionVersion"])


def test_release_story_through_the_command(
    at_sandbox: RunningSandbox, artifacts: Callable[[str, str], Path]
) -> None:
    create_function("greeter")
    registered = rollout("register", "greeter")
    assert registered.exit_code == 0, registered.output
    assert "none yet: the first release creates it" in registered.stdout

    code, first = deploy_wait("greeter", artifacts("healthy", "v1"))
    assert (code, first["release"]["state"]) == (0, "BOOTSTRAPPED"), first
    assert first["release"]["commit"] == "c0ffee1"

    code, second = deploy_wait("greeter", artifacts("healthy", "v2"))
    assert (code, second["release"]["state"]) == (0, "SUCCEEDED"), second
    assert second["release"]["deployment_id"].startswith("d-")
    assert alias_version("greeter") == second["release"]["target_version"]

    code, third = deploy_wait("greeter", artifacts("failing-check", "v3"))
    assert code == ExitCode.RELEASE_FAILED, third
    assert third["release"]["state"] == "ROLLED_BACK"
    assert third["release"]["reason_code"] == "HOOK_EXECUTION_FAILURE"
    assert alias_version("greeter") == second["release"]["target_version"]

    history = json.loads(rollout("history", "greeter", "--json").stdout)
    assert [r["state"] for r in history["releases"]] == ["ROLLED_BACK", "SUCCEEDED", "BOOTSTRAPPED"]
    table = rollout("history", "greeter").stdout
    rolled_back = third["release"]
    assert any(
        "ROLLED_BACK" in line
        and f"{rolled_back['current_version']} → {rolled_back['target_version']}" in line
        for line in table.splitlines()
    )

    status = json.loads(rollout("status", "--json").stdout)
    greeter = next(f for f in status["functions"] if f["function"] == "greeter")
    assert greeter["live_version"] == second["release"]["target_version"]
    assert greeter["latest"]["state"] == "ROLLED_BACK" and greeter["lock"] is None


def deployment_of(function: str, key: str) -> str:
    def find() -> str:
        history = json.loads(rollout("history", function, "--json").stdout)
        for release in history["releases"]:
            if release["key"] == key and release.get("deployment_id"):
                return str(release["deployment_id"])
        return ""

    return str(wait_for(find, 60, f"a deployment for {key}"))


def test_watch_and_abort_during_a_canary(
    at_sandbox: RunningSandbox, artifacts: Callable[[str, str], Path]
) -> None:
    create_function("slowcanary")
    # Thirty sandbox minutes of canary: long enough to watch and to stop at this speed.
    assert rollout("register", "slowcanary", "--config", "Canary10Percent30Minutes").exit_code == 0
    assert deploy_wait("slowcanary", artifacts("healthy", "v1"))[0] == 0
    stable = alias_version("slowcanary")

    upload = json.loads(rollout("deploy", "slowcanary", str(artifacts("healthy", "v2")), "--json").stdout)
    deployment_id = deployment_of("slowcanary", upload["key"])
    wait_for(
        lambda: (
            client("lambda").get_alias(FunctionName="slowcanary", Name="live").get("RoutingConfig") or {}
        ).get("AdditionalVersionWeights"),
        60,
        "the canary step",
    )
    aborted = rollout("abort", deployment_id, "--wait", "--json", "--interval", "0.2", "--timeout", "120")
    assert aborted.exit_code == 0, aborted.output
    data = json.loads(aborted.stdout)
    assert data["final"]["status"] in ("Stopped", "Failed")
    assert alias_version("slowcanary") == stable
    release = wait_for(
        lambda: next(
            (
                r
                for r in json.loads(rollout("history", "slowcanary", "--json").stdout)["releases"]
                if r["deployment_id"] == deployment_id and r["state"] in ("ROLLED_BACK", "FAILED")
            ),
            None,
        ),
        60,
        "the ledger to record the stop",
    )
    assert release["state"] == "ROLLED_BACK" and release["reason_code"] == "MANUAL_STOP"

    again = rollout("abort", deployment_id)
    assert again.exit_code == ExitCode.CONFLICT and "already completed" in again.stderr

    # watch of a finished deployment prints the outcome and its exit code at once.
    watched = rollout("watch", deployment_id, "--json")
    assert watched.exit_code == ExitCode.RELEASE_FAILED
    assert json.loads(watched.stdout)["status"] in ("Stopped", "Failed")


def test_watch_follows_a_canary_to_success(
    at_sandbox: RunningSandbox, artifacts: Callable[[str, str], Path]
) -> None:
    create_function("watched")
    assert rollout("register", "watched").exit_code == 0
    assert deploy_wait("watched", artifacts("healthy", "v1"))[0] == 0
    upload = json.loads(rollout("deploy", "watched", str(artifacts("healthy", "v2")), "--json").stdout)
    deployment_id = deployment_of("watched", upload["key"])
    result = rollout("watch", deployment_id, "--interval", "0.2", "--timeout", "120")
    assert result.exit_code == 0, result.output
    assert f"{deployment_id}: watched:live" in result.stdout
    assert "AllowTraffic: Succeeded" in result.stdout
    assert "Succeeded: version" in result.stdout
    final = json.loads(rollout("watch", deployment_id, "--json").stdout)
    assert final["status"] == "Succeeded" and final["traffic_on_target"] == 1.0
    assert final["release"]["state"] == "SUCCEEDED"


def test_errors_against_the_sandbox(at_sandbox: RunningSandbox, tmp_path: Path) -> None:
    assert rollout("register", "does-not-exist").exit_code == ExitCode.NOT_FOUND
    assert rollout("watch", "d-NOSUCH123").exit_code == ExitCode.NOT_FOUND
    assert rollout("status", "--stack", "no-such-stack").exit_code == ExitCode.NOT_FOUND
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    assert rollout("deploy", "does-not-exist", str(bad)).exit_code == ExitCode.USAGE


def read_line(stream: Any, timeout: float) -> str:
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line:
        raise AssertionError(f"no output within {timeout}s")
    return line[0]


def test_sandbox_up_prints_outputs_and_stops_on_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "sandbox", "up", "--port", "0", "--stack", "rollout-up", "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        described = json.loads(read_line(proc.stdout, 120))
        assert described["stack"] == "rollout-up"
        assert described["export"] == f"export AWS_ENDPOINT_URL={described['endpoint_url']}"
        assert described["outputs"]["ArtifactBucketName"]
        cfn = boto3.client("cloudformation", endpoint_url=described["endpoint_url"], region_name="us-east-1")
        outputs = {
            o["OutputKey"] for o in cfn.describe_stacks(StackName="rollout-up")["Stacks"][0]["Outputs"]
        }
        assert "LedgerTableName" in outputs
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_end_to_end() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--speed", "60", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    summary = json.loads(result.stdout)
    failed = [o for o in summary["outcomes"] if not o["ok"]]
    assert result.returncode == 0 and summary["all_expected"], failed
    labels = [o["label"] for o in summary["outcomes"]]
    assert labels[:8] == ["v1", "v2", "v3", "v4", "b1", "b2", "b3", "b4"]
    assert {"SNS", "Slack", "alias"} <= set(labels)
