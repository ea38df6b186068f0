"""Two callers starting one queued release: only the one that claims it publishes and deploys.

When a release ends, deployment events and the reconciler both advance the function's queue. The
function's lock is re-entrant for the release, so without the start claim (`rollout/claims.py`,
`starter.StartClaim`) both would publish a version of it, one of which nobody deploys (or which
even becomes the release's recorded target). The same for a held release whose freeze ends while
the reconciler looks at it: only the caller that takes it out of HELD starts it. Real uploads through
the deployer, moto and the CodeDeploy stand-in.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import boto3
import pytest

from cli import actions as cli_actions
from cli.backend import Backend
from functions.artifact_deployer.app import lambda_handler as deployer
from functions.deployment_events.app import lambda_handler as deployment_events
from functions.reconciler import app as reconciler
from rollout import aws, claims, lambda_ops, release_gate, release_queue
from rollout.actions import Freeze
from rollout.appspec import build_appspec, parse_appspec, release_id_in, revision_for
from rollout.config import Settings
from rollout.deadlines import Deadline
from rollout.held_releases import HeldReport, release_held
from rollout.ledger import Ledger, Release
from rollout.release_queue import advance_queue, finish_release
from rollout.starter import start_release
from rollout.states import State
from rollout.transitions import ReleaseContext
from tests.support.artifacts_world import ArtifactWorld, eventbridge_event, function_zip
from tests.support.aws_stack import LEDGER_TABLE, POST_HOOK, PRE_HOOK, REGION, StackUnderTest
from tests.support.codedeploy_standin import CodeDeployStandIn, StandInDeployment, client_error
from tests.support.release_world import ReleaseWorld
from tests.support.sandbox_support import wait_for

FUNCTION = "orders"


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release_queue, "START_RETRY_PAUSES", (0.0, 0.0))


@pytest.fixture
def ledger(stack: StackUnderTest) -> Ledger:
    return Ledger(LEDGER_TABLE)


@pytest.fixture
def world(stack: StackUnderTest) -> ArtifactWorld:
    return ArtifactWorld(stack)


def upload(world: ArtifactWorld, build: str, lambda_context: Any) -> dict[str, Any]:
    uploaded = world.upload(f"{FUNCTION}/build-{build}.zip", function_zip(build))
    (result,) = deployer(eventbridge_event(uploaded), lambda_context)["results"]
    return result


@pytest.fixture
def ended_with_one_queued(
    world: ArtifactWorld, ledger: Ledger, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> tuple[Release, Release]:
    """Version 2 deployed and just succeeded (its lock not yet released), build 3 queued behind it."""
    world.create_function(FUNCTION)
    assert upload(world, "1", lambda_context)["state"] == "BOOTSTRAPPED"
    first = upload(world, "2", lambda_context)
    second = upload(world, "3", lambda_context)
    assert (first["state"], second["state"]) == ("DEPLOYING", "QUEUED")
    codedeploy.finish(first["deployment_id"], "Succeeded")
    boto3.client("lambda", region_name=REGION).update_alias(
        FunctionName=FUNCTION, Name="live", FunctionVersion="2"
    )
    deployed = ledger.get(FUNCTION, first["release_id"])
    queued = ledger.get(FUNCTION, second["release_id"])
    assert deployed is not None and queued is not None
    return ledger.transition(deployed, State.SUCCEEDED), queued


@pytest.fixture
def publishes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The release ids of every PublishVersion the start path makes, in order."""
    made: list[str] = []
    real = lambda_ops.publish_version

    def counted(function: str, update: Any, description: str, *rest: Any) -> str:
        made.append(description.removeprefix("rollout release ").split(":")[0])
        return real(function, update, description, *rest)

    monkeypatch.setattr(lambda_ops, "publish_version", counted)
    return made


def context(ledger: Ledger, deadline: Deadline | None = None) -> ReleaseContext:
    return ReleaseContext.from_settings(Settings.from_env(), ledger, deadline or Deadline())


def target_deployed(codedeploy: CodeDeployStandIn) -> str:
    content = codedeploy.calls_to("create_deployment")[-1]["revision"]["appSpecContent"]["content"]
    return parse_appspec(content).target_version


def assert_deployed_once(
    ledger: Ledger, world: ArtifactWorld, codedeploy: CodeDeployStandIn, queued: Release
) -> None:
    started = ledger.get(FUNCTION, queued.release_id)
    assert started is not None
    assert started.state == State.DEPLOYING
    assert len(codedeploy.calls_to("create_deployment")) == 2, "the first release's, then this one's"
    assert started.target_version == target_deployed(codedeploy) == "3"
    assert world.published_versions(FUNCTION) == ["1", "2", "3"], "no version nobody deploys"
    assert started.starting_by == "" and started.starting_until is None, "the claim was given back"
    assert (ledger.get_lock(FUNCTION) or {}).get("deployment_id") == started.deployment_id


class AtomicTable:
    """The ledger table with one request at a time. DynamoDB checks a condition and writes as one
    step; moto checks then writes, so two threads could both pass a condition only one may pass."""

    _one_at_a_time = threading.Lock()

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._real, name)
        if not callable(found):
            return found

        def atomic(*args: Any, **kwargs: Any) -> Any:
            with self._one_at_a_time:
                return found(*args, **kwargs)

        return atomic


class Rendezvous:
    """Callers in threads meet at named points: each waits there until every other caller has
    reached the same point or has finished, so two starts overlap exactly where they would race."""

    def __init__(self, parties: set[str]) -> None:
        self._parties = parties
        self._reached: dict[str, set[str]] = defaultdict(set)
        self._finished: set[str] = set()
        self._changed = threading.Condition()

    def meet(self, point: str) -> None:
        with self._changed:
            self._reached[point].add(threading.current_thread().name)
            self._changed.notify_all()
            met = self._changed.wait_for(
                lambda: self._parties <= self._reached[point] | self._finished, timeout=60
            )
        assert met, f"the other caller never reached {point} nor finished"

    @contextmanager
    def party(self) -> Iterator[None]:
        try:
            yield
        finally:
            with self._changed:
                self._finished.add(threading.current_thread().name)
                self._changed.notify_all()


def run_together(rendezvous: Rendezvous, callers: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each caller in its own thread (named after it); their reports, or what they raised."""
    results: dict[str, Any] = {}

    def run(name: str, call: Callable[[], Any]) -> None:
        with rendezvous.party():
            try:
                results[name] = call()
            except BaseException as exc:  # handed to the test, which fails on it
                results[name] = exc

    threads = [threading.Thread(target=run, args=item, name=item[0]) for item in callers.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a caller is still running"
    return results


# --- two callers at once -------------------------------------------------------------------------


def test_deployment_events_and_the_reconciler_advancing_one_queue_at_once_publish_and_deploy_it_once(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    ended_with_one_queued: tuple[Release, Release],
    publishes: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended, queued = ended_with_one_queued
    rendezvous = Rendezvous({"deployment-events", "reconciler"})
    # Both read the lock before either takes it (both find the function free), and both get as far
    # as they can towards publishing before either publishes: the widest the race can be.
    read_lock, update_code = Ledger.get_lock, lambda_ops.update_code
    first_read: set[str] = set()

    def get_lock(self: Ledger, function: str) -> dict[str, Any] | None:
        if threading.current_thread().name not in first_read:
            first_read.add(threading.current_thread().name)
            rendezvous.meet("lock read")
        return read_lock(self, function)

    def meet_then_update(*args: Any) -> Any:
        rendezvous.meet("publish")
        return update_code(*args)

    monkeypatch.setattr(Ledger, "get_lock", get_lock)
    monkeypatch.setattr(lambda_ops, "update_code", meet_then_update)
    monkeypatch.setattr(Ledger, "_table", property(lambda self: AtomicTable(aws.table(self.table_name))))

    reports = run_together(
        rendezvous,
        {
            "deployment-events": lambda: finish_release(ended, context(ledger)),
            "reconciler": lambda: advance_queue(FUNCTION, context(ledger)),
        },
    )

    assert publishes == [queued.release_id], "exactly one PublishVersion"
    assert_deployed_once(ledger, world, codedeploy, queued)
    started = [name for name, report in reports.items() if report.started == [queued.release_id]]
    others = [name for name, report in reports.items() if report.starting_elsewhere == [queued.release_id]]
    assert len(started) == 1 and len(others) == 1 and set(started + others) == set(reports), reports


def test_a_start_while_another_is_between_claim_and_create_stops_without_publishing(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    ended_with_one_queued: tuple[Release, Release],
    publishes: list[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended, queued = ended_with_one_queued
    meanwhile: dict[str, Any] = {}
    publish = lambda_ops.publish_version

    def others_start_it_first(*args: Any) -> str:
        if not meanwhile:  # the deployment-events invocation is about to publish: it holds the claim
            meanwhile["reconciler"] = reconciler.lambda_handler({}, lambda_context)["queue"]
            meanwhile["unfreeze or retry"] = start_release(context(ledger), queued)
        return publish(*args)

    monkeypatch.setattr(lambda_ops, "publish_version", others_start_it_first)

    report = finish_release(ended, context(ledger))

    assert publishes == [queued.release_id], "exactly one PublishVersion"
    assert report.started == [queued.release_id]
    assert meanwhile["reconciler"]["starting_elsewhere"] == [queued.release_id]
    assert meanwhile["reconciler"]["started"] == [] and meanwhile["reconciler"]["waiting"] == []
    other = meanwhile["unfreeze or retry"]
    assert other.state == State.QUEUED and other.target_version == ""
    assert claims.claimed_elsewhere(other, claims.wall_clock())
    assert_deployed_once(ledger, world, codedeploy, queued)


# --- a held release whose hold ends while the reconciler looks ----------------------------------


@pytest.fixture
def held_by_a_freeze(world: ArtifactWorld, ledger: Ledger, lambda_context: Any) -> str:
    """Build 1 bootstrapped, then the function frozen and build 2 held: its release id."""
    world.create_function(FUNCTION)
    assert upload(world, "1", lambda_context)["state"] == "BOOTSTRAPPED"
    ledger.put_freeze(FUNCTION, Freeze(FUNCTION, "audit").to_record())
    held = upload(world, "2", lambda_context)
    assert held["state"] == "HELD"
    # The reconciler finds held releases through the open-releases index, which may trail its table.
    wait_for(
        lambda: [r for r in ledger.open_releases(State.HELD) if r.release_id == held["release_id"]],
        10,
        what="the open-releases index to list the held release",
    )
    return str(held["release_id"])


def test_an_unfreeze_just_after_the_reconciler_found_the_release_frozen_publishes_and_deploys_it_once(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    held_by_a_freeze: str,
    publishes: list[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = held_by_a_freeze
    # The reconciler finds the release frozen; the unfreeze ends the freeze right after. Both then go
    # as far as they can towards publishing before either publishes: the widest the race can be.
    rendezvous = Rendezvous({"unfreeze", "reconciler"})
    found_frozen, unfrozen = threading.Event(), threading.Event()
    gate, update_code = release_gate.hold_reason, lambda_ops.update_code

    def hold_reason(*args: Any, **kwargs: Any) -> tuple[str, str] | None:
        found = gate(*args, **kwargs)
        if threading.current_thread().name == "reconciler" and not found_frozen.is_set():
            found_frozen.set()
            assert unfrozen.wait(60), "the unfreeze never ended the freeze"
        return found

    def meet_then_update(*args: Any) -> Any:
        rendezvous.meet("publish")
        return update_code(*args)

    def unfreeze() -> HeldReport:
        assert found_frozen.wait(60), "the reconciler never asked whether the release is held"
        assert ledger.delete_freeze(FUNCTION) is not None
        unfrozen.set()
        return release_held(context(ledger), FUNCTION)

    monkeypatch.setattr(release_gate, "hold_reason", hold_reason)
    monkeypatch.setattr(lambda_ops, "update_code", meet_then_update)
    monkeypatch.setattr(Ledger, "_table", property(lambda self: AtomicTable(aws.table(self.table_name))))

    reports = run_together(
        rendezvous,
        {"unfreeze": unfreeze, "reconciler": lambda: reconciler.lambda_handler({}, lambda_context)["held"]},
    )

    assert publishes == [held], "exactly one PublishVersion"
    started = ledger.get(FUNCTION, held)
    assert started is not None and started.state == State.DEPLOYING, reports
    (created,) = codedeploy.calls_to("create_deployment")
    assert parse_appspec(created["revision"]["appSpecContent"]["content"]).target_version == "2"
    assert started.target_version == "2" and world.published_versions(FUNCTION) == ["1", "2"]
    assert (ledger.get_lock(FUNCTION) or {}).get("deployment_id") == started.deployment_id
    # The unfreeze says the upload is on its way; the reconciler found it frozen.
    assert reports["unfreeze"].started == [held], reports
    assert reports["reconciler"]["still_held"] == [held], reports


@pytest.mark.parametrize(
    "reconciler_runs", ["once the freeze is deleted", "once the unfreeze found the hold ended"]
)
def test_an_unfreeze_reports_the_held_release_the_reconciler_started_while_it_ran(
    reconciler_runs: str,
    ledger: Ledger,
    held_by_a_freeze: str,
    publishes: list[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = held_by_a_freeze
    # The reconciler's run (every five minutes) falls inside the unfreeze's, and it starts the release.
    owner, name = (
        (Ledger, "delete_freeze")
        if reconciler_runs == "once the freeze is deleted"
        else (release_gate, "hold_reason")
    )
    real = getattr(owner, name)
    runs: list[dict[str, Any]] = []

    def then_the_reconciler(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not runs:
            runs.append({})
            runs[0] = reconciler.lambda_handler({}, lambda_context)["held"]
        return result

    monkeypatch.setattr(owner, name, then_the_reconciler)
    monkeypatch.setattr(cli_actions, "control_plane", lambda backend: context(ledger))

    ended, report = cli_actions.unfreeze_scopes(Backend("rollout-test", outputs={}), [FUNCTION], False)

    assert runs[0]["started"] == [held], runs
    started = ledger.get(FUNCTION, held)
    assert started is not None and started.state == State.DEPLOYING
    assert publishes == [held], "exactly one PublishVersion"
    # What the person who unfroze it reads: the upload is on its way.
    assert ended == [FUNCTION] and report.as_dict() == {
        "started": [held],
        "superseded": [],
        "still_held": [],
        "failed": [],
    }


# --- a claimer that dies -------------------------------------------------------------------------


class InvocationKilled(BaseException):
    """Lambda ending an invocation (timeout, out of memory): no handler or clean-up runs after it."""


def test_a_claim_left_by_a_caller_that_died_holds_until_its_invocation_ends_then_the_next_advance_starts_it(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    ended_with_one_queued: tuple[Release, Release],
    publishes: list[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended, queued = ended_with_one_queued
    dying_invocation = replace(lambda_context, remaining_ms=30_000)  # deployment events, 30 s left
    before = time.time()
    with monkeypatch.context() as dying:

        def killed(*args: Any) -> str:
            # Killed just before PublishVersion: nothing after this point runs, clean-up included.
            for name in ("release_start_claim", "release_lock", "release_publish_lease"):
                dying.setattr(Ledger, name, lambda *args, **kwargs: None)
            raise InvocationKilled("Task timed out after 120.00 seconds")

        dying.setattr(lambda_ops, "publish_version", killed)
        with pytest.raises(InvocationKilled):
            finish_release(ended, context(ledger, Deadline.of_invocation(dying_invocation)))
    left = ledger.get(FUNCTION, queued.release_id)
    assert left is not None and left.state == State.QUEUED and left.starting_by
    invocation_end = before + 30 + claims.CLOCK_SKEW_SECONDS
    assert invocation_end - 1 <= (left.starting_until or 0) <= time.time() + 30 + claims.CLOCK_SKEW_SECONDS
    assert (ledger.get_lock(FUNCTION) or {}).get("release_id") == queued.release_id

    # While the dead invocation could still be running, its claim counts: the reconciler leaves it.
    waiting = reconciler.lambda_handler({}, lambda_context)["queue"]
    assert (waiting["started"], waiting["starting_elsewhere"]) == ([], [queued.release_id])
    assert publishes == [] and len(codedeploy.calls_to("create_deployment")) == 1

    # Once it has certainly ended, the next run takes the release over (and the dead start's lock).
    real_clock = claims.wall_clock
    monkeypatch.setattr(claims, "wall_clock", lambda: real_clock() + 30 + claims.CLOCK_SKEW_SECONDS + 1)
    resumed = reconciler.lambda_handler({}, lambda_context)["queue"]

    assert resumed["started"] == [queued.release_id]
    assert publishes == [queued.release_id], "exactly one PublishVersion"
    assert_deployed_once(ledger, world, codedeploy, queued)


# --- a claimer that dies after CreateDeployment --------------------------------------------------


def killed_after_create_deployment(
    ended: Release, ledger: Ledger, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deployment events start the queue and die right after CreateDeployment, before the ledger
    records DEPLOYING and the deployment id (`Ledger.start_deployment`); no clean-up runs."""
    dying_invocation = replace(lambda_context, remaining_ms=30_000)
    with monkeypatch.context() as dying:

        def killed(*args: Any, **kwargs: Any) -> None:
            for name in ("release_start_claim", "release_lock", "release_publish_lease"):
                dying.setattr(Ledger, name, lambda *args, **kwargs: None)
            raise InvocationKilled("Task timed out after 120.00 seconds")

        dying.setattr(Ledger, "start_deployment", killed)
        with pytest.raises(InvocationKilled):
            finish_release(ended, context(ledger, Deadline.of_invocation(dying_invocation)))


def orphan_of(codedeploy: CodeDeployStandIn, release: Release) -> str:
    """The id of the one deployment created for `release` (its description names the release)."""
    (deployment_id,) = [
        deployment_id
        for deployment_id, deployment in codedeploy.deployments.items()
        if release_id_in(deployment.description) == release.release_id
    ]
    return deployment_id


def after_the_dead_claim_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    real_clock = claims.wall_clock
    monkeypatch.setattr(claims, "wall_clock", lambda: real_clock() + 30 + claims.CLOCK_SKEW_SECONDS + 1)


def state_change(stack: StackUnderTest, codedeploy: CodeDeployStandIn, deployment_id: str, state: str) -> Any:
    return ReleaseWorld(stack, codedeploy).event(deployment_id, state, FUNCTION)


@pytest.fixture
def orphaned(
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    ended_with_one_queued: tuple[Release, Release],
    publishes: list[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Release, str]:
    """Build 3's start died after creating its deployment (the orphan, returned with the release)."""
    ended, queued = ended_with_one_queued
    killed_after_create_deployment(ended, ledger, lambda_context, monkeypatch)
    orphan = orphan_of(codedeploy, queued)
    left = ledger.get(FUNCTION, queued.release_id)
    assert left is not None and (left.state, left.deployment_id) == (State.QUEUED, "")
    assert left.starting_by and left.target_version == "3", "claimed, published, deployed, not recorded"
    lock = ledger.get_lock(FUNCTION) or {}
    assert lock.get("release_id") == queued.release_id and "deployment_id" not in lock
    return queued, orphan


@pytest.fixture
def queued_behind(
    world: ArtifactWorld, ledger: Ledger, orphaned: tuple[Release, str], lambda_context: Any
) -> Release:
    """Build 4, uploaded after build 3's start died: queued behind the dead start's lock."""
    newer = upload(world, "4", lambda_context)
    assert newer["state"] == "QUEUED"
    release = ledger.get(FUNCTION, newer["release_id"])
    assert release is not None
    return release


def assert_adopted(ledger: Ledger, codedeploy: CodeDeployStandIn, queued: Release, orphan: str) -> Release:
    adopted = ledger.get(FUNCTION, queued.release_id)
    assert adopted is not None
    assert [orphan_of(codedeploy, queued)] == [orphan], "the build was deployed once"
    assert adopted.deployment_id == orphan
    assert (adopted.current_version, adopted.target_version) == ("2", "3")
    assert (adopted.starting_by, adopted.starting_until) == ("", None), "the claim was given back"
    return adopted


def test_a_start_that_died_after_create_deployment_is_adopted_by_the_reconciler_and_ends_as_its_deployment(
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    orphaned: tuple[Release, str],
    queued_behind: Release,
    publishes: list[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (queued, orphan), newer = orphaned, queued_behind
    after_the_dead_claim_expired(monkeypatch)

    run = reconciler.lambda_handler({}, lambda_context)["queue"]

    assert (run["adopted"], run["started"], run["waiting"]) == ([queued.release_id], [], [newer.release_id])
    adopted = assert_adopted(ledger, codedeploy, queued, orphan)
    assert adopted.state == State.DEPLOYING
    assert (adopted.reason_code, adopted.reason) == ("", ""), "no longer waiting"
    assert len(codedeploy.calls_to("create_deployment")) == 2, "the first release's and the orphan"
    assert (ledger.get_lock(FUNCTION) or {}).get("deployment_id") == orphan, "its ending frees the lock"
    assert publishes == [queued.release_id], "nothing published again"

    # The deployment finishes: its event ends the release as usual, and the queue moves on.
    codedeploy.finish(orphan, "Succeeded")
    boto3.client("lambda", region_name=REGION).update_alias(
        FunctionName=FUNCTION, Name="live", FunctionVersion="3"
    )
    ending = deployment_events(state_change(stack, codedeploy, orphan, "SUCCESS"), lambda_context)

    assert ending["to"] == "SUCCEEDED" and ending["queue"]["started"] == [newer.release_id]
    assert (ledger.get(FUNCTION, queued.release_id) or queued).state == State.SUCCEEDED
    assert orphan_of(codedeploy, queued) == orphan and len(codedeploy.calls_to("create_deployment")) == 3
    assert target_deployed(codedeploy) == "4" and publishes == [queued.release_id, newer.release_id]


def test_a_start_that_died_after_create_deployment_whose_deployment_already_failed_ends_rolled_back_once(
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    orphaned: tuple[Release, str],
    queued_behind: Release,
    publishes: list[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (queued, orphan), newer = orphaned, queued_behind
    # The orphan failed and CodeDeploy put traffic back on version 2; its events went by (lost, or
    # while its release was queued and claimed).
    codedeploy.finish(orphan, "Failed", error_information={"code": "HEALTH_CONSTRAINTS", "message": "hook"})
    after_the_dead_claim_expired(monkeypatch)

    summary = reconciler.lambda_handler({}, lambda_context)

    assert summary["queue"]["adopted"] == [queued.release_id]
    adopted = assert_adopted(ledger, codedeploy, queued, orphan)
    assert adopted.state == State.ROLLED_BACK, adopted.reason
    assert (ledger.get(FUNCTION, newer.release_id) or newer).state == State.DEPLOYING, "the queue moved on"
    assert len(codedeploy.calls_to("create_deployment")) == 3, "the first release's, the orphan, build 4"
    assert target_deployed(codedeploy) == "4" and publishes == [queued.release_id, newer.release_id]
    again = reconciler.lambda_handler({}, lambda_context)["queue"]
    assert (again["adopted"], again["started"]) == ([], [])
    assert orphan_of(codedeploy, queued) == orphan, "never a second deployment of build 3"


def test_a_dead_starts_deployment_is_not_looked_for_while_codedeploy_cannot_answer_nor_deployed_again(
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    orphaned: tuple[Release, str],
    queued_behind: Release,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (queued, orphan), newer = orphaned, queued_behind
    codedeploy.finish(orphan, "Succeeded")
    after_the_dead_claim_expired(monkeypatch)
    codedeploy.fail_next["list_deployments"] = [
        client_error("ThrottlingException", "Rate exceeded", "ListDeployments")
    ]

    failed_look = reconciler.lambda_handler({}, lambda_context)["queue"]

    # Fail closed: nothing started (it could be build 3's second deployment), the claim kept so the
    # next start knows a start died, and the release neither started nor failed.
    assert (failed_look["adopted"], failed_look["started"]) == ([], [])
    assert failed_look["starting_elsewhere"] == [queued.release_id] and failed_look["waiting"] == [
        newer.release_id
    ]
    kept = ledger.get(FUNCTION, queued.release_id)
    assert (
        kept is not None
        and kept.state == State.QUEUED
        and claims.claimed_elsewhere(kept, claims.wall_clock())
    )
    assert len(codedeploy.calls_to("create_deployment")) == 2

    claim_until = kept.starting_until or 0
    monkeypatch.setattr(claims, "wall_clock", lambda: claim_until + 1)
    next_run = reconciler.lambda_handler({}, lambda_context)["queue"]

    assert next_run["adopted"] == [queued.release_id]
    assert (ledger.get(FUNCTION, queued.release_id) or queued).state == State.SUCCEEDED
    assert next_run["started"] == [newer.release_id] and orphan_of(codedeploy, queued) == orphan
    assert len(codedeploy.calls_to("create_deployment")) == 3


# --- a queued start told CreateDeployment failed after it created the deployment ---------------------


def test_a_queued_start_told_create_deployment_failed_after_it_created_the_deployment_is_recorded_on_it(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    ended_with_one_queued: tuple[Release, Release],
    publishes: list[str],
) -> None:
    ended, queued = ended_with_one_queued
    # What botocore's retry of a CreateDeployment whose answer was lost hears: its own deployment runs.
    codedeploy.lose_create_answer("DeploymentLimitExceededException")

    report = finish_release(ended, context(ledger))

    assert (report.started, report.failed, report.waiting) == ([queued.release_id], [], [])
    assert publishes == [queued.release_id]
    assert_deployed_once(ledger, world, codedeploy, queued)
    started = ledger.get(FUNCTION, queued.release_id)
    assert started is not None and [entry["state"] for entry in started.history][-2:] == [
        "QUEUED",
        "DEPLOYING",
    ]


def test_a_queued_start_that_cannot_learn_whether_create_deployment_created_it_waits_then_adopts_it(
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    ended_with_one_queued: tuple[Release, Release],
    publishes: list[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended, queued = ended_with_one_queued
    codedeploy.lose_create_answer()
    codedeploy.refuse_next_lookup()
    invocation = Deadline.of_invocation(replace(lambda_context, remaining_ms=30_000))

    report = finish_release(ended, context(ledger, invocation))

    # Fail closed: not FAILED (its deployment runs) and not started again; claimed and locked meanwhile.
    assert (report.started, report.failed) == ([], [])
    waiting = ledger.get(FUNCTION, queued.release_id)
    assert waiting is not None and waiting.state == State.QUEUED
    assert claims.claimed_elsewhere(waiting, claims.wall_clock())
    assert (ledger.get_lock(FUNCTION) or {}).get("release_id") == queued.release_id
    orphan = orphan_of(codedeploy, queued)

    # Its START event is lost: once that start's claim has expired, the reconciler looks again.
    after_the_dead_claim_expired(monkeypatch)
    run = reconciler.lambda_handler({}, lambda_context)["queue"]

    assert (run["adopted"], run["started"]) == ([queued.release_id], [])
    assert assert_adopted(ledger, codedeploy, queued, orphan).state == State.DEPLOYING
    assert publishes == [queued.release_id] and len(codedeploy.calls_to("create_deployment")) == 2
    assert (ledger.get_lock(FUNCTION) or {}).get("deployment_id") == orphan


def test_the_orphans_own_ending_event_settles_its_queued_release_with_the_deployment_id(
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    orphaned: tuple[Release, str],
    queued_behind: Release,
    lambda_context: Any,
) -> None:
    (queued, orphan), newer = orphaned, queued_behind
    codedeploy.finish(orphan, "Succeeded")
    boto3.client("lambda", region_name=REGION).update_alias(
        FunctionName=FUNCTION, Name="live", FunctionVersion="3"
    )

    # While the dead start's claim still counts: the event finds the release by the description.
    ending = deployment_events(state_change(stack, codedeploy, orphan, "SUCCESS"), lambda_context)

    settled = ledger.get(FUNCTION, queued.release_id)
    assert settled is not None and (settled.state, settled.deployment_id) == (State.SUCCEEDED, orphan)
    assert ending["queue"]["started"] == [newer.release_id]
    assert orphan_of(codedeploy, queued) == orphan and len(codedeploy.calls_to("create_deployment")) == 3


def test_a_dead_start_alone_in_the_queue_whose_deployment_failed_is_never_deployed_again(
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    orphaned: tuple[Release, str],
    publishes: list[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queued, orphan = orphaned
    codedeploy.finish(orphan, "Failed", error_information={"code": "HEALTH_CONSTRAINTS", "message": "hook"})
    after_the_dead_claim_expired(monkeypatch)

    first, second = (reconciler.lambda_handler({}, lambda_context)["queue"] for _ in range(2))

    assert (first["adopted"], first["started"], second["started"]) == ([queued.release_id], [], [])
    ended = ledger.get(FUNCTION, queued.release_id)
    assert ended is not None and (ended.state, ended.deployment_id) == (State.ROLLED_BACK, orphan)
    assert len(codedeploy.calls_to("create_deployment")) == 2, "build 3 was deployed once"
    assert publishes == [queued.release_id] and ledger.get_lock(FUNCTION) is None


def rolled_back_copying_the_description(codedeploy: CodeDeployStandIn, orphan: str) -> str:
    """The orphan failed and CodeDeploy rolled it back: a deployment of its own (newer, already
    Succeeded), from version 3 back to 2. Whether AWS copies the original's description into its
    rollback is not documented; this one does. Returns the rollback's id."""
    failed = codedeploy.deployments[orphan]
    codedeploy.finish(orphan, "Failed", error_information={"code": "HEALTH_CONSTRAINTS", "message": "hook"})
    rollback_id = "d-ROLLBACK1"
    codedeploy.deployments[rollback_id] = StandInDeployment(
        rollback_id,
        failed.application,
        failed.group,
        revision_for(build_appspec(FUNCTION, "live", "3", "2", PRE_HOOK, POST_HOOK)),
        "CodeDeployDefault.LambdaAllAtOnce",
        status="Succeeded",
        rollback_info={"rollbackTriggeringDeploymentId": orphan, "rollbackMessage": "rollback"},
        description=failed.description,
    )
    failed.rollback_info = {"rollbackDeploymentId": rollback_id}
    return rollback_id


def assert_rolled_back_on(ledger: Ledger, queued: Release, orphan: str) -> None:
    ended = ledger.get(FUNCTION, queued.release_id)
    assert ended is not None
    assert (ended.state, ended.deployment_id, ended.target_version) == (State.ROLLED_BACK, orphan, "3")


def test_codedeploys_rollback_of_a_dead_starts_deployment_is_never_adopted_as_the_release(
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    orphaned: tuple[Release, str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queued, orphan = orphaned
    rolled_back_copying_the_description(codedeploy, orphan)
    after_the_dead_claim_expired(monkeypatch)

    run = reconciler.lambda_handler({}, lambda_context)["queue"]

    assert run["adopted"] == [queued.release_id]
    assert_rolled_back_on(ledger, queued, orphan)


def test_the_success_event_of_codedeploys_rollback_never_ends_the_dead_starts_release(
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    orphaned: tuple[Release, str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queued, orphan = orphaned
    rollback_id = rolled_back_copying_the_description(codedeploy, orphan)

    # The orphan's own events were lost; the rollback's arrives while the dead start's claim counts.
    deployment_events(state_change(stack, codedeploy, rollback_id, "SUCCESS"), lambda_context)

    left = ledger.get(FUNCTION, queued.release_id)
    assert left is not None and (left.state, left.deployment_id) == (State.QUEUED, "")
    after_the_dead_claim_expired(monkeypatch)
    reconciler.lambda_handler({}, lambda_context)
    assert_rolled_back_on(ledger, queued, orphan)


def test_a_start_whose_deploying_write_failed_after_create_deployment_leaves_its_deployment_to_be_adopted(
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    ended_with_one_queued: tuple[Release, Release],
    publishes: list[str],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended, queued = ended_with_one_queued
    invocation = Deadline.of_invocation(replace(lambda_context, remaining_ms=30_000))

    def refused(*_: Any, **__: Any) -> Release:
        raise client_error("InternalServerError", "Internal server error", "TransactWriteItems")

    with monkeypatch.context() as failing:
        # DynamoDB refuses the write that records DEPLOYING, on every try of this invocation.
        failing.setattr(Ledger, "start_deployment", refused)
        report = finish_release(ended, context(ledger, invocation))

    # The deployment exists, so the release neither failed nor was started again; its claim is kept
    # so that the next start knows to look for that deployment.
    assert (report.started, report.failed) == ([], [])
    orphan = orphan_of(codedeploy, queued)
    left = ledger.get(FUNCTION, queued.release_id)
    assert left is not None and left.state == State.QUEUED
    assert claims.claimed_elsewhere(left, claims.wall_clock())

    # The deployment fails and rolls back; its events are lost. The claim expires: the reconciler
    # adopts the deployment and settles it, never deploying build 3 a second time.
    codedeploy.finish(orphan, "Failed", error_information={"code": "HEALTH_CONSTRAINTS", "message": "hook"})
    after_the_dead_claim_expired(monkeypatch)
    run = reconciler.lambda_handler({}, lambda_context)["queue"]

    assert (run["adopted"], run["started"]) == ([queued.release_id], [])
    ended_as = ledger.get(FUNCTION, queued.release_id)
    assert ended_as is not None and (ended_as.state, ended_as.deployment_id) == (State.ROLLED_BACK, orphan)
    assert len(codedeploy.calls_to("create_deployment")) == 2, "build 3 was deployed once"
    assert publishes == [queued.release_id] and ledger.get_lock(FUNCTION) is None


def test_any_start_of_a_release_whose_start_died_adopts_its_deployment_rather_than_creating_one(
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    orphaned: tuple[Release, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queued, orphan = orphaned
    codedeploy.finish(orphan, "Succeeded")  # nothing in CodeDeploy would stop a second deployment
    after_the_dead_claim_expired(monkeypatch)

    # An unfreeze, a rollback or the queue's retry: the start itself looks, not only the queue.
    started = start_release(context(ledger), queued)

    assert (started.state, started.deployment_id) == (State.DEPLOYING, orphan)
    assert (started.starting_by, started.starting_until) == ("", None)
    assert len(codedeploy.calls_to("create_deployment")) == 2
    assert (ledger.get_lock(FUNCTION) or {}).get("deployment_id") == orphan


def test_a_hold_found_on_a_stale_copy_never_rewrites_the_reason_of_a_release_that_moved_on(
    ledger: Ledger, held_by_a_freeze: str
) -> None:
    # A caller read the release HELD; meanwhile the freeze ended, another caller started it, and a new
    # freeze began. The gate asked with the stale copy finds the new freeze.
    stale = ledger.get(FUNCTION, held_by_a_freeze)
    assert stale is not None and stale.state == State.HELD
    assert ledger.delete_freeze(FUNCTION) is not None
    release_held(context(ledger), FUNCTION)
    started = ledger.get(FUNCTION, held_by_a_freeze)
    assert started is not None and started.state == State.DEPLOYING
    ledger.put_freeze(FUNCTION, Freeze(FUNCTION, "incident 42").to_record())

    answer = release_gate.hold_if_needed(context(ledger), stale)

    stored = ledger.get(FUNCTION, held_by_a_freeze)
    assert stored is not None
    assert (stored.state, stored.reason_code, stored.reason) == (
        State.DEPLOYING,
        started.reason_code,
        started.reason,
    ), "a deploying release was given the hold reason of a freeze that began after it started"
    assert answer is not None and answer.state == State.DEPLOYING, "the caller learns where it went"
