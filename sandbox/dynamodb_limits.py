"""DynamoDB's item size limit, measured as DynamoDB measures it and applied to every write.

"The maximum item size in DynamoDB is 400 KB, which includes both attribute name binary length (UTF-8 length)
and attribute value lengths (again binary length)" (Amazon DynamoDB Developer Guide, "Quotas in Amazon
DynamoDB", Items), KB being 1,024 bytes. How an item is measured ("DynamoDB item sizes and formats"): strings
by their UTF-8 bytes, numbers by one byte per two significant digits plus one, binary by its raw bytes, null
and Boolean by one byte, a list or map by 3 bytes plus its elements plus one byte per element, and every
attribute, nested or not, by the UTF-8 bytes of its name too.

moto measures differently (no list or map overhead, numbers by their decimal text, a limit of 405,000
bytes), checks only the attributes a write sets at the top level (an update of `a.b` that makes the item too
large is stored), and leaves the attributes it set before it noticed an oversized one. DynamoDB refuses
such a write as a whole: PutItem with ValidationException "Item size has exceeded the maximum allowed size",
UpdateItem with "Item size to update has exceeded the maximum allowed size", and TransactWriteItems cancels
the transaction ("An item size becomes too large (larger than 400 KB) ... because of changes made by the
transaction", TransactWriteItems in the API reference) with the reason ValidationError for that item.

With a Sandbox running, the sandbox measures the item a write leaves and puts the item back as it was when
that is over the limit, and Query and Scan fill their 1 MB pages by the same measure; without one, moto's own
check applies. A table with a stream keeps moto's stream
record of a write refused this way (no table of the stack has a stream).
"""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

from sandbox import core

ITEM_LIMIT_BYTES = 400 * 1024


def value_size(value: Any) -> int:
    """The bytes DynamoDB counts for one attribute value in its wire form ({"S": "..."}) or as moto's
    DynamoType (its type and value: what its to_json() gives, but for a binary value's bytes, which
    to_json() base64-encodes and binary_size counts as the same bytes)."""
    if isinstance(value, dict):
        if not value:
            return 0
        kind, inner = next(iter(value.items()))
    else:
        kind, inner = value.type, value.value
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return number_size(str(inner))
    if kind == "B":
        return binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(element) for name, element in inner.items())
    if kind == "SS":
        return sum(len(str(element).encode()) for element in inner)
    if kind == "NS":
        return sum(number_size(str(element)) for element in inner)
    if kind == "BS":
        return sum(binary_size(element) for element in inner)
    return len(str(inner).encode())


def number_size(text: str) -> int:
    """One byte per two significant digits, plus one ("Leading and trailing zeroes are trimmed")."""
    mantissa = text.strip().lstrip("+-").lower().split("e", 1)[0].replace(".", "")
    digits = mantissa.strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def binary_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value).encode())


def item_size(attributes: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it against the 400 KB limit."""
    return sum(len(name.encode()) + value_size(value) for name, value in attributes.items())


class ItemTooLarge(Exception):
    """Why the sandbox refused a write: the item it names (a transaction reports it) and DynamoDB's words."""

    def __init__(self, table_name: str, key: dict[str, Any], message: str) -> None:
        super().__init__(message)
        self.table_name = table_name
        self.key = key
        self.message = message


PUT_REFUSED = "Item size has exceeded the maximum allowed size"
UPDATE_REFUSED = "Item size to update has exceeded the maximum allowed size"


def install() -> None:
    """Wrap moto's PutItem, UpdateItem and TransactWriteItems (called once, from sandbox.patches)."""
    from moto.dynamodb.exceptions import MockValidationException, TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item, LimitedSizeDict

    from sandbox import dynamodb_consistency as consistency
    from sandbox import dynamodb_items

    original_setitem = LimitedSizeDict.__setitem__

    def setitem(self: Any, key: str, value: Any) -> None:
        if core.active() is None:
            original_setitem(self, key, value)
        else:  # measured whole once the write is done (moto re-measures the item on every attribute set)
            dict.__setitem__(self, key, value)

    LimitedSizeDict.__setitem__ = setitem  # type: ignore[method-assign]

    original_size = Item.size

    def size(self: Any) -> int:
        # What Query and Scan fill their 1 MB pages with, and BatchGetItem its 16 MB.
        return item_size(self.attrs) if core.active() is not None else int(original_size(self))

    Item.size = size  # type: ignore[method-assign]

    original_put = DynamoDBBackend.put_item
    original_update = DynamoDBBackend.update_item
    original_transact = DynamoDBBackend.transact_write_items

    def put_item(self: Any, table_name: str, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if core.active() is not None and item_size(item_attrs) > ITEM_LIMIT_BYTES:
            refused = ItemTooLarge(table_name, item_attrs, PUT_REFUSED)
            raise MockValidationException(PUT_REFUSED) from refused
        return original_put(self, table_name, item_attrs, *args, **kwargs)

    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if core.active() is None:
            return original_update(self, table_name, key, *args, **kwargs)
        table = self.get_table(table_name)
        try:
            hash_value, range_value = consistency._key_values(table, key)
        except (KeyError, TypeError):
            return original_update(self, table_name, key, *args, **kwargs)  # moto refuses the key itself
        current = consistency._current(table, hash_value, range_value)
        if current is not None and dynamodb_items.items_are_values():
            # moto changes the item in place: it changes a copy, and the stored item stays as it was
            before = current
            consistency.put_back(table, hash_value, range_value, dynamodb_items.to_change(current))
        else:
            before = copy.deepcopy(current)
        try:
            item = original_update(self, table_name, key, *args, **kwargs)
        except Exception:
            # DynamoDB applies an update whole or not at all; moto can stop half-way through one.
            consistency.put_back(table, hash_value, range_value, before)
            raise
        finally:
            dynamodb_items.changed()
        if item.size() > ITEM_LIMIT_BYTES:  # DynamoDB's measure (Item.size, above)
            consistency.put_back(table, hash_value, range_value, before)
            refused = ItemTooLarge(table_name, key, UPDATE_REFUSED)
            raise MockValidationException(UPDATE_REFUSED) from refused
        return item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        try:
            return original_transact(self, transact_items)
        except MockValidationException as exc:
            refused = exc.__cause__
            if not isinstance(refused, ItemTooLarge):
                raise
            reasons = [
                ("ValidationError", refused.message, None)
                if _names(entry, refused, self)
                else (None, None, None)
                for entry in transact_items
            ]
            raise TransactionCanceledException(reasons) from exc

    DynamoDBBackend.put_item = put_item  # type: ignore[method-assign]
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _names(entry: dict[str, Any], refused: ItemTooLarge, backend: Any) -> bool:
    """Whether a TransactWriteItems entry writes the item a refusal is about."""
    for op_type, op in entry.items():
        if op.get("TableName") != refused.table_name:
            continue
        table = backend.get_table(refused.table_name)
        written = op.get("Item") if op_type == "Put" else op.get("Key")
        if written is None:
            continue
        keys = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        if all(written.get(name) == refused.key.get(name) for name in keys):
            return True
    return False
