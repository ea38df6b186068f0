"""TransactWriteItems in the sandbox: all or nothing, with the items it names put back when it fails."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models.table import Table

from tests.support.sandbox_support import ledger_shaped_table, sb  # noqa: F401 - module fixture


def everything(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def test_a_failed_transaction_leaves_every_item_as_it_was(sb) -> None:  # noqa: F811
    dynamodb, table = ledger_shaped_table(sb, "txn")
    dynamodb.put_item(TableName=table, Item={**key("a", "1"), "n": {"N": "1"}})
    dynamodb.put_item(TableName=table, Item={**key("b", "1"), "n": {"N": "1"}})
    dynamodb.put_item(TableName=table, Item={**key("c", "1"), "n": {"N": "1"}})
    before = everything(dynamodb, table)
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {**key("new", "1"), "n": {"N": "9"}}}},
                {"Put": {"TableName": table, "Item": {**key("a", "2"), "n": {"N": "9"}}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": key("a", "1"),
                        "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "9"}},
                    }
                },
                {"Delete": {"TableName": table, "Key": key("b", "1")}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": key("c", "1"),
                        "ConditionExpression": "n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
            ]
        )
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in refused.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "None", "ConditionalCheckFailed"]
    assert everything(dynamodb, table) == before
    assert (
        dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "new"}},
            ConsistentRead=True,
        )["Items"]
        == []
    )
    assert "__deepcopy__" not in vars(Table)  # the table backup is moto's own again after the request


def test_a_transaction_that_names_one_item_twice_changes_nothing(sb) -> None:  # noqa: F811
    dynamodb, table = ledger_shaped_table(sb, "txn")
    dynamodb.put_item(TableName=table, Item={**key("a", "1"), "n": {"N": "1"}})
    before = everything(dynamodb, table)
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {**key("a", "1"), "n": {"N": "5"}}}},
                {"Delete": {"TableName": table, "Key": key("a", "1")}},
            ]
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert everything(dynamodb, table) == before


def test_a_transaction_whose_conditions_hold_applies_every_write(sb) -> None:  # noqa: F811
    dynamodb, table = ledger_shaped_table(sb, "txn")
    dynamodb.put_item(TableName=table, Item={**key("a", "1"), "n": {"N": "1"}})
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": {**key("b", "1"), "n": {"N": "2"}}}},
            {
                "Update": {
                    "TableName": table,
                    "Key": key("a", "1"),
                    "UpdateExpression": "SET n = :n",
                    "ConditionExpression": "n = :one",
                    "ExpressionAttributeValues": {":n": {"N": "3"}, ":one": {"N": "1"}},
                }
            },
        ]
    )
    assert everything(dynamodb, table) == [
        {**key("a", "1"), "n": {"N": "3"}},
        {**key("b", "1"), "n": {"N": "2"}},
    ]
