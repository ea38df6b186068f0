"""DynamoDB's eventual consistency, as DynamoDB documents it: global secondary indexes lag their table,
and so do a table's own reads unless they ask for ConsistentRead.

"Global secondary indexes": writes to a table are propagated to its GSIs asynchronously; "changes to the
table data are propagated to the global secondary indexes within a fraction of a second, under normal
conditions" (Amazon DynamoDB Developer Guide, "Using Global Secondary Indexes in DynamoDB"). GSI reads are
therefore eventually consistent only (a ConsistentRead on a GSI is a ValidationException, which moto
already answers).

"Read consistency": eventually consistent reads are the default for GetItem, Query, Scan and BatchGetItem,
and "when you read data from a DynamoDB table, the response might not reflect the results of a recently
completed write operation"; "the data is eventually consistent across all storage locations, usually
within one second or less" (Amazon DynamoDB Developer Guide, "Read consistency"; today's wording: "the
responses may not reflect the results of a recently completed write operation. If you repeat your read
request after a short time, the response should eventually return the more recent item"). A read with
ConsistentRead=true "returns a response with the most up-to-date data"; TransactGetItems is always
strongly consistent, and so are the reads DynamoDB makes itself (a write's condition, ReturnValues).

The sandbox keeps, per table, the old image of every item written in the last few real seconds. A Query
or Scan on a GSI sees the table as it was `gsi_lag` seconds ago; a GetItem, BatchGetItem, Query or Scan
of the table (or of a local secondary index) without ConsistentRead sees it as it was `eventual_read_lag`
seconds ago. Both lags are real seconds: propagation is the service's own latency, not something
scheduled on the sandbox clock.

Deterministic worst case. On AWS an eventually consistent read lands on one of the item's storage nodes
and may or may not see a recent write; the sandbox always answers as the slowest node would, until the
lag has passed. A race that staleness can lose is then lost every time the timing allows it, not one run
in a hundred, so a test that guards such a race fails reliably without its fix and passes reliably with
it, and a seed is not needed to reproduce it. What this does not reproduce: a read that sees the new image
followed by one that sees the old (two nodes in turn); code that is correct under the worst case is
correct under that too only if it never infers "written" from one read and then decides on another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# "within a fraction of a second, under normal conditions": half a second.
DEFAULT_GSI_LAG_SECONDS = 0.5
# "usually within one second or less": the usual bound, one second.
DEFAULT_EVENTUAL_READ_LAG_SECONDS = 1.0

_lock = threading.Lock()
# (gsi_lag, eventual_read_lag) for in-process moto while no Sandbox runs: none unless `lagging_in_process`.
_in_process_lags = (0.0, 0.0)


def in_process_lags() -> tuple[float, float]:
    return _in_process_lags


@contextmanager
def lagging_in_process(gsi_lag: float, eventual_read_lag: float) -> Iterator[None]:
    """The same lags for code that calls in-process moto (`mock_aws`) directly, without a Sandbox: the
    integration tests run the control plane's modules that way (`pytest --eventual-read-lag`)."""
    from sandbox import patches

    global _in_process_lags
    patches.install()
    before, _in_process_lags = _in_process_lags, (gsi_lag, eventual_read_lag)
    try:
        yield
    finally:
        _in_process_lags = before


@dataclass(frozen=True)
class Write:
    at: float  # time.monotonic()
    hash_key: Any
    range_key: Any
    old: Any  # the item before the write (dynamodb_items.snapshot), or None if there was none


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


def put_back(table: Any, hash_value: Any, range_value: Any, item: Any) -> None:
    """Put an item back as it was before a write that did not count (None: it did not exist); a sort-key
    bucket left empty goes too, as if never written."""
    if not table.range_key_attr:
        if item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item
        return
    bucket = table.items[hash_value]
    if item is None:
        bucket.pop(range_value, None)
    else:
        bucket[range_value] = item
    if not bucket:
        del table.items[hash_value]


def kept_seconds(table: Any, gsi_lag: float, eventual_read_lag: float) -> float:
    """How long the table's old images are needed: as long as its slowest lagging reader trails it."""
    return max(eventual_read_lag, gsi_lag if table.global_indexes else 0.0, 0.0)


def before_write(table: Any, key_or_item: dict[str, Any], keep: float) -> Write | None:
    """Remember the item's image before a write (call under the backend's own serialisation)."""
    if keep <= 0:
        return None
    try:
        hash_value, range_value = _key_values(table, key_or_item)
    except KeyError:
        return None  # the write will fail validation; nothing to remember
    from sandbox.dynamodb_items import snapshot

    return Write(
        time.monotonic(), hash_value, range_value, snapshot(_current(table, hash_value, range_value))
    )


def record(table: Any, write: Write | None, keep: float) -> None:
    if write is None:
        return
    with _lock:
        writes = _writes(table)
        cutoff = time.monotonic() - keep
        writes[:] = [w for w in writes if w.at > cutoff]
        writes.append(write)


def lagged_item(table: Any, hash_value: Any, range_value: Any, lag: float) -> tuple[bool, Any]:
    """(True, the item as it was `lag` seconds ago, None if absent) when it was written since; else
    (False, None): the current item is what a lagging read sees."""
    cutoff = time.monotonic() - lag
    with _lock:
        for write in _writes(table):  # oldest first: its old image is the item before every later write
            if write.at > cutoff and write.hash_key == hash_value and write.range_key == range_value:
                return True, write.old
    return False, None


def lagged_view(table: Any, lag: float) -> Any:
    """The table as a read `lag` seconds behind sees it: recent writes undone (newest first); the table
    itself if none."""
    cutoff = time.monotonic() - lag
    with _lock:
        recent = [w for w in _writes(table) if w.at > cutoff]
    if not recent:
        return table
    items: Any = type(table.items)(dict)
    items.update(table.items)  # the view only reads: a partition no recent write touched is the table's own
    copied: set[Any] = set()
    for write in reversed(recent):
        if table.range_key_attr:
            if write.hash_key not in copied:
                items[write.hash_key] = dict(items.get(write.hash_key, {}))
                copied.add(write.hash_key)
            bucket = items[write.hash_key]
            if write.old is None:
                bucket.pop(write.range_key, None)
            else:
                bucket[write.range_key] = write.old
        elif write.old is None:
            items.pop(write.hash_key, None)
        else:
            items[write.hash_key] = write.old
    view = view_of(table)
    view.items = items
    return view


def view_of(table: Any) -> Any:
    """A shallow copy of a moto Table to read through, as copy.copy makes it but not recorded in moto's
    list of every Table ever made (BaseModel.__new__, for its dashboard), where each view, and what it
    holds, stayed until the sandbox stopped."""
    view = object.__new__(type(table))
    view.__dict__.update(table.__dict__)
    return view


def is_global_index(table: Any, index_name: str | None) -> bool:
    return bool(index_name) and any(index.name == index_name for index in table.global_indexes or [])
