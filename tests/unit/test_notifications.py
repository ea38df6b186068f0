"""Every notification fits in one SNS message, whatever the release's checks are called or answered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollout import aws
from rollout.check_runner import Check, Invocation, judge
from rollout.ledger import Release
from rollout.notifications import (
    MESSAGE_BUDGET_BYTES,
    SUMMARY_FIELDS,
    Notifier,
    attribute_bytes,
    build,
    encoded,
    fit,
)
from rollout.states import ReasonCode
from tests.support.releases import rolled_back_release

# Amazon SNS API Reference, "Publish": at most 262,144 bytes of UTF-8, message attributes included.
SNS_LIMIT_BYTES = 262_144
EMOJI = "\N{GRINNING FACE}"  # outside the BMP: 4 bytes of UTF-8, 12 as two JSON \u escapes


class RecordingSns:
    """Takes every Publish and keeps what it was sent."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **request: Any) -> dict[str, str]:
        self.published.append(request)
        return {"MessageId": str(len(self.published))}


@pytest.fixture
def sns(monkeypatch: pytest.MonkeyPatch) -> RecordingSns:
    recording = RecordingSns()
    monkeypatch.setattr(aws, "client", lambda service: recording)
    return recording


def sent_bytes(request: dict[str, Any]) -> int:
    """What SNS counts against its limit: the body's UTF-8 bytes and every attribute's name, type and value."""
    return len(request["Message"].encode("utf-8")) + attribute_bytes(request["MessageAttributes"])


def failing_check(index: int, key_chars: int = 0, answer: str = EMOJI * 400) -> dict[str, Any]:
    """The record of a failing check named with 128 emoji, judged as the hooks judge it: an `expect` key of
    `key_chars` emoji the answer lacks, or (without one) a function error; its excerpt is the answer's."""
    name = f"{index:02d}" + EMOJI * 126
    expect = {f"{index:02d}" + EMOJI * key_chars: 1} if key_chars else None
    check = Check(name=name, event={}, expect=expect, has_expect=expect is not None)
    if expect:
        invocation = Invocation(payload=json.dumps({"body": answer}, ensure_ascii=False).encode())
    else:
        invocation = Invocation(payload=answer.encode(), function_error="Unhandled")
    result = judge(check, invocation, 12)
    assert not result.passed
    return result.to_record()


def rolled_back(hook_results: dict[str, Any], **fields: Any) -> Release:
    first = f"00{EMOJI * 126}"
    reason = f"pre-traffic check '{first}' failed against version 4 (and 49 more of 50 failed)"
    return rolled_back_release(
        **{
            "reason_code": ReasonCode.HOOK_EXECUTION_FAILURE,
            "reason": reason,
            "hook_results": hook_results,
            **fields,
        }
    )


def pre_traffic(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """A failed pre-traffic hook's record, as the hook stores it (without its execution id)."""
    return {
        "pre_traffic": {
            "verdict": "Failed",
            "reason": f"pre-traffic check '{checks[0]['name']}' failed against version 4: {checks[0]['error']}",
            "checks": checks,
            "canary": None,
            "warnings": [],
            "checks_origin": "artifact",
            "tested": "version 4",
            "awaiting_approval": False,
            "deployment_id": "d-ABCDEFGHI",
            "reported": True,
            "at": "2025-01-01T10:06:30.000Z",
        }
    }


def test_fifty_failing_checks_named_with_emoji_are_announced_whole(sns: RecordingSns) -> None:
    # The message that reached 265,427 bytes as ASCII-only JSON: SNS refused it and the announcement was lost.
    release = rolled_back(pre_traffic([failing_check(i) for i in range(50)]))

    assert Notifier("arn:aws:sns:us-east-1:123456789012:rollout").announce("deployment.rolled_back", release)

    (request,) = sns.published
    assert sent_bytes(request) <= MESSAGE_BUDGET_BYTES < SNS_LIMIT_BYTES
    assert json.loads(request["Message"]) == build("deployment.rolled_back", release, "us-east-1").message


def test_checks_beyond_the_budget_are_left_out_and_counted(sns: RecordingSns) -> None:
    # Long emoji `expect` keys the answers lack, in both hooks: about 1 MB of checks as JSON.
    checks = [failing_check(i, key_chars=1500) for i in range(50)]
    post = [failing_check(i, key_chars=1500) for i in range(50, 100)]
    hook_results = {
        **pre_traffic(checks),
        "post_traffic": {"verdict": "Failed", "reason": "r", "checks": post},
    }
    release = rolled_back(hook_results)

    assert Notifier("arn:aws:sns:us-east-1:123456789012:rollout").announce("deployment.rolled_back", release)

    (request,) = sns.published
    assert sent_bytes(request) <= MESSAGE_BUDGET_BYTES
    message = json.loads(request["Message"])
    whole = build("deployment.rolled_back", release, "us-east-1").message
    for field in (
        "kind",
        "severity",
        "title",
        "function",
        "release_id",
        "state",
        "versions",
        "reason",
        "links",
    ):
        assert message[field] == whole[field], field
    assert request["Subject"] == whole["title"]
    listed = (
        message["hook_results"]["pre_traffic"]["checks"] + message["hook_results"]["post_traffic"]["checks"]
    )
    assert 1 <= len(listed) < 100
    assert [c["name"] for c in listed] == [c["name"] for c in (checks + post)[: len(listed)]]
    assert listed[0]["error"].startswith("response does not match expect: $.00")
    assert all(len(c["error"]) <= 500 and len(c["excerpt"]) <= 300 for c in listed)
    left_out = 100 - len(listed)
    assert (
        message["truncated"]["checks_left_out"] == message["truncated"]["failed_checks_left_out"] == left_out
    )
    assert message["truncated"]["text"].startswith(
        f"…and {left_out} more checks, see `rollout status orders --json`"
    )


@pytest.mark.parametrize(
    "oversized",
    [
        {"reason": EMOJI * 300_000},
        {"message": "\x01" * 300_000},  # a control character is 6 bytes of JSON
        {"hook_results": {"pre_traffic": {"verdict": "Failed", "reason": EMOJI * 300_000, "checks": []}}},
        {"key": "k" * 300_000, "commit": EMOJI * 300_000},
    ],
    ids=["reason", "message", "hook reason", "artifact and commit"],
)
def test_whatever_a_release_holds_its_announcement_fits(sns: RecordingSns, oversized: dict[str, Any]) -> None:
    hook_results = oversized.get("hook_results") or pre_traffic([failing_check(i) for i in range(3)])
    release = rolled_back(hook_results, **{k: v for k, v in oversized.items() if k != "hook_results"})

    assert Notifier("arn:aws:sns:us-east-1:123456789012:rollout").announce("deployment.rolled_back", release)

    (request,) = sns.published
    assert sent_bytes(request) <= MESSAGE_BUDGET_BYTES
    message = json.loads(request["Message"])
    assert (message["kind"], message["release_id"], message["state"]) == (
        "deployment.rolled_back",
        release.release_id,
        "ROLLED_BACK",
    )
    assert message["reason"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert "see `rollout status orders --json`" in message["truncated"]["text"]


def test_a_name_utf8_cannot_carry_stays_a_json_escape(sns: RecordingSns) -> None:
    lone_surrogate = "\ud83d"
    check = {"name": f"check {lone_surrogate}", "verdict": "Failed", "duration_ms": 3, "error": "e"}
    release = rolled_back(pre_traffic([check]))

    assert Notifier("arn:aws:sns:us-east-1:123456789012:rollout").announce("deployment.rolled_back", release)

    (request,) = sns.published
    assert "\\ud83d" in request["Message"]
    assert json.loads(request["Message"])["hook_results"]["pre_traffic"]["checks"][0]["name"] == check["name"]


def test_when_even_clipped_texts_do_not_fit_the_summary_goes_alone() -> None:
    release = rolled_back(pre_traffic([failing_check(i) for i in range(50)]), message=EMOJI * 5000)
    whole = build("deployment.rolled_back", release, "us-east-1").message

    message = fit(whole, 4 * 1024)

    assert len(encoded(message)) <= 4 * 1024
    assert set(message) == {*SUMMARY_FIELDS, "truncated"}
    assert (message["title"], message["reason"], message["links"]) == (
        whole["title"],
        whole["reason"],
        whole["links"],
    )
    assert message["truncated"]["checks_left_out"] == 50
    assert message["truncated"]["text"].startswith("…and the details, see `rollout status orders --json`")
