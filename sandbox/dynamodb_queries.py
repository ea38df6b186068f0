"""A Query reads only the items its key condition can match, instead of sorting the whole table first.

moto's Table.query starts from `all_items()`, every item of the table sorted by primary key (thousands of
comparisons of DynamoType values, each converting both sides), and then keeps the items of the partition
asked for, or, on an index, the items whose index key matches with another DynamoType comparison per item.
The ledger's tables hold every release of every function, and the ledger queries them on every step.

While a sandbox runs, moto's Query is handed a view of the table (`candidates`) whose `all_items()` is, in
the same order, only the items moto's own tests could keep: the partition's items for a table query (the
items are stored by partition key), the items whose index partition key equals the one asked for on an
index. moto then applies all its own tests to them as before, so the answer is the same; only the items it
would have passed over are not looked at.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from sandbox import core


def candidates(table: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The table Table.query(*args, **kwargs) should read: moto's own code reads the table itself."""
    return table


def _sort_key(item: Any) -> Any:
    """The order of moto's Table.all_items()."""
    return (item.hash_key, item.range_key) if item.range_key else item.hash_key


def _same(value: Any, expected: Any) -> bool:
    """value == expected, as DynamoType decides it (moto rejects an item on `!=`, its exact opposite); a
    string compared as a string, which is what its cast_value is."""
    if value.type != expected.type:
        return False
    if value.type == "S":
        return bool(value.value == expected.value)
    return bool(value == expected)


def _narrowed(table: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    if core.active() is None:
        return table
    index_name = kwargs.get("index_name", args[7] if len(args) > 7 else None)
    if not index_name:
        hash_key = kwargs.get("hash_key", args[0] if args else None)
        if type(hash_key) is not DynamoType:
            return table
        bucket = table.items.get(hash_key)
        if bucket is None:
            found: list[Any] = []
        elif table.range_key_attr:
            found = list(bucket.values())
        else:
            found = [bucket]
    else:
        conditions = kwargs.get("hash_key_conditions")
        if not conditions or not all(type(expected) is DynamoType for _, expected in conditions):
            return table
        found = []
        for stored in table.items.values():
            for item in stored.values() if table.range_key_attr else (stored,):
                attrs = item.attrs
                for name, expected in conditions:
                    value = attrs.get(name)
                    if type(value) is not DynamoType or not _same(value, expected):
                        break
                else:
                    found.append(item)
    return _view(table, sorted(found, key=_sort_key))


def _view(table: Any, items: list[Any]) -> Any:
    from sandbox.dynamodb_consistency import view_of

    view = view_of(table)
    all_items: Callable[[], list[Any]] = lambda: list(items)  # noqa: E731
    view.all_items = all_items
    return view


def install() -> None:
    """Called once, from sandbox.patches (whose Query reads through `candidates`)."""
    from sandbox import dynamodb_fast

    dynamodb_fast.replace(sys.modules[__name__], "candidates", _narrowed)
