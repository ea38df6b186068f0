"""Slack's interactivity requests (the buttons on Rollout's messages), verified and turned into
deployment actions.

A request is acted on only when, in this order: it is a function URL request with a body of sane
size; Slack's signature over it verifies with the signing secret (slack_sdk's `SignatureVerifier`)
and its timestamp is at most five minutes from now (stale requests refused); its signature was never
seen before (replays refused, through the ledger); it is one `block_actions` click on a button whose
action Rollout knows; and the clicking Slack user is on the operator's allow-list. Anything else is
refused with a reason, and nothing is done. The action itself goes to `deployment_actions` (the one
function allowed to report a gate's verdict) as an asynchronous invocation, and Slack is answered at
once: Slack shows the clicker an error when the acknowledgment takes more than three seconds ("your
app must respond to the request with an HTTP 200 OK ... within 3 seconds",
https://docs.slack.dev/interactivity/handling-user-interaction), and a rollback or an approval's
report can take longer. `deployment_actions` then posts the outcome (done, or refused with the reason)
in the message's thread through the request's `response_url`, which must lie under the configured
Slack origin. A hand-over Lambda refuses is answered to the clicker at once, never left silent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY_BYTES = 64 * 1024  # Slack's block_actions payloads are a few KB
MAX_AGE_SECONDS = 300  # Slack's own advice, and what SignatureVerifier allows
# The buttons Rollout puts on its messages (slack.py) and the action each one asks for.
ACTION_IDS = {
    "rollout-approve": "approve",
    "rollout-reject": "reject",
    "rollout-abort": "abort",
    "rollout-rollback": "rollback",
}
SLACK_ORIGIN = "https://hooks.slack.com/"
# Slack's headers: X-Slack-Request-Timestamp is Unix seconds; X-Slack-Signature is "v0=" and the
# hex HMAC-SHA256 of "v0:<timestamp>:<body>" (https://api.slack.com/docs/verifying-requests-from-slack;
# slack_sdk's SignatureVerifier computes it as hexdigest(), lowercase).
TIMESTAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
RESPONSE_PATH = "actions/"  # Slack's response_url: https://hooks.slack.com/actions/T…/…/…
# Slack's signed request itself, handed over with the click: deployment_actions verifies it again, since
# anyone allowed to invoke deployment_actions could otherwise name any Slack user as the approver.
SIGNED_KEY = "slack_request"
# How old a handed-over click may be there: the endpoint's five minutes, plus DeploymentActions' async
# MaximumEventAgeInSeconds (300, template.yaml), after which Lambda drops the hand-over anyway.
HANDOVER_MAX_AGE_SECONDS = MAX_AGE_SECONDS + 300
NOT_SIGNED_BY_SLACK = "not_signed_by_slack"  # deployment_actions' refusal code (the answer's `proof`)


class Refused(Exception):
    """A request that must not be acted on; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class SignedRequest:
    body: str
    timestamp: str
    signature: str

    @classmethod
    def from_function_url_event(cls, event: Any) -> SignedRequest:
        """The body and Slack's headers from a function URL event (payload format 2.0)."""
        if not isinstance(event, dict) or not isinstance(event.get("headers"), dict):
            raise Refused(400, "not a function URL request")
        http = _mapping(event.get("requestContext")).get("http")
        if not isinstance(http, dict):
            raise Refused(400, "not a function URL request")
        if http.get("method") != "POST":
            raise Refused(405, "only POST is accepted")
        raw = event.get("body") or ""
        if not isinstance(raw, str) or len(raw) > MAX_BODY_BYTES * 2:
            raise Refused(413, "the body is too large")
        try:
            body = (
                base64.b64decode(raw, validate=True).decode("utf-8") if event.get("isBase64Encoded") else raw
            )
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "the body is not valid base64 UTF-8") from None
        _check_size(body)
        headers = {str(k).lower(): str(v) for k, v in event["headers"].items()}
        return cls(body, headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", ""))

    @classmethod
    def from_handover(cls, value: Any) -> SignedRequest:
        """The signed request the endpoint handed over; Refused(401) when there is none."""
        if not isinstance(value, dict) or not all(
            isinstance(value.get(name), str) for name in ("body", "timestamp", "signature")
        ):
            raise Refused(401, "the Slack click carries no request signed by Slack")
        _check_size(value["body"])
        return cls(value["body"], value["timestamp"], value["signature"])

    @property
    def fingerprint(self) -> str:
        """Names this exact request (for refusing replays) without storing the signature."""
        return hashlib.sha256(f"{self.timestamp}:{self.signature}".encode()).hexdigest()


def _check_size(body: str) -> None:
    """Refused unless `body` is UTF-8 text of at most MAX_BODY_BYTES (what Slack signs)."""
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate in a text body: no UTF-8 Slack could have signed
        raise Refused(400, "the body is not valid UTF-8") from None
    if size > MAX_BODY_BYTES:
        raise Refused(413, "the body is too large")


def verify(
    request: SignedRequest,
    signing_secret: str,
    now: Callable[[], float] = time.time,
    max_age: int = MAX_AGE_SECONDS,
) -> None:
    """Refused(401) unless Slack signed exactly this body within the last `max_age` seconds."""
    if not request.timestamp or not request.signature:
        raise Refused(401, "the request carries no Slack signature")
    if not TIMESTAMP.fullmatch(request.timestamp):  # int() takes " 1_7" and non-ASCII digits
        raise Refused(401, "the request timestamp is not a number")
    if not SIGNATURE.fullmatch(request.signature):
        # hmac.compare_digest raises TypeError for a str with non-ASCII characters: refuse first.
        raise Refused(401, "the Slack signature is malformed")
    stamp = int(request.timestamp)
    if abs(now() - stamp) > max_age:
        raise Refused(401, f"the request is stale (timestamp more than {max_age // 60} minutes from now)")
    # Imported here: slack_sdk's package import loads its whole Web API client, and the functions that
    # only answer in a thread (the hooks and the reconciler through approvals) never verify. The
    # endpoint's and deployment_actions' handlers load it at init: they verify every Slack request.
    from slack_sdk.signature import SignatureVerifier

    # SignatureVerifier computes Slack's HMAC; its own is_valid would also bound the age to five
    # minutes, which a handed-over click may exceed, so the comparison is made here.
    expected = SignatureVerifier(signing_secret).generate_signature(
        timestamp=request.timestamp, body=request.body
    )
    if expected is None or not hmac.compare_digest(expected, request.signature):
        raise Refused(401, "the Slack signature does not match")


@dataclass(frozen=True)
class Click:
    """One button click, as Slack's block_actions payload describes it."""

    user_id: str
    user_name: str
    action: str
    deployment_id: str
    response_url: str
    thread_ts: str


def parse_click(body: str) -> Click:
    """The click in a verified body; Refused(400) for anything that is not one known button click."""
    try:
        payload = json.loads(parse_qs(body, strict_parsing=True)["payload"][0])
    except (KeyError, IndexError, ValueError):
        raise Refused(400, "the body holds no interaction payload") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise Refused(400, "not a block_actions interaction")
    actions = payload.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise Refused(400, "expected exactly one action")
    action_id = str(actions[0].get("action_id") or "")
    if action_id not in ACTION_IDS:
        raise Refused(400, f"unknown action {action_id[:60]!r}")
    user, container, message = (_mapping(payload.get(key)) for key in ("user", "container", "message"))
    return Click(
        user_id=str(user.get("id") or ""),
        user_name=str(user.get("username") or user.get("name") or "")[:100],
        action=ACTION_IDS[action_id],
        deployment_id=str(actions[0].get("value") or "")[:40],
        response_url=str(payload.get("response_url") or ""),
        thread_ts=str(message.get("thread_ts") or container.get("message_ts") or message.get("ts") or ""),
    )


def allowed_users(configured: str) -> frozenset[str]:
    """The allow-list (Slack user ids, comma or space separated); empty allows nobody."""
    return frozenset(part for part in configured.replace(",", " ").split() if part)


def authorise(click: Click, allowed: frozenset[str]) -> None:
    """Refused(403) unless the clicking user is on the allow-list."""
    if not click.user_id or click.user_id not in allowed:
        raise Refused(403, f"Slack user {click.user_id or '(unknown)'} may not act on deployments")


def action_request(click: Click) -> dict[str, Any]:
    """The deployment_actions request for a click (the Slack user is the approver, or asks for the
    rollback)."""
    texts = {"reject": "rejected in Slack by {}", "rollback": "rolled back from Slack by {}"}
    text = texts[click.action].format(click.user_name or click.user_id) if click.action in texts else ""
    return {
        "action": click.action,
        "deployment_id": click.deployment_id,
        "by": {"kind": "slack", "id": click.user_id, "name": click.user_name},
        "text": text,
    }


def reply_text(click: Click, answer: Any) -> str:
    """What the thread is told about the outcome."""
    who = f"<@{click.user_id}>"
    if not isinstance(answer, dict):
        return f"{who}: {click.action} of `{click.deployment_id}` failed; see the deployment_actions logs"
    if not answer.get("ok"):
        return f"{who}: {click.action} of `{click.deployment_id}` refused: {_plain(str(answer.get('reason', '')))}"
    if click.action == "abort":
        return f":octagonal_sign: {who} aborted `{click.deployment_id}`; CodeDeploy is rolling it back"
    if click.action == "rollback":
        return _rollback_text(who, answer)
    verb = {"approve": ":white_check_mark: approved", "reject": ":no_entry: rejected"}[click.action]
    if answer.get("pending"):
        return (
            f"{verb} by {who}: `{click.deployment_id}` (recorded; CodeDeploy did not take the report yet, "
            "and Rollout's reconciler reports it again within minutes)"
        )
    if not answer.get("reported"):
        return f"{verb} by {who}: `{click.deployment_id}` (recorded only: CodeDeploy had already closed this step)"
    return f"{verb} by {who}: `{click.deployment_id}` ({answer.get('verdict')} reported to CodeDeploy)"


def _rollback_text(who: str, answer: dict[str, Any]) -> str:
    function, state = _plain(str(answer.get("function") or "?")), str(answer.get("status") or "")
    target, release = answer.get("target_version") or "?", _plain(str(answer.get("release_id") or "?"))
    if state in ("QUEUED", "DEPLOYING"):
        where = (
            f", deployment `{_plain(str(answer['deployment_id']))}`" if answer.get("deployment_id") else ""
        )
        how = "started" if state == "DEPLOYING" else "queued"
        return f":rewind: {who} {how} a rollback of `{function}` to version {target} (release `{release}`{where})"
    reason = f": {_plain(str(answer.get('reason')))}" if answer.get("reason") else ""
    return f"{who}: the rollback of `{function}` to version {target} ended {state or '?'}{reason}"


def reply(click: Click, text: str, public: bool = True) -> dict[str, Any]:
    """The response_url payload: a new message in the clicked message's thread."""
    payload: dict[str, Any] = {
        "response_type": "in_channel" if public else "ephemeral",
        "replace_original": False,
        "text": text,
    }
    if click.thread_ts:
        payload["thread_ts"] = click.thread_ts
    return payload


def response_url_allowed(url: str, origin: str = SLACK_ORIGIN) -> bool:
    """Only Slack's response URLs (or, for another configured origin, URLs under it) are posted to:
    the URL comes from the request, and a verified request is still no reason to post anywhere."""
    if not url.startswith(origin) or any(c.isspace() for c in url):
        return False
    parsed = urlsplit(url)
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost"):
        return False
    if origin == SLACK_ORIGIN:
        return url[len(origin) :].startswith(RESPONSE_PATH)
    return parsed.scheme in ("https", "http")


def signing_secret_from(value: str) -> str:
    """The signing secret from a secret that is the value itself or JSON {"signing_secret": "..."}."""
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        text = str(data.get("signing_secret") or "").strip() if isinstance(data, dict) else ""
    if not text:
        raise Refused(500, "the Slack signing secret is empty or malformed")
    return text


def http_answer(status: int, text: str = "") -> dict[str, Any]:
    """A function URL response (payload format 2.0)."""
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"ok": status == 200, **({"message": text} if text else {})}),
    }


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:500]


# --- the endpoint --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """What the endpoint needs, from its environment (template.yaml)."""

    signing_secret_arn: str
    allowed: frozenset[str]
    actions_function: str
    ledger_table: str
    origin: str = SLACK_ORIGIN

    @classmethod
    def from_env(cls) -> Endpoint:
        import os

        env = os.environ
        return cls(
            signing_secret_arn=env.get("SLACK_SIGNING_SECRET_ARN", ""),
            allowed=allowed_users(env.get("SLACK_ALLOWED_USERS", "")),
            actions_function=env.get("DEPLOYMENT_ACTIONS_FUNCTION", ""),
            ledger_table=env.get("LEDGER_TABLE", ""),
            origin=env.get("SLACK_WEBHOOK_ORIGIN") or SLACK_ORIGIN,
        )


def handle(event: Any, endpoint: Endpoint, log: Any, now: Callable[[], float] = time.time) -> dict[str, Any]:
    """One interactivity request: verify, refuse replays, authorise, hand the action over, answer."""
    from rollout import lambda_ops
    from rollout.ledger import Ledger

    try:
        request = SignedRequest.from_function_url_event(event)
        verify(request, _readable_signing_secret(endpoint.signing_secret_arn), now)
        if not _first_sighting(Ledger(endpoint.ledger_table), request):
            raise Refused(401, "the request was already received (replay)")
        click = parse_click(request.body)
    except Refused as refused:
        log.warning("Slack request refused", extra={"status": refused.status, "reason": refused.reason})
        return http_answer(refused.status, refused.reason)
    try:
        authorise(click, endpoint.allowed)
    except Refused as refused:
        log.warning("Slack user refused", extra={"user": click.user_id, "action": click.action})
        _post(
            click, reply(click, f"<@{click.user_id}>: {refused.reason}", public=False), endpoint.origin, log
        )
        return http_answer(200)
    log.info(
        "Slack action",
        extra={"user": click.user_id, "action": click.action, "deployment_id": click.deployment_id},
    )
    try:
        # Asynchronous: Lambda queues it and answers 202 at once; deployment_actions answers the thread.
        lambda_ops.hand_over_now(endpoint.actions_function, handover(click, request))
    except Exception as exc:  # noqa: BLE001 - any refusal: the clicker is told, nothing was done
        log.error("deployment_actions refused the hand-over", extra={"error": repr(exc)})
        text = (
            f"<@{click.user_id}>: {click.action} of `{click.deployment_id}` could not be handed to "
            f"DeploymentActions ({type(exc).__name__}); nothing was done, try again"
        )
        posted = _post(click, reply(click, text, public=False), endpoint.origin, log)
        return http_answer(200) if posted else http_answer(502, "the action could not be handed over")
    return http_answer(200)


def handover(click: Click, request: SignedRequest) -> dict[str, Any]:
    """What the endpoint hands deployment_actions: the action and Slack's signed request, which
    deployment_actions verifies again (`proven_click`) and whose click it answers in its thread."""
    return {**action_request(click), SIGNED_KEY: asdict(request)}


def proven_click(handed_over: Any, endpoint: Endpoint, now: Callable[[], float] = time.time) -> Click:
    """deployment_actions' half of the proof: the click in Slack's signed request, verified with the
    signing secret, no older than HANDOVER_MAX_AGE_SECONDS, by a user on the allow-list. Refused
    (fail closed) otherwise, including when this stack has no signing secret."""
    request = SignedRequest.from_handover(handed_over)
    verify(request, _readable_signing_secret(endpoint.signing_secret_arn), now, HANDOVER_MAX_AGE_SECONDS)
    click = parse_click(request.body)
    authorise(click, endpoint.allowed)
    return click


def answer_in_thread(click: Click, answer: Any, log: Any) -> bool:
    """deployment_actions' half: tell the thread of a click Slack signed (`proven_click`) the outcome
    (`answer` None: it failed); True if Slack took the answer."""
    import os

    origin = os.environ.get("SLACK_WEBHOOK_ORIGIN") or SLACK_ORIGIN
    return _post(click, reply(click, reply_text(click, answer)), origin, log)


def _post(click: Click, payload: dict[str, Any], origin: str, log: Any) -> bool:
    from rollout.errors import SlackPostFailed
    from rollout.slack import SlackPoster

    if not response_url_allowed(click.response_url, origin):
        log.error("response_url outside the Slack origin; not answered", extra={"origin": origin})
        return False
    try:
        SlackPoster(click.response_url).post(payload)
    except SlackPostFailed as exc:  # the action is done; only its echo in the thread is lost
        log.error("could not answer in the thread", extra={"error": str(exc)})
        return False
    return True


def _readable_signing_secret(secret_arn: str) -> str:
    """The signing secret; Refused (fail closed) when it is not set, empty or cannot be read."""
    try:
        return _signing_secret(secret_arn)
    except Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - a request that cannot be verified is refused, never acted on
        raise Refused(503, f"the signing secret could not be read ({type(exc).__name__})") from None


def _first_sighting(ledger: Any, request: SignedRequest) -> bool:
    """Whether the request is seen for the first time; Refused when that cannot be recorded (a replay
    could not be told apart)."""
    try:
        return bool(ledger.first_sighting(f"SLACK#{request.fingerprint}", MAX_AGE_SECONDS * 2))
    except Exception as exc:  # noqa: BLE001 - unrecorded is refused, never acted on
        raise Refused(
            503, f"the request could not be recorded against replays ({type(exc).__name__})"
        ) from None


def _signing_secret(secret_arn: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    if not secret_arn:
        raise Refused(500, "SLACK_SIGNING_SECRET_ARN is not set")
    value = parameters.get_secret(secret_arn, max_age=300)
    return signing_secret_from(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
