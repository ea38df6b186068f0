"""Two callers starting one queued release: only the one that claims it publishes and deploys.

When a release ends, deployment events and the reconciler both advance the function's queue. The
function's lock is re-entrant for the release, so without the start claim (`rollout/claims.py`,
`starter.StartClaim`) both would publish a version of it, one of which nobody deploys (or which
even becomes the release's recorded target). Real uploads through the deployer, moto and the
CodeDeploy stand-in.
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

from functions.artifact_deployer.app import lambda_handler as deployer
from functions.reconciler import app as reconciler
from rollout import aws, claims, lambda_ops, release_queue
from rollout.appspec import parse_appspec
from rollout.config import Settings
from rollout.deadlines import Deadline
from rollout.ledger import Ledger, Release
from rollout.release_queue import QueueReport, advance_queue, finish_release
from rollout.starter import start_release
from rollout.states import State
from rollout.transitions import ReleaseContext
from tests.support.artifacts_world import ArtifactWorld, eventbridge_event, function_zip
from tests.support.aws_stack import LEDGER_TABLE, REGION, StackUnderTest
from tests.support.codedeploy_standin import CodeDeployStandIn

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


def run_together(rendezvous: Rendezvous, callers: dict[str, Callable[[], QueueReport]]) -> dict[str, Any]:
    """Run each caller in its own thread (named after it); their reports, or what they raised."""
    results: dict[str, Any] = {}

    def run(name: str, call: Callable[[], QueueReport]) -> None:
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
