"""Notifications: the `rollout.notification/1` message (pure) and its publication on SNS.

Subscribers filter on the message attributes `kind`, `function` and `severity`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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

# Amazon SNS API Reference, "Publish" (Message): "messages must be UTF-8 encoded strings and at most 256 KB in
# size (262,144 bytes, not 262,144 characters)", the limit being the topic's MaximumMessageSize, which
# template.yaml leaves at its default; "MessageAttributeValue": "All parts of the message attribute, including
# name, type, and value, are included in the message size restriction". A message over it is refused
# (InvalidParameter) and the announcement would be lost.
SNS_MESSAGE_LIMIT_BYTES = 256 * 1024
# What one notification may take, its body and attributes as sent: 16 KiB under SNS's limit.
MESSAGE_BUDGET_BYTES = SNS_MESSAGE_LIMIT_BYTES - 16 * 1024
# A shortened message keeps its failing checks' texts to these lengths (characters)...
CHECK_ERROR_CHARS = 500
CHECK_EXCERPT_CHARS = 300
# ...and, should it still not fit without them, every text to this, then only its summary fields to the last.
CLIPPED_TEXT_CHARS = 1000
SUMMARY_TEXT_CHARS = 300
SUMMARY_FIELDS = (
    "schema",
    "kind",
    "severity",
    "title",
    "function",
    "alias",
    "release_id",
    "state",
    "versions",
    "deployment_id",
    "deployment_config",
    "reason",
    "links",
    "at",
)


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
        "warnings": list(release.warnings) or None,
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


def encoded(message: dict[str, Any]) -> bytes:
    """The message as SNS receives it: JSON in UTF-8, other scripts and emoji as themselves (an emoji is 4
    bytes, where ASCII-only JSON spends 12 on its two \\u escapes). A lone surrogate, which UTF-8 cannot
    carry, stays a JSON escape (`backslashreplace` writes the same \\uXXXX)."""
    return json.dumps(message, default=str, ensure_ascii=False).encode("utf-8", "backslashreplace")


def attribute_bytes(attributes: dict[str, dict[str, str]]) -> int:
    """Bytes SNS counts for the message attributes: each one's name, data type and value."""
    return sum(
        len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
        for name, value in attributes.items()
    )


def message_to_publish(notification: Notification) -> dict[str, Any]:
    """The notification's message as published: whole when it fits MESSAGE_BUDGET_BYTES beside its
    attributes, else shortened (`fit`)."""
    return fit(notification.message, MESSAGE_BUDGET_BYTES - attribute_bytes(notification.attributes))


def fit(message: dict[str, Any], room: int) -> dict[str, Any]:
    """`message` itself when its encoding fits in `room` bytes, else a shorter one, always in the same order:

    1. only failing checks are listed, as many of the first ones as fit (pre-traffic first), their errors,
       excerpts and their hooks' reasons clipped; `truncated` says how many checks were left out and where
       to read them all;
    2. the same with every text in the message clipped;
    3. last, the summary fields alone (kind, title, function, release, state, versions, reason, links).
    """
    if len(encoded(message)) <= room:
        return message
    failing = _failing_checks(message.get("hook_results"))

    def listing(keep: int) -> dict[str, Any]:
        return _listing_failing_checks(message, failing, keep)

    def clipped_listing(keep: int) -> dict[str, Any]:
        return dict(_clip_texts(listing(keep), CLIPPED_TEXT_CHARS))

    for candidate in (listing, clipped_listing):
        kept = _most_that_fit(candidate, len(failing), room)
        if kept is not None:
            return kept
    summary = _clip_texts({k: message[k] for k in SUMMARY_FIELDS if k in message}, SUMMARY_TEXT_CHARS)
    summary["truncated"] = {**listing(0)["truncated"], "text": _left_out_text(message, "the details")}
    return dict(summary)


def _failing_checks(hook_results: Any) -> list[tuple[str, int]]:
    """(hook, index in its checks) of every failing check, pre-traffic first."""
    if not isinstance(hook_results, dict):
        return []
    lifecycle = [hook for hook in ("pre_traffic", "post_traffic") if hook in hook_results]
    return [
        (hook, index)
        for hook in lifecycle + [hook for hook in hook_results if hook not in lifecycle]
        for index, check in enumerate(_checks_of(hook_results[hook]))
        if isinstance(check, dict) and check.get("verdict") == "Failed"
    ]


def _checks_of(hook_result: Any) -> list[Any]:
    checks = hook_result.get("checks") if isinstance(hook_result, dict) else None
    return checks if isinstance(checks, list) else []


def _most_that_fit(candidate: Callable[[int], dict[str, Any]], most: int, room: int) -> dict[str, Any] | None:
    """The candidate with the largest `keep` (0 to `most`) that fits in `room`; None if none does. The size
    grows with `keep`, so a binary search finds it in a few encodings."""
    best = candidate(0)
    if len(encoded(best)) > room:
        return None
    low, high = 1, most
    while low <= high:
        middle = (low + high) // 2
        attempt = candidate(middle)
        if len(encoded(attempt)) <= room:
            best, low = attempt, middle + 1
        else:
            high = middle - 1
    return best


def _listing_failing_checks(
    message: dict[str, Any], failing: list[tuple[str, int]], keep: int
) -> dict[str, Any]:
    """`message` listing only the first `keep` failing checks, clipped, and saying how many checks it left out."""
    listed = set(failing[:keep])
    hook_results = message.get("hook_results")
    hooks = hook_results if isinstance(hook_results, dict) else {}
    shortened = dict(message)
    if hooks:
        shortened["hook_results"] = {
            hook: {
                **_clip_texts({k: v for k, v in result.items() if k != "checks"}, CLIPPED_TEXT_CHARS),
                "checks": [
                    _clipped_check(check)
                    for index, check in enumerate(_checks_of(result))
                    if (hook, index) in listed
                ],
            }
            if isinstance(result, dict)
            else result
            for hook, result in hooks.items()
        }
    left_out = sum(len(_checks_of(result)) for result in hooks.values()) - len(listed)
    shortened["truncated"] = {
        "checks_left_out": left_out,
        "failed_checks_left_out": len(failing) - len(listed),
        "text": _left_out_text(message, f"{left_out} more checks" if left_out else "the checks' full texts"),
    }
    return shortened


def _clipped_check(check: dict[str, Any]) -> dict[str, Any]:
    clipped = dict(check)
    for field, limit in (("error", CHECK_ERROR_CHARS), ("excerpt", CHECK_EXCERPT_CHARS)):
        if isinstance(clipped.get(field), str):
            clipped[field] = _clip(clipped[field], limit)
    return clipped


def _left_out_text(message: dict[str, Any], what: str) -> str:
    function = str(message.get("function") or "FUNCTION")
    return f"…and {what}, see `rollout status {function} --json` (a notification must fit in SNS's 256 KiB)"


def _clip_texts(value: Any, limit: int) -> Any:
    """`value` with every string in it clipped to `limit` characters."""
    if isinstance(value, str):
        return _clip(value, limit)
    if isinstance(value, dict):
        return {key: _clip_texts(item, limit) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clip_texts(item, limit) for item in value]
    return value


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        message = message_to_publish(notification)
        if message is not notification.message:
            logger.warning(
                "Notification shortened to fit SNS's message size",
                extra={"kind": notification.kind, "truncated": message.get("truncated")},
            )
        resp = aws.client("sns").publish(
            TopicArn=self.topic_arn,
            Subject=notification.subject,
            Message=encoded(message).decode(),
            MessageAttributes=notification.attributes,
        )
        return str(resp.get("MessageId", ""))
