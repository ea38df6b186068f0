"""The Slack buttons' endpoint (rollout/slack_interactions.py) and the buttons (rollout/slack.py):
signature, stale and replayed requests, the allow-list, unknown actions, where answers may go."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any, cast
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from rollout import slack_interactions as si
from rollout.slack import render

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000.0
DEPLOYMENT = "d-ABCDEFGHI"


def payload(action_id: str = "rollout-approve", user: str = "U0APPROVER", **extra: Any) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "alice"},
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "message": {"ts": "1700000000.000100"},
        "response_url": "https://hooks.slack.com/actions/T1/1/abc",
        "actions": [{"action_id": action_id, "value": DEPLOYMENT}],
        **extra,
    }


def event(
    body: str, timestamp: float = NOW, secret: str = SECRET, base64_body: bool = True, method: str = "POST"
) -> dict[str, Any]:
    stamp = str(int(timestamp))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {
        "version": "2.0",
        "headers": {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature},
        "requestContext": {"http": {"method": method}},
        "isBase64Encoded": base64_body,
        "body": base64.b64encode(body.encode()).decode() if base64_body else body,
    }


def form(data: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(data)})


def verified(evt: dict[str, Any], now: float = NOW) -> si.SignedRequest:
    request = si.SignedRequest.from_function_url_event(evt)
    si.verify(request, SECRET, lambda: now)
    return request


# --- the signature ------------------------------------------------------------------------------------
@pytest.mark.parametrize("base64_body", [True, False])
def test_a_request_slack_signed_is_verified_and_parsed(base64_body: bool) -> None:
    request = verified(event(form(payload()), base64_body=base64_body))
    click = si.parse_click(request.body)
    assert (click.user_id, click.action, click.deployment_id) == ("U0APPROVER", "approve", DEPLOYMENT)
    assert click.thread_ts == "1700000000.000100"


def test_a_bad_signature_is_refused() -> None:
    with pytest.raises(si.Refused) as refused:
        verified(event(form(payload()), secret="another-secret"))
    assert refused.value.status == 401 and "signature does not match" in refused.value.reason


def test_a_body_changed_after_signing_is_refused() -> None:
    evt = event(form(payload()))
    evt["body"] = base64.b64encode(form(payload(user="U0MALLORY")).encode()).decode()
    with pytest.raises(si.Refused, match="signature does not match"):
        verified(evt)


@pytest.mark.parametrize("age", [301, -301, 3600])
def test_a_stale_request_is_refused_even_with_a_valid_signature(age: int) -> None:
    with pytest.raises(si.Refused) as refused:
        verified(event(form(payload()), timestamp=NOW - age))
    assert refused.value.status == 401 and "stale" in refused.value.reason
    verified(event(form(payload()), timestamp=NOW - 299))  # within five minutes: fine


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda e: e["headers"].pop("X-Slack-Signature"), 401),
        (lambda e: e["headers"].update({"X-Slack-Request-Timestamp": "yesterday"}), 401),
        (lambda e: e.update({"body": "%%%not base64"}), 400),
        (lambda e: e["requestContext"]["http"].update({"method": "GET"}), 405),
        (lambda e: e.update({"body": "A" * (si.MAX_BODY_BYTES * 2 + 1)}), 413),
        (lambda e: e.pop("headers"), 400),
        (lambda e: e.update({"requestContext": ["not", "an", "object"]}), 400),
        (lambda e: e["requestContext"].update({"http": "POST"}), 400),
    ],
)
def test_malformed_requests_are_refused(mutate: Any, status: int) -> None:
    evt = event(form(payload()))
    mutate(evt)
    with pytest.raises(si.Refused) as refused:
        verified(evt)
    assert refused.value.status == status


def test_replays_are_named_by_timestamp_and_signature() -> None:
    one, two = event(form(payload())), event(form(payload()), timestamp=NOW + 1)
    first = si.SignedRequest.from_function_url_event(one)
    assert first.fingerprint == si.SignedRequest.from_function_url_event(one).fingerprint
    assert first.fingerprint != si.SignedRequest.from_function_url_event(two).fingerprint
    assert first.signature not in first.fingerprint


# --- what the click asks, and who clicked ---------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        payload(action_id="rollout-promote"),
        payload(action_id="open-deployment"),  # a link button: nothing to do
        {**payload(), "actions": []},
        {**payload(), "actions": [payload()["actions"][0]] * 2},
        {**payload(), "type": "view_submission"},
    ],
)
def test_unknown_actions_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(si.Refused) as refused:
        si.parse_click(form(data))
    assert refused.value.status == 400


def test_a_body_without_a_payload_is_refused() -> None:
    for body in ("", "token=x", "payload=not-json"):
        with pytest.raises(si.Refused, match="no interaction payload"):
            si.parse_click(body)


def test_only_users_on_the_allow_list_may_act() -> None:
    allowed = si.allowed_users("U0APPROVER, U0OTHER  U0THIRD")
    assert allowed == {"U0APPROVER", "U0OTHER", "U0THIRD"}
    si.authorise(si.parse_click(form(payload())), allowed)
    with pytest.raises(si.Refused) as refused:
        si.authorise(si.parse_click(form(payload(user="U0STRANGER"))), allowed)
    assert refused.value.status == 403 and "U0STRANGER" in refused.value.reason
    # An empty allow-list allows nobody; a payload without a user is nobody.
    with pytest.raises(si.Refused):
        si.authorise(si.parse_click(form(payload())), si.allowed_users(""))
    with pytest.raises(si.Refused):
        si.authorise(si.parse_click(form({**payload(), "user": None})), allowed)


def test_a_click_becomes_a_deployment_actions_request_naming_the_slack_user() -> None:
    approve = si.action_request(si.parse_click(form(payload())))
    assert approve == {
        "action": "approve",
        "deployment_id": DEPLOYMENT,
        "by": {"kind": "slack", "id": "U0APPROVER", "name": "alice"},
        "text": "",
    }
    reject = si.action_request(si.parse_click(form(payload(action_id="rollout-reject"))))
    assert reject["action"] == "reject" and reject["text"] == "rejected in Slack by alice"


# --- answering in the thread --------------------------------------------------------------------------
def test_the_answer_goes_in_the_thread_and_refusals_only_to_the_user() -> None:
    click = si.parse_click(form(payload()))
    done = si.reply(click, si.reply_text(click, {"ok": True, "verdict": "Succeeded", "reported": True}))
    assert done["thread_ts"] == "1700000000.000100" and done["response_type"] == "in_channel"
    assert done["replace_original"] is False and "approved by <@U0APPROVER>" in done["text"]
    assert "(Succeeded reported to CodeDeploy)" in done["text"]
    # CodeDeploy had closed the step (with its own status): the thread is not told it took this one.
    late = si.reply_text(click, {"ok": True, "verdict": "Succeeded", "reported": False})
    assert "reported to CodeDeploy" not in late and "recorded only" in late
    refused = si.reply_text(click, {"ok": False, "reason": "the gate expired <now>"})
    assert "refused: the gate expired &lt;now&gt;" in refused
    assert si.reply(click, refused, public=False)["response_type"] == "ephemeral"


@pytest.mark.parametrize(
    ("url", "origin", "ok"),
    [
        ("https://hooks.slack.com/actions/T1/1/abc", si.SLACK_ORIGIN, True),
        ("https://hooks.slack.com/services/T1/B1/abc", si.SLACK_ORIGIN, False),
        ("https://evil.example.com/actions/T1", si.SLACK_ORIGIN, False),
        ("https://hooks.slack.com.evil.example.com/actions/", si.SLACK_ORIGIN, False),
        ("http://127.0.0.1:9999/actions/T1", "http://127.0.0.1:9999/", True),
        ("http://10.0.0.1:9999/actions/T1", "http://10.0.0.1:9999/", False),
    ],
)
def test_answers_go_only_to_slack_response_urls(url: str, origin: str, ok: bool) -> None:
    assert si.response_url_allowed(url, origin) is ok


def test_the_signing_secret_may_be_plain_or_json() -> None:
    assert si.signing_secret_from(f"  {SECRET}\n") == SECRET
    assert si.signing_secret_from(json.dumps({"signing_secret": SECRET})) == SECRET
    for bad in ("", "{}", "{not json"):
        with pytest.raises(si.Refused) as refused:
            si.signing_secret_from(bad)
        assert SECRET not in refused.value.reason


# --- the buttons on the messages -------------------------------------------------------------------
def _action_ids(message: dict[str, Any], interactive: bool = True) -> list[str]:
    blocks = render(message, interactive)["attachments"][0]["blocks"]
    return [
        e["action_id"]
        for b in blocks
        if b.get("block_id") == "rollout-actions"
        for e in b["elements"]
        if e.get("value") == message.get("deployment_id")
    ]


def test_messages_about_a_running_deployment_carry_the_buttons_slack_acts_on() -> None:
    base = {"title": "x", "function": "orders", "deployment_id": DEPLOYMENT}
    assert _action_ids({**base, "kind": "approval.requested"}) == [
        "rollout-approve",
        "rollout-reject",
        "rollout-abort",
    ]
    assert _action_ids({**base, "kind": "deployment.started"}) == ["rollout-abort"]
    assert _action_ids({**base, "kind": "deployment.succeeded"}) == ["rollout-rollback"]
    assert _action_ids({**base, "kind": "approval.requested"}, interactive=False) == []
    assert _action_ids({**base, "kind": "approval.requested", "deployment_id": None}) == []
    # Every button the messages carry is one the endpoint knows.
    assert {"rollout-approve", "rollout-reject", "rollout-abort", "rollout-rollback"} <= set(si.ACTION_IDS)


# --- answering Slack within three seconds: the action is handed over asynchronously ------------------
class Recorded:
    def __init__(self) -> None:
        self.invoked: list[tuple[str, dict[str, Any]]] = []
        self.posted: list[dict[str, Any]] = []
        self.posted_to: list[str] = []  # the response_url of each answer
        self.post_ok = True


READ_SIGNING_SECRET = si._signing_secret


@pytest.fixture
def endpoint_world(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    from rollout import lambda_ops
    from rollout.ledger import Ledger

    seen = Recorded()
    # DeploymentActions' configuration (template.yaml): the same secret and allow-list as the endpoint.
    monkeypatch.setenv("SLACK_SIGNING_SECRET_ARN", "arn:secret")
    monkeypatch.setenv("SLACK_ALLOWED_USERS", "U0APPROVER")
    monkeypatch.setattr(si, "_signing_secret", lambda arn: SECRET)
    monkeypatch.setattr(Ledger, "first_sighting", lambda self, key, keep: True)
    monkeypatch.setattr(lambda_ops, "hand_over_now", lambda fn, evt: seen.invoked.append((fn, evt)))

    def never_waits(*args: Any) -> Any:
        raise AssertionError("the endpoint must not wait for DeploymentActions")

    monkeypatch.setattr(lambda_ops, "invoke_sync", never_waits)

    def post(click: si.Click, body: dict[str, Any], origin: str, log: Any) -> bool:
        seen.posted.append(body)
        seen.posted_to.append(click.response_url)
        return seen.post_ok

    monkeypatch.setattr(si, "_post", post)
    return seen


ENDPOINT = si.Endpoint("arn:secret", frozenset({"U0APPROVER"}), "rollout-dev-DeploymentActions", "ledger")
LOG = logging.getLogger("test")


def test_a_click_is_handed_over_asynchronously_and_slack_is_answered_at_once(
    endpoint_world: Recorded,
) -> None:
    answer = si.handle(event(form(payload())), ENDPOINT, LOG, lambda: NOW)

    assert answer["statusCode"] == 200
    ((function, request),) = endpoint_world.invoked
    assert function == "rollout-dev-DeploymentActions"
    assert request["action"] == "approve" and request["by"]["id"] == "U0APPROVER"
    # Slack's signed request is the click's only record: DeploymentActions proves it and answers its thread.
    assert set(request) == {"action", "deployment_id", "by", "text", si.SIGNED_KEY}
    assert request[si.SIGNED_KEY]["body"] == form(payload())
    assert endpoint_world.posted == []  # DeploymentActions answers the thread once it is done


def test_a_hand_over_lambda_refuses_is_answered_to_the_clicker_not_left_silent(
    endpoint_world: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from rollout import lambda_ops

    def refused(fn: str, evt: dict[str, Any]) -> None:
        raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate"}}, "Invoke")

    monkeypatch.setattr(lambda_ops, "hand_over_now", refused)
    answer = si.handle(event(form(payload())), ENDPOINT, LOG, lambda: NOW)

    assert answer["statusCode"] == 200
    (posted,) = endpoint_world.posted
    assert posted["response_type"] == "ephemeral"
    assert "approve of `d-ABCDEFGHI` could not be handed to DeploymentActions" in posted["text"]
    assert "nothing was done" in posted["text"]
    endpoint_world.post_ok = False  # not even the answer went through: Slack itself shows an error
    assert (
        si.handle(event(form(payload()), timestamp=NOW + 1), ENDPOINT, LOG, lambda: NOW)["statusCode"] == 502
    )


def test_the_allow_list_still_refuses_before_anything_is_handed_over(endpoint_world: Recorded) -> None:
    answer = si.handle(event(form(payload(user="U0STRANGER"))), ENDPOINT, LOG, lambda: NOW)
    assert answer["statusCode"] == 200 and endpoint_world.invoked == []
    (posted,) = endpoint_world.posted
    assert posted["response_type"] == "ephemeral" and "may not act on deployments" in posted["text"]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ({"ok": True, "status": "APPROVED", "verdict": "Succeeded"}, "approved by <@U0APPROVER>"),
        (
            {"ok": False, "refused": "nothing_to_do", "reason": "already answered"},
            "refused: already answered",
        ),
        (RuntimeError("CodeDeploy is down"), "failed; see the deployment_actions logs"),
    ],
    ids=["done", "refused", "failed"],
)
def test_deployment_actions_answers_a_slack_click_in_its_thread(
    endpoint_world: Recorded, monkeypatch: pytest.MonkeyPatch, outcome: Any, expected: str
) -> None:
    from rollout import approvals

    def act(ctx: Any, request: Any) -> dict[str, Any]:
        if isinstance(outcome, Exception):
            raise outcome
        return dict(outcome)

    monkeypatch.setattr(approvals, "act", act)
    monkeypatch.setattr(approvals.ReleaseContext, "from_settings", staticmethod(lambda settings, **_: None))

    answer = approvals.handle(handed_over(endpoint_world), settings=cast(Any, object()))

    (posted,) = endpoint_world.posted
    assert expected in posted["text"] and posted["thread_ts"] == "1700000000.000100"
    assert answer["ok"] is (not isinstance(outcome, Exception) and outcome["ok"])


# --- DeploymentActions verifies Slack's signature again -------------------------------------------------
def handed_over(world: Recorded, user: str = "U0APPROVER", signed_at: float | None = None) -> dict[str, Any]:
    """What the endpoint hands DeploymentActions for a click signed now (or at `signed_at`)."""
    stamp = time.time() if signed_at is None else signed_at
    si.handle(event(form(payload(user=user)), timestamp=stamp), ENDPOINT, LOG, lambda: stamp)
    (_, request), *_ = reversed(world.invoked)
    return request


@pytest.fixture
def acted(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The requests DeploymentActions acted on (after proof)."""
    from rollout import approvals

    seen: list[Any] = []
    monkeypatch.setattr(approvals, "act", lambda ctx, request: seen.append(request) or {"ok": True})
    monkeypatch.setattr(approvals.ReleaseContext, "from_settings", staticmethod(lambda settings, **_: None))
    return seen


def test_deployment_actions_acts_on_a_click_slack_signed_in_the_clickers_name(
    endpoint_world: Recorded, acted: list[Any]
) -> None:
    from rollout import approvals

    approvals.handle(handed_over(endpoint_world), settings=cast(Any, object()))

    ((request),) = acted
    assert (request.action, request.deployment_id) == ("approve", DEPLOYMENT)
    assert (request.by.kind, request.by.id) == ("slack", "U0APPROVER")


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (lambda r: r.pop(si.SIGNED_KEY), "no request signed by Slack"),
        (
            lambda r: r.update({"by": {"kind": "slack", "id": "U0OTHER"}}),
            "not the one the signed Slack click",
        ),
        (lambda r: r.update({"deployment_id": "d-OTHERONE1"}), "not the one the signed Slack click"),
        (lambda r: r.update({"action": "abort"}), "not the one the signed Slack click"),
        (lambda r: r[si.SIGNED_KEY].update({"signature": "v0=" + "0" * 64}), "signature does not match"),
        (lambda r: r[si.SIGNED_KEY].update({"body": form(payload(user="U0OTHER"))}), "does not match"),
        # No UTF-8 Slack could have signed: refused, never a crash answered in some thread.
        (lambda r: r[si.SIGNED_KEY].update({"body": "payload=\ud800"}), "not valid UTF-8"),
    ],
    ids=[
        "unsigned",
        "another-user",
        "another-deployment",
        "another-action",
        "forged",
        "body-swapped",
        "not-utf8",
    ],
)
def test_a_slack_claim_deployment_actions_cannot_verify_is_refused_and_answered_nowhere(
    endpoint_world: Recorded, acted: list[Any], tamper: Any, why: str
) -> None:
    # Lambda does not say who invoked it: whoever may invoke DeploymentActions could name any Slack user.
    from rollout import approvals

    request = handed_over(endpoint_world)
    tamper(request)

    answer = approvals.handle(request, settings=cast(Any, object()))

    assert (answer["ok"], answer["proof"]) == (False, si.NOT_SIGNED_BY_SLACK)
    assert why in answer["reason"]
    assert acted == [] and endpoint_world.posted == []


def test_deployment_actions_refuses_a_click_older_than_its_hand_over_could_be(
    endpoint_world: Recorded, acted: list[Any]
) -> None:
    from rollout import approvals

    late = approvals.handle(
        handed_over(endpoint_world, signed_at=time.time() - si.HANDOVER_MAX_AGE_SECONDS - 5),
        settings=cast(Any, object()),
    )
    in_time = approvals.handle(
        handed_over(endpoint_world, signed_at=time.time() - si.HANDOVER_MAX_AGE_SECONDS + 30),
        settings=cast(Any, object()),
    )

    assert late["proof"] == si.NOT_SIGNED_BY_SLACK and "stale" in late["reason"]
    assert in_time == {"ok": True} and len(acted) == 1


def test_deployment_actions_keeps_its_own_allow_list_and_needs_a_signing_secret(
    endpoint_world: Recorded, acted: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rollout import approvals

    request = handed_over(endpoint_world)
    monkeypatch.setenv("SLACK_ALLOWED_USERS", "U0SOMEONEELSE")
    not_allowed = approvals.handle(request, settings=cast(Any, object()))

    monkeypatch.setenv("SLACK_ALLOWED_USERS", "U0APPROVER")
    monkeypatch.setenv("SLACK_SIGNING_SECRET_ARN", "")  # a stack without Slack buttons
    monkeypatch.setattr(si, "_signing_secret", READ_SIGNING_SECRET)
    no_secret = approvals.handle(request, settings=cast(Any, object()))

    assert "may not act on deployments" in not_allowed["reason"]
    assert "SLACK_SIGNING_SECRET_ARN is not set" in no_secret["reason"]
    assert acted == []


def test_a_click_whose_secret_cannot_be_read_is_refused_and_answered_nowhere(
    endpoint_world: Recorded, acted: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rollout import approvals

    request = handed_over(endpoint_world)

    def unreadable(arn: str) -> str:
        raise RuntimeError("Secrets Manager is throttling")

    monkeypatch.setattr(si, "_signing_secret", unreadable)
    answer = approvals.handle(request, settings=cast(Any, object()))

    assert answer["proof"] == si.NOT_SIGNED_BY_SLACK and "could not be read" in answer["reason"]
    assert acted == [] and endpoint_world.posted == []


# --- only a click Slack signed is answered, and only in the thread Slack signed -------------------------
def test_a_hand_over_refused_before_its_proof_is_answered_nowhere(
    endpoint_world: Recorded, acted: list[Any]
) -> None:
    # Whoever may invoke DeploymentActions could name any thread: nothing unproven is answered.
    from rollout import approvals

    request = {**handed_over(endpoint_world), "action": "promote"}

    answer = approvals.handle(request, settings=cast(Any, object()))

    assert (answer["ok"], answer["refused"]) == (False, "bad_request")
    assert "unknown action" in answer["reason"]
    assert acted == [] and endpoint_world.posted == []


def test_the_answer_goes_to_the_thread_slack_signed_not_one_the_hand_over_names(
    endpoint_world: Recorded, acted: list[Any]
) -> None:
    from rollout import approvals

    request = handed_over(endpoint_world)
    elsewhere = {
        "user_id": "U0APPROVER",
        "user_name": "alice",
        "action": "approve",
        "deployment_id": DEPLOYMENT,
        "response_url": "https://hooks.slack.com/actions/T9/9/another-thread",
        "thread_ts": "1600000000.000001",
    }

    approvals.handle({**request, "slack": elsewhere}, settings=cast(Any, object()))

    assert len(acted) == 1
    assert endpoint_world.posted_to == ["https://hooks.slack.com/actions/T1/1/abc"]
    assert endpoint_world.posted[0]["thread_ts"] == "1700000000.000100"


@pytest.mark.parametrize(
    ("broken", "why"),
    [("secret", "signing secret could not be read"), ("ledger", "could not be recorded")],
)
def test_a_click_the_endpoint_cannot_check_is_refused_with_why_and_nothing_is_handed_over(
    endpoint_world: Recorded, monkeypatch: pytest.MonkeyPatch, broken: str, why: str
) -> None:
    from botocore.exceptions import ClientError

    from rollout.ledger import Ledger

    def unavailable(*args: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "Call")

    if broken == "secret":
        monkeypatch.setattr(si, "_signing_secret", unavailable)
    else:
        monkeypatch.setattr(Ledger, "first_sighting", unavailable)

    answer = si.handle(event(form(payload())), ENDPOINT, LOG, lambda: NOW)

    assert answer["statusCode"] == 503 and why in json.loads(answer["body"])["message"]
    assert endpoint_world.invoked == [] and endpoint_world.posted == []
