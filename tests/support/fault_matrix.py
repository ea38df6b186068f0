"""The fault matrix's invariant and its figures, for tests/e2e/test_fault_matrix.py.

Every cell ends the same way, whatever it broke: the release reaches a terminal state within the
cell's bound, no lock or open release is left, the alias carries no split weights and serves a
healthy build, and no build was deployed twice. `Cell` checks that and records what it took in
counts (reconciler runs, deployer invocations, faults injected, deployments) for docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from boto3.dynamodb.conditions import Key

from rollout.ledger import Release
from sandbox.faults import CallFault, CallKill, EventFault
from tests.support.e2e_world import ALIAS, RolloutWorld, Upload, wait_for
from tests.support.sandbox_support import wait_lambda_metrics_published

# Set to a file path to collect every cell's figures as JSON lines (docs/RELIABILITY.md's table).
REPORT_ENV = "FAULT_MATRIX_REPORT"
TERMINAL_STATES = frozenset(
    {"REJECTED", "UNCHANGED", "BOOTSTRAPPED", "SUCCEEDED", "ROLLED_BACK", "FAILED", "SUPERSEDED"}
)

Fault = CallFault | CallKill | EventFault


def fired(fault: Fault) -> int:
    """How often an injected fault actually happened."""
    if isinstance(fault, CallFault):
        return fault.injected
    if isinstance(fault, CallKill):
        return fault.killed
    return len(fault.matched_ids)


def at_least_once(
    world: RolloutWorld,
    service: str,
    operation: str,
    error_code: str,
    share: float,
    status: int | None = None,
    path_contains: str | None = None,
) -> list[CallFault]:
    """`share` of the calls fail, and the first one certainly does (a share alone may inject nothing)."""
    faults = world.sb.faults
    options: dict[str, Any] = {"status": status, "path_contains": path_contains}
    return [
        faults.fail(service, operation, error_code, share=1.0, count=1, **options),
        faults.fail(service, operation, error_code, share=share, **options),
    ]


@dataclass
class Cell:
    """One cell of the matrix: what it injects, its bound, and what it took."""

    world: RolloutWorld
    name: str
    function: str
    bound_seconds: float
    bound: str  # the bound in the terms docs/RELIABILITY.md states it
    faults: list[Fault] = field(default_factory=list)
    started_real: float = field(default_factory=time.monotonic)
    started_at: datetime = field(init=False)
    ended_at: datetime | None = None
    runs_before: int = field(init=False)
    figures: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started_at = self.world.sb.clock.now_datetime()
        self.runs_before = scheduled_runs(self.world)

    def inject(self, *faults: Fault | list[CallFault]) -> None:
        for fault in faults:
            self.faults.extend(fault if isinstance(fault, list) else [fault])

    def settle(self, uploads: list[Upload]) -> list[Release]:
        """Wait for every upload's release to end, then check the invariant and note the figures;
        returns the releases."""
        deadline = time.monotonic() + self.bound_seconds
        ended = [self._ended(upload, deadline) for upload in uploads]
        took = time.monotonic() - self.started_real
        self.world.sb.faults.clear()
        self._assert_invariant(ended)
        self._record(ended, took)
        return ended

    # --- the invariant ------------------------------------------------------------------------
    def _ended(self, upload: Upload, deadline: float) -> Release:
        remaining = max(1.0, deadline - time.monotonic())
        release = self.world.wait_release(upload, timeout=remaining)
        assert str(release.state) in TERMINAL_STATES
        return release

    def _assert_invariant(self, ended: list[Release]) -> None:
        world, function = self.world, self.function
        assert all(fired(fault) >= 1 for fault in self._certain()), self._fault_counts()
        # The lock goes in the invocation that ended the release, right after the transition.
        wait_for(lambda: world.lock(function) is None, 15, f"the lock of {function} to be released")
        releases = world.releases(function)
        assert all(r.is_terminal for r in releases), [(r.release_id, str(r.state)) for r in releases]
        # The open-releases index trails the table (as DynamoDB's GSIs do): wait for it to agree.
        wait_for(
            lambda: not open_releases(world, function), 15, f"the open-releases index to drop {function}"
        )
        alias = world.alias(function) or {}
        assert (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") in (None, {}), alias
        answer = json.loads(
            world.client("lambda")
            .invoke(FunctionName=function, Qualifier=ALIAS, Payload=b'{"path": "/health"}')["Payload"]
            .read()
        )
        assert answer.get("statusCode") == 200, answer
        deployed = deployments_by_release(world, function)
        assert all(len(ids) == 1 for ids in deployed.values()), deployed
        assert len({r.target_version for r in releases if r.deployment_id}) == len(
            [r for r in releases if r.deployment_id]
        ), "two releases deployed the same version"

    def _certain(self) -> list[Fault]:
        """The faults that must have fired: all but the share-based companions of at_least_once."""
        return [f for f in self.faults if not (isinstance(f, CallFault) and f.remaining is None)]

    def _fault_counts(self) -> dict[str, int]:
        return {describe(f): fired(f) for f in self.faults}

    # --- the figures --------------------------------------------------------------------------
    def _record(self, ended: list[Release], took: float) -> None:
        world = self.world
        end = self.ended_at = world.sb.clock.now_datetime()
        self.figures.update(
            {
                "cell": self.name,
                "bound": self.bound,
                "states": [str(r.state) for r in ended],
                "faults_fired": self._fault_counts(),
                "reconciler_runs": scheduled_runs(world) - self.runs_before,
                "deployments_created": sum(
                    len(v) for v in deployments_by_release(world, self.function).values()
                ),
                "releases": len(world.releases(self.function)),
                "real_seconds": round(took, 1),
                "sandbox_minutes": round((end - self.started_at).total_seconds() / 60, 1),
            }
        )

    def report(self) -> None:
        """Append the cell's figures to the report file, when one is asked for (REPORT_ENV)."""
        path = os.environ.get(REPORT_ENV)
        if path and self.figures and self.ended_at is not None:
            # Counted only when reported: CloudWatch has the cell's last invocations a publish lag later.
            wait_lambda_metrics_published(self.world.sb, self.ended_at.timestamp())
            deployer = self.world.outputs["ArtifactDeployerName"]
            self.figures["deployer_invocations"] = invocations_between(
                self.world, deployer, self.started_at, self.ended_at
            )
            with Path(path).open("a", encoding="utf-8") as report:
                report.write(json.dumps(self.figures) + "\n")


def describe(fault: Fault) -> str:
    if isinstance(fault, CallFault):
        served = " after serving" if fault.after_serving else ""
        return f"{fault.service}:{fault.operation} {fault.error_code}{served} share {fault.share}"
    if isinstance(fault, CallKill):
        when = "after" if fault.after_call else "before"
        return f"kill {fault.function_name} {when} {fault.service}:{fault.operation}"
    return f"{fault.action} {json.dumps(fault.pattern, sort_keys=True)}"


def open_releases(world: RolloutWorld, function: str) -> list[dict[str, Any]]:
    """The function's items in the ledger's sparse open-releases index (none once all have ended)."""
    found: list[dict[str, Any]] = []
    for state in ("RECEIVED", "QUEUED", "DEPLOYING"):
        items = world.table.query(
            IndexName="open-releases", KeyConditionExpression=Key("open_state").eq(state)
        )
        found += [i for i in items.get("Items", []) if i.get("function") == function]
    return found


def deployments_by_release(world: RolloutWorld, function: str) -> dict[str, list[str]]:
    """Deployments Rollout created for the function, by the release id their description names."""
    by_release: dict[str, list[str]] = {}
    for info in world.deployments(function):
        description = str(info.get("description", ""))
        if description.startswith("rollout release "):
            release_id = description.removeprefix("rollout release ").split(":", 1)[0]
            by_release.setdefault(release_id, []).append(str(info["deploymentId"]))
    return by_release


def scheduled_runs(world: RolloutWorld) -> int:
    """How many times the schedule has started the reconciler so far (the sandbox logs each delivery)."""
    rule = f"{world.stack_name}-reconciler"
    return sum(1 for delivery in list(world.sb.events.delivered) if delivery["rule"] == rule)


def invocations_between(world: RolloutWorld, function: str, start: datetime, end: datetime) -> int:
    """Invocations of `function` that ended between `start` and `end`, as CloudWatch counts them (read
    once Lambda has published them: wait_lambda_metrics_published)."""
    stats = world.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=start,
        EndTime=end,
        Period=86400,
        Statistics=["Sum"],
    )
    return int(sum(point["Sum"] for point in stats["Datapoints"]))
