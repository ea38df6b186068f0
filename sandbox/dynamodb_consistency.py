"""Global secondary indexes that lag their table, as DynamoDB documents them.

"Global secondary indexes": writes to a table are propagated to its GSIs asynchronously; "changes to the
table data are propagated to the global secondary indexes within a fraction of a second, under normal
conditions" (Amazon DynamoDB Developer Guide, "Using Global Secondary Indexes in DynamoDB"). GSI reads are
therefore eventually consistent only (a ConsistentRead on a GSI is a ValidationException, which moto
already answers). Reads by primary key, and ConsistentRead queries of the table, stay current.

The sandbox keeps, per table, the old image of every item written in the last `lag` real seconds; a Query
or Scan on a GSI sees the table as it was `lag` seconds ago. The lag is in real seconds: propagation is
the service's own latency, not something scheduled on the sandbox clock.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from typing import Any

# "within a fraction of a second, under normal conditions": half a second.
DEFAULT_GSI_LAG_SECONDS = 0.5

_lock = threading.Lock()


@dataclass(frozen=True)
class Write:
    at: float  # time.monotonic()
    hash_key: Any
    range_key: Any
    old: Any  # the item before the write (a deep copy), or None if there was none


def _writes(table: Any) -> list[Write]:
    found: list[Write] = table.__dict__.setdefault("_sandbox_writes", [])
    return found


def _key_values(table: Any, key: dict[str, Any]) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = (
        DynamoType(key[table.range_key_attr])
        if table.range_key_attr and table.range_key_attr in key
        else None
    )
    return hash_value, range_value


def _current(table: Any, hash_value: Any, range_value: Any) -> Any:
    if table.range_key_attr:
        return table.items.get(hash_value, {}).get(range_value)
    return table.items.get(hash_value)


def before_write(table: Any, key_or_item: dict[str, Any], lag: float) -> Write | None:
    """Remember the item's image before a write (call under the backend's own serialisation)."""
    if lag <= 0 or not table.global_indexes:
        return None
    try:
        hash_value, range_value = _key_values(table, key_or_item)
    except KeyError:
        return None  # the write will fail validation; nothing to remember
    old = _current(table, hash_value, range_value)
    return Write(time.monotonic(), hash_value, range_value, copy.deepcopy(old))


def record(table: Any, write: Write | None, lag: float) -> None:
    if write is None:
        return
    with _lock:
        writes = _writes(table)
        cutoff = time.monotonic() - lag
        writes[:] = [w for w in writes if w.at > cutoff]
        writes.append(write)


def lagged_view(table: Any, lag: float) -> Any:
    """The table as its GSIs see it: recent writes undone (newest first); the table itself if none."""
    cutoff = time.monotonic() - lag
    with _lock:
        recent = [w for w in _writes(table) if w.at > cutoff]
    if not recent:
        return table
    if table.range_key_attr:
        items: Any = type(table.items)(dict)
        for hash_value, by_range in table.items.items():
            items[hash_value] = dict(by_range)
    else:
        items = type(table.items)(dict)
        items.update(table.items)
    for write in reversed(recent):
        if table.range_key_attr:
            bucket = items[write.hash_key]
            if write.old is None:
                bucket.pop(write.range_key, None)
            else:
                bucket[write.range_key] = write.old
        elif write.old is None:
            items.pop(write.hash_key, None)
        else:
            items[write.hash_key] = write.old
    view = copy.copy(table)
    view.items = items
    return view


def is_global_index(table: Any, index_name: str | None) -> bool:
    return bool(index_name) and any(index.name == index_name for index in table.global_indexes or [])
