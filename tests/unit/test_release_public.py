"""What the CLI, the dashboard and notifications show of a release: never a hook execution id."""

from __future__ import annotations

import json

from rollout.ledger import Release
from rollout.states import State


def test_the_public_view_keeps_the_facts_and_drops_every_hook_execution_id() -> None:
    release = Release(
        function="orders",
        release_id="r1",
        state=State.DEPLOYING,
        deployment_id="d-ABC",
        hook_results={"pre_traffic": {"verdict": "Succeeded", "execution_id": "secret-1", "reason": "ok"}},
        approval={
            "status": "AWAITING",
            "position": "traffic",
            "execution_id": "secret-2",
            "hook": "pre_traffic",
        },
    )

    public = release.to_public()

    assert "secret" not in json.dumps(public)
    assert public["state"] == "DEPLOYING"
    assert public["hook_results"] == {"pre_traffic": {"verdict": "Succeeded", "reason": "ok"}}
    assert public["approval"] == {"status": "AWAITING", "position": "traffic", "hook": "pre_traffic"}
    # The stored release itself keeps them: the gate and the hooks report with them.
    assert release.approval is not None and release.approval["execution_id"] == "secret-2"
    assert Release(function="f", release_id="r").to_public()["approval"] is None
