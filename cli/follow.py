"""Following a release or a deployment to its end: poll with a deadline, report each new picture."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cli.backend import Backend
from cli.errors import CliError, ExitCode
from cli.model import DeploymentSnapshot, build_snapshot
from rollout.ledger import Release
from rollout.states import ReasonCode, State

DEFAULT_INTERVAL = 1.0
# After CodeDeploy ends, the ledger hears of it through an event; give that event this long to land.
LEDGER_SETTLE_SECONDS = 20.0


@dataclass
class Progress:
    """What a follower knows at one moment."""

    release: Release | None = None
    snapshot: DeploymentSnapshot | None = None


def deployment_snapshot(backend: Backend, deployment_id: str, with_ledger: bool = True) -> DeploymentSnapshot:
    info = backend.get_deployment(deployment_id)
    targets = backend.lambda_targets(deployment_id)
    release = _release_for(backend, deployment_id) if with_ledger else None
    fn_info = targets[0].get("lambdaFunctionInfo", {}) if targets else {}
    function = fn_info.get("functionName") or (release.function if release else "")
    alias_name = fn_info.get("functionAlias") or (release.alias if release else "")
    alias = backend.get_alias(function, alias_name) if function and alias_name else None
    return build_snapshot(info, targets, alias, release)


def _release_for(backend: Backend, deployment_id: str) -> Release | None:
    try:
        return backend.ledger.by_deployment(deployment_id)
    except CliError as err:
        if err.code == ExitCode.NOT_FOUND:  # no Rollout stack: a deployment started by someone else
            return None
        raise


class Waiter:
    """Polls until a condition holds or the deadline passes; `stop` ends the wait early (Ctrl-C, demo)."""

    def __init__(
        self, timeout: float, interval: float = DEFAULT_INTERVAL, stop: threading.Event | None = None
    ):
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.interval = interval
        self.stop = stop or threading.Event()

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def pause(self) -> None:
        """Wait one interval (less if the deadline is nearer); raise if stopped."""
        remaining = self.deadline - time.monotonic()
        if self.stop.wait(max(0.0, min(self.interval, remaining))):
            raise CliError("stopped while waiting", ExitCode.INTERRUPTED)


def follow_deployment(
    backend: Backend,
    deployment_id: str,
    waiter: Waiter,
    on_update: Callable[[DeploymentSnapshot], None],
) -> DeploymentSnapshot:
    """Report the deployment until CodeDeploy says it ended (and the ledger has recorded why)."""
    snap = deployment_snapshot(backend, deployment_id)
    on_update(snap)
    while not snap.done:
        if waiter.expired():
            raise CliError(
                f"deployment {deployment_id} still {snap.status} after {waiter.timeout:.0f}s",
                ExitCode.TIMED_OUT,
                hint=f"it goes on; follow it again with `rollout watch {deployment_id}`",
            )
        waiter.pause()
        snap = deployment_snapshot(backend, deployment_id)
        on_update(snap)
    settle = min(waiter.deadline, time.monotonic() + LEDGER_SETTLE_SECONDS)
    while snap.release is not None and not snap.release.is_terminal and time.monotonic() < settle:
        waiter.pause()
        snap = deployment_snapshot(backend, deployment_id)
        on_update(snap)
    return snap


def find_release(backend: Backend, function: str, bucket: str, key: str, version_id: str) -> Release | None:
    """The ledger's release for exactly this upload (bucket, key and S3 version)."""
    for release in backend.ledger.releases(function, limit=25):
        same_object = release.key == key and (not release.bucket or release.bucket == bucket)
        same_version = not version_id or not release.object_version or release.object_version == version_id
        if same_object and same_version:
            return release
    return None


def follow_release(
    backend: Backend,
    function: str,
    locate: Callable[[], Release | None],
    waiter: Waiter,
    on_update: Callable[[Progress], None],
) -> Progress:
    """Report a release (and its deployment, once it has one) until the release is terminal."""
    progress = Progress()
    while True:
        release = (
            locate()
            if progress.release is None
            else backend.ledger.get(function, progress.release.release_id)
        )
        if release is not None:
            progress.release = release
            if release.deployment_id:
                progress.snapshot = deployment_snapshot(backend, release.deployment_id)
                # The snapshot reads the ledger after the release: take the newer of the two.
                if progress.snapshot.release is not None:
                    progress.release = progress.snapshot.release
        on_update(progress)
        if progress.release is not None and progress.release.is_terminal:
            return progress
        if progress.release is not None and _held_by_freeze(progress.release):
            raise _held(function, progress.release)
        if waiter.expired():
            where = f"still {progress.release.state}" if progress.release else "not yet in the ledger"
            raise CliError(
                f"the release of {function} is {where} after {waiter.timeout:.0f}s",
                ExitCode.TIMED_OUT,
                hint="it goes on; see `rollout status "
                + function
                + "`"
                + (
                    ""
                    if progress.release
                    else " (no release at all: is the artifact bucket wired to the deployer?)"
                ),
            )
        waiter.pause()


def _held_by_freeze(release: Release) -> bool:
    """A freeze waits for a person (or its --until), so following it is pointless. A pre-flight hold
    (an alarm firing, provisioned concurrency not ready) clears by itself: that one is followed."""
    return release.state == State.HELD and release.reason_code in (
        ReasonCode.FROZEN,
        ReasonCode.FREEZE_UNKNOWN,
    )


def _held(function: str, release: Release) -> CliError:
    return CliError(
        f"the release of {function} is held: {release.reason or release.reason_code}",
        ExitCode.HELD,
        hint=f"it starts when the freeze ends (`rollout unfreeze {function}`, or the freeze's --until); "
        f"see `rollout status {function}`",
    )
