"""Publishing a release: its pinned artifact onto $LATEST, then a version guarded by CodeSha256.

This runs only when a release starts (under the function's deployment lock), never when an upload
merely queues: a queued release holds its artifact (bucket, key, S3 object version), not a version.
So $LATEST never carries code that no check has seen while another deployment is in flight, and a
superseded release leaves no version behind.

Uploads of one function also take turns from update to publish (the ledger's publish lease), and
the publish names the CodeSha256 and RevisionId of our own update, so code of another upload can
never be published under this release's name.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from rollout import lambda_ops, steps
from rollout.appspec import release_description
from rollout.deadlines import NO_DEADLINE, Deadline
from rollout.errors import CodeChanged, OutOfTime
from rollout.ledger import Ledger, Release
from rollout.observability import logger
from rollout.targets import AliasRouting

PUBLISH_ATTEMPTS = 3  # update+publish rounds when another upload changes the code in between
# How long a start waits for another upload of the same function to publish (the deployer runs 300 s).
PUBLISH_LEASE_WAIT_SECONDS = 180.0


class Published(NamedTuple):
    """The version a release's code lives in; `unchanged` when the alias already serves that code."""

    version: str
    code_sha256: str
    unchanged: bool = False


def publish_artifact(
    ledger: Ledger, release: Release, alias: AliasRouting | None, deadline: Deadline = NO_DEADLINE
) -> Published:
    """Put the release's exact object version on $LATEST and publish it (or find it already live).

    Every wait on the way (the publish lease, Lambda applying the code) ends by `deadline`.
    """
    live = LiveCode(release.function, alias)
    with publish_lease(ledger, release, deadline):
        published = _update_and_publish(release, alias, live, deadline)
    if alias and published.version == alias.version:
        # Lambda returns the latest version instead of publishing when nothing changed.
        return Published(alias.version, published.code_sha256, unchanged=True)
    return published


class LiveCode:
    """The code the alias serves: its version's CodeSha256, never $LATEST's (the comparison must not depend
    on $LATEST). A published version's code never changes, so it is read once, while Lambda applies ours."""

    def __init__(self, function: str, alias: AliasRouting | None) -> None:
        self.function = function
        self.alias = alias
        self._sha256: str | None = None

    def read(self) -> None:
        if self.alias is not None and self._sha256 is None:
            self._sha256 = lambda_ops.code_sha256(self.function, self.alias.version)

    def sha256(self) -> str:
        self.read()
        return self._sha256 or ""


def _update_and_publish(
    release: Release, alias: AliasRouting | None, live: LiveCode, deadline: Deadline
) -> Published:
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            with steps.step(steps.UPDATE_CODE):
                update = lambda_ops.update_code(
                    release.function,
                    release.bucket,
                    release.key,
                    release.object_version,
                    deadline,
                    live.read,
                )
            if alias and update.code_sha256 == live.sha256():
                return Published(alias.version, update.code_sha256, unchanged=True)
            with steps.step(steps.PUBLISH):
                version = lambda_ops.publish_version(
                    release.function, update, release_description(release.release_id, release.key), deadline
                )
            return Published(version, update.code_sha256)
        except CodeChanged:
            if attempt == PUBLISH_ATTEMPTS:
                raise
            logger.warning(
                "Function code changed before publishing; updating again", extra={"attempt": attempt}
            )
    raise AssertionError("unreachable: the last attempt returns or raises")


@contextmanager
def publish_lease(ledger: Ledger, release: Release, deadline: Deadline = NO_DEADLINE) -> Iterator[None]:
    """Hold $LATEST of the release's function from update to publish.

    Waits for another upload's lease at most PUBLISH_LEASE_WAIT_SECONDS, and never past `deadline`.
    """
    delay = 0.2
    patience = deadline.bound(PUBLISH_LEASE_WAIT_SECONDS)
    give_up = time.monotonic() + patience
    while not ledger.acquire_publish_lease(release.function, release.release_id):
        if time.monotonic() + delay > give_up:
            holder = f"another upload of {release.function} held $LATEST for over {patience:.0f} s"
            if patience < PUBLISH_LEASE_WAIT_SECONDS:
                raise OutOfTime(f"{holder}, all the time this invocation had left")
            raise RuntimeError(holder)
        time.sleep(delay + random.uniform(0, delay))  # waits on another invocation's DynamoDB item
        delay = min(delay * 2, 3.0)
    try:
        yield
    finally:
        ledger.release_publish_lease(release.function, release.release_id)
