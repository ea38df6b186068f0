"""`sandbox/codedeploy/alarm_poller.py`: one DescribeAlarms per poll tick answers every running deployment
of a service role, never with a read older than the deployment may judge on."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from sandbox.codedeploy.alarm_poller import MAX_NAMES_PER_CALL, AlarmPoller, alarm_poll_interval
from sandbox.codedeploy.aws import AwsCallError
from tests.support.fake_lambda_aws import FakeLambdaAws


class ManualClock:
    """Sandbox time at speed 60 that moves only when the test moves it."""

    speed = 60.0

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def real_seconds(self, sandbox_seconds: float) -> float:
        return sandbox_seconds / self.speed


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def aws() -> FakeLambdaAws:
    return FakeLambdaAws()


@pytest.fixture
def poller(aws: FakeLambdaAws, clock: ManualClock) -> AlarmPoller:
    return AlarmPoller(aws, clock)


def tick(poller: AlarmPoller, clock: ManualClock) -> float:
    """Move to the start of the next poll tick; the tick's start, which a tick's poll asks its read to be
    no older than."""
    clock.t = poller.next_tick(clock.t)
    return poller.tick_start(clock.t)


def test_the_interval_is_half_a_sandbox_minute_at_speed_60(poller):
    assert poller.interval == alarm_poll_interval(lambda s: s / 60) == 30.0


def test_one_read_per_tick_answers_every_deployment_with_its_own_alarms(poller, aws, clock):
    aws.alarms = {"a-errors": "OK", "b-errors": "ALARM", "shared": "OK"}
    poller.watch("d-A", ["a-errors", "shared"])
    poller.watch("d-B", ["b-errors", "shared"])
    poller.watch("d-C", ["c-gone"])
    since = tick(poller, clock)

    assert poller.states("d-A", since) == {"a-errors": "OK", "shared": "OK"}
    clock.t += 10  # later in the same tick
    assert poller.states("d-B", since) == {"b-errors": "ALARM", "shared": "OK"}
    assert (
        poller.states("d-C", since) == {}
    )  # an alarm that does not exist is left out, as DescribeAlarms does
    assert aws.alarm_reads == [["a-errors", "shared", "b-errors", "c-gone"]]

    aws.alarms["a-errors"] = "ALARM"
    since = tick(poller, clock)
    assert poller.states("d-B", since) == {"b-errors": "ALARM", "shared": "OK"}
    assert poller.states("d-A", since) == {"a-errors": "ALARM", "shared": "OK"}
    assert len(aws.alarm_reads) == 2


def test_a_first_poll_reads_its_own_alarms_at_once_never_from_an_earlier_read(poller, aws, clock):
    aws.alarms = {"a-errors": "OK", "b-errors": "OK"}
    poller.watch("d-A", ["a-errors", "b-errors"])
    assert poller.states("d-A", tick(poller, clock)) == {"a-errors": "OK", "b-errors": "OK"}
    aws.alarms["a-errors"] = "ALARM"
    clock.t += 1  # the same tick: a tick's poll may use the read, a deployment starting now may not
    assert poller.read_alone(["a-errors"]) == {"a-errors": "ALARM"}
    assert aws.alarm_reads == [["a-errors", "b-errors"], ["a-errors"]]


def test_no_deployment_judges_on_a_read_from_an_earlier_tick(poller, aws, clock):
    aws.alarms = {"a-errors": "OK"}
    poller.watch("d-A", ["a-errors"])
    poller.states("d-A", tick(poller, clock))
    clock.t = poller.next_tick(clock.t) + poller.interval - 0.001  # the end of the next tick
    poller.states("d-A", poller.tick_start(clock.t))
    assert len(aws.alarm_reads) == 2


def test_calls_name_at_most_100_alarms_and_each_deployment_is_read_in_one_call(poller, aws, clock):
    for n in range(12):
        names = [f"fn{n}-alarm{i}" for i in range(10)]
        aws.alarms.update(dict.fromkeys(names, "OK"))
        poller.watch(f"d-{n}", names)
    since = tick(poller, clock)
    for n in range(12):
        assert len(poller.states(f"d-{n}", since)) == 10
    assert [len(names) for names in aws.alarm_reads] == [MAX_NAMES_PER_CALL, 20]
    for n in range(12):
        own = {f"fn{n}-alarm{i}" for i in range(10)}
        assert sum(1 for names in aws.alarm_reads if own <= set(names)) == 1


def test_a_failed_read_is_a_failed_poll_for_each_deployment_it_covered(poller, aws, clock):
    aws.alarms = {"a-errors": "OK", "b-errors": "OK"}
    poller.watch("d-A", ["a-errors"])
    poller.watch("d-B", ["b-errors"])
    aws.fail_alarm_reads = AwsCallError("Throttling", "Rate exceeded")
    since = tick(poller, clock)
    for deployment_id in ("d-A", "d-B"):
        with pytest.raises(AwsCallError) as failed:
            poller.states(deployment_id, since)
        assert failed.value.code == "Throttling"
    assert len(aws.alarm_reads) == 1

    aws.fail_alarm_reads = None
    since = tick(poller, clock)
    assert poller.states("d-A", since) == {"a-errors": "OK"}
    assert poller.states("d-B", since) == {"b-errors": "OK"}


def test_a_refused_batch_is_read_deployment_by_deployment_as_iam_checks_each_alarm(poller, aws, clock):
    """A role that may describe some alarms only: the deployment naming one it may not read is refused, the
    one naming only alarms it may read is answered, as when each polled on its own."""
    aws.alarms = {"a-errors": "OK", "b-errors": "OK", "shared": "OK"}
    aws.denied_alarms = {"b-errors"}
    poller.watch("d-A", ["a-errors", "shared"])
    poller.watch("d-B", ["shared", "b-errors"])
    since = tick(poller, clock)
    assert poller.states("d-A", since) == {"a-errors": "OK", "shared": "OK"}
    with pytest.raises(AwsCallError) as refused:
        poller.states("d-B", since)
    assert refused.value.code == "AccessDenied" and "b-errors" in refused.value.message
    assert aws.alarm_reads == [
        ["a-errors", "shared", "b-errors"],
        ["a-errors", "shared"],
        ["shared", "b-errors"],
    ]

    aws.denied_alarms = set()  # the role is allowed again: the next tick answers it
    assert poller.states("d-B", tick(poller, clock)) == {"shared": "OK", "b-errors": "OK"}


def test_an_ended_deployment_is_no_longer_read(poller, aws, clock):
    aws.alarms = {"a-errors": "OK", "b-errors": "OK"}
    poller.watch("d-A", ["a-errors"])
    poller.watch("d-B", ["b-errors"])
    poller.states("d-A", tick(poller, clock))
    poller.forget("d-B")
    poller.states("d-A", tick(poller, clock))
    assert aws.alarm_reads == [["a-errors", "b-errors"], ["a-errors"]]


def test_deployments_asking_at_once_share_one_read(poller, aws, clock):
    aws.alarms = {f"fn{n}-errors": "OK" for n in range(20)}
    for n in range(20):
        poller.watch(f"d-{n}", [f"fn{n}-errors"])
    since = tick(poller, clock)
    start = threading.Barrier(20)
    answers: dict[int, dict[str, str]] = {}

    def poll(n: int) -> None:
        start.wait()
        answers[n] = poller.states(f"d-{n}", since)

    threads = [threading.Thread(target=poll, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == {n: {f"fn{n}-errors": "OK"} for n in range(20)}
    assert len(aws.alarm_reads) == 1
