"""Slack messages for rollout.notification/1 (rendering is pure) and their posting through a webhook.

The webhook URL is a secret: it never reaches a log line, an exception message or slack_sdk's own
debug logging.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from rollout.errors import MalformedNotification, SlackPostFailed, SlackWebhookSecretInvalid
from rollout.states import ReasonCode

SCHEMA = "rollout.notification/1"

# Attachment colour per outcome: a glance at the bar says how it went.
GREEN, RED, ORANGE, AMBER, BLUE, GREY = "#2EB67D", "#E01E5A", "#F2994A", "#ECB22E", "#1D9BD1", "#9E9E9E"
STYLE: dict[str, tuple[str, str]] = {
    "deployment.started": (":rocket:", BLUE),
    "deployment.succeeded": (":white_check_mark:", GREEN),
    "deployment.rolled_back": (":rewind:", ORANGE),
    "deployment.failed": (":x:", RED),
    "release.queued": (":hourglass_flowing_sand:", GREY),
    "release.superseded": (":track_next:", AMBER),
    "release.failed": (":x:", RED),
    "release.rejected": (":no_entry:", RED),
    "release.unchanged": (":heavy_minus_sign:", GREY),
    "release.bootstrapped": (":seedling:", GREEN),
    "approval.requested": (":raised_hand:", AMBER),
    "approval.approved": (":white_check_mark:", BLUE),
    "approval.rejected": (":no_entry:", RED),
    "approval.expired": (":alarm_clock:", RED),
}
SEVERITY_STYLE = {
    "success": (":white_check_mark:", GREEN),
    "error": (":x:", RED),
    "warning": (":warning:", AMBER),
}

# Slack's Block Kit limits.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FALLBACK_LIMIT = 3000
EXCERPT_LIMIT = 1200
BUTTON_LABELS = {"deployment": "CodeDeploy deployment", "function": "Lambda function"}


def parse_notification(raw: str) -> dict[str, Any]:
    """The notification in an SNS message body, or MalformedNotification saying why not."""
    try:
        message = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise MalformedNotification(f"message is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise MalformedNotification("message is not a JSON object")
    if message.get("schema") != SCHEMA:
        raise MalformedNotification(f"unknown schema {message.get('schema')!r}, expected {SCHEMA}")
    if not isinstance(message.get("kind"), str):
        raise MalformedNotification("message has no kind")
    return message


def render(message: dict[str, Any], interactive: bool = False) -> dict[str, Any]:
    """The webhook payload for a notification: a fallback `text` and one coloured attachment of blocks.

    `interactive` (the stack has a Slack interactivity endpoint) adds the action buttons."""
    kind = str(message.get("kind", ""))
    emoji, colour = STYLE.get(kind) or SEVERITY_STYLE.get(str(message.get("severity")), (":bell:", GREY))
    title = str(message.get("title") or kind)
    function = str(message.get("function") or "unknown function")

    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(f"{emoji} {title}", HEADER_LIMIT), "emoji": True},
        }
    ]
    fields = _fields(message, function)
    if fields:
        blocks.append({"type": "section", "fields": fields})
    reason = message.get("reason") or {}
    if isinstance(reason, dict) and reason.get("text"):
        code = f" (`{_escape(str(reason['code']))}`)" if reason.get("code") else ""
        blocks.append(_text_section(f"*Reason*{code}\n{_escape(str(reason['text']))}"))
    warnings = [str(w) for w in message.get("warnings") or [] if w]
    if warnings:
        blocks.append(_text_section("*Warning*\n" + "\n".join(_escape(w) for w in warnings)))
    failing = failing_checks(message.get("hook_results"))
    # A notification shortened to fit SNS lists only its first failing checks and counts the others.
    left_out = _dict(message.get("truncated")).get("failed_checks_left_out")
    left_out = left_out if isinstance(left_out, int) else 0
    if failing or left_out:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _failing_text(failing, left_out)}}
        )
    context = _context(message)
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    buttons = _buttons(message.get("links"))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    actions = action_buttons(message) if interactive else []
    if actions:
        blocks.append({"type": "actions", "block_id": "rollout-actions", "elements": actions})

    fallback = title
    if isinstance(reason, dict) and reason.get("text") and str(reason["text"]) not in title:
        fallback = f"{title}: {reason['text']}"
    return {
        "text": _clip(f"{emoji} {fallback}", FALLBACK_LIMIT),
        "attachments": [{"color": colour, "fallback": _clip(fallback, FALLBACK_LIMIT), "blocks": blocks}],
    }


def _text_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SECTION_LIMIT)}}


def failing_checks(hook_results: Any) -> list[dict[str, str]]:
    """Checks that failed, across both hooks: hook, name, error, excerpt."""
    found: list[dict[str, str]] = []
    if not isinstance(hook_results, dict):
        return found
    for hook, label in (("pre_traffic", "pre-traffic"), ("post_traffic", "post-traffic")):
        result = hook_results.get(hook)
        if not isinstance(result, dict):
            continue
        for check in result.get("checks") or []:
            if isinstance(check, dict) and check.get("verdict") == "Failed":
                found.append(
                    {
                        "hook": label,
                        "name": str(check.get("name") or "?"),
                        "error": str(check.get("error") or ""),
                        "excerpt": str(check.get("excerpt") or ""),
                    }
                )
    return found


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _fields(message: dict[str, Any], function: str) -> list[dict[str, str]]:
    fields: list[str] = []
    alias = message.get("alias")
    fields.append(
        f"*Function*\n`{_escape(function)}`" + (f" (alias `{_escape(str(alias))}`)" if alias else "")
    )
    versions = _dict(message.get("versions"))
    current, target = versions.get("current"), versions.get("target")
    if current or target:
        fields.append(f"*Version*\nv{current or '?'} → v{target or '?'}")
    if message.get("deployment_config"):
        fields.append(f"*Config*\n{_escape(str(message['deployment_config']))}")
    durations = _dict(message.get("durations"))
    took = durations.get("deployment_seconds", durations.get("total_seconds"))
    if isinstance(took, int | float):
        fields.append(f"*Duration*\n{format_duration(took)}")
    commit = str(message.get("commit") or "")
    author = str(message.get("author") or "")
    if commit or author:
        who = f" by {_escape(author)}" if author else ""
        fields.append(
            f"*Commit*\n`{_escape(commit[:12])}`{who}" if commit else f"*Author*\n{_escape(author)}"
        )
    if message.get("deployment_id"):
        fields.append(f"*Deployment*\n`{_escape(str(message['deployment_id']))}`")
    return [{"type": "mrkdwn", "text": _clip(text, FIELD_LIMIT)} for text in fields[:10]]


def _failing_text(failing: list[dict[str, str]], left_out: int = 0) -> str:
    parts = []
    budget = SECTION_LIMIT - 200
    for check in failing[:3]:
        line = f"*Failing check* `{_escape(check['name'])}` ({check['hook']})"
        if check["error"]:
            line += f": {_escape(check['error'])}"
        if check["excerpt"]:
            excerpt = _clip(check["excerpt"], min(EXCERPT_LIMIT, max(budget // len(failing[:3]), 100)))
            line += "\n```" + _escape(excerpt.replace("```", "'''")) + "```"
        parts.append(line)
    more = max(len(failing) - 3, 0) + left_out
    if more:
        parts.append(f"_and {more} more failing checks_")
    return _clip("\n".join(parts), SECTION_LIMIT)


def _context(message: dict[str, Any]) -> str:
    bits = []
    if message.get("message"):
        bits.append(f"“{_escape(_clip(' '.join(str(message['message']).split()), 200))}”")
    if message.get("release_id"):
        bits.append(f"release `{_escape(str(message['release_id']))}`")
    artifact = _dict(message.get("artifact"))
    if artifact.get("key"):
        bits.append(f"artifact `{_escape(str(artifact['key']))}`")
    approval = _dict(message.get("approval"))
    if approval.get("position"):
        bits.append(_approval_text(approval))
    if message.get("superseded_by"):
        bits.append(f"superseded by release `{_escape(str(message['superseded_by']))}`")
    if message.get("at"):
        bits.append(str(message["at"]))
    return _clip(" · ".join(bits), SECTION_LIMIT)


def _approval_text(approval: dict[str, Any]) -> str:
    text = f"approval before {_escape(str(approval['position']))}"
    if approval.get("status") == "AWAITING":
        return f"{text}, open until {_escape(str(approval.get('deadline_at') or '?'))}"
    by = f" by {_escape(str(approval['by']))}" if approval.get("by") else ""
    return f"{text}: {_escape(str(approval.get('status') or '?')).lower()}{by}"


def _buttons(links: Any) -> list[dict[str, Any]]:
    if not isinstance(links, dict):
        return []
    buttons = []
    for name, url in links.items():
        if isinstance(url, str) and url.startswith("https://") and len(url) <= 3000:
            label = BUTTON_LABELS.get(name, name.replace("_", " ").capitalize())
            buttons.append(
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": _clip(label, 75)},
                    "url": url,
                    "action_id": f"open-{name}"[:255],
                }
            )
    return buttons[:5]


# Which buttons a message about a deployment carries (slack_interactions.ACTION_IDS acts on them).
# Roll back after success: DeploymentActions refuses it once a newer release went live.
ACTION_BUTTONS: dict[str, tuple[str, ...]] = {
    "deployment.started": ("abort",),
    "approval.requested": ("approve", "reject", "abort"),
    "deployment.succeeded": ("rollback",),
}
# A failure whose version CodeDeploy put live anyway (UNPROVEN_SUCCESS) is rolled back as a success is.
BUTTONS_BY_REASON: dict[tuple[str, str], tuple[str, ...]] = {
    ("deployment.failed", ReasonCode.UNPROVEN_SUCCESS): ("rollback",),
}
_BUTTON_STYLE = {
    "approve": ("Approve", "primary", None),
    "reject": ("Reject", "danger", "Reject this version? The deployment rolls back."),
    "abort": ("Abort", "danger", "Stop this deployment and roll back?"),
    "rollback": (
        "Roll back",
        "danger",
        "Roll the function back to the version live before this one (all at once)?",
    ),
}


def action_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Approve / Reject / Abort / Roll back buttons whose value is the deployment id; none without one."""
    deployment_id = str(message.get("deployment_id") or "")
    if not deployment_id:
        return []
    kind, code = str(message.get("kind")), str(_dict(message.get("reason")).get("code") or "")
    buttons = []
    for action in BUTTONS_BY_REASON.get((kind, code)) or ACTION_BUTTONS.get(kind, ()):
        label, style, confirm = _BUTTON_STYLE[action]
        button: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": label},
            "action_id": f"rollout-{action}",
            "value": deployment_id,
            "style": style,
        }
        if confirm:
            button["confirm"] = {
                "title": {"type": "plain_text", "text": "Are you sure?"},
                "text": {"type": "plain_text", "text": confirm},
                "confirm": {"type": "plain_text", "text": label},
                "deny": {"type": "plain_text", "text": "Cancel"},
            }
        buttons.append(button)
    return buttons


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- posting -------------------------------------------------------------------------------------


SLACK_WEBHOOK_ORIGIN = "https://hooks.slack.com/"
# Slack's incoming webhooks (apps and legacy) and workflow webhooks.
SLACK_WEBHOOK_PATHS = ("services/", "workflows/", "triggers/")


def webhook_url_from_secret(secret: str, origin: str = SLACK_WEBHOOK_ORIGIN) -> str:
    """The URL from a secret that is either the URL itself or JSON {"webhook_url": "..."}.

    The URL must start with `origin` (Slack's own by default; the stack's SlackWebhookOrigin can
    name another HTTPS origin, or a loopback one for the local sandbox). A secret that is not such a
    URL is refused without repeating any of it: the message and the exception chain stay clean.
    """
    value = secret.strip()
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            data = None
        if data is None:
            raise SlackWebhookSecretInvalid("the Slack secret is JSON but not valid JSON")
        value = str(data.get("webhook_url") or "").strip() if isinstance(data, dict) else ""
    if not _allowed_webhook(value, origin):
        raise SlackWebhookSecretInvalid(
            f'the Slack secret must be a webhook URL under {origin} (or {{"webhook_url": "{origin}..."}})'
        )
    return value


def _allowed_webhook(url: str, origin: str) -> bool:
    if not url.startswith(origin) or any(c.isspace() for c in url):
        return False
    parsed = urlsplit(url)
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost"):
        return False  # plain HTTP only to the machine itself (the sandbox's receiver)
    if origin == SLACK_WEBHOOK_ORIGIN:
        return url[len(origin) :].startswith(SLACK_WEBHOOK_PATHS)
    return parsed.scheme in ("https", "http")


class _Redact(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.secret in text:
            record.msg, record.args = text.replace(self.secret, "<slack webhook url>"), None
        return True


def _quiet_logger(url: str) -> logging.Logger:
    """slack_sdk logs the URL at DEBUG and on connection retries at INFO: give it a logger that drops
    both and redacts whatever it still logs, whatever the root logger's level is."""
    log = logging.getLogger("rollout.slack.webhook")
    log.setLevel(logging.WARNING)
    for old in [f for f in log.filters if isinstance(f, _Redact)]:
        log.removeFilter(old)
    log.addFilter(_Redact(url))
    return log


class BoundedRateLimitRetry(RateLimitErrorRetryHandler):
    """Waits out a 429 as Slack's Retry-After asks, unless the wait exceeds `max_wait_seconds`:
    then it gives up, the post fails, and SNS delivers the notification again later."""

    def __init__(
        self,
        max_retry_count: int = 2,
        max_wait_seconds: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_seconds = max_wait_seconds
        self.sleep = sleep
        self.waited: list[float] = []

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:  # only 429 responses reach here (see _can_retry)
            raise error or SlackPostFailed("rate limited without a response")
        wait = 1.0
        for name, values in response.headers.items():
            if name.lower() == "retry-after" and values:
                try:
                    wait = float(values[0])
                except ValueError:
                    wait = 1.0
        if wait > self.max_wait_seconds:
            return  # no further attempt: the 429 is returned and the post fails
        wait += random.uniform(0, 0.25)  # jitter, as slack_sdk's own handler adds
        self.waited.append(wait)
        self.sleep(wait)
        state.next_attempt_requested = True
        state.increment_current_attempt()


@dataclass
class SlackPoster:
    """Posts payloads to one incoming webhook."""

    url: str
    timeout: int = 10
    max_wait_seconds: float = 15.0  # the notifier has 30 s: longer waits fail and Lambda retries later

    def __post_init__(self) -> None:
        self.rate_limit = BoundedRateLimitRetry(max_wait_seconds=self.max_wait_seconds)
        handlers: list[RetryHandler] = [self.rate_limit, ConnectionErrorRetryHandler(max_retry_count=1)]
        self._client = WebhookClient(
            url=self.url, timeout=self.timeout, logger=_quiet_logger(self.url), retry_handlers=handlers
        )

    def post(self, payload: dict[str, Any]) -> None:
        try:
            response = self._client.send_dict(payload)
        except (OSError, SlackClientError) as exc:
            raise SlackPostFailed(f"could not reach Slack: {self._redact(str(exc))}") from None
        if response.status_code != 200:
            body = self._redact(str(response.body or ""))[:200]
            raise SlackPostFailed(f"Slack answered {response.status_code}: {body}")

    def _redact(self, text: str) -> str:
        return text.replace(self.url, "<slack webhook url>")


# --- delivery of SNS records ----------------------------------------------------------------------

SECRET_MAX_AGE_SECONDS = 300  # a rotated webhook is picked up within five minutes

_posters: dict[str, SlackPoster] = {}


def webhook_url(secret_arn: str, max_age: int = SECRET_MAX_AGE_SECONDS) -> str:
    """The webhook URL from Secrets Manager, through Powertools Parameters' cache."""
    from aws_lambda_powertools.utilities import parameters

    if not secret_arn:
        raise SlackWebhookSecretInvalid("SLACK_WEBHOOK_SECRET_ARN is not set")
    value = parameters.get_secret(secret_arn, max_age=max_age)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return webhook_url_from_secret(str(value), os.environ.get("SLACK_WEBHOOK_ORIGIN") or SLACK_WEBHOOK_ORIGIN)


def poster_for(url: str) -> SlackPoster:
    """One poster per URL, reused across warm invocations."""
    if url not in _posters:
        _posters.clear()  # a rotated URL replaces the old poster
        _posters[url] = SlackPoster(url)
    return _posters[url]


@dataclass
class Delivery:
    posted: list[str]
    skipped: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"posted": self.posted, "skipped": self.skipped}


def deliver_sns_event(event: Any, secret_arn: str, log: Any) -> Delivery:
    """Post each notification of an SNS event to Slack.

    A record that is not a notification is logged and skipped (retrying cannot fix it); a post
    Slack refuses raises SlackPostFailed, so SNS delivers the event again.
    """
    delivery = Delivery(posted=[], skipped=[])
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        log.error("event has no SNS records: skipped", extra={"event_type": type(event).__name__})
        delivery.skipped.append("event")
        return delivery
    for index, record in enumerate(records):
        sns = record.get("Sns") if isinstance(record, dict) else None
        message_id = str(sns.get("MessageId", index)) if isinstance(sns, dict) else str(index)
        try:
            if not isinstance(sns, dict):
                raise MalformedNotification("record has no Sns object")
            message = parse_notification(sns.get("Message", ""))
        except MalformedNotification as exc:
            log.error(
                "record skipped: not a Rollout notification",
                extra={"message_id": message_id, "error": str(exc)},
            )
            delivery.skipped.append(message_id)
            continue
        poster_for(webhook_url(secret_arn)).post(
            render(message, interactive=os.environ.get("SLACK_INTERACTIVE") == "true")
        )
        log.info(
            "posted to Slack",
            extra={
                "message_id": message_id,
                "kind": message.get("kind"),
                "function": message.get("function"),
            },
        )
        delivery.posted.append(message_id)
    return delivery
