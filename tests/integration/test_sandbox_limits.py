"""AWS's size limits in the sandbox: what AWS refuses is refused, with AWS's error, and what fits goes through.

Each limit is tested on both sides: the largest request AWS accepts is accepted, one byte more is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.sandbox_support import (
    client,
    create_function,
    drain,
    ledger_shaped_table,
    queue,
    role_arn,
    sb,  # noqa: F401 - module fixture
    unique,
    zip_of,
    zip_unzipping_to,
)

MIB = 1024 * 1024


def refusal(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    error = exc.value.response["Error"]
    return error["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"], error["Message"]


# --- Lambda: Invoke payloads --------------------------------------------------------------------------

SIZES = """
import json, os
import boto3

def handler(event, context):
    if "answer_bytes" in event:
        return "x" * event["answer_bytes"]
    size = len(json.dumps(event))
    if os.environ.get("OUT_QUEUE"):
        sqs = boto3.client("sqs")
        url = sqs.get_queue_url(QueueName=os.environ["OUT_QUEUE"])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"received_bytes": size}))
    return {"received_bytes": size}
"""


def payload_of(total_bytes: int) -> bytes:
    """A JSON object of exactly `total_bytes` bytes."""
    overhead = len(json.dumps({"pad": ""}))
    return json.dumps({"pad": "a" * (total_bytes - overhead)}).encode()


@pytest.fixture(scope="module")
def sizes(sb: Any) -> str:  # noqa: F811
    """A function that answers the bytes it received."""
    name = unique("sizes")
    create_function(sb, name, SIZES, Timeout=30)
    client(sb, "lambda").get_waiter("function_active_v2").wait(FunctionName=name)
    return name


@pytest.fixture(scope="module")
def reported_sizes(sb: Any) -> tuple[str, str]:  # noqa: F811
    """A function that sends the bytes it received to a queue (for asynchronous invocations)."""
    out = unique("sizes-out")
    url, _ = queue(sb, out)
    name = unique("reported-sizes")
    create_function(sb, name, SIZES, Environment={"Variables": {"OUT_QUEUE": out}}, Timeout=30)
    client(sb, "lambda").get_waiter("function_active_v2").wait(FunctionName=name)
    return name, url


def test_a_synchronous_request_over_6_mb_is_refused_before_the_function_runs(sb, sizes: str) -> None:  # noqa: F811
    name = sizes
    lam = client(sb, "lambda", retries=False)
    with pytest.raises(ClientError) as refused:
        lam.invoke(FunctionName=name, Payload=payload_of(6 * MIB + 1))
    assert refusal(refused) == (
        "RequestEntityTooLargeException",
        413,
        "Request must be smaller than 6291456 bytes for the Invoke operation",
    )
    answer = lam.invoke(FunctionName=name, Payload=payload_of(6 * MIB))
    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read()) == {"received_bytes": 6 * MIB}


def test_an_asynchronous_request_over_1_mb_is_refused_and_one_of_1_mb_is_delivered(
    sb,  # noqa: F811
    reported_sizes: tuple[str, str],
) -> None:
    name, url = reported_sizes
    lam = client(sb, "lambda", retries=False)
    with pytest.raises(ClientError) as refused:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=payload_of(MIB + 1))
    assert refusal(refused) == (
        "RequestEntityTooLargeException",
        413,
        "1048577 byte payload is too large for the Event invocation type (limit 1048576 bytes)",
    )
    accepted = lam.invoke(FunctionName=name, InvocationType="Event", Payload=payload_of(MIB))
    assert accepted["StatusCode"] == 202
    assert drain(sb, url, 1, timeout=30) == [{"received_bytes": MIB}]


def test_a_response_over_6_mb_reaches_the_caller_as_a_function_error(sb, sizes: str) -> None:  # noqa: F811
    name = sizes
    lam = client(sb, "lambda", retries=False)
    too_large = lam.invoke(FunctionName=name, Payload=json.dumps({"answer_bytes": 7 * MIB}).encode())
    body = json.loads(too_large["Payload"].read())
    assert too_large["StatusCode"] == 200 and too_large["FunctionError"] == "Unhandled"
    assert body == {
        "errorMessage": f"Response payload size ({7 * MIB + 2} bytes) exceeded maximum allowed payload "
        "size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    fits = lam.invoke(FunctionName=name, Payload=json.dumps({"answer_bytes": 6 * MIB}).encode())
    assert "FunctionError" not in fits
    assert len(fits["Payload"].read()) == 6 * MIB + 2  # the JSON string's quotes


# --- Lambda: unzipped code and layers -----------------------------------------------------------------

UNZIPPED_LIMIT = 262_144_000


def function_with_code(sb: Any, prefix: str, code: bytes, **extra: Any) -> str:  # noqa: F811
    """A new function running `code` (a zip), once Lambda reports it Active."""
    lam = client(sb, "lambda")
    name = unique(prefix)
    lam.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role_arn(sb),
        Handler="app.handler",
        Code={"ZipFile": code},
        **extra,
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    return name


def test_code_over_250_mb_unzipped_is_refused_and_code_of_250_mb_is_taken(sb) -> None:  # noqa: F811
    name = function_with_code(
        sb, "unzipped", zip_of({"app.py": "def handler(event, context):\n    return 1\n"})
    )
    lam = client(sb, "lambda", retries=False)
    with pytest.raises(ClientError) as refused:
        lam.update_function_code(FunctionName=name, ZipFile=zip_unzipping_to(UNZIPPED_LIMIT + 1))
    assert refusal(refused) == (
        "InvalidParameterValueException",
        400,
        "Unzipped size must be smaller than 262144000 bytes",
    )
    largest = zip_unzipping_to(UNZIPPED_LIMIT)
    taken = lam.update_function_code(FunctionName=name, ZipFile=largest)
    assert taken["CodeSha256"] == base64.b64encode(hashlib.sha256(largest).digest()).decode()


def test_layers_count_toward_the_unzipped_limit(sb) -> None:  # noqa: F811
    lam = client(sb, "lambda", retries=False)
    layer_bytes = 200 * MIB
    layer = lam.publish_layer_version(
        LayerName=unique("padding"), Content={"ZipFile": zip_unzipping_to(layer_bytes)}
    )["LayerVersionArn"]
    code_left = UNZIPPED_LIMIT - layer_bytes

    # New code that no longer fits beside the function's layer.
    name = function_with_code(sb, "layered", zip_unzipping_to(code_left), Layers=[layer])
    with pytest.raises(ClientError) as refused:
        lam.update_function_code(FunctionName=name, ZipFile=zip_unzipping_to(code_left + 1))
    assert refusal(refused) == (
        "InvalidParameterValueException",
        400,
        f"Unzipped size must be smaller than {code_left} bytes",
    )

    # A layer that no longer fits beside the function's code.
    other = function_with_code(sb, "unlayered", zip_unzipping_to(code_left + 1))
    with pytest.raises(ClientError) as refused:
        lam.update_function_configuration(FunctionName=other, Layers=[layer])
    assert refusal(refused) == (
        "InvalidParameterValueException",
        400,
        "Layers consume more than the available size of 262144000 bytes",
    )
    assert lam.get_function_configuration(FunctionName=other).get("Layers", []) == []


# --- DynamoDB: 400 KB items ---------------------------------------------------------------------------

ITEM_LIMIT = 400 * 1024


def keyed(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "FN#f"}, "sk": {"S": sk}}


KEY_BYTES = len("pk") + len("FN#f") + len("sk")  # plus the sort key value's own bytes


def test_an_item_of_400_kb_is_stored_and_one_byte_more_is_refused(sb) -> None:  # noqa: F811
    dynamodb, table = ledger_shaped_table(sb, "items")
    # Attribute names count, as do values: "d" + its string.
    fits = ITEM_LIMIT - KEY_BYTES - len("a") - len("d")
    dynamodb.put_item(TableName=table, Item={**keyed("a"), "d": {"S": "x" * fits}})
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName=table, Item={**keyed("b"), "d": {"S": "x" * (fits + 1)}})
    assert refusal(refused) == ("ValidationException", 400, "Item size has exceeded the maximum allowed size")
    assert "Item" not in dynamodb.get_item(TableName=table, Key=keyed("b"), ConsistentRead=True)


def test_lists_and_maps_count_their_overhead(sb) -> None:  # noqa: F811
    # "A List or Map requires 3 bytes of overhead ... each List or Map element also requires 1 byte":
    # 30,000 nulls are 60,003 bytes, though their values alone are 30,000.
    dynamodb, table = ledger_shaped_table(sb, "items")
    nulls = {"L": [{"NULL": True}] * 30_000}
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName=table, Item={**keyed("n"), "l": nulls, "s": {"S": "x" * 360_000}})
    assert refusal(refused)[2] == "Item size has exceeded the maximum allowed size"
    dynamodb.put_item(TableName=table, Item={**keyed("n"), "l": nulls, "s": {"S": "x" * 340_000}})


def test_query_pages_are_filled_by_the_same_measure(sb) -> None:  # noqa: F811
    # 25 items of 42 KB to DynamoDB: a 38,000-byte string and 1,000 empty lists ((3 + 1) bytes each, plus 3).
    # Counted by their values alone they are 38 KB, and all 25 would fit in one 1 MB page.
    dynamodb, table = ledger_shaped_table(sb, "pages")
    for n in range(25):
        history = {"L": [{"L": []}] * 1_000}
        dynamodb.put_item(
            TableName=table, Item={**keyed(f"REL#{n:02d}"), "reason": {"S": "r" * 38_000}, "history": history}
        )
    query = {"TableName": table, "KeyConditionExpression": "pk = :pk", "ConsistentRead": True}
    query["ExpressionAttributeValues"] = {":pk": {"S": "FN#f"}}
    first = dynamodb.query(**query)
    assert "LastEvaluatedKey" in first and 20 <= len(first["Items"]) < 25
    rest = dynamodb.query(**query, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert len(first["Items"]) + len(rest["Items"]) == 25 and "LastEvaluatedKey" not in rest


def test_an_update_that_outgrows_the_item_is_refused_whole(sb) -> None:  # noqa: F811
    # A hook result stored under hook_results.<hook>, as the ledger records it, onto a large release.
    dynamodb, table = ledger_shaped_table(sb, "items")
    release = {**keyed("r"), "checks": {"S": "c" * 300_000}, "hook_results": {"M": {}}}
    dynamodb.put_item(TableName=table, Item=release)
    with pytest.raises(ClientError) as refused:
        dynamodb.update_item(
            TableName=table,
            Key=keyed("r"),
            UpdateExpression="SET updated_at = :u, #hr.#h = :r",
            ExpressionAttributeNames={"#hr": "hook_results", "#h": "pre_traffic"},
            ExpressionAttributeValues={
                ":u": {"S": "2026-01-01T00:00:00.000Z"},
                ":r": {"M": {"reason": {"S": "r" * 150_000}}},
            },
        )
    assert refusal(refused) == (
        "ValidationException",
        400,
        "Item size to update has exceeded the maximum allowed size",
    )
    assert dynamodb.get_item(TableName=table, Key=keyed("r"), ConsistentRead=True)["Item"] == release


def test_a_transaction_that_outgrows_an_item_is_cancelled_with_its_reason(sb) -> None:  # noqa: F811
    # The ledger's start of a deployment: the release and the function's lock in one transaction.
    dynamodb, table = ledger_shaped_table(sb, "items")
    release = {**keyed("r"), "checks": {"S": "c" * 300_000}}
    lock = {**keyed("LOCK"), "release_id": {"S": "r"}}
    dynamodb.put_item(TableName=table, Item=release)
    dynamodb.put_item(TableName=table, Item=lock)
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": keyed("r"),
                        "UpdateExpression": "SET history = :h",
                        "ExpressionAttributeValues": {":h": {"L": [{"S": "h" * 150_000}]}},
                    }
                },
                {
                    "Update": {
                        "TableName": table,
                        "Key": keyed("LOCK"),
                        "UpdateExpression": "SET deployment_id = :d",
                        "ExpressionAttributeValues": {":d": {"S": "d-1"}},
                    }
                },
            ]
        )
    code, status, message = refusal(refused)
    assert (code, status) == ("TransactionCanceledException", 400)
    assert message.endswith("[ValidationError, None]")
    assert [reason["Code"] for reason in refused.value.response["CancellationReasons"]] == [
        "ValidationError",
        "None",
    ]
    read = dynamodb.get_item
    assert read(TableName=table, Key=keyed("r"), ConsistentRead=True)["Item"] == release
    assert read(TableName=table, Key=keyed("LOCK"), ConsistentRead=True)["Item"] == lock


# --- SNS: 256 KiB messages ----------------------------------------------------------------------------

SNS_LIMIT = 256 * 1024


def test_sns_counts_message_bytes_and_attributes_against_the_topic_limit(sb) -> None:  # noqa: F811
    sns = client(sb, "sns", retries=False)
    topic = sns.create_topic(Name=unique("notifications"))["TopicArn"]
    # The notifier's attributes: name, data type and value all count.
    attributes = {"kind": {"DataType": "String", "StringValue": "deployment.rolled_back"}}
    attribute_bytes = len("kind") + len("String") + len("deployment.rolled_back")
    sns.publish(TopicArn=topic, Message="m" * (SNS_LIMIT - attribute_bytes), MessageAttributes=attributes)
    with pytest.raises(ClientError) as refused:
        sns.publish(
            TopicArn=topic, Message="m" * (SNS_LIMIT - attribute_bytes + 1), MessageAttributes=attributes
        )
    assert refusal(refused) == ("InvalidParameter", 400, "Invalid parameter: Message too long")
    # Bytes, not characters: 100,000 three-byte characters are 300,000 bytes.
    with pytest.raises(ClientError) as refused:
        sns.publish(TopicArn=topic, Message="あ" * 100_000)
    assert refusal(refused)[0] == "InvalidParameter"


def test_a_topic_with_a_larger_maximum_message_size_takes_larger_messages(sb) -> None:  # noqa: F811
    sns = client(sb, "sns", retries=False)
    topic = sns.create_topic(Name=unique("large"), Attributes={"MaximumMessageSize": str(MIB)})["TopicArn"]
    sns.publish(TopicArn=topic, Message="m" * MIB)
    with pytest.raises(ClientError) as refused:
        sns.publish(TopicArn=topic, Message="m" * (MIB + 1))
    assert refusal(refused)[0] == "InvalidParameter"


# --- S3: object keys ----------------------------------------------------------------------------------


def test_an_object_key_over_1024_bytes_is_refused(sb) -> None:  # noqa: F811
    s3 = client(sb, "s3", retries=False)
    bucket = unique("artifacts")
    s3.create_bucket(Bucket=bucket)
    longest = "builds/" + "k" * (1024 - len("builds/"))
    s3.put_object(Bucket=bucket, Key=longest, Body=zip_of({"app.py": "x = 1\n"}))
    assert s3.head_object(Bucket=bucket, Key=longest)["ContentLength"] > 0
    for too_long in (longest + "k", "builds/" + "é" * 509):  # 1,025 bytes; 7 + 1,018 bytes
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket=bucket, Key=too_long, Body=b"x")
        assert refusal(refused) == ("KeyTooLongError", 400, "Your key is too long")
