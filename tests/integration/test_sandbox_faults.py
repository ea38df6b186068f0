"""Fault injection and the sandbox's life cycle: failing calls with real AWS errors, clean stops."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime

import pytest
from botocore.exceptions import ClientError

from tests.support.sandbox_support import (
    client,
    create_function,
    invoke_json,
    queue,
    sb,  # noqa: F401 - module fixture
    unique,
    wait_for,
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


def test_a_fault_can_be_aimed_at_one_resource_by_its_path(sb):  # noqa: F811
    aimed, spared = unique("aimed"), unique("spared")
    for name in (aimed, spared):
        create_function(sb, name, "def handler(event, context):\n    return 'fine'\n")
    lam = client(sb, "lambda", retries=False)
    fault = sb.faults.fail(
        "lambda", "Invoke", "TooManyRequestsException", path_contains=f"/functions/{aimed}/"
    )
    try:
        assert invoke_json(sb, spared)[1] == "fine"
        assert error_code(lambda: lam.invoke(FunctionName=aimed)) == "TooManyRequestsException"
    finally:
        sb.faults.clear()
    assert fault.injected == 1


@pytest.mark.parametrize(("code", "status"), [("InternalFailure", 500), ("ThrottlingException", 400)])
def test_a_call_can_be_served_and_its_caller_told_it_failed(sb, code, status):  # noqa: F811
    url, _ = queue(sb, unique("served"))
    fault = sb.faults.fail("sqs", "SendMessage", code, count=1, status=status, after_serving=True)
    sqs = client(sb, "sqs", retries=False)
    try:
        assert error_code(lambda: sqs.send_message(QueueUrl=url, MessageBody="told it failed")) == code
    finally:
        sb.faults.clear()
    assert fault.injected == 1
    received = client(sb, "sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received] == ["told it failed"], "the service did it"


def test_an_sdk_retry_of_a_create_that_was_served_meets_what_the_first_attempt_created(sb):  # noqa: F811
    # botocore resends a request answered 500; the service has the first attempt's application already.
    codedeploy = client(sb, "codedeploy")
    name = unique("served-app")
    sb.faults.fail(
        "codedeploy", "CreateApplication", "InternalFailure", count=1, status=500, after_serving=True
    )
    try:
        retried = error_code(
            lambda: codedeploy.create_application(applicationName=name, computePlatform="Lambda")
        )
    finally:
        sb.faults.clear()
    assert retried == "ApplicationAlreadyExistsException"
    assert codedeploy.get_application(applicationName=name)["application"]["applicationName"] == name


# A function that sends one message to the queue named in its event, then answers.
SENDER = """
import boto3

def handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=event["queue"], MessageBody="sent")
    return "answered"
"""


@pytest.mark.parametrize(("after_call", "messages_sent"), [(False, 0), (True, 1)])
def test_a_worker_is_killed_when_it_makes_a_chosen_call(sb, after_call, messages_sent):  # noqa: F811
    name = unique("caller")
    create_function(sb, name, SENDER, Timeout=10)
    url, _ = queue(sb, unique("sent"))
    kill = sb.faults.kill_on_call(name, "sqs", "SendMessage", after_call=after_call)
    try:
        response, result = invoke_json(sb, name, {"queue": url})
    finally:
        sb.faults.clear()
    assert response.get("FunctionError") == "Unhandled" and result["errorType"] == "Runtime.ExitError"
    assert kill.killed == 1
    attributes = client(sb, "sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert int(attributes["Attributes"]["ApproximateNumberOfMessages"]) == messages_sent
    # Only the chosen function's calls are affected, and only as often as asked.
    assert invoke_json(sb, name, {"queue": url})[1] == "answered"


def test_an_event_eventbridge_gives_up_on_goes_to_the_targets_dead_letter_queue(sb):  # noqa: F811
    function = unique("target")
    create_function(sb, function, "def handler(event, context):\n    return 'ran'\n")
    function_arn = client(sb, "lambda").get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    dlq_url, dlq_arn = queue(sb, unique("dead-letters"))
    events = client(sb, "events")
    rule = unique("rule")
    rule_arn = events.put_rule(Name=rule, EventPattern='{"source": ["sandbox.test"]}')["RuleArn"]
    events.put_targets(
        Rule=rule,
        Targets=[
            {
                "Id": "t",
                "Arn": function_arn,
                "DeadLetterConfig": {"Arn": dlq_arn},
                "RetryPolicy": {"MaximumRetryAttempts": 4},
            }
        ],
    )
    fault = sb.faults.dead_letter_event({"source": ["sandbox.test"]})
    try:
        events.put_events(Entries=[{"Source": "sandbox.test", "DetailType": "t", "Detail": '{"n": 1}'}])
        (message,) = wait_for(
            lambda: (
                client(sb, "sqs")
                .receive_message(QueueUrl=dlq_url, MessageAttributeNames=["All"])
                .get("Messages")
            ),
            10,
            0.05,
            "the dead letter",
        )
    finally:
        sb.faults.clear()
    assert len(fault.matched_ids) == 1
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["RULE_ARN"] == rule_arn and attributes["TARGET_ARN"] == function_arn
    assert attributes["RETRY_ATTEMPTS"] == "4"
    assert json.loads(message["Body"])["detail"] == {"n": 1}


def test_s3_stamps_objects_and_answers_on_the_sandbox_clock(sb):  # noqa: F811
    s3 = client(sb, "s3")
    bucket = unique("clock")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    listed = s3.list_objects_v2(Bucket=bucket)
    now = sb.clock.now_datetime()
    # At speed 60 the sandbox runs ahead of the wall clock by a minute every real second.
    assert abs((listed["Contents"][0]["LastModified"] - now).total_seconds()) < 30
    answered_at = parsedate_to_datetime(listed["ResponseMetadata"]["HTTPHeaders"]["date"])
    assert abs((answered_at - now).total_seconds()) < 30


def test_conditional_writes_are_atomic_when_requests_race(sb, monkeypatch):  # noqa: F811
    # DynamoDB applies a conditional write atomically; moto checks the condition, then writes, in
    # Python. A slow condition check widens the gap between the two, as a busy machine does.
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import moto.dynamodb.models.table as moto_table

    real_check = moto_table.get_filter_expression

    def slow_check(*args, **kwargs):
        time.sleep(0.02)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(moto_table, "get_filter_expression", slow_check)
    table = unique("atomic")
    ddb = client(sb, "dynamodb", retries=False)
    create_keyed_table(ddb, table)
    racers = [client(sb, "dynamodb", retries=False) for _ in range(6)]
    start = threading.Barrier(len(racers))

    def claim(index: int) -> bool:
        start.wait()
        try:
            racers[index].put_item(
                TableName=table,
                Item={"pk": {"S": "lock"}, "owner": {"N": str(index)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
            return True
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
            return False

    with ThreadPoolExecutor(len(racers)) as pool:
        winners = sum(pool.map(claim, range(len(racers))))
    assert winners == 1


def test_reads_racing_writes_never_fail(sb, monkeypatch):  # noqa: F811
    # A DynamoDB read never fails because a write landed meanwhile. moto walks the table's dicts while
    # a write changes them; a slow walk widens that window, as a busy machine does.
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import moto.dynamodb.models.table as moto_table

    real_all_items = moto_table.Table.all_items

    def slow_all_items(self):
        for _ in self.items.values():  # the walk moto does, slowed down
            time.sleep(0.002)
        return real_all_items(self)

    monkeypatch.setattr(moto_table.Table, "all_items", slow_all_items)
    table = unique("reads")
    ddb = client(sb, "dynamodb", retries=False)
    create_keyed_table(ddb, table)
    for index in range(20):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"seed-{index}"}})
    done = threading.Event()

    def write(worker: int) -> int:
        writer = client(sb, "dynamodb", retries=False)
        count = 0
        while not done.is_set() and count < 200:
            writer.put_item(TableName=table, Item={"pk": {"S": f"w{worker}-{count}"}})
            count += 1
        return count

    def read(_: int) -> list[str]:
        reader = client(sb, "dynamodb", retries=False)
        errors = []
        try:
            for _ in range(10):
                try:
                    reader.scan(TableName=table)
                except ClientError as exc:
                    errors.append(f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}")
        finally:
            done.set()
        return errors

    with ThreadPoolExecutor(6) as pool:
        writers = [pool.submit(write, worker) for worker in range(3)]
        readers = [pool.submit(read, reader) for reader in range(3)]
        errors = [error for future in readers for error in future.result()]
        written = sum(future.result() for future in writers)
    assert written > 0
    assert errors == []


def create_keyed_table(ddb, table):
    """An on-demand table keyed by a string `pk`."""
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
