"""Stored DynamoDB items are values while a sandbox runs: a write replaces an item, it never changes one.

moto's UpdateItem changes the stored item in place, so whatever needs the item as it was copies it first:
moto's handler (for ReturnValues), the sandbox's size limit (to put the item back when the update fails or
leaves it too large), its consistency model (the image a lagging read sees) and its transactions (to put
items back when one fails). Query and Scan deep-copy every item they return, so that a later write cannot
reach into an answer. A ledger item with its history is deep, and those copies were a fifth of the
sandbox's DynamoDB time.

With a sandbox running, the sandbox's UpdateItem hands moto a copy of the item to change and stores that
copy (dynamodb_limits); PutItem stores a new item and DeleteItem removes one, as moto does. The item that
was stored is then never changed again, by anything: every other change of an item goes through moto's
backend.update_item. So a snapshot of a stored item is the item itself, moto's copies of stored items in
its handler and in Query and Scan are the items themselves, and an item's size, measured once, stays its
size. Without a sandbox moto's own code runs, with its copies.

moto projects an item (an index's KEYS_ONLY or INCLUDE, a ProjectionExpression) by converting the whole
item to plain values once for every path it keeps; the sandbox converts it once.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from sandbox import core

SIZE = "_sandbox_size"  # an item's measured size, kept on the item (items are values)


def items_are_values() -> bool:
    """Whether every write now replaces a stored item instead of changing it: moto's own code, never;
    the sandbox's, while it runs (install() puts that answer here)."""
    return False


def snapshot(item: Any) -> Any:
    """The stored item (or None) as it is now, kept for later: the item itself while items are values."""
    return item if items_are_values() else copy.deepcopy(item)


def clone(item: Any) -> Any:
    """copy.deepcopy(item) for a moto Item, made directly: the same new Item, keys and attributes (each
    DynamoType copied as DynamoType.__deepcopy__ copies it, a value reached twice copied once), without
    deepcopy's dispatch for every value of the item."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    memo: dict[int, Any] = {}

    def typed(value: Any) -> Any:
        if type(value) is not DynamoType:
            return copy.deepcopy(value, memo)
        found = memo.get(id(value))
        if found is not None:
            return found
        result = DynamoType.__new__(DynamoType)
        memo[id(value)] = result
        result.type = kind = value.type
        inner = value.value
        if kind == "L":
            result.value = [typed(element) for element in inner]
        elif kind == "M":
            result.value = {name: typed(element) for name, element in inner.items()}
        elif kind in ("SS", "NS", "BS"):
            result.value = list(inner)
        else:
            result.value = inner
        return result

    new: Any = Item.__new__(Item)  # through moto's BaseModel.__new__, as deepcopy's copy is
    new.hash_key = typed(item.hash_key)
    new.range_key = typed(item.range_key)
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.__init__(attrs)
    for name, value in item.attrs.items():
        dict.__setitem__(attrs, name, typed(value))
    new.attrs = attrs
    return new


# (the copy an UpdateItem is about to change, the stored item it was copied from), until moto copies it
_about_to_change: list[tuple[Any, Any]] = []


def to_change(item: Any) -> Any:
    """A copy of stored `item` for moto's UpdateItem to change (dynamodb_limits stores it in its place).
    moto's update_item deep-copies the item it changes before it starts (for a stream record); that copy
    is `item` itself, which is the same and never changes (ModelCopies)."""
    changing = clone(item)
    _about_to_change[:] = [(changing, item)]
    return changing


def changed() -> None:
    """The UpdateItem that asked for `to_change` is over."""
    _about_to_change.clear()


class ModelCopies:
    """Stands for the `copy` module in moto's DynamoDB backend module: its one deep copy of an item, in
    update_item, is of the copy `to_change` just made, and gets the stored item that copy was made from."""

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if memo is None and _about_to_change and value is _about_to_change[0][0] and items_are_values():
            stored = _about_to_change[0][1]
            _about_to_change.clear()
            return stored
        return copy.deepcopy(value, memo)

    copy = staticmethod(copy.copy)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


class StoredItemCopies:
    """Stands for the `copy` module in moto's DynamoDB handler and table modules: deepcopy of a stored
    item, or of a list of them, gives the item (a new list of the items) while items are values."""

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        from moto.dynamodb.models.dynamo_type import Item

        if memo is None and items_are_values():
            if type(value) is Item:
                return value
            if type(value) is list and all(type(element) is Item for element in value):
                return list(value)
        return copy.deepcopy(value, memo)

    copy = staticmethod(copy.copy)  # Table.attribute_keys copies its key names

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def install() -> None:
    """Called once, from sandbox.patches (after dynamodb_limits, whose item size this keeps)."""
    import moto.dynamodb.models as models_module
    import moto.dynamodb.models.table as table_module
    import moto.dynamodb.responses as responses_module
    from moto.dynamodb.models.dynamo_type import Item

    from sandbox import dynamodb_fast

    dynamodb_fast.replace(sys.modules[__name__], "items_are_values", lambda: core.active() is not None)
    copies = StoredItemCopies()
    dynamodb_fast.replace(responses_module, "copy", copies)
    dynamodb_fast.replace(table_module, "copy", copies)
    dynamodb_fast.replace(models_module, "copy", ModelCopies())

    measure = Item.size

    def size(self: Any) -> int:
        if not items_are_values():
            return int(measure(self))
        known = self.__dict__.get(SIZE)
        if known is None:
            known = self.__dict__[SIZE] = measure(self)
        return int(known)

    dynamodb_fast.replace(Item, "size", size)

    from moto.dynamodb.models import dynamo_type

    project = Item.project

    def project_once(self: Any, projection_expressions: list[list[str]]) -> Any:
        """moto's Item.project, converting the item to plain values once instead of once per projected
        path: find_nested_key only reads the converted item, and merge_dicts writes into it at most what
        is already there (each path's value is taken from that same conversion)."""
        if core.active() is None:
            return project(self, projection_expressions)
        result: dict[str, Any] = {}
        converted = None
        for expression in projection_expressions:
            if converted is None:
                converted = self.to_regular_json()
            dynamo_type.merge_dicts(result, dynamo_type.find_nested_key(expression, converted))
        return Item(
            hash_key=self.hash_key,
            range_key=self.range_key,
            attrs=dynamo_type.serializer.serialize(result)["M"],
        )

    dynamodb_fast.replace(Item, "project", project_once)
