"""Events the control plane should have received, rebuilt or recovered for redelivery (pure).

The reconciler hands work back to the function that should have done it, in the shape that
function's trigger delivers, so the work goes through that function's own path and its
idempotency: an upload as an S3 `Object Created` event to the artifact deployer, and each message
of the undelivered-events queue to the function it failed to reach.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The reconciler's own events say so: they are not S3's, and nothing may mistake them for S3's.
RECONCILER_SOURCE = "rollout.reconciler"
# S3 orders the events of one bucket by their sequencer; the reconciler has none for a version it
# lists. "0" sorts before every real one, so within one second an upload found late counts as the
# oldest: it is superseded by a build whose event arrived, never deployed over it.
SEQUENCER_FOUND_LATE = "0"


@dataclass(frozen=True)
class Redelivery:
    """Give `event` to `function` again (an asynchronous invoke, as EventBridge would)."""

    function: str
    event: dict[str, Any]
    event_id: str  # the original event's id: replays of one event are counted together


@dataclass(frozen=True)
class Keep:
    """A message to leave in the queue for a person, and why."""

    why: str


@dataclass(frozen=True)
class Discard:
    """A message whose work happens anyway (the reconciler's own schedule fires again), and why."""

    why: str


Verdict = Redelivery | Keep | Discard


@dataclass(frozen=True)
class Functions:
    """This stack's function names, by what they do."""

    artifact_deployer: str
    deployment_events: str
    reconciler: str
    deployment_actions: str = ""


def upload_event(
    bucket: str,
    key: str,
    version_id: str,
    last_modified: datetime,
    size: int,
    etag: str,
    region: str,
) -> dict[str, Any]:
    """An `Object Created` event for an object version, as EventBridge delivers S3's, from the reconciler."""
    detail_object: dict[str, Any] = {
        "key": key,
        "size": size,
        "etag": etag.strip('"'),
        "sequencer": SEQUENCER_FOUND_LATE,
    }
    if version_id:
        detail_object["version-id"] = version_id
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": RECONCILER_SOURCE,
        "time": last_modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": detail_object,
            "reason": "PutObject",
        },
    }


def from_dead_letter(body: str, attributes: dict[str, str], functions: Functions) -> Verdict:
    """What to do with one message of the undelivered-events queue.

    Two kinds of message land there. EventBridge's dead letters carry the event as the body and
    name the target in the TARGET_ARN message attribute (EventBridge User Guide, "Using dead-letter
    queues to process undelivered events"). Lambda's on-failure destination records carry the event
    as `requestPayload` and the function in `requestContext.functionArn` (Lambda Developer Guide,
    "Capturing records of asynchronous invocations").
    """
    try:
        document = json.loads(body)
    except ValueError:
        return Keep("the message is not JSON")
    if not isinstance(document, dict):
        return Keep("the message is not a JSON object")
    context = document.get("requestContext")
    if isinstance(context, dict) and "requestPayload" in document:
        target, event = str(context.get("functionArn") or ""), document.get("requestPayload")
    elif attributes.get("TARGET_ARN"):
        target, event = attributes["TARGET_ARN"], document
    else:
        return Keep("neither an EventBridge dead letter nor a Lambda destination record")
    return _verdict(function_name(target), event, functions)


def _verdict(function: str, event: Any, functions: Functions) -> Verdict:
    if not isinstance(event, dict):
        return Keep(f"the event for {function or 'an unknown function'} is not a JSON object")
    if function == functions.reconciler:
        return Discard("a reconciler run: the schedule runs it again")
    if function and function == functions.deployment_actions:
        return _action_verdict(function, event)
    expected = {
        functions.artifact_deployer: ("Object Created", "an upload"),
        functions.deployment_events: (
            "CodeDeploy Deployment State-change Notification",
            "a deployment state change",
        ),
    }.get(function)
    if expected is None:
        return Keep(f"for {function or 'an unknown target'}, which the reconciler does not replay")
    if event.get("detail-type") != expected[0]:
        return Keep(f"for {function} but not {expected[1]}")
    return Redelivery(function, event, str(event.get("id") or ""))


def _action_verdict(function: str, event: dict[str, Any]) -> Verdict:
    """An action DeploymentActions never ran. The reconciler's own hand-overs (expiring gates) come
    again with its next run; anything else was asked for by a person, who was never answered, and is
    never replayed: an approval or a rollback must not happen minutes after the click, unseen."""
    by = event.get("by")
    if isinstance(by, dict) and by.get("kind") == "rollout":
        return Discard("the reconciler's hand-over to DeploymentActions: its next run hands it over again")
    action = str(event.get("action") or "an action")
    return Keep(f"{action} asked of {function} by a person was never run: tell them, it was not done")


def function_name(arn: str) -> str:
    """The function name in a Lambda ARN (qualified or not), or '' when it is not one."""
    parts = arn.split(":")
    if len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function":
        return parts[6]
    return ""
