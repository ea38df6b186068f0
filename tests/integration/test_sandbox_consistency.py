"""Consistency as AWS documents it: global secondary indexes trail their table, and so do the table's own
reads unless they ask for ConsistentRead; consistent reads, transactions and write conditions are current."""

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


def key_of(item: dict) -> dict:
    return {"pk": item["pk"], "sk": item["sk"]}


def eventual_reads(ddb, table: str, key: dict) -> dict[str, list[dict]]:
    """The item as each eventually consistent read (DynamoDB's default) answers it, as a list."""
    got = ddb.get_item(TableName=table, Key=key).get("Item")
    return {
        "GetItem": [got] if got else [],
        "BatchGetItem": ddb.batch_get_item(RequestItems={table: {"Keys": [key]}})["Responses"][table],
        "Query": ddb.query(
            TableName=table,
            KeyConditionExpression="pk = :p AND sk = :s",
            ExpressionAttributeValues={":p": key["pk"], ":s": key["sk"]},
        )["Items"],
        "Scan": ddb.scan(TableName=table)["Items"],
    }


def consistent_reads(ddb, table: str, key: dict) -> dict[str, list[dict]]:
    """The item as each strongly consistent read answers it: ConsistentRead=true, and TransactGetItems."""
    got = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    in_transaction = ddb.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key}}])
    transacted = in_transaction["Responses"][0].get("Item")
    return {
        "GetItem": [got] if got else [],
        "BatchGetItem": ddb.batch_get_item(RequestItems={table: {"Keys": [key], "ConsistentRead": True}})[
            "Responses"
        ][table],
        "Query": ddb.query(
            TableName=table,
            KeyConditionExpression="pk = :p AND sk = :s",
            ExpressionAttributeValues={":p": key["pk"], ":s": key["sk"]},
            ConsistentRead=True,
        )["Items"],
        "Scan": ddb.scan(TableName=table, ConsistentRead=True)["Items"],
        "TransactGetItems": [transacted] if transacted else [],
    }


def every(reads: dict[str, list[dict]], expected: list[dict]) -> dict[str, list[dict]]:
    """The reads that did not answer `expected` (empty when all did)."""
    return {name: found for name, found in reads.items() if found != expected}


def test_a_read_without_consistent_read_shows_the_old_image_until_the_lag_has_passed():
    with Sandbox(speed=60, gsi_lag=0, eventual_read_lag=LAG) as sb:
        ddb = client(sb, "dynamodb")
        table = ledger(sb)
        old = {"pk": {"S": "FN#a"}, "sk": {"S": "REL#1"}, "state": {"S": "DEPLOYING"}}
        new = {**old, "state": {"S": "SUCCEEDED"}}
        key = key_of(old)
        ddb.put_item(TableName=table, Item=old)
        wait_for(lambda: not every(eventual_reads(ddb, table, key), [old]), LAG + 5, what="the first write")

        updated = time.monotonic()
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":s": new["state"]},
        )
        stale = eventual_reads(ddb, table, key)
        current = consistent_reads(ddb, table, key)
        assert time.monotonic() - updated < LAG, "the machine was too slow to observe the lag"
        assert every(stale, [old]) == {}, "an eventually consistent read saw the update at once"
        assert every(current, [new]) == {}, "a strongly consistent read missed the update"

        wait_for(lambda: not every(eventual_reads(ddb, table, key), [new]), LAG + 5, what="the update")
        assert time.monotonic() - updated >= LAG
        assert every(consistent_reads(ddb, table, key), [new]) == {}


def test_a_new_item_is_missing_and_a_deleted_one_still_there_for_an_eventually_consistent_read():
    with Sandbox(speed=60, gsi_lag=0, eventual_read_lag=LAG) as sb:
        ddb = client(sb, "dynamodb")
        table = ledger(sb)
        item = {"pk": {"S": "FN#a"}, "sk": {"S": "LOCK"}, "release_id": {"S": "1"}}
        key = key_of(item)
        written = time.monotonic()
        ddb.put_item(TableName=table, Item=item)
        missing, found = eventual_reads(ddb, table, key), consistent_reads(ddb, table, key)
        assert time.monotonic() - written < LAG, "the machine was too slow to observe the lag"
        assert every(missing, []) == {} and every(found, [item]) == {}
        wait_for(lambda: not every(eventual_reads(ddb, table, key), [item]), LAG + 5, what="the new item")

        deleted = time.monotonic()
        ddb.delete_item(TableName=table, Key=key)
        lingering, gone = eventual_reads(ddb, table, key), consistent_reads(ddb, table, key)
        assert time.monotonic() - deleted < LAG, "the machine was too slow to observe the lag"
        assert every(lingering, [item]) == {} and every(gone, []) == {}
        wait_for(lambda: not every(eventual_reads(ddb, table, key), []), LAG + 5, what="the delete")


def test_a_write_condition_is_judged_on_the_current_item_whatever_an_eventual_read_shows():
    with Sandbox(speed=60, gsi_lag=0, eventual_read_lag=LAG) as sb:
        ddb = client(sb, "dynamodb")
        table = ledger(sb)
        lock = {"pk": {"S": "FN#a"}, "sk": {"S": "LOCK"}, "release_id": {"S": "1"}}
        written = time.monotonic()
        ddb.put_item(TableName=table, Item=lock, ConditionExpression="attribute_not_exists(pk)")
        assert "Item" not in ddb.get_item(TableName=table, Key=key_of(lock))  # not propagated yet
        assert time.monotonic() - written < LAG, "the machine was too slow to observe the lag"
        with pytest.raises(ClientError) as caught:
            ddb.put_item(
                TableName=table,
                Item={**lock, "release_id": {"S": "2"}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
        old = ddb.delete_item(TableName=table, Key=key_of(lock), ReturnValues="ALL_OLD")["Attributes"]
        assert old == lock


def test_without_eventual_read_lag_every_read_is_current():
    with Sandbox(speed=60, gsi_lag=0, eventual_read_lag=0) as sb:
        ddb = client(sb, "dynamodb")
        table = ledger(sb)
        item = {"pk": {"S": "FN#a"}, "sk": {"S": "REL#1"}}
        ddb.put_item(TableName=table, Item=item)
        assert every(eventual_reads(ddb, table, key_of(item)), [item]) == {}


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
