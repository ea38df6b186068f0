"""Fault injection and the sandbox's life cycle: failing calls with real AWS errors, clean stops."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.support.sandbox_support import (
    client,
    create_function,
    invoke_json,
    queue,
    sb,  # noqa: F401 - module fixture
    unique,
)


def error_code(call) -> str:
    with pytest.raises(ClientError) as error:
        call()
    return str(error.value.response["Error"]["Code"])


def test_a_share_of_calls_fails_with_the_chosen_error(sb):  # noqa: F811
    url, _ = queue(sb, unique("throttled"))
    sqs = client(sb, "sqs", retries=False)
    fault = sb.faults.fail("sqs", "SendMessage", "ThrottlingException", share=0.5)
    outcomes = []
    for i in range(200):
        try:
            sqs.send_message(QueueUrl=url, MessageBody=str(i))
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    sb.faults.clear()
    assert set(outcomes) == {"ok", "ThrottlingException"}
    failed = outcomes.count("ThrottlingException")
    assert failed == fault.injected
    assert abs(failed / 200 - 0.5) < 4 * (0.25 / 200) ** 0.5
    sqs.send_message(QueueUrl=url, MessageBody="after clear")


@pytest.mark.parametrize(
    ("service", "operation", "code", "call"),
    [
        ("lambda", "Invoke", "TooManyRequestsException", lambda c, name: c.invoke(FunctionName=name)),
        (
            "lambda",
            "UpdateAlias",
            "ResourceConflictException",
            lambda c, name: c.update_alias(FunctionName=name, Name="x"),
        ),
        ("s3", "PutObject", "SlowDown", lambda c, name: c.put_object(Bucket=name, Key="k", Body=b"x")),
        ("cloudwatch", "DescribeAlarms", "InternalServiceFault", lambda c, name: c.describe_alarms()),
        (
            "sns",
            "Publish",
            "ThrottledException",
            lambda c, name: c.publish(TopicArn=f"arn:aws:sns:us-east-1:123456789012:{name}", Message="m"),
        ),
        (
            "dynamodb",
            "PutItem",
            "ProvisionedThroughputExceededException",
            lambda c, name: c.put_item(TableName=name, Item={"k": {"S": "v"}}),
        ),
    ],
)
def test_injected_errors_parse_as_aws_errors_in_every_protocol(sb, service, operation, code, call):  # noqa: F811
    api = client(sb, service, retries=False)
    sb.faults.fail(service, operation, code, count=1)
    assert error_code(lambda: call(api, "anything")) == code


def test_lambda_throttle_fault_counts_down(sb):  # noqa: F811
    name = unique("faulty")
    create_function(sb, name, "def handler(event, context):\n    return 'fine'\n")
    lam = client(sb, "lambda", retries=False)
    sb.faults.fail("lambda", "Invoke", "TooManyRequestsException", count=2)
    assert error_code(lambda: lam.invoke(FunctionName=name)) == "TooManyRequestsException"
    assert error_code(lambda: lam.invoke(FunctionName=name)) == "TooManyRequestsException"
    _, result = invoke_json(sb, name)
    assert result == "fine"


def test_codedeploy_calls_reach_the_codedeploy_handler(sb):  # noqa: F811
    codedeploy = client(sb, "codedeploy", retries=False)
    try:
        applications = codedeploy.list_applications()
    except ClientError as exc:
        # Without the engine the sandbox says so plainly.
        assert exc.response["Error"]["Code"] == "ServiceUnavailableException"
        assert "CodeDeploy" in exc.response["Error"]["Message"]
    else:
        assert "applications" in applications


def test_faults_can_be_injected_over_http_for_a_sandbox_in_another_process(sb):  # noqa: F811
    import json
    import urllib.request

    def post(path: str, body: dict) -> int:
        request = urllib.request.Request(
            f"{sb.endpoint_url}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request) as response:
            return int(response.status)

    assert (
        post(
            "/_sandbox/faults/fail",
            {"service": "sqs", "operation": "ListQueues", "error_code": "ThrottlingException", "count": 1},
        )
        == 200
    )
    sqs = client(sb, "sqs", retries=False)
    assert error_code(lambda: sqs.list_queues()) == "ThrottlingException"
    sqs.list_queues()
    with urllib.request.urlopen(f"{sb.endpoint_url}/_sandbox/health") as response:
        health = json.loads(response.read())
    assert health["status"] == "ok" and health["speed"] == 60
