"""The sandbox's CPU per DynamoDB call, by operation, for the calls the ledger makes, printed as JSON.

An in-process sandbox (default lags: the GSIs and eventually consistent reads trail their writes, as in
every run of the stack) holds a ledger-shaped table (the template's keys and both indexes) with
`--functions` functions that each have `--history` releases already ended. Then, `--rounds` times per
function, one release goes the way the control plane takes one: created (PutItem), the lock taken
(PutItem), started (TransactWriteItems, then GetItem), found by its deployment (a Query of by-deployment,
then GetItem), the function's releases listed (Query) and filtered by state (Query), the hooks' results
recorded (UpdateItem), the release ended (UpdateItem, ALL_NEW) and the lock dropped (DeleteItem). The
figures are the sandbox's own `Call.cpu_ms` (its request thread's CPU, from arrival to answer).

Run: .venv/bin/python -m benchmarks.dynamodb_bench [--functions 50] [--history 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from sandbox import Sandbox
from sandbox.call_log import cpu_by_operation
from tests.support.aws_stack import create_ledger_table


def checks() -> dict[str, Any]:
    """A rollout.json's checks as the deployer stores them."""
    check = {
        "name": "smoke",
        "invoke": {"payload": {"path": "/health", "headers": {"accept": "application/json"}}},
        "expect": {"status": 200, "body_contains": ["ok"], "max_ms": 800},
        "timeout_seconds": 30,
    }
    return {"pre_traffic": [check, {**check, "name": "schema"}], "post_traffic": [check]}


def hook_result(hook: str) -> dict[str, Any]:
    """What a hook records: each check's outcome and timing, and the verdict."""
    results = [
        {"name": name, "passed": True, "duration_ms": 41.5 + i, "detail": "status 200", "attempts": 1}
        for i, name in enumerate(("smoke", "schema"))
    ]
    return {"hook": hook, "verdict": "Succeeded", "checks": results, "execution_id": "e" * 36}


class Workload:
    def __init__(self, table: str) -> None:
        from rollout.ledger import Ledger

        self.ledger = Ledger(table)
        self.deployments = 0

    def release(self, function: str, finish: bool = True) -> None:
        from rollout.ledger import Release, new_release_id
        from rollout.states import State

        release = Release(
            function=function,
            release_id=new_release_id(),
            bucket="artifacts",
            key=f"{function}/build.zip",
            object_version="v" * 32,
            etag="e" * 32,
            size=4096,
            commit="c" * 40,
            message="Ship the thing",
            author="someone@example.com",
            alias="live",
            deployment_config="CodeDeployDefault.LambdaCanary10Percent5Minutes",
            checks=checks(),
        )
        ledger = self.ledger
        ledger.create(release)
        ledger.acquire_lock(function, release.release_id)
        self.deployments += 1
        deployment_id = f"d-{self.deployments:09d}"
        steps = {name: 12.5 for name in ("validate", "lock", "publish", "deploy", "alarms")}
        started = ledger.start_deployment(
            release, deployment_id, target_version="7", current_version="6", code_sha256="s" * 44, steps=steps
        )
        ledger.by_deployment(deployment_id)
        ledger.releases(function)
        ledger.in_states(function, {State.QUEUED})
        for hook in ("pre_traffic", "post_traffic"):
            ledger.record_hook_result(function, release.release_id, hook, hook_result(hook))
        if finish:
            ledger.transition(started, State.SUCCEEDED)
            ledger.release_lock(function, release.release_id)


def medians(calls: list[Any]) -> dict[str, float]:
    """The median CPU per call by operation (the mean is cpu_by_operation's; a collection pass lands on
    whichever call is running)."""
    by_operation: dict[str, list[float]] = {}
    for call in calls:
        by_operation.setdefault(f"{call.service}:{call.operation}", []).append(call.cpu_ms)
    return {name: round(statistics.median(values), 2) for name, values in sorted(by_operation.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--functions", type=int, default=50)
    parser.add_argument("--history", type=int, default=4, help="ended releases per function beforehand")
    parser.add_argument("--rounds", type=int, default=2, help="releases measured per function")
    args = parser.parse_args()
    with Sandbox(speed=60) as sb:
        os.environ.update(
            AWS_ENDPOINT_URL=sb.endpoint_url,
            AWS_DEFAULT_REGION=sb.region,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        from rollout import aws

        aws.reset_clients()
        create_ledger_table("ledger")  # the template's keys and indexes, in the sandbox (AWS_ENDPOINT_URL)
        work = Workload("ledger")
        functions = [f"fn{i:03d}" for i in range(args.functions)]
        for _ in range(args.history):
            for function in functions:
                work.release(function)
        mark = sb.calls.mark()
        started = time.process_time()
        for _ in range(args.rounds):
            for function in functions:
                work.release(function)
        cpu = time.process_time() - started
        calls = sb.calls.since(mark)
        print(
            json.dumps(
                {
                    "calls": len(calls),
                    "process_cpu_s": round(cpu, 2),
                    "sandbox_request_cpu_s": round(sum(c.cpu_ms for c in calls) / 1000, 2),
                    "failed": sum(1 for c in calls if not c.ok),
                    "cpu_by_operation": cpu_by_operation(calls),
                    "median_ms_by_operation": medians(calls),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
