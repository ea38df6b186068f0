"""The sandbox's faster DynamoDB paths answer byte for byte what moto's own code answers.

Each script of requests runs three times on three identical tables: with the sandbox's code (its caches
cold, as the first request of an expression finds them), with moto's own code put back for every request
(sandbox/dynamodb_fast.py records what was replaced), and with the sandbox's code again (caches warm). The
raw response bodies and status codes must be the same, call for call, and so must the items left behind.
Reads run with no lag, and with a lag of LAG calls: the consistency model's clock (real seconds) is a
counter here that moves one second per call, so a lagging read sees the same writes in every run.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest

from sandbox import Sandbox, dynamodb_fast
from sandbox.dynamodb_expressions import NotClonable, clone_tree
from tests.support.sandbox_support import client, unique

Call = tuple[str, dict[str, Any]]
LAG = 2.5  # calls


class CallClock:
    """Stands for the `time` module in sandbox/dynamodb_consistency.py: one second per call."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture(scope="module", params=[0.0, LAG], ids=["current", "lagging"])
def sb(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with Sandbox(
        speed=60, codedeploy=False, iam=False, gsi_lag=request.param, eventual_read_lag=request.param
    ) as running:
        yield running


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> CallClock:
    from sandbox import dynamodb_consistency

    counter = CallClock()
    monkeypatch.setattr(dynamodb_consistency, "time", counter)
    return counter


@contextmanager
def motos_own_code(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patched:
        for owner, name, before in reversed(dynamodb_fast.REPLACED):
            if before is dynamodb_fast.MISSING:
                patched.delattr(owner, name)
            else:
                patched.setattr(owner, name, before)
        yield


class RawDynamoDB:
    """A DynamoDB client that keeps each answer as it came over the wire: (status, body bytes)."""

    def __init__(self, sb: Sandbox) -> None:
        self.client = client(sb, "dynamodb", retries=False)
        self.client.meta.events.register("before-parse.dynamodb.*", self._keep)
        self.last: tuple[int, bytes] = (0, b"")

    def _keep(self, response_dict: dict[str, Any], **_: Any) -> None:
        self.last = (response_dict["status_code"], response_dict["body"])

    def call(self, operation: str, params: dict[str, Any], table: str, other: str) -> tuple[int, bytes]:
        """The answer, with the tables' names (UpdateItem's ConsumedCapacity names one) written TABLE, OTHER."""
        with suppress(self.client.exceptions.ClientError):
            getattr(self.client, operation)(**params)
        status, body = self.last
        return status, body.replace(table.encode(), b"TABLE").replace(other.encode(), b"OTHER")


def table(sb: Sandbox) -> str:
    """A ledger-shaped table with a global index on `g` (and `n` defined as a number, for type checks)."""
    name = unique("speed")
    client(sb, "dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": t}
            for a, t in (("pk", "S"), ("sk", "S"), ("g", "S"), ("gr", "N"))
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [
                    {"AttributeName": "g", "KeyType": "HASH"},
                    {"AttributeName": "gr", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "by-g-keys",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "by-gr",
                "KeySchema": [{"AttributeName": "gr", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def other_table(sb: Sandbox) -> str:
    """A table keyed by `sk` alone (what is a key attribute there is an ordinary one in `table`), with a
    stream of old and new images."""
    name = unique("speed-other")
    client(sb, "dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "sk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name


def stream_records(sb: Sandbox, name: str) -> list[Any]:
    """What the table's stream recorded: each write's kind, key and images."""
    arn = client(sb, "dynamodb").describe_table(TableName=name)["Table"]["LatestStreamArn"]
    streams = client(sb, "dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in streams.get_records(ShardIterator=iterator)["Records"]:
            change = record["dynamodb"]
            records.append(
                (record["eventName"], change.get("Keys"), change.get("OldImage"), change.get("NewImage"))
            )
    return records


def with_tables(calls: list[Call], name: str, other: str) -> list[Call]:
    """The script's calls aimed at tables `name` and `other` (TABLE and OTHER in any TableName)."""
    text = json.dumps(calls).replace('"TABLE"', json.dumps(name)).replace('"OTHER"', json.dumps(other))
    return [(operation, params) for operation, params in json.loads(text)]


def same_answers(sb: Sandbox, monkeypatch: pytest.MonkeyPatch, clock: CallClock, calls: list[Call]) -> None:
    raw = RawDynamoDB(sb)
    answers = []
    for fast in (True, False, True):
        name, other = table(sb), other_table(sb)
        got = []
        for index, (operation, params) in enumerate(with_tables(calls, name, other)):
            clock.now = float(index)
            if fast:
                got.append(raw.call(operation, params, name, other))
            else:
                with motos_own_code(monkeypatch):
                    got.append(raw.call(operation, params, name, other))
        clock.now = float(len(calls) + 1000)  # every write long past
        for scanned in (name, other):
            got.append(raw.call("scan", {"TableName": scanned, "ConsistentRead": True}, name, other))
        got.append(stream_records(sb, other))
        answers.append(got)
    for index, (operation, params) in enumerate(calls):
        assert answers[0][index] == answers[1][index] == answers[2][index], (index, operation, params)
    assert answers[0][-3:] == answers[1][-3:] == answers[2][-3:]


def key(pk: str = "FN#a", sk: str = "REL#1") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


BASE = {
    **key(),
    "s": {"S": "x"},
    "n": {"N": "5"},
    "l": {"L": [{"N": "1"}, {"S": "a"}, {"M": {"k": {"S": "v"}}}]},
    "m": {"M": {"a": {"M": {"b": {"S": "c"}}}, "l": {"L": [{"BOOL": True}]}}},
    "ss": {"SS": ["p", "q"]},
    "ns": {"NS": ["1", "2"]},
    "g": {"S": "G1"},
    "gr": {"N": "1"},
    "state": {"S": "QUEUED"},
    "history": {"L": [{"M": {"state": {"S": "RECEIVED"}, "at": {"S": "t0"}}}]},
}

# (UpdateExpression, names, values): what the ledger writes, every kind of action, and every refusal.
UPDATES: list[tuple[str, dict[str, str] | None, dict[str, Any] | None]] = [
    ("SET #a = :a, #b = :b", {"#a": "s", "#b": "new"}, {":a": {"S": "y"}, ":b": {"N": "2"}}),
    ("SET m.a.b = :a", None, {":a": {"S": "deep"}}),
    ("SET m.#x = :a", {"#x": "fresh"}, {":a": {"M": {"z": {"NULL": True}}}}),
    ("SET l[1] = :a, l[9] = :b", None, {":a": {"S": "one"}, ":b": {"S": "appended"}}),
    (
        "SET #h = list_append(if_not_exists(#h, :empty), :e)",
        {"#h": "history"},
        {":empty": {"L": []}, ":e": {"L": [{"M": {"state": {"S": "DEPLOYING"}}}]}},
    ),
    (
        "SET #h = list_append(if_not_exists(#h, :empty), :e)",
        {"#h": "absent"},
        {":empty": {"L": []}, ":e": {"L": [{"S": "first"}]}},
    ),
    ("SET n = n + :one, #c = :one - :one", {"#c": "counter"}, {":one": {"N": "1"}}),
    ("SET n = n - :one", None, {":one": {"N": "1.5"}}),
    ("SET copy = m, m.a.b = :a", None, {":a": {"S": "changed"}}),
    ("REMOVE s, l[0], l[2]", None, None),
    ("ADD n :one, ss :s, added :one", None, {":one": {"N": "1"}, ":s": {"SS": ["r"]}}),
    ("DELETE ss :s", None, {":s": {"SS": ["p"]}}),
    ("SET s = :a REMOVE m.a ADD n :one", None, {":a": {"S": "z"}, ":one": {"N": "3"}}),
    ("set s = :a", None, {":a": {"S": "lower-case keyword"}}),
    (
        "SET #r.#h = :r, #u = :u",
        {"#r": "m", "#h": "hook", "#u": "updated_at"},
        {":r": {"M": {}}, ":u": {"S": "t"}},
    ),
    # refused
    ("SET s = :a SET n = :one", None, {":a": {"S": "y"}, ":one": {"N": "1"}}),
    ("SET s = :a, s = :b", None, {":a": {"S": "y"}, ":b": {"S": "z"}}),
    ("SET m = :a, m.a = :b", None, {":a": {"M": {}}, ":b": {"S": "z"}}),
    ("SET #p = :a", {"#p": "pk"}, {":a": {"S": "y"}}),
    ("SET sk = :a", None, {":a": {"S": "y"}}),
    ("SET #undefined = :a", {"#other": "s"}, {":a": {"S": "y"}}),
    ("SET s = :missing", None, {":a": {"S": "y"}}),
    ("SET s = list_append(s, :e)", None, {":e": {"L": []}}),
    ("SET nope.deeper = :a", None, {":a": {"S": "y"}}),
    ("SET s = ", None, None),
    ("SET g = :a", None, {":a": {"N": "1"}}),
    ("SET g = :a", None, {":a": {"S": ""}}),
    ("SET status = :a", None, {":a": {"S": "reserved word"}}),
    ("ADD s :one", None, {":one": {"N": "1"}}),
    ("SET n = n + :a", None, {":a": {"S": "text"}}),
    ("SET l[1].x = :a", None, {":a": {"S": "y"}}),
    ("REMOVE m.a.b.c.d", None, None),
    ("SET s = :a", {"#unused": "s"}, {":a": {"S": "y"}}),
    ("SET s = nothere", None, None),
    ("SET s = nothere.deeper, n = :one", None, {":one": {"N": "1"}}),
    ("SET s = if_not_exists(nothere, :a), m.a = m.nothere", None, {":a": {"S": "y"}}),
    ("SET n = nothere + :one", None, {":one": {"N": "1"}}),
    ("SET #h = list_append(#none, :e)", {"#h": "history", "#none": "none"}, {":e": {"L": []}}),
]

CONDITIONS: list[tuple[str | None, dict[str, str] | None, dict[str, Any] | None]] = [
    (None, None, None),
    ("attribute_exists(pk)", None, None),
    ("#st IN (:q, :h)", {"#st": "state"}, {":q": {"S": "QUEUED"}, ":h": {"S": "HELD"}}),
    ("#st IN (:h)", {"#st": "state"}, {":h": {"S": "HELD"}}),
    ("attribute_not_exists(zzz) AND s = :x", None, {":x": {"S": "x"}}),
    ("size(l) > :two OR begins_with(s, :x)", None, {":two": {"N": "2"}, ":x": {"S": "x"}}),
    ("NOT (n BETWEEN :lo AND :hi)", None, {":lo": {"N": "1"}, ":hi": {"N": "3"}}),
    ("s = = :x", None, {":x": {"S": "x"}}),
    ("attribute_exists(#missing)", None, None),
]


def merged(*parts: dict[str, Any] | None) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for part in parts:
        out.update(part or {})
    return out or None


def update(
    expression: str, names: Any, values: Any, condition: Any = (None, None, None), **extra: Any
) -> Call:
    params: dict[str, Any] = {"TableName": "TABLE", "Key": key(), "UpdateExpression": expression, **extra}
    if condition[0]:
        params["ConditionExpression"] = condition[0]
    if merged(names, condition[1]):
        params["ExpressionAttributeNames"] = merged(names, condition[1])
    if merged(values, condition[2]):
        params["ExpressionAttributeValues"] = merged(values, condition[2])
    return ("update_item", params)


RETURN_VALUES = ["ALL_NEW", "NONE", "ALL_OLD", "UPDATED_OLD", "UPDATED_NEW"]


@pytest.mark.parametrize("case", range(len(UPDATES)))
def test_update_expressions_answer_as_motos_own_code(sb, monkeypatch, clock, case) -> None:
    expression, names, values = UPDATES[case]
    calls: list[Call] = []
    for index, condition in enumerate(CONDITIONS):
        calls.append(("put_item", {"TableName": "TABLE", "Item": BASE}))
        returned = RETURN_VALUES[(case + index) % len(RETURN_VALUES)]
        extra = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"} if index % 2 else {}
        calls.append(update(expression, names, values, condition, ReturnValues=returned, **extra))
        calls.append(
            update(expression, names, values, condition, ReturnValues=returned, **extra)
        )  # applied again
        calls.append(("put_item", {"TableName": "OTHER", "Item": {**BASE, "sk": {"S": "k"}}}))
        other = update(expression, names, values, condition, ReturnValues=returned, **extra)
        other[1].update(TableName="OTHER", Key={"sk": {"S": "k"}})
        calls.append(other)
        calls.append(("get_item", {"TableName": "TABLE", "Key": key(), "ConsistentRead": True}))
    calls.append(("delete_item", {"TableName": "TABLE", "Key": key()}))
    calls.append(update(expression, names, values, ReturnValues="ALL_NEW"))  # an item that did not exist
    same_answers(sb, monkeypatch, clock, calls)


def test_the_ledgers_writes_answer_as_motos_own_code(sb, monkeypatch, clock) -> None:
    sets = {f"#f{i}": name for i, name in enumerate(("state", "updated_at", "deploying_at", "deployment_id"))}
    values = {f":v{i}": {"S": f"value {i}"} for i in range(len(sets))}
    transition = (
        "SET "
        + ", ".join(f"#f{i} = :v{i}" for i in range(len(sets)))
        + ", #history = list_append(if_not_exists(#history, :empty), :entry), #open = :open"
    )
    names = {**sets, "#history": "history", "#open": "open_state", "#st": "state"}
    values = {
        **values,
        ":empty": {"L": []},
        ":entry": {"L": [{"M": {"state": {"S": "DEPLOYING"}, "at": {"S": "t1"}}}]},
        ":open": {"S": "DEPLOYING"},
        ":from0": {"S": "QUEUED"},
        ":from1": {"S": "RECEIVED"},
    }
    release = {
        "Update": {
            "TableName": "TABLE",
            "Key": key(),
            "UpdateExpression": transition,
            "ConditionExpression": "#st IN (:from0, :from1)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }
    lock = {
        "Update": {
            "TableName": "TABLE",
            "Key": key(sk="LOCK"),
            "UpdateExpression": "SET #d = :d",
            "ConditionExpression": "#r = :r",
            "ExpressionAttributeNames": {"#d": "deployment_id", "#r": "release_id"},
            "ExpressionAttributeValues": {":d": {"S": "d-1"}, ":r": {"S": "1"}},
        }
    }
    wrong_lock = copy.deepcopy(lock)
    wrong_lock["Update"]["ExpressionAttributeValues"][":r"] = {"S": "2"}
    calls: list[Call] = [
        ("put_item", {"TableName": "TABLE", "Item": BASE, "ConditionExpression": "attribute_not_exists(pk)"}),
        ("put_item", {"TableName": "TABLE", "Item": BASE, "ConditionExpression": "attribute_not_exists(pk)"}),
        ("put_item", {"TableName": "TABLE", "Item": {**key(sk="LOCK"), "release_id": {"S": "1"}}}),
        ("transact_write_items", {"TransactItems": [release, wrong_lock]}),
        ("get_item", {"TableName": "TABLE", "Key": key(), "ConsistentRead": True}),
        ("transact_write_items", {"TransactItems": [release, lock]}),
        ("transact_write_items", {"TransactItems": [release, lock]}),
        ("get_item", {"TableName": "TABLE", "Key": key(), "ConsistentRead": True}),
        ("get_item", {"TableName": "TABLE", "Key": key()}),
        (
            "delete_item",
            {
                "TableName": "TABLE",
                "Key": key(sk="LOCK"),
                "ConditionExpression": "release_id = :r",
                "ExpressionAttributeValues": {":r": {"S": "2"}},
            },
        ),
        (
            "delete_item",
            {
                "TableName": "TABLE",
                "Key": key(sk="LOCK"),
                "ConditionExpression": "release_id = :r",
                "ExpressionAttributeValues": {":r": {"S": "1"}},
                "ReturnValues": "ALL_OLD",
            },
        ),
        update(transition, names, values, ("#st IN (:from0, :from1)", None, None), ReturnValues="ALL_NEW"),
    ]
    same_answers(sb, monkeypatch, clock, calls)


def test_the_checks_kept_per_expression_are_kept_per_names_and_table_too(sb, monkeypatch, clock) -> None:
    """The same expression passes or is refused by what its names stand for and by the table's keys."""
    values = {":a": {"S": "y"}, ":b": {"S": "z"}}
    calls: list[Call] = [("put_item", {"TableName": "TABLE", "Item": BASE})]
    for names in (
        {"#a": "s", "#b": "new"},
        {"#a": "pk", "#b": "new"},
        {"#a": "s", "#b": "s"},
        {"#a": "sk", "#b": "x"},
    ):
        calls.append(update("SET #a = :a, #b = :b", names, values, ReturnValues="ALL_NEW"))
        other = update("SET #a = :a, #b = :b", names, values, ReturnValues="ALL_NEW")
        other[1].update(TableName="OTHER", Key={"sk": {"S": "k"}})
        calls.append(other)
    same_answers(sb, monkeypatch, clock, calls)


def shape(node: Any, copies: dict[int, Any]) -> Any:
    """A tree as nested (class, children) with each node's parent named by its place."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    copies[id(node)] = len(copies)
    parent = copies.get(id(node.parent)) if node.parent is not None else None
    children = [
        shape(c, copies) if isinstance(c, Node) else (type(c).__name__, c) for c in node.children or []
    ]
    return (type(node).__name__, node.type, sorted(node.__dict__), parent, children)


@pytest.mark.parametrize("case", range(len(UPDATES)))
def test_a_tree_copied_node_by_node_is_what_deepcopy_makes(sb, case) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    try:
        tree = UpdateExpressionParser.make(UPDATES[case][0])
    except Exception:
        return  # refused by the parser itself: there is no tree
    copied = clone_tree(tree)
    assert shape(copied, {}) == shape(copy.deepcopy(tree), {}) == shape(tree, {})
    assert not ({id(n) for n in nodes(copied)} & {id(n) for n in nodes(tree)})


def nodes(tree: Any) -> list[Any]:
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    found = [tree]
    for child in tree.children or []:
        if isinstance(child, Node):
            found += nodes(child)
    return found


def test_a_tree_that_is_not_plain_parser_output_is_left_to_deepcopy(sb) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.parsing.ast_nodes import DDBTypedValue  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    with pytest.raises(NotClonable):
        clone_tree(DDBTypedValue(DynamoType({"S": "x"})))
    tree = copy.deepcopy(UpdateExpressionParser.make("SET a = :a"))
    tree.children[0].extra = "state deepcopy would copy"
    with pytest.raises(NotClonable):
        clone_tree(tree)
    shared = copy.deepcopy(UpdateExpressionParser.make("SET a = :a, b = :b"))
    shared.children.append(shared.children[0])
    with pytest.raises(NotClonable):
        clone_tree(shared)


def test_a_kept_tree_is_never_changed_by_the_requests_that_use_it(sb, monkeypatch, clock) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    expression = "SET #h = list_append(if_not_exists(#h, :empty), :e), n = n + :one REMOVE l[0]"
    kept = UpdateExpressionParser.make(expression)
    before = shape(kept, {})
    calls = [("put_item", {"TableName": "TABLE", "Item": BASE})] + [
        update(
            expression,
            {"#h": "history"},
            {":empty": {"L": []}, ":e": {"L": [{"S": "e"}]}, ":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )
    ] * 3
    same_answers(sb, monkeypatch, clock, calls)
    assert UpdateExpressionParser.make(expression) is kept
    assert shape(kept, {}) == before


def read_everything(pk: str = "FN#a") -> list[Call]:
    """Every read of the table and its indexes, consistent and not."""
    by_g = {":g": {"S": "G1"}}
    return [
        ("get_item", {"TableName": "TABLE", "Key": key(pk)}),
        ("get_item", {"TableName": "TABLE", "Key": key(pk), "ConsistentRead": True}),
        ("get_item", {"TableName": "TABLE", "Key": key(pk), "ProjectionExpression": "s, m.a, l[0]"}),
        (
            "query",
            {
                "TableName": "TABLE",
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": pk}},
            },
        ),
        (
            "query",
            {
                "TableName": "TABLE",
                "KeyConditionExpression": "pk = :p AND begins_with(sk, :r)",
                "FilterExpression": "#st IN (:q, :d)",
                "ExpressionAttributeNames": {"#st": "state"},
                "ExpressionAttributeValues": {
                    ":p": {"S": pk},
                    ":r": {"S": "REL#"},
                    ":q": {"S": "QUEUED"},
                    ":d": {"S": "DEPLOYING"},
                },
                "ScanIndexForward": False,
                "ConsistentRead": True,
            },
        ),
        (
            "query",
            {
                "TableName": "TABLE",
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": pk}},
                "Limit": 1,
                "ExclusiveStartKey": key(pk, "REL#1"),
            },
        ),
        (
            "query",
            {
                "TableName": "TABLE",
                "IndexName": "by-g",
                "KeyConditionExpression": "g = :g",
                "ExpressionAttributeValues": by_g,
            },
        ),
        (
            "query",
            {
                "TableName": "TABLE",
                "IndexName": "by-g",
                "KeyConditionExpression": "g = :g AND gr > :one",
                "ExpressionAttributeValues": {**by_g, ":one": {"N": "1"}},
                "ProjectionExpression": "pk, sk, gr",
                "ScanIndexForward": False,
            },
        ),
        (
            "query",
            {
                "TableName": "TABLE",
                "IndexName": "by-g-keys",
                "KeyConditionExpression": "g = :g",
                "ExpressionAttributeValues": by_g,
                "Limit": 1,
            },
        ),
        (
            "query",
            {
                "TableName": "TABLE",
                "IndexName": "by-g",
                "KeyConditionExpression": "g = :g",
                "ExpressionAttributeValues": {":g": {"N": "1"}},
            },
        ),
        (
            "query",
            {
                "TableName": "TABLE",
                "IndexName": "by-g",
                "KeyConditionExpression": "g = :g",
                "ExpressionAttributeValues": by_g,
                "ConsistentRead": True,
            },
        ),
        (
            "query",
            {
                "TableName": "TABLE",
                "IndexName": "by-gr",
                "KeyConditionExpression": "gr = :one",
                "ExpressionAttributeValues": {":one": {"N": "1.0"}},
            },
        ),
        (
            "query",
            {
                "TableName": "OTHER",
                "KeyConditionExpression": "sk = :k",
                "ExpressionAttributeValues": {":k": {"S": "k"}},
            },
        ),
        (
            "query",
            {
                "TableName": "TABLE",
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "FN#none"}},
            },
        ),
        ("scan", {"TableName": "TABLE", "FilterExpression": "attribute_exists(s)"}),
        ("scan", {"TableName": "TABLE", "IndexName": "by-g-keys"}),
        (
            "batch_get_item",
            {
                "RequestItems": {
                    "TABLE": {"Keys": [key(pk), key(pk, "REL#2"), key(pk, "REL#3")], "ConsistentRead": True}
                }
            },
        ),
        (
            "batch_get_item",
            {"RequestItems": {"TABLE": {"Keys": [key(pk), key(pk, "REL#2"), key(pk, "REL#3")]}}},
        ),
    ]


def test_reads_after_every_kind_of_write_answer_as_motos_own_code(sb, monkeypatch, clock) -> None:
    """Lagging reads see the old images the writes kept; failed writes leave nothing behind."""
    second = {**BASE, **key(sk="REL#2"), "gr": {"N": "2"}, "state": {"S": "DEPLOYING"}}
    third = {**key(sk="REL#3"), "g": {"S": "G1"}, "gr": {"N": "3"}}
    set_s = update(
        "SET s = :a, #h = list_append(#h, :e)",
        {"#h": "history"},
        {":a": {"S": "y"}, ":e": {"L": [{"S": "e"}]}},
        ReturnValues="ALL_OLD",
    )
    failing = update("SET s = :a", None, {":a": {"S": "z"}}, ("s = :nope", None, {":nope": {"S": "nope"}}))
    too_large = update("SET m.big = :big", None, {":big": {"S": "x" * (400 * 1024)}})
    failing_transaction = {
        "TransactItems": [
            {
                "Update": {
                    "TableName": "TABLE",
                    "Key": key(),
                    "UpdateExpression": "SET s = :a",
                    "ExpressionAttributeValues": {":a": {"S": "t"}},
                }
            },
            {"Put": {"TableName": "TABLE", "Item": third}},
            {
                "ConditionCheck": {
                    "TableName": "TABLE",
                    "Key": key(sk="REL#2"),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
    }
    calls: list[Call] = [
        ("put_item", {"TableName": "TABLE", "Item": BASE}),
        ("put_item", {"TableName": "TABLE", "Item": second}),
        ("put_item", {"TableName": "TABLE", "Item": {**key("FN#b"), "g": {"S": "G1"}, "gr": {"N": "1.00"}}}),
        ("put_item", {"TableName": "OTHER", "Item": {"sk": {"S": "k"}, "a": {"S": "b"}}}),
        *read_everything(),
        set_s,
        *read_everything(),
        set_s,
        set_s,
        *read_everything(),
        failing,
        too_large,
        ("transact_write_items", failing_transaction),
        *read_everything(),
        ("put_item", {"TableName": "TABLE", "Item": third}),
        ("delete_item", {"TableName": "TABLE", "Key": key(sk="REL#2"), "ReturnValues": "ALL_OLD"}),
        *read_everything(),
        (
            "put_item",
            {"TableName": "TABLE", "Item": {**BASE, "s": {"S": "replaced"}}, "ReturnValues": "ALL_OLD"},
        ),
        set_s,
        *read_everything(),
        ("delete_item", {"TableName": "TABLE", "Key": key()}),
        *read_everything(),
    ]
    same_answers(sb, monkeypatch, clock, calls)


def described(value: Any, seen: dict[int, int]) -> Any:
    """An item or value as nested tuples, each DynamoType and Item numbered where it is first met, so that
    two descriptions are equal only if the objects are shared in the same places."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    if type(value) in (DynamoType, Item):
        if id(value) in seen:
            return ("again", seen[id(value)])
        seen[id(value)] = len(seen)
        state = value.__dict__
        return (type(value).__name__, list(state), [described(v, seen) for v in state.values()])
    if isinstance(value, dict):
        return (type(value).__name__, [(k, described(v, seen)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [described(v, seen) for v in value])
    return (type(value).__name__, value)


@pytest.mark.parametrize("seed", range(30))
def test_an_item_copied_for_an_update_is_what_deepcopy_makes(sb, seed) -> None:
    import random

    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    from sandbox.dynamodb_items import clone
    from tests.integration.test_sandbox_dynamodb_wire import EVERY_KIND, random_value

    rng = random.Random(seed)
    attrs = {f"a{i}": random_value(rng) for i in range(rng.randint(1, 8))}
    item = Item(
        DynamoType({"S": "pk"}), DynamoType({"N": "1"}) if seed % 2 else None, {**attrs, **EVERY_KIND}
    )
    item.attrs["alias"] = item.attrs["nested"]  # SET alias = nested makes the two attributes one value
    item.attrs["nested"].value["deep"].value["again"] = item.attrs["a0"]
    item.__dict__["_sandbox_size"] = 1  # not copied, by either
    copied = clone(item)
    assert described(copied, {}) == described(copy.deepcopy(item), {})
    assert copied.attrs["alias"] is copied.attrs["nested"] is not item.attrs["nested"]
    assert not {id(v) for v in copied.attrs.values()} & {id(v) for v in item.attrs.values()}


@pytest.mark.parametrize("seed", range(30))
def test_a_stored_value_measures_as_its_wire_form(sb, seed) -> None:
    """The size limit measures moto's DynamoType by its type and value, as it measures the wire form."""
    import random

    from moto.dynamodb.models.dynamo_type import DynamoType

    from sandbox.dynamodb_limits import value_size
    from tests.integration.test_sandbox_dynamodb_wire import EVERY_KIND, random_value

    rng = random.Random(seed)
    for value in [random_value(rng) for _ in range(10)] + [*EVERY_KIND.values()]:
        typed = DynamoType(value)
        assert value_size(typed) == value_size(value) == value_size(typed.to_json())


PROJECTIONS = [
    [["a0"]],
    [["pk"], ["sk"], ["a1"], ["pk"]],
    [["nested"], ["nested", "deep"], ["nested", "history"]],
    [["nested", "deep", "l"], ["nested"]],
    [
        ["nested", "history[0]", "state"],
        ["nested", "history[1]"],
        ["l[0]"],
        ["missing"],
        ["missing", "deeper"],
    ],
    [["ss"], ["bs"], ["b"], ["n"], ["null"], ["empty_m"], ["empty_l"], ["alias"], ["a0"], ["a2"]],
    [],
]


@pytest.mark.parametrize("seed", range(15))
def test_an_item_projects_as_moto_projects_it(sb, seed) -> None:
    import random

    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    from tests.integration.test_sandbox_dynamodb_wire import EVERY_KIND, random_value

    moto_project = next(b for o, n, b in dynamodb_fast.REPLACED if o is Item and n == "project")
    rng = random.Random(seed)
    attrs = {f"a{i}": random_value(rng) for i in range(4)}
    item = Item(
        DynamoType({"S": "pk"}),
        DynamoType({"S": "sk"}),
        {"pk": {"S": "pk"}, "sk": {"S": "sk"}, **attrs, **EVERY_KIND},
    )
    item.attrs["alias"] = item.attrs["nested"]
    for paths in PROJECTIONS:
        assert item.project(paths).to_json() == moto_project(item, paths).to_json(), paths


def test_reads_through_a_view_leave_no_table_behind(sb, clock) -> None:
    """A lagging read's view of a table and a Query's view of its candidates are what copy.copy makes, and
    they are not kept in moto's list of every Table made (which lives until the sandbox stops)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import Table

    from sandbox.dynamodb_consistency import view_of

    name = table(sb)
    dynamodb = client(sb, "dynamodb")
    moto_table = dynamodb_backends[sb.account_id][sb.region].tables[name]
    view = view_of(moto_table)
    assert type(view) is Table and view.__dict__ == copy.copy(moto_table).__dict__
    before = len(Table.instances_tracked)
    for n in range(5):
        clock.now = float(n)
        dynamodb.put_item(TableName=name, Item={**key(sk=f"REL#{n}"), "g": {"S": "G1"}, "gr": {"N": str(n)}})
        dynamodb.query(
            TableName=name,
            IndexName="by-g",
            KeyConditionExpression="g = :g",
            ExpressionAttributeValues={":g": {"S": "G1"}},
        )
        dynamodb.query(
            TableName=name, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "FN#a"}}
        )
    assert len(Table.instances_tracked) == before
