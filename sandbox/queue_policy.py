"""The queue policy AWS requires before SNS or EventBridge delivers to an SQS queue.

Neither service sends with the subscriber's or rule owner's identity: each is a service principal the
queue's own policy must allow ("Subscribing an Amazon SQS queue to an Amazon SNS topic", SNS Developer
Guide; "Amazon SQS permissions", EventBridge User Guide). The sandbox enforces that, so whoever subscribes a
queue (the demo, the tests) sets this policy, as they would on AWS.
"""

from __future__ import annotations

import json
from typing import Any

SERVICES = ("sns.amazonaws.com", "events.amazonaws.com")


def accepting_aws_services(queue_arn: str, account_id: str) -> str:
    """A policy letting this account's SNS topics and EventBridge rules send to the queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AcceptThisAccountsTopicsAndRules",
                    "Effect": "Allow",
                    "Principal": {"Service": list(SERVICES)},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                }
            ],
        }
    )


def let_aws_services_send(sqs: Any, queue_url: str) -> str:
    """Set that policy on a queue (with an SQS client); its ARN."""
    arn = str(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    )
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": accepting_aws_services(arn, arn.split(":")[4])}
    )
    return arn
