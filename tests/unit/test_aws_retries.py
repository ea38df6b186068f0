"""The clients `rollout.aws` makes back off and retry a throttled control-plane call; check invocations do not.

Each test answers the client's HTTP requests itself (a `before-send` handler, the first one botocore asks), so
the client's own retry machinery runs exactly as it does against AWS: the retry decision, the backoff it
sleeps (recorded here instead of slept) and the attempt count.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from rollout import aws


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class Answers:
    """Answers `throttled` requests with a throttle, then `ok`; counts the attempts."""

    def __init__(
        self, throttle: tuple[int, dict[str, str], bytes], ok: tuple[int, bytes], throttled: int
    ) -> None:
        self.throttle = throttle
        self.ok = ok
        self.throttled = throttled
        self.attempts = 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        self.attempts += 1
        if self.attempts <= self.throttled:
            status, headers, body = self.throttle
            return AWSResponse(request.url, status, headers, _Raw(body))
        status, body = self.ok
        return AWSResponse(request.url, status, {}, _Raw(body))


LAMBDA_THROTTLE = (
    429,
    {"x-amzn-ErrorType": "TooManyRequestsException"},
    json.dumps({"message": "Rate exceeded", "Reason": "CallerRateLimitExceeded"}).encode(),
)
CODEDEPLOY_THROTTLE = (
    400,
    {"x-amzn-ErrorType": "ThrottlingException"},
    json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode(),
)


@pytest.fixture(autouse=True)
def offline_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws.reset_clients()
    yield []
    aws.reset_clients()


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses botocore takes between attempts (its endpoint sleeps what the retry handler decides)."""
    pauses: list[float] = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", pauses.append)
    return pauses


def answered(client: Any, operation: str, answers: Answers) -> Any:
    client.meta.events.register_first(
        f"before-send.{client.meta.service_model.endpoint_prefix}.{operation}", answers
    )
    return client


FUNCTION_CONFIG = json.dumps({"FunctionName": "orders", "Version": "7", "CodeSha256": "abc"}).encode()


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        (
            "UpdateFunctionCode",
            lambda c: c.update_function_code(
                FunctionName="orders", S3Bucket="builds", S3Key="k", S3ObjectVersion="v"
            ),
        ),
        (
            "PublishVersion",
            lambda c: c.publish_version(FunctionName="orders", CodeSha256="abc", RevisionId="r"),
        ),
        ("GetFunction", lambda c: c.get_function(FunctionName="orders")),
    ],
)
def test_a_throttled_lambda_control_plane_call_is_retried_with_backoff(
    operation: str, call: Any, backoff: list[float]
) -> None:
    answers = Answers(LAMBDA_THROTTLE, (200, FUNCTION_CONFIG), throttled=3)
    client = answered(aws.client("lambda"), operation, answers)

    response = call(client)

    assert answers.attempts == 4
    assert response["ResponseMetadata"]["RetryAttempts"] == 3
    assert len(backoff) == 3 and all(pause > 0 for pause in backoff)


def test_a_rate_exceeded_codedeploy_call_is_retried_with_backoff(backoff: list[float]) -> None:
    answers = Answers(CODEDEPLOY_THROTTLE, (200, b'{"deployments": ["d-1"]}'), throttled=4)
    client = answered(aws.client("codedeploy"), "ListDeployments", answers)

    response = client.list_deployments(applicationName="rollout", deploymentGroupName="orders")

    assert response["deployments"] == ["d-1"]
    assert answers.attempts == 5
    assert len(backoff) == 4 and all(pause > 0 for pause in backoff)


def test_create_deployment_is_sent_once_by_its_client_never_resent_as_is(backoff: list[float]) -> None:
    """It takes no client token: the starter looks for what an attempt created before it sends another."""
    answers = Answers(CODEDEPLOY_THROTTLE, (200, b'{"deploymentId": "d-1"}'), throttled=1000)
    client = answered(aws.single_attempt_client("codedeploy"), "CreateDeployment", answers)

    with pytest.raises(ClientError):
        client.create_deployment(applicationName="rollout", deploymentGroupName="orders")

    assert answers.attempts == 1
    assert backoff == []


def test_throttling_gives_up_after_ten_attempts_with_capped_exponential_backoff(backoff: list[float]) -> None:
    answers = Answers(CODEDEPLOY_THROTTLE, (200, b"{}"), throttled=1000)
    client = answered(aws.client("codedeploy"), "ListDeployments", answers)

    with pytest.raises(ClientError) as raised:
        client.list_deployments(applicationName="rollout", deploymentGroupName="orders")

    assert aws.error_code(raised.value) == "ThrottlingException"
    assert answers.attempts == aws.RETRY_CONFIG.retries["total_max_attempts"] == 10
    # standard mode: a random pause up to 2^attempt seconds, never more than 20 s
    assert len(backoff) == 9
    assert all(0 <= pause <= 20 for pause in backoff)
    assert sum(backoff) > 0


@pytest.mark.parametrize(
    "throttle",
    [LAMBDA_THROTTLE, (500, {"x-amzn-ErrorType": "ServiceException"}, b'{"message": "boom"}')],
    ids=["TooManyRequestsException", "ServiceException"],
)
def test_a_check_invocation_is_never_retried_by_the_client(throttle: Any, backoff: list[float]) -> None:
    """The check runner alone retries a throttled check (the function never ran); botocore retries nothing."""
    answers = Answers(throttle, (200, b"{}"), throttled=1000)
    client = answered(aws.check_invoke_client(), "Invoke", answers)

    with pytest.raises(ClientError):
        client.invoke(FunctionName="orders:live", Payload=b"{}")

    assert answers.attempts == 1
    assert backoff == []


def test_a_hand_over_someone_waits_on_is_tried_once_within_slacks_three_seconds() -> None:
    # Standard retries back off for many seconds on a throttle: past Slack's acknowledgment window.
    config = aws.HANDOVER_CONFIG
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.connect_timeout + config.read_timeout < 3
