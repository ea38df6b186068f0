"""The hook events as Lambda delivers them (events/ samples), read without AWS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollout.config import Settings
from rollout.errors import ChecksUnavailable, HookEventError
from rollout.hook_failures import failure_reason, hook_of
from rollout.hooks import LifecycleEvent, parse_s3_uri

EVENTS = Path(__file__).resolve().parents[2] / "events"


def settings(
    pre: str = "CodeDeployHook_rollout_PreTraffic", post: str = "CodeDeployHook_rollout_PostTraffic"
):
    return Settings("rollout", "", "", "", "", "", "", pre, post, "Canary10Percent5Minutes", "us-east-1")


def test_the_sample_lifecycle_event_parses() -> None:
    event = LifecycleEvent.parse(json.loads((EVENTS / "hook_lifecycle_event.json").read_text()))
    assert event.deployment_id == "d-7QXK2M9TB"
    assert event.execution_id.startswith("eyJ")


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ([], "expected a lifecycle hook event object, got list"),
        ({}, "the event has no DeploymentId"),
        ({"DeploymentId": "d-1", "LifecycleEventHookExecutionId": ""}, "no LifecycleEventHookExecutionId"),
        ({"DeploymentId": 7, "LifecycleEventHookExecutionId": "x"}, "no DeploymentId"),
    ],
)
def test_malformed_lifecycle_events_say_what_is_missing(event: object, problem: str) -> None:
    with pytest.raises(HookEventError, match=problem):
        LifecycleEvent.parse(event)


def test_the_sample_destination_record_names_the_hook_and_the_cause() -> None:
    record = json.loads((EVENTS / "hook_failure_destination.json").read_text())
    hook = hook_of(record["requestContext"]["functionArn"], settings())
    assert hook == "pre_traffic"
    assert failure_reason(hook, record) == (
        "pre-traffic hook failed without reporting (RetriesExhausted): Sandbox.Timedout: "
        "RequestId: 5e3a3f4b-8f0c-4a55-a2f6-1c1a6d0e9b27 Error: Task timed out after 300.00 seconds"
    )
    assert LifecycleEvent.parse(record["requestPayload"]).deployment_id == "d-7QXK2M9TB"


def test_hook_of_uses_the_configured_names_then_the_naming_convention() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:{}"
    assert hook_of(arn.format("CodeDeployHook_rollout_PostTraffic"), settings()) == "post_traffic"
    assert hook_of(arn.format("something-else"), settings()) is None
    assert hook_of(arn.format("CodeDeployHook_other_PreTraffic"), settings("", "")) == "pre_traffic"


def test_failure_reason_reads_a_json_string_payload_and_bare_function_errors() -> None:
    record = {
        "requestContext": {"condition": "RetriesExhausted"},
        "responsePayload": json.dumps({"errorMessage": "Runtime exited with error: signal: killed"}),
    }
    assert failure_reason("post_traffic", record) == (
        "post-traffic hook failed without reporting (RetriesExhausted): Runtime exited with error: signal: killed"
    )
    bare = {
        "requestContext": {"condition": "RetriesExhausted"},
        "responseContext": {"functionError": "Unhandled"},
    }
    assert (
        failure_reason(None, bare) == "lifecycle hook failed without reporting (RetriesExhausted): Unhandled"
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/a/b/rollout.json", ("bucket", "a/b/rollout.json")),
        ("s3://b/team/rollout.yaml", ("b", "team/rollout.yaml")),
    ],
)
def test_s3_uris(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["https://bucket/key", "s3://bucket", "s3:///key", "bucket/key"])
def test_bad_s3_uris_are_refused(uri: str) -> None:
    with pytest.raises(ChecksUnavailable, match="must be an s3://bucket/key URI"):
        parse_s3_uri(uri)


@pytest.mark.parametrize(
    "uri", ["s3://bucket/orders/build-7.zip", "s3://bucket/secrets.json", "s3://b/rollout.json.zip"]
)
def test_a_checks_tag_may_name_only_a_checks_document(uri: str) -> None:
    # The hooks' role may read only keys ending in rollout.json, .yaml or .yml: never an artifact.
    with pytest.raises(ChecksUnavailable, match=r"must name a key ending in rollout\.json"):
        parse_s3_uri(uri)


@pytest.mark.parametrize("junk", ["not an object", ["a", "list"], 7])
def test_a_destination_record_with_malformed_contexts_is_still_reported_failed(
    junk: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lifecycle event is readable, so the dead hook's execution is reported Failed (fail closed),
    # whatever the rest of the record holds; a crash here would leave CodeDeploy waiting an hour.
    from rollout import hook_failures

    reported: list[tuple[str, str]] = []
    monkeypatch.setattr(
        hook_failures, "report_status", lambda event, verdict: reported.append((event.execution_id, verdict))
    )
    record = json.loads((EVENTS / "hook_failure_destination.json").read_text())
    record.update(requestContext=junk, responseContext=junk)

    answer = hook_failures.report_dead_hook(record, settings())

    execution_id = record["requestPayload"]["LifecycleEventHookExecutionId"]
    assert reported == [(execution_id, "Failed")] and answer["status"] == "Failed"
    assert answer["reason"].startswith("lifecycle hook failed without reporting (unknown condition)")
