"""Provisioning template.yaml against a plain moto server, through its HTTP API only.

Plain moto cannot show the bucket's EventBridge notifications (GetBucketNotificationConfiguration omits
them, and its event delivery fails on the Lambda targets); the sandbox test checks uploads reach
EventBridge.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from sandbox.provision import ResourceCreationError, UnsupportedResourceError, provision_stack
from sandbox.provision.__main__ import main as provision_main
from tests.support.provision_checks import (
    SLACK_SECRET_NAME,
    assert_every_resource_exists,
    assert_rollout_stack_wired,
    clients_for,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


def _moto_api(url: str, path: str, body: dict[str, object] | None = None) -> None:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body or {}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def endpoint(moto_server: str) -> str:
    """A fresh, empty moto whose Lambda accepts functions without Docker."""
    _moto_api(moto_server, "/moto-api/reset")
    _moto_api(moto_server, "/moto-api/config", {"lambda": {"use_docker": False}})
    return moto_server


def test_the_control_plane_template_provisions_with_slack(endpoint: str) -> None:
    clients = clients_for(endpoint)
    secret_arn = clients("secretsmanager").create_secret(
        Name=SLACK_SECRET_NAME, SecretString="https://hooks.slack.invalid/x"
    )["ARN"]

    started = time.perf_counter()
    stack = provision_stack(endpoint, TEMPLATE, "rollout-it", {"SlackWebhookSecretArn": secret_arn})
    elapsed = time.perf_counter() - started

    # No signing secret: no buttons' endpoint (SlackInteractions and what SAM makes for its URL).
    interactivity = {n: c for n, c in stack.skipped.items() if c == "HasSlackInteractivity"}
    assert {"SlackInteractions", "SlackInteractionsRole", "SlackInteractionsUrl"} <= interactivity.keys()
    assert all(n.startswith("SlackInteractions") for n in interactivity)
    assert {n: c for n, c in stack.skipped.items() if n not in interactivity} == {
        "AlarmEmailSubscription": "HasAlarmEmail",
        "OperationsEmailSubscription": "HasAlarmEmail",
    }
    assert_every_resource_exists(clients, stack)
    assert_rollout_stack_wired(clients, stack, slack_secret_arn=secret_arn)
    assert stack.function_for("reconciler") == stack.outputs["ReconcilerName"]

    assert json.loads(stack.to_json())["outputs"] == stack.outputs
    described = clients("cloudformation").describe_stacks(StackName="rollout-it")["Stacks"][0]
    assert {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]} == stack.outputs
    print(f"\nprovisioned {len(stack.resources)} resources against moto in {elapsed:.2f}s")


def test_without_slack_the_conditional_resources_are_left_out(endpoint: str) -> None:
    clients = clients_for(endpoint)
    stack = provision_stack(endpoint, TEMPLATE, "rollout-plain")

    assert {"SlackNotifier", "SlackNotifierRole", "SlackNotifierNotification"} <= stack.skipped.keys()
    assert "SlackNotifierName" not in stack.outputs
    assert_every_resource_exists(clients, stack)
    assert_rollout_stack_wired(clients, stack, slack_secret_arn=None)
    functions = clients("lambda").list_functions()["Functions"]
    assert not [f for f in functions if "SlackNotifier" in f["FunctionName"]]


def test_an_unsupported_resource_type_fails_naming_it_and_creates_nothing(
    endpoint: str, tmp_path: Path
) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        """
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Api:
    Type: AWS::ApiGateway::RestApi
    Properties: {Name: api}
"""
    )
    with pytest.raises(UnsupportedResourceError, match=r"resource Api has type AWS::ApiGateway::RestApi"):
        provision_stack(endpoint, template, "demo")
    assert clients_for(endpoint)("sqs").list_queues().get("QueueUrls", []) == []


def test_a_failing_resource_is_named_with_the_ones_created_before_it(endpoint: str, tmp_path: Path) -> None:
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text("def handler(event, context):\n    return event\n")
    template = tmp_path / "template.yaml"
    template.write_text(
        """
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Code: {ZipFile: "def handler(event, context): return event"}
      Handler: index.handler
      Runtime: python3.13
      Role: !Sub arn:aws:iam::${AWS::AccountId}:role/does-not-exist
      Environment: {Variables: {QUEUE: !Ref Queue}}
"""
    )
    with pytest.raises(ResourceCreationError) as caught:
        provision_stack(endpoint, template, "demo")
    assert caught.value.logical_id == "Fn"
    assert caught.value.created == ["Queue"]
    assert "creating Fn (AWS::Lambda::Function) failed" in str(caught.value)


def test_the_command_prints_the_outputs_as_json(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = provision_main(
        ["--endpoint-url", endpoint, "--template", str(TEMPLATE), "--stack-name", "rollout-cli"]
    )
    captured = capsys.readouterr()
    assert code == 0
    outputs = json.loads(captured.out)
    assert outputs["CodeDeployApplicationName"] == "rollout-cli"
    assert outputs["PreTrafficHookName"] == "CodeDeployHook_rollout-cli_PreTraffic"
    assert "provisioned 51 resources" in captured.err


def test_the_command_reports_a_refused_template(
    endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n  Thing:\n    Type: AWS::Made::Up\n")
    assert provision_main(["--endpoint-url", endpoint, "--template", str(template)]) == 1
    assert "resource Thing has type AWS::Made::Up" in capsys.readouterr().err
