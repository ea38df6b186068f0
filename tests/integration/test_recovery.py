"""The reconciler recovers lost work through the functions that should have done it (rollout.recovery).

Uploads whose event never came, releases whose deployer died and undelivered events are handed to
the artifact deployer's and deployment_events' real handlers, called in process where Lambda would
run them, against moto and the CodeDeploy stand-in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.artifact_deployer import app as deployer_app
from functions.deployment_events import app as events_app
from functions.reconciler import app as reconciler_app
from rollout import deployer, recovery, release_queue, s3_versions, upload_ops
from rollout.config import Settings
from rollout.deployment_facts import DeploymentFacts
from rollout.ledger import Ledger, Release, new_release_id
from rollout.reconcile import reconcile
from rollout.release_queue import QueueEffects
from rollout.states import State
from tests.support.artifacts_world import ArtifactWorld, Uploaded, eventbridge_event, function_zip
from tests.support.aws_stack import ACCOUNT, LEDGER_TABLE, REGION, StackUnderTest
from tests.support.codedeploy_standin import CodeDeployStandIn
from tests.support.release_world import ReleaseWorld

FUNCTION = "orders"
DEPLOYER = "rollout-test-ArtifactDeployer"
EVENTS = "rollout-test-DeploymentEvents"
RECONCILER = "rollout-test-Reconciler"


def arn(function: str, qualifier: str = "") -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}" + (f":{qualifier}" if qualifier else "")


@pytest.fixture
def dead_letters(stack: StackUnderTest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The undelivered-events queue, and the reconciler's environment naming it and the functions."""
    url = str(boto3.client("sqs", region_name=REGION).create_queue(QueueName="undelivered")["QueueUrl"])
    monkeypatch.setenv("UNDELIVERED_EVENTS_QUEUE_URL", url)
    monkeypatch.setenv("ARTIFACT_DEPLOYER_FUNCTION", DEPLOYER)
    monkeypatch.setenv("DEPLOYMENT_EVENTS_FUNCTION", EVENTS)
    monkeypatch.setenv("RECONCILER_FUNCTION", RECONCILER)
    return url


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release_queue, "START_RETRY_PAUSES", (0.0, 0.0))


@pytest.fixture
def world(stack: StackUnderTest) -> ArtifactWorld:
    return ArtifactWorld(stack)


@pytest.fixture
def ledger(stack: StackUnderTest) -> Ledger:
    return Ledger(LEDGER_TABLE)


class Lambda:
    """Where the reconciler's asynchronous invokes go: each function's real handler, in process."""

    def __init__(self, lambda_context: Any) -> None:
        self.context = lambda_context
        self.delivered: list[tuple[str, dict[str, Any]]] = []
        self.handlers = {DEPLOYER: deployer_app.lambda_handler, EVENTS: events_app.lambda_handler}

    def __call__(self, function: str, event: dict[str, Any]) -> None:
        self.delivered.append((function, event))
        self.handlers[function](event, self.context)

    def to(self, function: str) -> list[dict[str, Any]]:
        return [event for name, event in self.delivered if name == function]


@pytest.fixture
def lambdas(lambda_context: Any) -> Lambda:
    return Lambda(lambda_context)


def run(lambdas: Lambda, now: datetime | None = None) -> dict[str, Any]:
    summary = reconcile(
        Ledger(LEDGER_TABLE),
        Settings.from_env(),
        QueueEffects(),
        DeploymentFacts(),
        now=now,
        deliver=lambdas,
    )
    return summary.as_dict()


@pytest.fixture
def live_on_v1(world: ArtifactWorld, lambda_context: Any, dead_letters: str) -> None:
    """A managed function whose first release (delivered as usual) created the alias on v1."""
    world.create_function(FUNCTION)
    uploaded = world.upload(f"{FUNCTION}/build-1.zip", function_zip("1"))
    # S3 times have whole seconds: a build found late in the same second as another counts as the
    # older one (redelivery.SEQUENCER_FOUND_LATE). v1 went out a minute before the tests' uploads.
    a_minute_ago = datetime.now(UTC) - timedelta(minutes=1)
    event = eventbridge_event(uploaded, at=a_minute_ago)
    (result,) = deployer_app.lambda_handler(event, lambda_context)["results"]
    assert result["state"] == "BOOTSTRAPPED"


@pytest.fixture
def lost_after_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat a version as lost as soon as it is listed (the tests cannot wait S3's two minutes)."""
    monkeypatch.setattr(recovery, "LOST_AFTER", timedelta(0))


def releases_of(ledger: Ledger, uploaded: Uploaded) -> list[Release]:
    return [
        r
        for r in ledger.releases(FUNCTION)
        if r.key == uploaded.key and r.object_version == uploaded.version_id
    ]


# --- uploads whose event was lost ---------------------------------------------------------------


def test_an_upload_whose_event_was_lost_is_found_and_released_through_the_deployer(
    world: ArtifactWorld,
    live_on_v1: None,
    lost_after_nothing: None,
    ledger: Ledger,
    lambdas: Lambda,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
) -> None:
    lost = world.upload(f"{FUNCTION}/build-2.zip", function_zip("2"))  # its Object Created event is dropped

    summary = run(lambdas)

    assert summary["recovered"]["uploads_handed_over"] == [f"{lost.key}@{lost.version_id}"]
    (event,) = lambdas.to(DEPLOYER)
    assert (
        event["source"] == "rollout.reconciler" and event["detail"]["object"]["version-id"] == lost.version_id
    )
    (release,) = releases_of(ledger, lost)
    assert release.state == State.DEPLOYING and release.target_version == "2"
    # The real event arriving late is a duplicate: the same release, no second deployment.
    (late,) = deployer_app.lambda_handler(eventbridge_event(lost), lambda_context)["results"]
    assert late["release_id"] == release.release_id and late.get("duplicate") is True
    assert len(releases_of(ledger, lost)) == 1
    assert len(codedeploy.calls_to("create_deployment")) == 1
    # Recorded now: the next run hands nothing over.
    assert run(lambdas)["recovered"]["uploads_handed_over"] == []


def test_an_older_build_found_late_is_superseded_never_deployed_over_a_newer_one(
    world: ArtifactWorld,
    live_on_v1: None,
    lost_after_nothing: None,
    ledger: Ledger,
    lambdas: Lambda,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
    stack: StackUnderTest,
) -> None:
    older = world.upload(f"{FUNCTION}/build-2.zip", function_zip("2"))  # event lost
    newer = world.upload(f"{FUNCTION}/build-3.zip", function_zip("3"))
    (delivered,) = deployer_app.lambda_handler(eventbridge_event(newer), lambda_context)["results"]
    assert delivered["state"] == "DEPLOYING"

    run(lambdas)
    (found,) = releases_of(ledger, older)
    assert found.state == State.QUEUED, "it waits behind the running deployment"
    releases = ReleaseWorld(stack, codedeploy)
    codedeploy.finish(delivered["deployment_id"], "Succeeded")
    releases.point_alias(FUNCTION, delivered["target_version"])
    events_app.lambda_handler(releases.event(delivered["deployment_id"], "SUCCESS"), lambda_context)

    (found,) = releases_of(ledger, older)
    assert found.state == State.SUPERSEDED and found.reason_code == "SUPERSEDED"
    assert found.target_version == "", "a superseded build is never published"
    (deployment,) = codedeploy.calls_to("create_deployment")
    assert f"rollout release {delivered['release_id']}" in deployment["description"]
    assert world.alias_version(FUNCTION) == delivered["target_version"]


def test_an_upload_the_deployer_recorded_is_never_handed_over(
    world: ArtifactWorld, live_on_v1: None, lost_after_nothing: None, lambdas: Lambda
) -> None:
    summary = run(lambdas)
    assert summary["recovered"]["uploads_handed_over"] == [] and lambdas.delivered == []


def test_the_sweep_lists_a_bounded_number_of_versions_per_run_and_resumes_from_its_bookmark(
    world: ArtifactWorld,
    live_on_v1: None,
    lost_after_nothing: None,
    lambdas: Lambda,
    monkeypatch: pytest.MonkeyPatch,
    stack: StackUnderTest,
) -> None:
    monkeypatch.setattr(recovery, "SWEEP_PAGE", 2)
    monkeypatch.setattr(recovery, "SWEEP_PAGES", 1)
    lost = [world.upload(f"{FUNCTION}/lost-{n}.zip", function_zip(f"lost{n}")) for n in range(4)]
    listings: list[dict[str, str]] = []
    real_list = s3_versions.list_versions_page

    def counted(bucket: str, key_marker: str = "", version_marker: str = "", max_keys: int = 1000) -> Any:
        listings.append({"key_marker": key_marker, "max_keys": str(max_keys)})
        return real_list(bucket, key_marker, version_marker, max_keys)

    monkeypatch.setattr(s3_versions, "list_versions_page", counted)
    monkeypatch.setattr(
        deployer, "start_release", lambda ctx, release, managed=None: release
    )  # recording is enough

    handed: list[list[str]] = []
    for _ in range(3):  # 5 versions (build-1 and four lost), 2 a run: three runs sweep the bucket
        handed.append(run(lambdas)["recovered"]["uploads_handed_over"])

    assert [len(listed) for listed in (listings[0:1], listings[1:2], listings[2:3])] == [1, 1, 1]
    assert all(call["max_keys"] == "2" for call in listings), "one page of two versions per run"
    assert [call["key_marker"] for call in listings] == ["", "orders/lost-0.zip", "orders/lost-2.zip"]
    assert sorted(name for names in handed for name in names) == sorted(
        f"{u.key}@{u.version_id}" for u in lost
    )
    bookmark = upload_ops.get_sweep(LEDGER_TABLE, stack.bucket)
    assert bookmark.key_marker == "" and bookmark.checked_before, "the sweep finished and moved its window"


# --- releases whose deployer died ----------------------------------------------------------------


def backdate_attempts(release: Release, minutes: int) -> None:
    stamp = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    table = boto3.resource("dynamodb", region_name=REGION).Table(LEDGER_TABLE)
    table.update_item(
        Key=upload_ops.upload_key(release.function, release.bucket, release.key, release.object_version),
        UpdateExpression="SET last_attempt_at = :t",
        ExpressionAttributeValues={":t": stamp},
    )
    table.update_item(
        Key={"pk": f"FN#{release.function}", "sk": f"REL#{release.release_id}"},
        UpdateExpression="SET received_at = :t",
        ExpressionAttributeValues={":t": stamp},
    )


def stuck_received(world: ArtifactWorld, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Release:
    """A release whose deployer died after recording it RECEIVED (its lock and lease may be held)."""

    def dies(ctx: Any, release: Release, managed: Any = None) -> Release:
        raise RuntimeError("Runtime.ExitError: signal: killed")

    with monkeypatch.context() as patched:
        patched.setattr(deployer, "start_release", dies)
        uploaded = world.upload(f"{FUNCTION}/build-2.zip", function_zip("2"))
        with pytest.raises(RuntimeError):
            deployer_app.lambda_handler(eventbridge_event(uploaded), lambda_context)
    (release,) = releases_of(Ledger(LEDGER_TABLE), uploaded)
    assert release.state == State.RECEIVED
    return release


def test_a_release_whose_deployer_died_is_resumed_by_the_deployer_with_the_same_id(
    world: ArtifactWorld,
    live_on_v1: None,
    ledger: Ledger,
    lambdas: Lambda,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = stuck_received(world, lambda_context, monkeypatch)
    assert run(lambdas)["recovered"]["releases_resumed"] == [], "too fresh: its attempt may be running"
    backdate_attempts(release, minutes=2)

    summary = run(lambdas)

    assert summary["recovered"]["releases_resumed"] == [release.release_id]
    resumed = ledger.get(FUNCTION, release.release_id)
    assert resumed is not None and resumed.state == State.DEPLOYING
    assert [r.release_id for r in ledger.releases(FUNCTION) if r.key == release.key] == [release.release_id]


def test_a_stalled_release_recorded_before_upload_items_existed_is_resumed_not_doubled(
    world: ArtifactWorld, live_on_v1: None, ledger: Ledger, lambdas: Lambda
) -> None:
    uploaded = world.upload(f"{FUNCTION}/build-2.zip", function_zip("2"))
    two_minutes_ago = (datetime.now(UTC) - timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    old = ledger.create(
        Release(
            function=FUNCTION,
            release_id=new_release_id(),
            bucket=uploaded.bucket,
            key=uploaded.key,
            object_version=uploaded.version_id,
            # Uploaded after v1 went out; recorded by a deployer that died two minutes ago.
            upload_order=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") + "|",
            received_at=two_minutes_ago,
        )
    )

    summary = run(lambdas)

    assert summary["recovered"]["releases_resumed"] == [old.release_id]
    (release,) = releases_of(ledger, uploaded)
    assert release.release_id == old.release_id and release.state == State.DEPLOYING


def test_a_release_nobody_can_carry_on_is_given_up_failed_and_announced(
    world: ArtifactWorld,
    live_on_v1: None,
    ledger: Ledger,
    lambdas: Lambda,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    stack: StackUnderTest,
) -> None:
    release = stuck_received(world, lambda_context, monkeypatch)
    backdate_attempts(release, minutes=90)
    stack.notifications()
    seen = len(stack.received)

    summary = run(lambdas)

    assert summary["recovered"]["releases_abandoned"] == [release.release_id]
    failed = ledger.get(FUNCTION, release.release_id)
    assert failed is not None and (failed.state, failed.reason_code) == (State.FAILED, "PROCESSING_ABANDONED")
    assert "still RECEIVED 90 min after it arrived" in failed.reason
    assert [n["kind"] for n in stack.notifications()[seen:]] == ["release.failed"]
    assert lambdas.to(DEPLOYER) == []


# --- undelivered events --------------------------------------------------------------------------


def send(queue_url: str, body: Any, attributes: dict[str, str] | None = None) -> None:
    boto3.client("sqs", region_name=REGION).send_message(
        QueueUrl=queue_url,
        MessageBody=body if isinstance(body, str) else json.dumps(body),
        MessageAttributes={
            k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()
        },
    )


def destination_record(function: str, payload: Any) -> dict[str, Any]:
    """Lambda's on-failure destination record of an asynchronous invocation that exhausted its retries."""
    return {
        "version": "1.0",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "requestContext": {
            "requestId": "c3a4c9ae-0000-4000-8000-000000000000",
            "functionArn": arn(function, "$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {
            "errorMessage": "ProvisionedThroughputExceededException",
            "errorType": "ClientError",
        },
    }


def messages_in(queue_url: str) -> int:
    """Messages still in the queue, visible or hidden by the reconciler's read."""
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def visible_in(queue_url: str) -> int:
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_undelivered_events_go_back_to_their_function_and_the_rest_stays_for_a_person(
    stack: StackUnderTest,
    codedeploy: CodeDeployStandIn,
    world: ArtifactWorld,
    live_on_v1: None,
    dead_letters: str,
    ledger: Ledger,
    lambdas: Lambda,
    lambda_context: Any,
) -> None:
    # An upload EventBridge could not deliver to the deployer (its dead letter: the event, TARGET_ARN).
    undelivered = world.upload(f"{FUNCTION}/build-2.zip", function_zip("2"))
    send(dead_letters, eventbridge_event(undelivered), {"RULE_ARN": "arn:rule", "TARGET_ARN": arn(DEPLOYER)})
    # A reconciler run that failed (its schedule fires again anyway), a Slack post, and garbage.
    send(dead_letters, destination_record(RECONCILER, {"detail-type": "Scheduled Event"}))
    slack = destination_record("rollout-test-SlackNotifier", {"Records": []})
    send(dead_letters, slack)
    send(dead_letters, "not json at all")

    summary = run(lambdas)

    recovered = summary["recovered"]
    assert len(recovered["events_replayed"]) == 1 and recovered["events_replayed"][0].startswith(DEPLOYER)
    assert len(recovered["events_discarded"]) == 1
    assert sorted(kept["why"] for kept in recovered["events_kept"]) == [
        "for rollout-test-SlackNotifier, which the reconciler does not replay",
        "the message is not JSON",
    ]
    (release,) = releases_of(ledger, undelivered)
    assert release.state == State.DEPLOYING
    assert messages_in(dead_letters) == 2, "the Slack post and the garbage stay; the others are done"
    assert visible_in(dead_letters) == 2, "shown again, so the queue's alarm keeps telling people"


def test_a_deployment_event_lambda_gave_up_on_is_replayed_to_deployment_events(
    stack: StackUnderTest, codedeploy: CodeDeployStandIn, dead_letters: str, lambdas: Lambda
) -> None:
    releases = ReleaseWorld(stack, codedeploy)
    releases.managed_function("payments", versions=3, live="1")
    deploying = releases.deploying("payments", "2")
    releases.succeed(deploying)
    send(
        dead_letters,
        destination_record(EVENTS, releases.event(deploying.deployment_id, "SUCCESS", "payments")),
    )

    summary = run(lambdas)

    assert summary["recovered"]["events_replayed"][0].startswith(EVENTS)
    assert releases.get(deploying).state == State.SUCCEEDED
    assert messages_in(dead_letters) == 0


def test_an_event_that_keeps_coming_back_is_replayed_a_bounded_number_of_times(
    world: ArtifactWorld, live_on_v1: None, dead_letters: str, lambdas: Lambda
) -> None:
    event = eventbridge_event(world.upload(f"{FUNCTION}/build-2.zip", function_zip("2")))
    replays = []
    for _ in range(recovery.MAX_REPLAYS + 1):
        send(dead_letters, destination_record(DEPLOYER, event))  # undelivered again after each replay
        replays.append(run(lambdas)["recovered"])
    assert [len(r["events_replayed"]) for r in replays] == [1] * recovery.MAX_REPLAYS + [0]
    assert replays[-1]["events_kept"][0]["why"] == "replayed 3 times already and undelivered again"
    assert messages_in(dead_letters) == 1


def test_the_reconcilers_summary_and_metrics_count_what_it_recovered(
    world: ArtifactWorld,
    live_on_v1: None,
    lost_after_nothing: None,
    dead_letters: str,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world.upload(f"{FUNCTION}/build-2.zip", function_zip("2"))
    monkeypatch.setattr(reconciler_app, "reconcile", _reconcile_in_process(Lambda(lambda_context)))

    summary = reconciler_app.lambda_handler({}, lambda_context)

    assert len(summary["recovered"]["uploads_handed_over"]) == 1
    assert summary["items_failed"] == 0 and summary["items_deferred"] == 0


def _reconcile_in_process(lambdas: Lambda) -> Any:
    def reconcile_with(*args: Any, **kwargs: Any) -> Any:
        return reconcile(*args, **{**kwargs, "deliver": lambdas})

    return reconcile_with
