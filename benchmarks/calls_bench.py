"""AWS calls per release, by the function (or service) that made them, from the sandbox's call record.

Four release paths, one after another on one provisioned stack at speed 60, so each path's calls are
the calls between two marks of `Sandbox.calls`:

- bootstrap: the first upload of a function (no alias yet);
- canary: a healthy upload through Canary10Percent5Minutes with pre- and post-traffic checks, under traffic;
- rejected: an upload whose checks file is invalid (refused before anything is published);
- queued-then-superseded: while a release deploys, two more uploads arrive: the first queues and is
  superseded by the second, which then deploys. Its figure is the whole trio; the superseded upload's own
  cost is that minus two canaries.

Calls made with the operator's credentials (this benchmark's uploads, polls and traffic) and the
reconciler's (it runs on a schedule, not per release) are left out and listed apart. A path is over once
its notices went out and no control-plane call was made for QUIET real seconds.

Run: .venv/bin/python -m benchmarks.calls_bench [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter
from functools import partial
from typing import Any

from examples.hello.traffic import TrafficGenerator
from sandbox.call_log import OPERATOR, Call, by_operation
from tests.support.e2e_world import ALIAS, RolloutWorld, Upload, rollout_world, wait_for

QUIET = 1.5  # real seconds without a control-plane call: the path is over
SPEED = 60.0


class Recorder:
    def __init__(self, world: RolloutWorld) -> None:
        self.world = world
        self.prefix = world.stack_name + "-"
        self.reconciler = world.outputs["ReconcilerName"]

    def counted(self, calls: list[Call]) -> list[Call]:
        return [c for c in calls if c.role != OPERATOR and c.session != self.reconciler]

    def settle(self, mark: int) -> list[Call]:
        """The control-plane calls since `mark`, once none was made for QUIET seconds."""
        calls = self.world.sb.calls

        def quiet() -> list[Call] | None:
            mine = self.counted(calls.since(mark))
            last = max((c.at for c in mine), default=0.0)
            return mine if time.time() - last >= QUIET else None

        return wait_for(quiet, 120, "the control plane to go quiet", interval=0.25)

    def caller(self, call: Call) -> str:
        session = call.session.removeprefix(self.prefix)
        return "CodeDeploy" if session == "AWSCodeDeploy" else session


def summary(recorder: Recorder, calls: list[Call]) -> dict[str, Any]:
    by_caller: dict[str, Counter[str]] = {}
    for call in calls:
        by_caller.setdefault(recorder.caller(call), Counter()).update(by_operation([call], by_role=False))
    return {
        "total": len(calls),
        "failed": sum(1 for c in calls if not c.ok),
        "by_caller": {caller: dict(sorted(ops.items())) for caller, ops in sorted(by_caller.items())},
        "by_operation": dict(sorted(by_operation(calls, by_role=False).items())),
        # In order, without CodeDeploy's own alarm polls (one DescribeAlarms per poll of each deployment).
        "sequence": [
            f"{recorder.caller(c)} {c.service}:{c.operation}" + ("" if c.ok else f" [{c.outcome}]")
            for c in calls
            if not (c.session == "AWSCodeDeploy" and c.operation == "DescribeAlarms")
        ],
    }


def one_path(recorder: Recorder, run: Any) -> dict[str, Any]:
    mark = recorder.world.sb.calls.mark()
    run()
    return summary(recorder, recorder.settle(mark))


def released(world: RolloutWorld, upload: Upload, state: str, notice: str) -> None:
    release = world.wait_release(upload, timeout=120)
    assert str(release.state) == state, (upload.key, release.state, release.reason)
    wait_for(
        lambda: any(
            n.kind == notice and n.message.get("release_id") == release.release_id
            for n in world.notices(upload.function)
        ),
        30,
        f"{notice} of {upload.key}",
    )


def canary(world: RolloutWorld, function: str, label: str) -> None:
    generator = TrafficGenerator(world.fresh_client("lambda"), function, ALIAS, rate=12.0, max_seconds=120)
    with generator:
        released(world, world.release_build(function, "healthy", label), "SUCCEEDED", "deployment.succeeded")


def rejected(world: RolloutWorld, function: str) -> None:
    upload = world.release_build(function, "healthy", "bad", checks={"pre_traffic": "not a list"})
    released(world, upload, "REJECTED", "release.rejected")


def queued_then_superseded(world: RolloutWorld, function: str) -> None:
    first = world.release_build(function, "healthy", "q1")
    wait_for(partial(deploying, world, first), 60, "the first upload to deploy", interval=0.05)
    queued = world.release_build(function, "healthy", "q2")
    wait_for(partial(world.release_of, queued), 30, "the second upload in the ledger", interval=0.05)
    last = world.release_build(function, "healthy", "q3")
    generator = TrafficGenerator(world.fresh_client("lambda"), function, ALIAS, rate=12.0, max_seconds=180)
    with generator:
        released(world, first, "SUCCEEDED", "deployment.succeeded")
        released(world, queued, "SUPERSEDED", "release.superseded")
        released(world, last, "SUCCEEDED", "deployment.succeeded")


def deploying(world: RolloutWorld, upload: Upload) -> bool:
    release = world.release_of(upload)
    return release is not None and bool(release.deploying_at)


def run() -> dict[str, Any]:
    with rollout_world("calls-bench", SPEED) as world:
        recorder = Recorder(world)
        function = world.create_target("calls")
        start = world.sb.calls.mark()
        paths = {
            "bootstrap": one_path(
                recorder,
                lambda: released(
                    world,
                    world.release_build(function, "healthy", "v1"),
                    "BOOTSTRAPPED",
                    "release.bootstrapped",
                ),
            ),
            "canary": one_path(recorder, lambda: canary(world, function, "v2")),
            "rejected": one_path(recorder, lambda: rejected(world, function)),
            "queued_then_superseded": one_path(recorder, lambda: queued_then_superseded(world, function)),
        }
        everything = world.sb.calls.since(start)
        apart = [c for c in everything if c not in recorder.counted(everything)]
    trio = paths["queued_then_superseded"]["total"]
    return {
        "speed": SPEED,
        "paths": paths,
        "superseded_upload_alone": trio - 2 * paths["canary"]["total"],
        "left_out": dict(sorted(Counter(recorder.caller(c) or OPERATOR for c in apart).items())),
    }


def print_table(result: dict[str, Any], sequence: bool = False) -> None:
    for name, path in result["paths"].items():
        print(f"\n## {name}: {path['total']} calls ({path['failed']} failed)")
        for caller, ops in path["by_caller"].items():
            print(f"  {caller}: " + ", ".join(f"{op} {n}" for op, n in ops.items()))
        if sequence:
            print("  in order:")
            for n, line in enumerate(path["sequence"], 1):
                print(f"    {n:3} {line}")
    print(f"\nsuperseded upload alone (trio - 2 canaries): {result['superseded_upload_alone']}")
    print(f"left out (operator, reconciler): {result['left_out']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--sequence", action="store_true", help="also print each path's calls in order")
    args = parser.parse_args()
    logging.getLogger("sandbox").setLevel(logging.CRITICAL)
    result = run()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result, args.sequence)


if __name__ == "__main__":
    main()
