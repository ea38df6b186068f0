"""The sandbox renders DynamoDB items (sandbox/dynamodb_wire.py) exactly as moto's generic serializer does."""

from __future__ import annotations

import base64
import random
from decimal import Decimal
from typing import Any

import pytest
from moto.core.responses import get_service_model
from moto.core.serialize import BaseJSONSerializer, XFormedAttributePicker, get_serializer_class

from sandbox import dynamodb_fast
from sandbox.dynamodb_wire import plain, regular_json
from tests.support.sandbox_support import client, sb, unique  # noqa: F401 - module fixture

EVERY_KIND: dict[str, Any] = {
    "s": {"S": "text"},
    "empty_s": {"S": ""},
    "unicode": {"S": "ünïcode ✓"},
    "n": {"N": "12.50"},
    "b": {"B": b"\x00\x01binary"},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"\xff"]},
    "null": {"NULL": True},
    "true": {"BOOL": True},
    "false": {"BOOL": False},
    "empty_m": {"M": {}},
    "empty_l": {"L": []},
    "nested": {
        "M": {
            "history": {"L": [{"M": {"state": {"S": "RECEIVED"}, "at": {"N": "1"}}}, {"NULL": True}]},
            "": {"S": "an empty key"},
            "deep": {"M": {"l": {"L": [{"L": [{"BOOL": False}, {"B": b"z"}]}]}}},
        }
    },
}


def random_value(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kinds = ["S", "N", "B", "SS", "NS", "BS", "NULL", "BOOL"] + (["M", "L"] * 2 if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "S":
        return {"S": rng.choice(["", "x", "ü", "a b", "0"]) * rng.randint(0, 3)}
    if kind == "N":
        return {"N": str(rng.randint(-5, 10**6))}
    if kind == "B":
        return {"B": bytes(rng.randrange(256) for _ in range(rng.randint(0, 6)))}
    if kind in ("SS", "NS"):
        return {kind: [str(rng.randint(0, 99)) for _ in range(rng.randint(1, 4))]}
    if kind == "BS":
        return {"BS": [bytes([rng.randrange(256)]) for _ in range(rng.randint(1, 3))]}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "M":
        return {"M": {f"k{i}": random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}}
    return {"L": [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]}


def rendered(operation: str, result: dict[str, Any]) -> Any:
    """The response body moto's serializer writes for `result` (as DynamoHandler.serialized does), as it is
    (its keys' order too)."""
    service = get_service_model("dynamodb")
    serializer_class = get_serializer_class("dynamodb", service.protocol)
    serializer = serializer_class(
        operation_model=service.operation_model(operation),
        pretty_print=False,
        value_picker=XFormedAttributePicker(response_transformers=None),
    )
    return serializer.serialize(result)["body"]


def generic(monkeypatch: pytest.MonkeyPatch, operation: str, result: dict[str, Any]) -> Any:
    fast = BaseJSONSerializer._serialize_type_structure
    with monkeypatch.context() as patched:
        patched.setattr(BaseJSONSerializer, "_serialize_type_structure", fast.original)  # type: ignore[attr-defined]
        return rendered(operation, result)


@pytest.mark.parametrize("seed", range(40))
def test_items_render_as_moto_renders_them(sb, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:  # noqa: F811
    rng = random.Random(seed)
    items = [
        {"pk": {"S": f"FN#{seed}"}, **{f"a{i}": random_value(rng) for i in range(rng.randint(1, 8))}}
        for _ in range(3)
    ]
    if seed == 0:
        items.append({"pk": {"S": "every"}, **EVERY_KIND})
    for operation, result in (
        ("GetItem", {"Item": items[0]}),
        ("UpdateItem", {"Attributes": items[-1]}),
        ("Query", {"Items": items, "Count": len(items), "ScannedCount": len(items)}),
    ):
        assert rendered(operation, result) == generic(monkeypatch, operation, result)


def test_what_is_not_in_the_wire_shape_takes_motos_own_path(sb, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    odd = {"Item": {"pk": {"S": "x"}, "odd": {"s": "lower-case member name"}, "none": None}}
    assert rendered("GetItem", odd) == generic(monkeypatch, "GetItem", odd)
    two = {"Item": {"two": {"N": "1", "S": "x", "NULL": None}, "in": {"L": [{"BOOL": True, "S": "y"}]}}}
    assert rendered("GetItem", two) == generic(monkeypatch, "GetItem", two)


def test_an_item_of_every_kind_comes_back_as_it_was_put(sb) -> None:  # noqa: F811
    dynamodb = client(sb, "dynamodb")
    table = unique("wire")
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    storable = {k: v for k, v in EVERY_KIND.items() if k not in ("empty_s", "nested")}
    item = {"pk": {"S": "every"}, **storable}
    dynamodb.put_item(TableName=table, Item=item)
    got = dynamodb.get_item(TableName=table, Key={"pk": {"S": "every"}}, ConsistentRead=True)["Item"]
    assert {k: v for k, v in got.items() if k not in ("ss", "ns", "bs")} == {
        k: v for k, v in item.items() if k not in ("ss", "ns", "bs")
    }
    assert {k: sorted(next(iter(got[k].values()))) for k in ("ss", "ns", "bs")} == {
        k: sorted(next(iter(item[k].values()))) for k in ("ss", "ns", "bs")
    }


def moto_to_regular_json() -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    return next(b for o, n, b in dynamodb_fast.REPLACED if o is DynamoType and n == "to_regular_json")


@pytest.mark.parametrize("seed", range(40))
def test_values_convert_to_plain_json_as_moto_converts_them(sb, seed: int) -> None:  # noqa: F811
    from moto.dynamodb.models.dynamo_type import DynamoType

    rng = random.Random(seed)
    values = [random_value(rng) for _ in range(5)] + ([*EVERY_KIND.values()] if seed == 0 else [])
    for value in values:
        typed = DynamoType(value)
        assert regular_json(typed) == moto_to_regular_json()(typed) == typed.to_regular_json()
        if "B" in value:
            typed.value = base64.b64encode(value["B"]).decode()  # as the wire brings it
            assert regular_json(typed) == moto_to_regular_json()(typed)


@pytest.mark.parametrize("seed", range(20))
def test_answers_turn_into_plain_values_as_moto_turns_them(sb, seed: int) -> None:  # noqa: F811
    """What DynamoResult hands the serializer: items, their attributes, key maps, counts, capacities."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.utilities import dynamo_to_dict

    rng = random.Random(seed)
    values = [random_value(rng) for _ in range(4)] + ([*EVERY_KIND.values()] if seed == 0 else [])
    item = Item(DynamoType({"S": "pk"}), DynamoType({"S": "sk"}), {f"a{i}": v for i, v in enumerate(values)})
    wire_binary = DynamoType({"B": base64.b64encode(b"bytes").decode()})
    answer = {
        "Items": [item.attrs, item.to_json()["Attributes"]],
        "Item": item,
        "Count": rng.randint(0, 9),
        "LastEvaluatedKey": {"pk": DynamoType({"S": "pk"}), "b": wire_binary},
        "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5, "Exact": Decimal("1.5")},
        "When": datetime(2026, 1, 1, tzinfo=UTC),
        "Flags": [True, None, b"raw", 3],
    }
    assert plain(answer) == dynamo_to_dict(answer)
    assert plain(answer) is not answer  # moto's handlers add ConsumedCapacity to the answer's own dict


def answers(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """An answer of every shape the DynamoDB operations give, around random items: capacities, metrics,
    unprocessed requests, keys, counts, the odd None, a snake_case key moto's picker also reads, and keys
    no member has."""
    items = [
        {"pk": {"S": f"p{i}"}, **{f"a{j}": random_value(rng) for j in range(rng.randint(0, 4))}}
        for i in range(3)
    ]
    key = {"pk": {"S": "p0"}, "sk": {"N": str(rng.randint(0, 9))}}
    capacity = {
        "TableName": "t",
        "CapacityUnits": rng.choice([0.5, 1, Decimal("2.5")]),
        "Table": {"CapacityUnits": 1.0},
    }
    metrics = {"ItemCollectionKey": key, "SizeEstimateRangeGB": [0.0, 1.5]}
    return [
        ("GetItem", {"Item": items[0], "ConsumedCapacity": capacity}),
        ("GetItem", {"Item": None}),
        ("PutItem", {"Attributes": items[1], "ConsumedCapacity": capacity, "ItemCollectionMetrics": metrics}),
        (
            "UpdateItem",
            {"Attributes": items[2], "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}},
        ),
        ("DeleteItem", {"attributes": items[0], "Unknown": 1}),
        ("Query", {"Items": items, "Count": 3, "ScannedCount": "5", "LastEvaluatedKey": key}),
        ("Scan", {"Items": [], "Count": 0, "ScannedCount": 0, "ConsumedCapacity": capacity}),
        (
            "BatchGetItem",
            {
                "Responses": {"t": items, "u": []},
                "UnprocessedKeys": {
                    "t": {
                        "Keys": [key, key],
                        "ConsistentRead": rng.random() < 0.5,
                        "ProjectionExpression": "a, #b",
                        "ExpressionAttributeNames": {"#b": "b"},
                    }
                },
                "ConsumedCapacity": [capacity, capacity],
            },
        ),
        (
            "BatchWriteItem",
            {
                "UnprocessedItems": {
                    "t": [{"PutRequest": {"Item": items[0]}}, {"DeleteRequest": {"Key": key}}]
                }
            },
        ),
        ("TransactWriteItems", {"ConsumedCapacity": [capacity], "ItemCollectionMetrics": {"t": [metrics]}}),
        ("TransactGetItems", {"Responses": [{"Item": items[0]}, {}, {"Item": None}]}),
        ("ListTables", {"TableNames": ["a", "b"], "LastEvaluatedTableName": "b"}),
        ("ListTables", {"table_names": ["snake"], "LastEvaluatedTableName": None}),
    ]


@pytest.mark.parametrize("seed", range(20))
def test_whole_answers_render_as_moto_renders_them(sb, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:  # noqa: F811
    for operation, result in answers(random.Random(seed)):
        assert rendered(operation, result) == generic(monkeypatch, operation, result), operation


def test_a_table_description_renders_as_moto_renders_it(sb, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from moto.dynamodb.models import dynamodb_backends

    from tests.support.sandbox_support import ledger_shaped_table

    _, name = ledger_shaped_table(sb, "described")
    table = dynamodb_backends[sb.account_id][sb.region].tables[name]
    for operation, result in (
        ("DescribeTable", table.describe(base_key="Table")),
        ("CreateTable", table.describe()),
    ):
        assert rendered(operation, result) == generic(monkeypatch, operation, result), operation
