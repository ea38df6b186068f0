"""rollout/redelivery.py: the events the reconciler rebuilds or recovers, and where each one goes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from rollout.artifacts import uploads_from_event
from rollout.redelivery import (
    Discard,
    Functions,
    Keep,
    Redelivery,
    from_dead_letter,
    function_name,
    upload_event,
)

FUNCTIONS = Functions(
    "stack-ArtifactDeployer", "stack-DeploymentEvents", "stack-Reconciler", "stack-DeploymentActions"
)
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:"
UPLOAD = {"id": "e-1", "detail-type": "Object Created", "detail": {}}
STATE_CHANGE = {"id": "e-2", "detail-type": "CodeDeploy Deployment State-change Notification", "detail": {}}


def record(function: str, payload: Any) -> str:
    return json.dumps(
        {"requestContext": {"functionArn": ARN + function + ":$LATEST"}, "requestPayload": payload}
    )


def test_the_rebuilt_upload_event_reads_as_an_upload_found_late() -> None:
    event = upload_event(
        "artifacts",
        "orders/b 1.zip",
        "v9",
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        42,
        '"abc"',
        "eu-west-1",
    )
    (upload,), problems = uploads_from_event(event)
    assert problems == []
    assert (upload.bucket, upload.key, upload.version_id, upload.etag) == (
        "artifacts",
        "orders/b 1.zip",
        "v9",
        "abc",
    )
    assert event["source"] == "rollout.reconciler", "never mistaken for S3's own event"
    # Ordered by S3's time; within that second, before any build whose real event carried a sequencer.
    assert upload.upload_order == "2026-01-02T03:04:05.000Z|" + "0" * 32


@pytest.mark.parametrize(
    ("body", "attributes", "expected"),
    [
        (
            json.dumps(UPLOAD),
            {"TARGET_ARN": ARN + "stack-ArtifactDeployer"},
            Redelivery("stack-ArtifactDeployer", UPLOAD, "e-1"),
        ),
        (record("stack-ArtifactDeployer", UPLOAD), {}, Redelivery("stack-ArtifactDeployer", UPLOAD, "e-1")),
        (
            record("stack-DeploymentEvents", STATE_CHANGE),
            {},
            Redelivery("stack-DeploymentEvents", STATE_CHANGE, "e-2"),
        ),
        (
            record("stack-Reconciler", {"detail-type": "Scheduled Event"}),
            {},
            Discard("a reconciler run: the schedule runs it again"),
        ),
        (
            record("stack-DeploymentActions", {"action": "expire", "by": {"kind": "rollout"}}),
            {},
            Discard("the reconciler's hand-over to DeploymentActions: its next run hands it over again"),
        ),
        (
            record("stack-DeploymentActions", {"action": "approve", "by": {"kind": "slack", "id": "U0A"}}),
            {},
            Keep(
                "approve asked of stack-DeploymentActions by a person was never run: tell them, it was not done"
            ),
        ),
        (
            record("stack-SlackNotifier", {"Records": []}),
            {},
            Keep("for stack-SlackNotifier, which the reconciler does not replay"),
        ),
        (
            record("stack-ArtifactDeployer", STATE_CHANGE),
            {},
            Keep("for stack-ArtifactDeployer but not an upload"),
        ),
        (
            record("stack-ArtifactDeployer", "text"),
            {},
            Keep("the event for stack-ArtifactDeployer is not a JSON object"),
        ),
        ("{not json", {}, Keep("the message is not JSON")),
        ("[1]", {}, Keep("the message is not a JSON object")),
        (json.dumps(UPLOAD), {}, Keep("neither an EventBridge dead letter nor a Lambda destination record")),
    ],
)
def test_each_undelivered_message_goes_back_to_its_function_or_stays_for_a_person(
    body: str, attributes: dict[str, str], expected: Any
) -> None:
    assert from_dead_letter(body, attributes, FUNCTIONS) == expected


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        (ARN + "orders", "orders"),
        (ARN + "orders:$LATEST", "orders"),
        (ARN + "orders:live", "orders"),
        ("arn:aws:sqs:eu-west-1:123456789012:queue", ""),
        ("orders", ""),
    ],
)
def test_function_names_come_from_lambda_arns_only(arn: str, name: str) -> None:
    assert function_name(arn) == name
