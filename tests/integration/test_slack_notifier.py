"""The Slack notifier end to end: SNS event in, Block Kit post received by a local webhook."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from functions.slack_notifier import app
from rollout import slack
from rollout.errors import SlackPostFailed, SlackWebhookSecretInvalid
from rollout.ledger import Release
from rollout.notifications import build
from rollout.observability import logger as rollout_logger
from rollout.states import State
from tests.support.aws_stack import REGION
from tests.support.slack_receiver import Answer, SlackReceiver, slack_receiver
from tests.support.sns_events import sns_event, sns_record


@pytest.fixture
def receiver() -> Iterator[SlackReceiver]:
    with slack_receiver() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    parameters.clear_caches()
    slack._posters.clear()
    yield
    parameters.clear_caches()
    slack._posters.clear()


@pytest.fixture
def webhook_secret(moto: None, receiver: SlackReceiver, monkeypatch: pytest.MonkeyPatch) -> str:
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="rollout/slack-webhook", SecretString=receiver.url
    )["ARN"]
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET_ARN", arn)
    monkeypatch.setenv("SLACK_WEBHOOK_ORIGIN", receiver.origin)
    return arn


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """DEBUG everywhere, so a URL logged by our code or slack_sdk's would show.

    botocore stays at INFO: its DEBUG log prints every API response, secrets included (the
    operator guide says never to enable it), and this test's own CreateSecret call with it.
    """
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="botocore")
    caplog.set_level(logging.INFO, logger="urllib3")
    previous = rollout_logger.log_level
    rollout_logger.setLevel("DEBUG")
    yield caplog
    rollout_logger.setLevel(previous)


def rolled_back() -> Any:
    release = Release(
        function="orders",
        release_id="01h00000000000abc",
        state=State.ROLLED_BACK,
        alias="live",
        current_version="7",
        target_version="8",
        deployment_id="d-ABCDEFGHI",
        deployment_config="CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
        commit="f00dfacecafe1234",
        author="bob",
        reason_code="HOOK_EXECUTION_FAILURE",
        reason="post-traffic check 'totals' failed: body.total: expected 30, got 0",
        hook_results={
            "post_traffic": {
                "verdict": "Failed",
                "checks": [
                    {
                        "name": "totals",
                        "verdict": "Failed",
                        "error": "body.total: expected 30, got 0",
                        "excerpt": '{"total": 0}',
                    }
                ],
            }
        },
        received_at="2025-01-01T10:00:00.000Z",
        deploying_at="2025-01-01T10:00:10.000Z",
        completed_at="2025-01-01T10:03:10.000Z",
    )
    return build("deployment.rolled_back", release, REGION)


def logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged: messages and the structured fields Powertools adds to each record."""
    out, err = capsys.readouterr()
    records = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    return out + err + caplog.text + records


def all_text(value: Any) -> str:
    """Every text a Slack reader sees in a payload."""
    if isinstance(value, dict):
        return "\n".join(all_text(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(all_text(v) for v in value)
    return str(value)


def test_posts_a_message_a_reader_understands(
    webhook_secret: str, receiver: SlackReceiver, lambda_context: Any, capsys: Any, debug_logging: Any
) -> None:
    result = app.lambda_handler(sns_event(rolled_back()), lambda_context)

    assert len(result["posted"]) == 1 and result["skipped"] == []
    [post] = receiver.posts
    assert post.path == receiver.path
    text = all_text(post.payload)
    assert ":rewind: orders: v8 rolled back to v7" in text
    assert "v7 → v8" in text
    assert "LambdaLinear10PercentEvery1Minute" in text
    assert "post-traffic check 'totals' failed: body.total: expected 30, got 0" in text
    assert '{"total": 0}' in text
    assert "*Duration*\n3m 00s" in text
    assert receiver.url not in logged(capsys, debug_logging)
    assert receiver.path not in logged(capsys, debug_logging)


def test_secret_in_json_form_and_cached_between_invocations(
    moto: None, receiver: SlackReceiver, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="rollout/slack", SecretString=json.dumps({"webhook_url": receiver.url}))[
        "ARN"
    ]
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET_ARN", arn)
    monkeypatch.setenv("SLACK_WEBHOOK_ORIGIN", receiver.origin)
    app.lambda_handler(sns_event(rolled_back()), lambda_context)
    secrets.put_secret_value(SecretId=arn, SecretString=receiver.url.replace("localwebhooksecret", "rotated"))
    app.lambda_handler(sns_event(rolled_back()), lambda_context)

    assert [p.path for p in receiver.posts] == [receiver.path, receiver.path], "the cached URL is reused"
    parameters.clear_caches()  # what max_age expiry does
    app.lambda_handler(sns_event(rolled_back()), lambda_context)
    assert receiver.posts[-1].path.endswith("/rotated")


def test_rate_limited_post_waits_for_retry_after_then_succeeds(
    webhook_secret: str, receiver: SlackReceiver, lambda_context: Any, capsys: Any, debug_logging: Any
) -> None:
    receiver.answers = [Answer(429, "rate_limited", {"Retry-After": "1"}), Answer(200, "ok")]
    began = time.monotonic()
    result = app.lambda_handler(sns_event(rolled_back()), lambda_context)

    assert len(result["posted"]) == 1
    assert len(receiver.posts) == 2
    assert receiver.posts[0].payload == receiver.posts[1].payload
    assert time.monotonic() - began >= 1.0, "Slack asked for a one second pause"
    assert receiver.url not in logged(capsys, debug_logging)


def test_retry_after_longer_than_the_invocation_can_wait_fails_for_sns_to_retry(
    webhook_secret: str, receiver: SlackReceiver, lambda_context: Any
) -> None:
    receiver.answers = [Answer(429, "rate_limited", {"Retry-After": "600"})]
    began = time.monotonic()
    with pytest.raises(SlackPostFailed, match="429"):
        app.lambda_handler(sns_event(rolled_back()), lambda_context)
    assert time.monotonic() - began < 5
    assert len(receiver.posts) == 1


def test_failing_endpoint_raises_without_revealing_the_url(
    webhook_secret: str, receiver: SlackReceiver, lambda_context: Any, capsys: Any, debug_logging: Any
) -> None:
    receiver.default = Answer(500, "internal error")
    with pytest.raises(SlackPostFailed) as failed:
        app.lambda_handler(sns_event(rolled_back()), lambda_context)

    assert "500" in str(failed.value)
    assert receiver.url not in str(failed.value)
    assert len(receiver.posts) == 1
    assert receiver.path not in logged(capsys, debug_logging)


def test_unreachable_endpoint_raises_without_revealing_the_url(
    moto: None, lambda_context: Any, capsys: Any, debug_logging: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with slack_receiver() as closed:
        url, origin = closed.url, closed.origin
    # The port is closed now: connections are refused.
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(Name="s", SecretString=url)["ARN"]
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET_ARN", arn)
    monkeypatch.setenv("SLACK_WEBHOOK_ORIGIN", origin)
    with pytest.raises(SlackPostFailed, match="could not reach Slack") as failed:
        app.lambda_handler(sns_event(rolled_back()), lambda_context)
    assert url not in str(failed.value)
    assert "localwebhooksecret" not in logged(capsys, debug_logging)


def test_malformed_records_are_skipped_and_the_rest_delivered(
    webhook_secret: str, receiver: SlackReceiver, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    event = sns_event(rolled_back())
    event["Records"][:0] = [
        sns_record("this is not json"),
        sns_record(json.dumps({"schema": "someone-else/2", "kind": "x"})),
        {"EventSource": "aws:sns"},
    ]
    result = app.lambda_handler(event, lambda_context)

    assert len(result["skipped"]) == 3
    assert len(result["posted"]) == 1
    assert len(receiver.posts) == 1
    skipped = [r for r in caplog.records if r.getMessage() == "record skipped: not a Rollout notification"]
    assert [getattr(r, "error", "") for r in skipped] == [
        "message is not JSON: Expecting value: line 1 column 1 (char 0)",
        "unknown schema 'someone-else/2', expected rollout.notification/1",
        "record has no Sns object",
    ]


def test_event_without_records_is_logged_and_skipped(webhook_secret: str, lambda_context: Any) -> None:
    assert app.lambda_handler({"unexpected": True}, lambda_context) == {"posted": [], "skipped": ["event"]}


def test_a_webhook_outside_the_allowed_origin_is_refused_and_never_logged(
    moto: None, lambda_context: Any, capsys: Any, debug_logging: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "https://attacker.example/collect/localwebhooksecret"
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(Name="s", SecretString=secret)[
        "ARN"
    ]
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET_ARN", arn)

    with pytest.raises(SlackWebhookSecretInvalid) as refused:
        app.lambda_handler(sns_event(rolled_back()), lambda_context)

    assert "localwebhooksecret" not in str(refused.value)
    assert "localwebhooksecret" not in logged(capsys, debug_logging)
