"""SQS adapter: read and delete messages of the undelivered-events queue (the reconciler replays them)."""

from __future__ import annotations

from typing import Any, NamedTuple

from rollout import aws

RECEIVE_LIMIT = 10  # ReceiveMessage returns at most 10 messages


class QueuedMessage(NamedTuple):
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]  # the message attributes with string values (EventBridge sets these)
    receive_count: int


def receive(queue_url: str, visibility_seconds: int) -> list[QueuedMessage]:
    """Up to ten messages, hidden from other readers for `visibility_seconds` (no long polling)."""
    resp = aws.client("sqs").receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=RECEIVE_LIMIT,
        VisibilityTimeout=visibility_seconds,
        WaitTimeSeconds=0,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    )
    return [_message(raw) for raw in resp.get("Messages", [])]


def delete(queue_url: str, receipt_handle: str) -> None:
    aws.client("sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle)


def make_visible(queue_url: str, receipt_handle: str) -> None:
    """Show a received message to other readers (and to the queue's metrics) again, now."""
    aws.client("sqs").change_message_visibility(
        QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0
    )


def _message(raw: dict[str, Any]) -> QueuedMessage:
    attributes = {
        str(name): str(value.get("StringValue", ""))
        for name, value in (raw.get("MessageAttributes") or {}).items()
        if value.get("DataType", "String").startswith("String")
    }
    return QueuedMessage(
        message_id=str(raw.get("MessageId", "")),
        receipt_handle=str(raw["ReceiptHandle"]),
        body=str(raw.get("Body", "")),
        attributes=attributes,
        receive_count=int((raw.get("Attributes") or {}).get("ApproximateReceiveCount", 1)),
    )
