"""Consistency as AWS documents it: global secondary indexes trail their table; reads by key are current."""

from __future__ import annotations

import time
import uuid

import pytest
from botocore.exceptions import ClientError

from sandbox import Sandbox
from sandbox.queue_policy import let_aws_services_send
from tests.support.sandbox_support import client, wait_for

LAG = 3.0  # real seconds, long enough to observe from a test on a busy machine (1.0 was not, with two
# test workers beside other work on two cores)


def ledger(sb: Sandbox) -> str:
    name = f"ledger-{uuid.uuid4().hex[:6]}"
    client(sb, "dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "deployment_id", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-deployment",
                "KeySchema": [{"AttributeName": "deployment_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def by_deployment(sb: Sandbox, table: str, deployment: str) -> list[dict]:
    return list(
        client(sb, "dynamodb").query(
            TableName=table,
            IndexName="by-deployment",
            KeyConditionExpression="deployment_id = :d",
            ExpressionAttributeValues={":d": {"S": deployment}},
        )["Items"]
    )


def test_an_index_shows_a_write_only_after_the_lag_while_the_key_read_is_current():
    with Sandbox(speed=60, gsi_lag=LAG) as sb:
        ddb = client(sb, "dynamodb")
        table = ledger(sb)
        item = {
            "pk": {"S": "FN#a"},
            "sk": {"S": "REL#1"},
            "deployment_id": {"S": "d-1"},
            "state": {"S": "DEPLOYING"},
        }
        written = time.monotonic()
        ddb.put_item(TableName=table, Item=item)
        assert (
            ddb.get_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]}, ConsistentRead=True)[
                "Item"
            ]
            == item
        )
        assert by_deployment(sb, table, "d-1") == []  # not propagated yet
        assert time.monotonic() - written < LAG, "the machine was too slow to observe the lag"
        found = wait_for(
            lambda: by_deployment(sb, table, "d-1"), timeout=LAG + 5, what="the index to catch up"
        )
        assert found == [item] and time.monotonic() - written >= LAG

        # An update is seen through the index with the old image until it propagates.
        updated = time.monotonic()
        ddb.update_item(
            TableName=table,
            Key={"pk": item["pk"], "sk": item["sk"]},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":s": {"S": "SUCCEEDED"}},
        )
        seen = by_deployment(sb, table, "d-1")
        if time.monotonic() - updated < LAG:
            assert seen[0]["state"] == {"S": "DEPLOYING"}
        wait_for(
            lambda: by_deployment(sb, table, "d-1")[0]["state"] == {"S": "SUCCEEDED"},
            LAG + 5,
            what="the update",
        )


def test_a_consistent_read_of_an_index_is_refused_as_dynamodb_refuses_it():
    with Sandbox(speed=60, gsi_lag=LAG) as sb:
        table = ledger(sb)
        with pytest.raises(ClientError) as caught:
            client(sb, "dynamodb").query(
                TableName=table,
                IndexName="by-deployment",
                ConsistentRead=True,
                KeyConditionExpression="deployment_id = :d",
                ExpressionAttributeValues={":d": {"S": "d-1"}},
            )
        assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_without_lag_the_index_is_current():
    with Sandbox(speed=60, gsi_lag=0) as sb:
        table = ledger(sb)
        item = {"pk": {"S": "FN#a"}, "sk": {"S": "REL#1"}, "deployment_id": {"S": "d-2"}}
        client(sb, "dynamodb").put_item(TableName=table, Item=item)
        assert by_deployment(sb, table, "d-2") == [item]


def test_s3_events_reach_rules_late_and_sometimes_twice():
    from sandbox.event_delivery import DeliveryTiming

    timing = DeliveryTiming(s3_delay=(30.0, 60.0), duplicate_rate=1.0)
    with Sandbox(speed=60, fault_seed=3, event_timing=timing) as sb:
        sqs, s3, events = client(sb, "sqs"), client(sb, "s3"), client(sb, "events")
        url = sqs.create_queue(QueueName="late-events")["QueueUrl"]
        arn = let_aws_services_send(sqs, url)
        s3.create_bucket(Bucket="late-bucket")
        s3.put_bucket_notification_configuration(
            Bucket="late-bucket", NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        events.put_rule(Name="late", EventPattern='{"source": ["aws.s3"], "detail-type": ["Object Created"]}')
        events.put_targets(Rule="late", Targets=[{"Id": "q", "Arn": arn}])
        uploaded = sb.clock.now()
        s3.put_object(Bucket="late-bucket", Key="a.zip", Body=b"x")
        received: list[tuple[float, str]] = []

        def both() -> bool:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                received.append((sb.clock.now(), message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return len(received) >= 2

        wait_for(both, timeout=10, interval=0.02, what="two deliveries")
        assert all(at - uploaded >= 30 for at, _ in received)  # sandbox seconds
        assert received[0][1] == received[1][1]  # the same event (same id) twice
        assert sb.events.duplicated == 1
