"""SNS -> Lambda events carrying Rollout notifications, shaped as Lambda receives them."""

from __future__ import annotations

import uuid
from typing import Any

from rollout.notifications import Notification, encoded, message_to_publish

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:rollout-test-notifications"


def sns_record(message: str, subject: str = "", attributes: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"{TOPIC_ARN}:{uuid.uuid4()}",
        "Sns": {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC_ARN,
            "Subject": subject or None,
            "Message": message,
            "Timestamp": "2025-01-01T10:06:32.123Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {
                name: {"Type": "String", "Value": value} for name, value in (attributes or {}).items()
            },
        },
    }


def sns_event(*notifications: Notification) -> dict[str, Any]:
    return {
        "Records": [
            sns_record(
                encoded(message_to_publish(n)).decode(),
                n.subject,
                {k: v["StringValue"] for k, v in n.attributes.items()},
            )
            for n in notifications
        ]
    }
