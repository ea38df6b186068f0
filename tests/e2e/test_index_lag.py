"""The control plane under DynamoDB's index lag.

The pre-traffic hook once looked its release up through the `by-deployment` global secondary index
moments after the deployer wrote the deployment id. DynamoDB propagates table writes to a GSI "within a
fraction of a second" (not at once), so the hook could miss the release, run no checks and report
Succeeded. The deployment's description now names its release, which the hook reads by key with a
consistent read. The index here lags five seconds, one of the "longer propagation delays" DynamoDB says
can occur, so a hook that still used the index would certainly miss.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.test_releases import bootstrap, traffic
from tests.support.e2e_world import RolloutWorld, rollout_world

SPEED = 60.0
LAG_SECONDS = 5.0


@pytest.fixture(scope="module")
def lagging_world() -> Iterator[RolloutWorld]:
    with rollout_world("e2e-index-lag", SPEED, gsi_lag=LAG_SECONDS) as running:
        yield running


def test_a_failing_pre_traffic_check_stops_the_release_even_while_the_index_lags(lagging_world) -> None:
    world = lagging_world
    function = world.create_target("laggy")
    bootstrap(world, function)
    with traffic(world, function) as generator:
        release = world.wait_release(world.release_build(function, "failing-check", "v2"))
    assert str(release.state) == "ROLLED_BACK", (release.reason_code, release.reason)
    assert "pre_traffic" in (release.hook_results or {}), "the pre-traffic hook found no release"
    assert set(generator.report.by_version) == {"1"}, generator.report
