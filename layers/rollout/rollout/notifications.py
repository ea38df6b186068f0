"""Notifications: the `rollout.notification/1` message (pure) and its publication on SNS.

Subscribers filter on the message attributes `kind`, `function` and `severity`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import quote

from aws_lambda_powertools.metrics import MetricUnit

from rollout import aws
from rollout.ledger import Release
from rollout.observability import logger, metrics

SCHEMA = "rollout.notification/1"

# kind -> (severity, headline template). The headline is the SNS Subject and the Slack title.
KINDS: dict[str, tuple[str, str]] = {
    "release.rejected": ("error", "Release of {function} rejected"),
    "release.unchanged": ("info", "{function}: code unchanged, nothing to deploy"),
    "release.bootstrapped": ("info", "{function}: first release, alias {alias} created on v{target}"),
    "release.queued": ("info", "{function}: release queued behind an active deployment"),
    "release.held": ("warning", "{function}: release held, not deployed"),
    "release.superseded": ("warning", "{function}: queued release superseded by a newer upload"),
    "release.failed": ("error", "{function}: release failed before deployment"),
    "deployment.started": ("info", "{function}: deploying v{current} -> v{target} ({config})"),
    "deployment.succeeded": ("success", "{function}: v{target} is live"),
    "deployment.rolled_back": ("error", "{function}: v{target} rolled back to v{current}"),
    "deployment.failed": ("error", "{function}: deployment of v{target} failed"),
    # Approval gates (rollout.gates): the message's `approval` says where, until when and who answered.
    "approval.requested": ("warning", "{function}: v{target} awaits approval"),
    "approval.approved": ("info", "{function}: v{target} approved"),
    "approval.rejected": ("error", "{function}: v{target} rejected"),
    "approval.expired": ("error", "{function}: v{target} not approved in time"),
    # Traffic may still reach the version being rolled back: people must act on the alias now.
    "deployment.rollback_failed": (
        "critical",
        "{function}: rollback of v{target} failed, alias {alias} may still route to it",
    ),
}

SUBJECT_LIMIT = 100  # SNS rejects longer subjects, and any that are not plain ASCII


class Notification(NamedTuple):
    kind: str
    severity: str
    subject: str
    message: dict[str, Any]

    @property
    def attributes(self) -> dict[str, dict[str, str]]:
        return {
            "kind": {"DataType": "String", "StringValue": self.kind},
            "function": {"DataType": "String", "StringValue": str(self.message.get("function") or "-")},
            "severity": {"DataType": "String", "StringValue": self.severity},
        }


def console_links(region: str, release: Release) -> dict[str, str]:
    links = {}
    fn = quote(release.function, safe="")
    if release.function:
        links["function"] = (
            f"https://{region}.console.aws.amazon.com/lambda/home?region={region}#/functions/{fn}"
        )
    if release.deployment_id:
        links["deployment"] = (
            f"https://{region}.console.aws.amazon.com/codesuite/codedeploy/deployments/"
            f"{release.deployment_id}?region={region}"
        )
    return links


def seconds_between(start: str, end: str) -> float | None:
    try:
        return round(
            (
                datetime.fromisoformat(end.replace("Z", "+00:00"))
                - datetime.fromisoformat(start.replace("Z", "+00:00"))
            ).total_seconds(),
            3,
        )
    except ValueError:
        return None


# Fields of a hook's record that stay in the ledger: a lifecycle hook execution id lets whoever can
# invoke a hook report a verdict for that execution, so it is never published.
PRIVATE_HOOK_FIELDS = frozenset({"execution_id"})


def public_hook_results(hook_results: dict[str, Any]) -> dict[str, Any]:
    """The hooks' results as subscribers see them (no execution ids)."""
    return {
        hook: {k: v for k, v in result.items() if k not in PRIVATE_HOOK_FIELDS}
        if isinstance(result, dict)
        else result
        for hook, result in (hook_results or {}).items()
    }


def build(kind: str, release: Release, region: str, **extra: Any) -> Notification:
    """The notification for `kind` about `release`; `extra` adds or overrides message fields."""
    severity, headline = KINDS[kind]
    subject = headline.format(
        function=release.function or "unknown function",
        alias=release.alias or "live",
        current=release.current_version or "?",
        target=release.target_version or "?",
        config=release.deployment_config or "default",
    )
    approval = extra.get("approval")
    if kind.startswith("approval.") and isinstance(approval, dict):
        # Who answered, and what they said, rather than the release's reason.
        subject += f" by {approval['by']}" if approval.get("by") and kind != "approval.expired" else ""
        subject += f": {approval['comment']}" if approval.get("comment") else ""
    elif release.reason and severity in ("error", "critical"):
        subject = f"{subject}: {release.reason}"
    subject = " ".join(subject.encode("ascii", "replace").decode().split())
    if len(subject) > SUBJECT_LIMIT:
        subject = subject[: SUBJECT_LIMIT - 3] + "..."
    durations: dict[str, float] = {}
    if release.received_at and release.completed_at:
        total = seconds_between(release.received_at, release.completed_at)
        if total is not None:
            durations["total_seconds"] = total
    if release.deploying_at and release.completed_at:
        deploying = seconds_between(release.deploying_at, release.completed_at)
        if deploying is not None:
            durations["deployment_seconds"] = deploying
    message: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": kind,
        "severity": severity,
        "title": subject,
        "function": release.function,
        "alias": release.alias,
        "release_id": release.release_id,
        "state": str(release.state),
        "versions": {"current": release.current_version or None, "target": release.target_version or None},
        "deployment_id": release.deployment_id or None,
        "deployment_config": release.deployment_config or None,
        "artifact": {
            "bucket": release.bucket,
            "key": release.key,
            "version_id": release.object_version or None,
        },
        "release_kind": release.kind or "upload",
        "requested_by": release.requested_by or None,
        "commit": release.commit or None,
        "author": release.author or None,
        "message": release.message or None,
        "reason": {"code": release.reason_code, "text": release.reason} if release.reason else None,
        "hook_results": public_hook_results(release.hook_results) or None,
        "durations": durations,
        "links": console_links(region, release),
        "at": release.updated_at,
    }
    message.update(extra)
    return Notification(kind=kind, severity=severity, subject=subject, message=message)


def build_action(kind: str, function: str, title: str, **fields: Any) -> Notification:
    """A notification about an action that is not a release (a freeze set or ended): same schema,
    kind and attributes, `function` the function it covers (`*` for every function)."""
    subject = " ".join(title.encode("ascii", "replace").decode().split())
    if len(subject) > SUBJECT_LIMIT:
        subject = subject[: SUBJECT_LIMIT - 3] + "..."
    message: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": kind,
        "severity": "warning",
        "title": subject,
        "function": function,
        **fields,
    }
    return Notification(kind=kind, severity="warning", subject=subject, message=message)


class Notifier:
    """Publishes notifications on the stack's topic: the only place Rollout talks to SNS.

    The error policy, for every caller: `announce` never raises. The ledger already holds the
    outcome when a release is announced, so a failed publish is logged (with the kind and the
    release) and counted in the `NotificationsFailed` metric; it never undoes or changes the
    recorded state, and never replaces the error that caused the transition.
    """

    def __init__(self, topic_arn: str, region: str = "us-east-1") -> None:
        self.topic_arn = topic_arn
        self.region = region

    def announce(self, kind: str, release: Release, **extra: Any) -> bool:
        """Publish `kind` about `release`; True when SNS took it."""
        if not self.topic_arn:
            logger.warning("No notification topic configured", extra={"kind": kind})
            return False
        try:
            self.publish(build(kind, release, self.region, **extra))
        except Exception:  # the policy above: logged and counted, never raised
            logger.exception(
                "Could not publish the notification", extra={"kind": kind, "release_id": release.release_id}
            )
            metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=1)
            return False
        return True

    def announce_action(self, notification: Notification) -> bool:
        """Publish an action's notification, with `announce`'s policy: never raises."""
        if not self.topic_arn:
            return False
        try:
            self.publish(notification)
        except Exception:  # logged and counted, never raised
            logger.exception("Could not publish the notification", extra={"kind": notification.kind})
            metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=1)
            return False
        return True

    def publish(self, notification: Notification) -> str:
        resp = aws.client("sns").publish(
            TopicArn=self.topic_arn,
            Subject=notification.subject,
            Message=json.dumps(notification.message, default=str),
            MessageAttributes=notification.attributes,
        )
        return str(resp.get("MessageId", ""))
