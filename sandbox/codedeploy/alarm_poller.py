"""CodeDeploy's alarm polls, read once per poll tick for every running deployment of one service role.

Each deployment still judges its own alarms (`runner.DeploymentRunner._poll_alarms`); what it judges on
comes from here. Polling deployment by deployment made DescribeAlarms most of what the sandbox served
when fifty deployments ran at once (docs/BENCHMARKS.md), and on AWS these polls are CodeDeploy's own work.
The reads are made with the role's port, so IAM judges them as it judged each deployment's own read.

Poll ticks sit on one grid of sandbox time (multiples of the interval), so the deployments of a role all
poll in the same tick and the first one to ask reads for all of them. A deployment is answered only from a
read made in its own tick, hence no older than its interval. Its first poll (an alarm already in ALARM
fails it rather than stopping it) is its own call, made at once, as before: it neither waits for the
others' reads nor takes one made before it asked. The sandbox is never staler than a deployment polling
alone."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.codedeploy.aws import AwsCallError, AwsPort

if TYPE_CHECKING:
    from sandbox.codedeploy.engine import SandboxClock

ALARM_POLL_SECONDS = 60.0  # CodeDeploy polls alarms at least this often (sandbox time)
# Amazon CloudWatch API Reference, DescribeAlarms, Request Parameters: AlarmNames "Array Members: Maximum
# number of 100 items" (botocore's model says the same: max 100).
MAX_NAMES_PER_CALL = 100
# How CloudWatch refuses a call IAM does not allow (sandbox/protocol.py ACCESS_DENIED).
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})


def alarm_poll_interval(real_seconds: Callable[[float], float]) -> float:
    """Sandbox seconds between alarm polls: every sandbox minute at most, every half minute at least (an
    alarm judges whole one-minute periods, so polling more often only costs calls), and never more than
    twice a real second (each poll tick is a DescribeAlarms per service role in use)."""
    per_minute = real_seconds(ALARM_POLL_SECONDS)
    real = min(per_minute, max(real_seconds(30.0), 0.5))
    real = max(real, 0.02)
    return ALARM_POLL_SECONDS * real / per_minute


@dataclass(frozen=True)
class Reading:
    """What one DescribeAlarms said about one alarm (or about one deployment's alarms, when refused)."""

    at: float  # sandbox time the call was made
    state: str | None  # None: no such alarm (DescribeAlarms leaves an unknown name out)
    error: AwsCallError | None = None


Answer = dict[str, str] | AwsCallError


class AlarmPoller:
    """The latest reading of every alarm the role's running deployments watch. Thread-safe: each deployment
    asks from its own thread; one read runs at a time, and whoever waited for it is answered from it."""

    def __init__(self, port: AwsPort, clock: SandboxClock) -> None:
        self._port = port
        self._clock = clock
        self.interval = alarm_poll_interval(clock.real_seconds)
        self._lock = threading.Lock()  # guards the three maps below; never held during a call
        self._reading = threading.Lock()  # one read at a time
        self._watched: dict[str, tuple[str, ...]] = {}  # deployment id -> its alarm names
        self._readings: dict[str, Reading] = {}  # alarm name -> latest reading
        self._refused: dict[str, Reading] = {}  # deployment id -> its own read, refused (see _read_each)

    # --- poll ticks --------------------------------------------------------------------------------
    def tick_start(self, now: float) -> float:
        return math.floor(now / self.interval) * self.interval

    def next_tick(self, now: float) -> float:
        return self.tick_start(now) + self.interval

    # --- who is watching -------------------------------------------------------------------------
    def watch(self, deployment_id: str, names: Iterable[str]) -> None:
        with self._lock:
            self._watched[deployment_id] = tuple(names)

    def forget(self, deployment_id: str) -> None:
        """The deployment has ended: its alarms are read no more (unless another deployment watches them)."""
        with self._lock:
            self._watched.pop(deployment_id, None)
            self._refused.pop(deployment_id, None)
            still = {name for names in self._watched.values() for name in names}
            for name in [n for n in self._readings if n not in still]:
                del self._readings[name]

    # --- answers ---------------------------------------------------------------------------------
    def read_alone(self, names: Iterable[str]) -> dict[str, str]:
        """A deployment's first poll: its own alarms, read now in one call of their own."""
        return self._port.alarm_states(list(names))

    def states(self, deployment_id: str, since: float) -> dict[str, str]:
        """The state of each of the deployment's alarms that exists, from a read made at sandbox time `since`
        or later; raises the AwsCallError that read ended with."""
        answer = self._answer(deployment_id, since)
        if answer is None:
            with self._reading:
                # whoever read while this thread waited may have read late enough
                answer = self._answer(deployment_id, since)
                if answer is None:
                    self._read_all()
                    answer = self._answer(deployment_id, since)
        assert answer is not None, "a read of every watched deployment answers each of them"
        if isinstance(answer, AwsCallError):
            raise answer
        return answer

    def _answer(self, deployment_id: str, since: float) -> Answer | None:
        """From readings made at `since` or later; None when there are none that recent."""
        with self._lock:
            names = self._watched[deployment_id]
            refused = self._refused.get(deployment_id)
            if refused is not None and refused.at >= since and refused.error is not None:
                return refused.error
            readings = [self._readings.get(name) for name in names]
        if any(reading is None or reading.at < since for reading in readings):
            return None
        states: dict[str, str] = {}
        for name, reading in zip(names, readings, strict=True):
            assert reading is not None
            if reading.error is not None:
                return reading.error
            if reading.state is not None:
                states[name] = reading.state
        return states

    # --- reading ---------------------------------------------------------------------------------
    def _read_all(self) -> None:
        """One read of every watched alarm, a batch of whole deployments per DescribeAlarms call (the caller
        holds `_reading`)."""
        with self._lock:
            watched = dict(self._watched)
        for deployment_ids, names in _batches(watched):
            at = self._clock.now()
            try:
                found = self._port.alarm_states(names)
            except AwsCallError as exc:
                if exc.code in ACCESS_DENIED_CODES:
                    self._read_each({d: watched[d] for d in deployment_ids})
                else:
                    self._record(deployment_ids, {name: Reading(at, None, exc) for name in names})
                continue
            self._record(deployment_ids, {name: Reading(at, found.get(name)) for name in names})

    def _read_each(self, watched: dict[str, tuple[str, ...]]) -> None:
        """Read a refused batch again deployment by deployment. IAM authorises DescribeAlarms per named alarm
        (sandbox/iam/actions.py), so a role allowed some alarms only is refused a batch that names one it may
        not read: read alone, each deployment is refused or answered exactly as its own call was."""
        for deployment_id, names in watched.items():
            at = self._clock.now()
            try:
                found = self._port.alarm_states(list(names))
            except AwsCallError as exc:
                with self._lock:
                    if deployment_id in self._watched:
                        self._refused[deployment_id] = Reading(at, None, exc)
                continue
            self._record([deployment_id], {name: Reading(at, found.get(name)) for name in names})

    def _record(self, deployment_ids: Iterable[str], readings: dict[str, Reading]) -> None:
        with self._lock:
            for deployment_id in deployment_ids:
                self._refused.pop(deployment_id, None)  # this read is newer
            still = {name for names in self._watched.values() for name in names}
            self._readings.update({name: r for name, r in readings.items() if name in still})


def _batches(watched: dict[str, tuple[str, ...]]) -> list[tuple[list[str], list[str]]]:
    """(deployment ids, alarm names) per DescribeAlarms call: whole deployments (a group has at most ten
    alarms), so each deployment's alarms are read in one call as before, and at most MAX_NAMES_PER_CALL
    distinct names."""
    batches: list[tuple[list[str], list[str]]] = []
    ids: list[str] = []
    names: dict[str, None] = {}  # ordered set
    for deployment_id, own in watched.items():
        new = [name for name in dict.fromkeys(own) if name not in names]
        if ids and len(names) + len(new) > MAX_NAMES_PER_CALL:
            batches.append((ids, list(names)))
            ids, names, new = [], {}, list(dict.fromkeys(own))
        ids.append(deployment_id)
        names.update(dict.fromkeys(new))
    if ids:
        batches.append((ids, list(names)))
    return batches
