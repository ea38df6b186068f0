"""Event delivery in the sandbox: EventBridge rules, S3 events, schedules, SNS to Lambda and HTTP."""

from __future__ import annotations

import json
from typing import Any

from tests.support.sandbox_support import (
    FORWARDER,
    HttpReceiver,
    allow_invoke,
    client,
    create_function,
    drain,
    queue,
    sb,  # noqa: F401 - module fixture
    unique,
    wait_for,
)


def forwarder(sb, out_queue: str) -> str:  # noqa: F811
    name = unique("forward")
    config = create_function(sb, name, FORWARDER, Environment={"Variables": {"OUT_QUEUE": out_queue}})
    return str(config["FunctionArn"])


def s3_rule(sb, bucket: str, targets: list[dict[str, str]]) -> None:  # noqa: F811
    events = client(sb, "events")
    rule = unique("uploads")
    events.put_rule(
        Name=rule,
        EventPattern=json.dumps(
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [bucket]}},
            }
        ),
    )
    events.put_targets(Rule=rule, Targets=targets)
    rule_arn = events.describe_rule(Name=rule)["Arn"]
    for target in targets:
        if ":lambda:" in target["Arn"]:
            allow_invoke(sb, target["Arn"], "events.amazonaws.com", rule_arn)


def eventbridge_bucket(sb, versioned: bool = True) -> str:  # noqa: F811
    s3 = client(sb, "s3")
    bucket = unique("artifacts")
    s3.create_bucket(Bucket=bucket)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    return bucket


def test_s3_object_created_reaches_a_lambda_target_in_the_aws_shape(sb):  # noqa: F811
    out_url, _ = queue(sb, out_name := unique("seen"))
    bucket = eventbridge_bucket(sb)
    s3_rule(sb, bucket, [{"Id": "fn", "Arn": forwarder(sb, out_name)}])
    s3 = client(sb, "s3")
    first = s3.put_object(Bucket=bucket, Key="builds/my fn/app.zip", Body=b"zip-bytes")
    s3.put_object(Bucket=bucket, Key="builds/other.zip", Body=b"more")

    messages = drain(sb, out_url, 2)
    events = {m["event"]["detail"]["object"]["key"]: m["event"] for m in messages}
    event = events["builds/my fn/app.zip"]
    assert event["source"] == "aws.s3"
    assert event["detail-type"] == "Object Created"
    assert event["resources"] == [f"arn:aws:s3:::{bucket}"]
    detail = event["detail"]
    assert detail["bucket"] == {"name": bucket}
    assert detail["object"]["etag"] == first["ETag"].strip('"')
    assert detail["object"]["size"] == len(b"zip-bytes")
    assert detail["object"]["version-id"] == first["VersionId"]
    assert detail["object"]["sequencer"]
    assert detail["reason"] == "PutObject"
    assert detail["requester"] == sb.account_id
    assert detail["source-ip-address"] and detail["request-id"]
    assert "eTag" not in detail["object"]
    ids = {m["event"]["id"] for m in messages}
    assert len(ids) == 2
    sequencers = [e["detail"]["object"]["sequencer"] for e in events.values()]
    assert len(set(sequencers)) == 2


def test_a_failing_target_does_not_block_the_others(sb):  # noqa: F811
    direct_url, direct_arn = queue(sb, unique("direct"))
    broken = unique("broken")
    broken_arn = create_function(
        sb, broken, "def handler(event, context):\n    raise RuntimeError('down')\n"
    )["FunctionArn"]
    bucket = eventbridge_bucket(sb, versioned=False)
    s3_rule(sb, bucket, [{"Id": "broken", "Arn": broken_arn}, {"Id": "queue", "Arn": direct_arn}])
    client(sb, "s3").put_object(Bucket=bucket, Key="a.zip", Body=b"x")
    [event] = drain(sb, direct_url, 1)
    assert event["detail"]["object"]["key"] == "a.zip"
    assert "version-id" not in event["detail"]["object"]


def test_put_events_delivers_to_lambda_targets_and_reports_entries(sb):  # noqa: F811
    out_url, _ = queue(sb, out_name := unique("custom"))
    events = client(sb, "events")
    rule = unique("custom")
    events.put_rule(
        Name=rule,
        EventPattern=json.dumps({"source": ["rollout.test"], "detail": {"n": [{"numeric": [">", 1]}]}}),
    )
    target = forwarder(sb, out_name)
    events.put_targets(Rule=rule, Targets=[{"Id": "fn", "Arn": target}])
    allow_invoke(sb, target, "events.amazonaws.com", events.describe_rule(Name=rule)["Arn"])
    result = events.put_events(
        Entries=[
            {"Source": "rollout.test", "DetailType": "Thing", "Detail": json.dumps({"n": 1})},
            {"Source": "rollout.test", "DetailType": "Thing", "Detail": json.dumps({"n": 5})},
        ]
    )
    assert result["FailedEntryCount"] == 0
    [message] = drain(sb, out_url, 1)
    assert message["event"]["detail"] == {"n": 5}
    assert message["event"]["id"] == result["Entries"][1]["EventId"]
    assert message["event"]["time"].endswith("Z")


def test_scheduled_rules_fire_on_the_sandbox_clock(sb):  # noqa: F811
    url, arn = queue(sb, unique("ticks"))
    events = client(sb, "events")
    rule = unique("every-minute")
    rule_arn = events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)")["RuleArn"]
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    ticks = drain(sb, url, 2, timeout=8)  # speed 60: a sandbox minute per real second
    assert ticks[0]["detail-type"] == "Scheduled Event"
    assert ticks[0]["source"] == "aws.events"
    assert ticks[0]["resources"] == [rule_arn]
    assert ticks[0]["time"] != ticks[1]["time"]
    events.disable_rule(Name=rule)


def test_sns_delivers_to_lambda_with_message_attributes(sb):  # noqa: F811
    out_url, _ = queue(sb, out_name := unique("sns-seen"))
    sns = client(sb, "sns")
    topic = sns.create_topic(Name=unique("topic"))["TopicArn"]
    target = forwarder(sb, out_name)
    allow_invoke(sb, target, "sns.amazonaws.com", topic)
    subscription = sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=target)["SubscriptionArn"]
    message_id = sns.publish(
        TopicArn=topic,
        Message="hello",
        Subject="greeting",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "release.started"}},
    )["MessageId"]
    [message] = drain(sb, out_url, 1)
    record = message["event"]["Records"][0]
    assert record["EventSource"] == "aws:sns"
    assert record["EventSubscriptionArn"] == subscription
    assert record["Sns"]["Message"] == "hello"
    assert record["Sns"]["Subject"] == "greeting"
    assert record["Sns"]["MessageId"] == message_id
    assert record["Sns"]["TopicArn"] == topic
    assert record["Sns"]["MessageAttributes"] == {"kind": {"Type": "String", "Value": "release.started"}}


def test_sns_delivers_to_an_http_receiver_on_localhost(sb):  # noqa: F811
    sns = client(sb, "sns")
    topic = sns.create_topic(Name=unique("hooks"))["TopicArn"]
    with HttpReceiver() as receiver:
        sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=receiver.url)
        message_id = sns.publish(TopicArn=topic, Message=json.dumps({"state": "SUCCEEDED"}))["MessageId"]
        wait_for(lambda: receiver.requests, 5, what="HTTP delivery")
    [request] = receiver.requests
    body = json.loads(request["body"])
    assert body["Type"] == "Notification"
    assert body["MessageId"] == message_id
    assert json.loads(body["Message"]) == {"state": "SUCCEEDED"}
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-amz-sns-message-type"] == "Notification"
    assert headers["x-amz-sns-topic-arn"] == topic


def test_dropped_and_duplicated_events(sb):  # noqa: F811
    url, arn = queue(sb, unique("faulty"))
    bucket = eventbridge_bucket(sb, versioned=False)
    s3_rule(sb, bucket, [{"Id": "q", "Arn": arn}])
    s3 = client(sb, "s3")
    sb.faults.drop_event({"source": ["aws.s3"], "detail": {"object": {"key": ["dropped.zip"]}}})
    sb.faults.duplicate_event({"source": ["aws.s3"], "detail": {"object": {"key": ["twice.zip"]}}})
    s3.put_object(Bucket=bucket, Key="dropped.zip", Body=b"x")
    s3.put_object(Bucket=bucket, Key="twice.zip", Body=b"x")
    s3.put_object(Bucket=bucket, Key="dropped.zip", Body=b"y")  # the drop was for one event only
    events = drain(sb, url, 3)
    keys = sorted(e["detail"]["object"]["key"] for e in events)
    assert keys == ["dropped.zip", "twice.zip", "twice.zip"]
    twice = [e for e in events if e["detail"]["object"]["key"] == "twice.zip"]
    assert twice[0]["id"] == twice[1]["id"]


def test_bucket_policy_conditions_are_evaluated_for_a_tls_client(sb):  # noqa: F811
    s3 = client(sb, "s3", retries=False)
    bucket = unique("guarded")
    s3.create_bucket(Bucket=bucket)
    arn = f"arn:aws:s3:::{bucket}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            },
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"{arn}/locked/*"},
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    s3.put_object(Bucket=bucket, Key="open/a.zip", Body=b"x")
    assert s3.get_object(Bucket=bucket, Key="open/a.zip")["Body"].read() == b"x"
    try:
        s3.put_object(Bucket=bucket, Key="locked/a.zip", Body=b"x")
    except client(sb, "s3").exceptions.ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    else:
        raise AssertionError("an unconditional Deny must still deny")


def test_sns_and_eventbridge_send_only_to_queues_whose_policy_lets_them(sb):  # noqa: F811
    # AWS delivers to a queue as the service principal: without a queue policy naming it, nothing arrives.
    sqs, sns, events = client(sb, "sqs"), client(sb, "sns"), client(sb, "events")
    closed_url = sqs.create_queue(QueueName=unique("no-policy"))["QueueUrl"]
    closed_arn = sqs.get_queue_attributes(QueueUrl=closed_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    open_url, open_arn = queue(sb, unique("with-policy"))

    topic = sns.create_topic(Name=unique("topic"))["TopicArn"]
    for arn in (closed_arn, open_arn):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    sns.publish(TopicArn=topic, Message=json.dumps({"n": 1}))
    assert drain(sb, open_url, 1) == [{"n": 1}]
    assert "Messages" not in sqs.receive_message(QueueUrl=closed_url, WaitTimeSeconds=0)

    rule = unique("to-closed")
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["rollout.test.closed"]}))
    events.put_targets(
        Rule=rule, Targets=[{"Id": "q", "Arn": closed_arn, "DeadLetterConfig": {"Arn": open_arn}}]
    )
    events.put_events(Entries=[{"Source": "rollout.test.closed", "DetailType": "Thing", "Detail": "{}"}])

    def dead_lettered() -> dict[str, Any] | None:
        got = sqs.receive_message(QueueUrl=open_url, MessageAttributeNames=["All"], WaitTimeSeconds=1)
        return (got.get("Messages") or [None])[0]

    message = wait_for(dead_lettered, timeout=15, what="the dead-lettered event")
    assert json.loads(message["Body"])["source"] == "rollout.test.closed"
    assert message["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "NO_PERMISSIONS"
    assert "Messages" not in sqs.receive_message(QueueUrl=closed_url, WaitTimeSeconds=0)
