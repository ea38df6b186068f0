"""Slack messages a person understands at a glance, rendered from rollout.notification/1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollout.ledger import Release
from rollout.notifications import build, fit
from rollout.slack import (
    GREEN,
    ORANGE,
    RED,
    MalformedNotification,
    SlackWebhookSecretInvalid,
    format_duration,
    parse_notification,
    render,
    webhook_url_from_secret,
)
from rollout.states import State
from tests.support.releases import rolled_back_release

HOOK_RESULTS = {
    "pre_traffic": {
        "verdict": "Failed",
        "checks": [
            {
                "name": "checkout",
                "verdict": "Failed",
                "duration_ms": 31,
                "error": "statusCode: expected 200, got 500",
                "excerpt": '{"statusCode": 500, "body": "<html>KeyError & co</html>"}',
            }
        ],
        "reason": "check 'checkout' failed: statusCode: expected 200, got 500",
    }
}


def notification(kind: str, **fields: Any) -> dict[str, Any]:
    return build(kind, rolled_back_release(**fields), "eu-west-1").message


def texts(payload: dict[str, Any]) -> str:
    """Every piece of text a reader sees, joined."""
    return json.dumps(payload, ensure_ascii=False)


def test_rolled_back_message_shows_what_a_reader_needs() -> None:
    message = notification(
        "deployment.rolled_back",
        reason_code="HOOK_EXECUTION_FAILURE",
        reason="pre-traffic check 'checkout' failed: statusCode: expected 200, got 500",
        hook_results=HOOK_RESULTS,
    )
    payload = render(message)
    attachment = payload["attachments"][0]
    assert attachment["color"] == ORANGE
    blocks = attachment["blocks"]
    header = blocks[0]["text"]["text"]
    assert header.startswith(":rewind: orders: v4 rolled back to v3")
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert "*Function*\n`orders` (alias `live`)" in fields
    assert "*Version*\nv3 → v4" in fields
    assert "*Config*\nCodeDeployDefault.LambdaCanary10Percent5Minutes" in fields
    assert "*Duration*\n6m 12s" in fields
    assert "*Commit*\n`0123456789ab` by alice" in fields
    reason = blocks[2]["text"]["text"]
    assert reason.startswith("*Reason* (`HOOK_EXECUTION_FAILURE`)\npre-traffic check 'checkout' failed")
    failing = blocks[3]["text"]["text"]
    assert "*Failing check* `checkout` (pre-traffic): statusCode: expected 200, got 500" in failing
    assert "&lt;html&gt;KeyError &amp; co&lt;/html&gt;" in failing, "the excerpt is shown, escaped for mrkdwn"
    assert "Fix checkout totals" in blocks[4]["elements"][0]["text"]
    buttons = blocks[5]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Lambda function", "CodeDeploy deployment"]
    assert buttons[1]["url"].startswith("https://eu-west-1.console.aws.amazon.com/codesuite/codedeploy/")
    assert "rolled back to v3" in payload["text"] and "checkout" in payload["text"]


@pytest.mark.parametrize(
    ("kind", "colour", "emoji"),
    [
        ("deployment.succeeded", GREEN, ":white_check_mark:"),
        ("deployment.failed", RED, ":x:"),
        ("deployment.rolled_back", ORANGE, ":rewind:"),
        ("release.failed", RED, ":x:"),
    ],
)
def test_colour_and_emoji_follow_the_outcome(kind: str, colour: str, emoji: str) -> None:
    payload = render(notification(kind))
    assert payload["attachments"][0]["color"] == colour
    assert payload["attachments"][0]["blocks"][0]["text"]["text"].startswith(emoji)


def test_superseded_message_names_the_newer_release() -> None:
    message = notification("release.superseded", state=State.SUPERSEDED)
    message["superseded_by"] = "01h9999"
    payload = render(message)
    assert "superseded by release `01h9999`" in texts(payload)
    assert payload["attachments"][0]["blocks"][0]["text"]["text"].startswith(":track_next:")


def test_minimal_message_renders_without_optional_parts() -> None:
    message = {
        "schema": "rollout.notification/1",
        "kind": "release.rejected",
        "title": "Release of ? rejected",
    }
    payload = render(message)
    blocks = payload["attachments"][0]["blocks"]
    assert blocks[0]["type"] == "header"
    assert all(block["type"] != "actions" for block in blocks)


def test_block_kit_limits_hold_for_huge_inputs() -> None:
    huge = "y" * 10_000
    message = notification(
        "deployment.failed",
        reason=huge,
        reason_code="X",
        hook_results={"pre_traffic": {"checks": [{"name": "n", "verdict": "Failed", "excerpt": huge}] * 5}},
    )
    blocks = render(message)["attachments"][0]["blocks"]
    assert len(blocks[0]["text"]["text"]) <= 150
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
    assert "and 2 more failing checks" in texts(blocks)


def test_failing_checks_a_shortened_notification_left_out_are_still_counted() -> None:
    failing = {"verdict": "Failed", "error": "statusCode: expected 200, got 500", "excerpt": "x" * 400}
    checks = [{"name": f"check {i}", **failing} for i in range(60)]
    whole = notification(
        "deployment.rolled_back",
        reason="r",
        reason_code="HOOK_EXECUTION_FAILURE",
        hook_results={"pre_traffic": {"checks": checks}},
    )
    shortened = fit(whole, 8 * 1024)
    listed = len(shortened["hook_results"]["pre_traffic"]["checks"])
    assert 3 < listed < 60

    text = texts(render(shortened)["attachments"][0]["blocks"])

    assert "`check 0`" in text and "and 57 more failing checks" in text


def test_durations_read_naturally() -> None:
    assert [format_duration(s) for s in (4.4, 65, 3725)] == ["4s", "1m 05s", "1h 02m"]


def test_parse_rejects_what_is_not_a_notification() -> None:
    assert parse_notification(json.dumps(notification("deployment.succeeded")))["function"] == "orders"
    for raw in (
        "not json",
        "[1, 2]",
        json.dumps({"schema": "other/1", "kind": "x"}),
        json.dumps({"schema": "rollout.notification/1"}),
    ):
        with pytest.raises(MalformedNotification):
            parse_notification(raw)


def test_secret_may_be_the_url_or_json() -> None:
    url = "https://hooks.slack.com/services/T1/B1/abc"
    assert webhook_url_from_secret(url + "\n") == url
    assert webhook_url_from_secret(json.dumps({"webhook_url": url})) == url
    for bad in ("", "{not json", json.dumps({"url": url}), "hooks.slack.com/x"):
        with pytest.raises(SlackWebhookSecretInvalid) as err:
            webhook_url_from_secret(bad)
        assert "abc" not in str(err.value), "the error never repeats the secret"


@pytest.mark.parametrize(
    "secret",
    [
        "http://hooks.slack.com/services/T1/B1/abcsecret",
        "https://hooks.slack.com.evil.example/services/T1/B1/abcsecret",
        "https://evil.example/hooks.slack.com/services/abcsecret",
        "https://hooks.slack.com/api/chat.postMessage?abcsecret",
        "https://hooks.slack.com/services/T1/B1/abc secret",
        '{"webhook_url": "https://example.com/abcsecret"}',
        '{"webhook_url": "abcsecret',
    ],
)
def test_only_slacks_own_webhook_urls_are_accepted_and_never_echoed(secret: str) -> None:
    with pytest.raises(SlackWebhookSecretInvalid) as err:
        webhook_url_from_secret(secret)

    assert "abcsecret" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__context__ is None, "no chained error carries it"


def test_another_origin_is_accepted_only_when_the_stack_names_it() -> None:
    local = "http://127.0.0.1:8123/hook"
    with pytest.raises(SlackWebhookSecretInvalid):
        webhook_url_from_secret(local)
    assert webhook_url_from_secret(local, origin="http://127.0.0.1:8123/") == local
    with pytest.raises(SlackWebhookSecretInvalid):
        webhook_url_from_secret("http://10.0.0.5:8123/hook", origin="http://10.0.0.5:8123/")


def test_sample_sns_event_renders() -> None:
    with open("events/sns_notification.json") as sample:
        record = json.load(sample)["Records"][0]["Sns"]
    payload = render(parse_notification(record["Message"]))
    assert record["MessageAttributes"]["kind"]["Value"] == "deployment.rolled_back"
    text = texts(payload)
    assert "orders: v42 rolled back to v41" in text
    assert "KeyError: 'discount'" in text


def test_notifications_never_carry_a_hook_execution_id() -> None:
    release = Release(
        function="orders",
        release_id="001",
        state=State.ROLLED_BACK,
        hook_results={"pre_traffic": {"verdict": "Failed", "execution_id": "secret-execution", "checks": []}},
    )

    message = build("deployment.rolled_back", release, "us-east-1").message

    assert "secret-execution" not in json.dumps(message)
    assert message["hook_results"]["pre_traffic"]["verdict"] == "Failed"


def test_a_critical_kind_slack_has_no_style_for_still_renders_its_title_and_reason() -> None:
    # slack.py styles kinds it knows; a newer kind (here the critical rollback failure) falls back to
    # a neutral style and must still say everything a reader needs.
    message = notification(
        "deployment.rollback_failed",
        state=State.FAILED,
        reason_code="ROLLBACK_FAILED",
        reason="AfterAllowTraffic failed; then rollback deployment d-RB failed: UpdateAlias was refused",
    )
    assert message["severity"] == "critical"
    payload = render(message)
    blocks = payload["attachments"][0]["blocks"]
    assert blocks[0]["text"]["text"].startswith(":bell: orders: rollback of v4 failed, alias live may still")
    assert blocks[2]["text"]["text"].startswith("*Reason* (`ROLLBACK_FAILED`)\nAfterAllowTraffic failed")
    assert "rollback of v4 failed" in payload["text"]


def test_a_deployment_started_with_a_warning_shows_it() -> None:
    warning = "deployment config Team.Linear1 moves more traffic to the new version after 60 s"
    message = notification("deployment.started", state=State.DEPLOYING, warnings=[warning])
    assert message["warnings"] == [warning]
    assert f"*Warning*\\n{warning}" in texts(render(message))
    assert notification("deployment.started", state=State.DEPLOYING)["warnings"] is None
