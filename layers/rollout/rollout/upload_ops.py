"""The ledger's upload items: one per (bucket, key, object version), naming the release it became.

    pk=FN#<function>  sk=UPLOAD#<sha256 of bucket, key, version id>

The deployer writes it before the release itself, in one atomic update that keeps the first
release id ever written and counts processing attempts. So a retried, redelivered or replayed
event of the same object version carries on the same release instead of starting a second one,
and the reconciler can tell an upload nothing ever recorded (no item) from one that is recorded.

The reconciler's own items live here too: its bookmark in the sweep of the artifact bucket, and
how often it replayed each undelivered event (so a replay that keeps failing stops being retried):

    pk=RECONCILER  sk=UPLOADS#<bucket>
    pk=RECONCILER  sk=REPLAY#<event id>
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, NamedTuple

from rollout import aws
from rollout.ledger import now_iso

UPLOAD_SK_PREFIX = "UPLOAD#"
SWEEP_PK = "RECONCILER"


class UploadRecord(NamedTuple):
    """What the ledger knows of one object version: its release and how often it was processed."""

    release_id: str
    attempts: int
    last_attempt_at: str


def upload_key(function: str, bucket: str, key: str, version_id: str) -> dict[str, str]:
    # S3 keys are up to 1024 bytes, DynamoDB sort keys too: a digest always fits and never collides
    # in practice. Null bytes cannot occur in bucket names or version ids, so the parts stay apart.
    digest = hashlib.sha256(f"{bucket}\0{key}\0{version_id}".encode()).hexdigest()
    return {"pk": f"FN#{function}", "sk": f"{UPLOAD_SK_PREFIX}{digest}"}


def record_attempt(
    table_name: str, function: str, bucket: str, key: str, version_id: str, new_release_id: str
) -> UploadRecord:
    """Count one more processing attempt of the upload; its release id, `new_release_id` if first."""
    stamp = now_iso()
    resp = aws.table(table_name).update_item(
        Key=upload_key(function, bucket, key, version_id),
        UpdateExpression=(
            "SET release_id = if_not_exists(release_id, :rid), first_attempt_at ="
            " if_not_exists(first_attempt_at, :now), last_attempt_at = :now, #b = :b, #k = :k,"
            " version_id = :v ADD attempts :one"
        ),
        ExpressionAttributeNames={"#b": "bucket", "#k": "key"},
        ExpressionAttributeValues={
            ":rid": new_release_id,
            ":now": stamp,
            ":b": bucket,
            ":k": key,
            ":v": version_id,
            ":one": 1,
        },
        ReturnValues="ALL_NEW",
    )
    return _record(resp["Attributes"])


def link_release(
    table_name: str, function: str, bucket: str, key: str, version_id: str, release_id: str
) -> None:
    """Name `release_id` as the upload's release if nothing does yet (a release recorded before the
    ledger kept upload items), so its next attempt carries it on instead of starting another."""
    try:
        aws.table(table_name).put_item(
            Item={
                **upload_key(function, bucket, key, version_id),
                "release_id": release_id,
                "bucket": bucket,
                "key": key,
                "version_id": version_id,
                "attempts": 1,
                "last_attempt_at": "",
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    except Exception as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise


def get_upload(table_name: str, function: str, bucket: str, key: str, version_id: str) -> UploadRecord | None:
    """The upload's record, or None when no invocation ever processed this object version."""
    item = (
        aws.table(table_name)
        .get_item(Key=upload_key(function, bucket, key, version_id), ConsistentRead=True)
        .get("Item")
    )
    return _record(item) if item else None


def _record(item: dict[str, Any]) -> UploadRecord:
    return UploadRecord(
        release_id=str(item["release_id"]),
        attempts=int(item.get("attempts", 0)),
        last_attempt_at=str(item.get("last_attempt_at", "")),
    )


# --- the reconciler's sweep of the artifact bucket ---------------------------------------------------


@dataclass
class SweepBookmark:
    """Where the reconciler's sweep of a bucket's object versions stands.

    `key_marker`/`version_marker` continue a sweep that did not finish in one run ('' starts a new
    one). `checked_before`: every version last modified before it was checked by a finished sweep
    ('' until the first sweep finishes). `sweep_started_at`: when the current sweep began.
    """

    key_marker: str = ""
    version_marker: str = ""
    checked_before: str = ""
    sweep_started_at: str = ""
    # The oldest version the current sweep handed to the deployer: the sweep's end cannot move
    # `checked_before` past it until a later sweep sees it recorded.
    oldest_handed_over: str = ""


def get_sweep(table_name: str, bucket: str) -> SweepBookmark:
    item = aws.table(table_name).get_item(Key=_sweep_key(bucket), ConsistentRead=True).get("Item") or {}
    return SweepBookmark(
        key_marker=str(item.get("key_marker", "")),
        version_marker=str(item.get("version_marker", "")),
        checked_before=str(item.get("checked_before", "")),
        sweep_started_at=str(item.get("sweep_started_at", "")),
        oldest_handed_over=str(item.get("oldest_handed_over", "")),
    )


def save_sweep(table_name: str, bucket: str, bookmark: SweepBookmark) -> None:
    aws.table(table_name).put_item(
        Item={
            **_sweep_key(bucket),
            "key_marker": bookmark.key_marker,
            "version_marker": bookmark.version_marker,
            "checked_before": bookmark.checked_before,
            "sweep_started_at": bookmark.sweep_started_at,
            "oldest_handed_over": bookmark.oldest_handed_over,
            "updated_at": now_iso(),
        }
    )


def _sweep_key(bucket: str) -> dict[str, str]:
    return {"pk": SWEEP_PK, "sk": f"UPLOADS#{bucket}"}


def count_replay(table_name: str, event_id: str) -> int:
    """One more replay of the undelivered event `event_id`; how many there have been, this one included."""
    resp = aws.table(table_name).update_item(
        Key={"pk": SWEEP_PK, "sk": f"REPLAY#{event_id}"},
        UpdateExpression="SET last_replayed_at = :now ADD replays :one",
        ExpressionAttributeValues={":now": now_iso(), ":one": 1},
        ReturnValues="UPDATED_NEW",
    )
    return int(resp["Attributes"]["replays"])
