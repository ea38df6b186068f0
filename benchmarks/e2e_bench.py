"""End-to-end figures of the control plane in the local sandbox, printed as JSON.

- reaction latency: upload (just before PutObject) -> the release's deploying_at in the ledger, over N
  uploads made one after another (each waits for the previous one to start deploying);
- rollout overhead: a whole release (upload -> completed_at) divided by the deployment config's shifting
  time at the sandbox's speed, for a canary and a linear config;
- burst: N functions released at once (first upload -> last completion) against one release alone.

Run: .venv/bin/python -m benchmarks.e2e_bench [--speed 60] [--uploads 20] [--burst 20]
Every time is real (wall-clock) seconds; the ledger's stamps come from the same machine's clock.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from rollout.ledger import Release
from sandbox.call_log import by_operation
from tests.support.e2e_world import RolloutWorld, Upload, parse_time, rollout_world, wait_for

CANARY = "Canary10Percent5Minutes"
LINEAR = "Linear10PercentEvery1Minute"
BATCH = 4


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = max(0, math.ceil(share * len(ordered)) - 1)
    return ordered[index]


def shifting_sandbox_seconds(world: RolloutWorld, config: str) -> float:
    """Sandbox seconds from the first traffic shift to the last, from the config CodeDeploy describes."""
    info = world.client("codedeploy").get_deployment_config(
        deploymentConfigName=f"CodeDeployDefault.Lambda{config}"
    )
    routing = info["deploymentConfigInfo"]["trafficRoutingConfig"]
    if routing["type"] == "TimeBasedCanary":
        return float(routing["timeBasedCanary"]["canaryInterval"] * 60)
    if routing["type"] == "TimeBasedLinear":
        linear = routing["timeBasedLinear"]
        return float((math.ceil(100 / linear["linearPercentage"]) - 1) * linear["linearInterval"] * 60)
    return 0.0


def bootstrapped(world: RolloutWorld, prefix: str, count: int, config: str = CANARY) -> list[str]:
    functions = [world.create_target(f"{prefix}{i}", config=config) for i in range(count)]
    # In batches below the deployer's reserved concurrency (5): the sandbox fails throttled async events
    # instead of queueing them, so a wider burst would lose uploads before the figures start.
    for start in range(0, count, BATCH):
        uploads = [world.release_build(f, "healthy", "v1") for f in functions[start : start + BATCH]]
        for upload in uploads:
            release = world.wait_release(upload, timeout=120)
            assert str(release.state) == "BOOTSTRAPPED", (upload.key, release.state, release.reason)
    return functions


def whole_release(world: RolloutWorld, upload: Upload, timeout: float = 300) -> tuple[Release, float]:
    release = world.wait_release(upload, timeout=timeout)
    assert str(release.state) == "SUCCEEDED", (upload.key, release.state, release.reason)
    return release, parse_time(release.completed_at).timestamp() - upload.uploaded_at


def deploying(world: RolloutWorld, upload: Upload) -> Release | None:
    release = world.release_of(upload)
    return release if release is not None and release.deploying_at else None


def reaction_latency(world: RolloutWorld, functions: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    uploads = []
    steps: dict[str, list[float]] = {}
    for function in functions:
        upload = world.release_build(function, "healthy", "v2")
        uploads.append(upload)
        release = wait_for(partial(deploying, world, upload), 60, f"{upload.key} to deploy", interval=0.05)
        latencies.append(parse_time(release.deploying_at).timestamp() - upload.uploaded_at)
        # Upload to the release in the ledger (S3 event, EventBridge, the deployer's start), then the
        # deployer's own steps (rollout.steps), in milliseconds.
        received = parse_time(release.received_at).timestamp() - upload.uploaded_at
        steps.setdefault("upload_to_received", []).append(received * 1000)
        timed = dict(release.steps or {})
        if timed:
            timed["unnamed"] = timed["total"] - sum(v for k, v in timed.items() if k != "total")
        for name, millis in timed.items():
            steps.setdefault(name, []).append(float(millis))
    for upload in uploads:
        whole_release(world, upload)
    return {
        "uploads": len(latencies),
        "median_s": round(statistics.median(latencies), 3),
        "p95_s": round(percentile(latencies, 0.95), 3),
        "min_s": round(min(latencies), 3),
        "max_s": round(max(latencies), 3),
        "median_step_ms": {name: round(statistics.median(values)) for name, values in steps.items()},
    }


def overhead(world: RolloutWorld, function: str, config: str, label: str) -> dict[str, Any]:
    release, wall = whole_release(world, world.release_build(function, "healthy", label))
    shifting = shifting_sandbox_seconds(world, config) / world.sb.clock.speed
    return {
        "config": config,
        "release_wall_s": round(wall, 2),
        "shifting_s": round(shifting, 2),
        "overhead_ratio": round(wall / shifting, 2),
        "deploying_to_completed_s": round(seconds(release.deploying_at, release.completed_at), 2),
    }


def seconds(start: str, end: str) -> float:
    return (parse_time(end) - parse_time(start)).total_seconds()


def burst(world: RolloutWorld, functions: list[str], single_wall: float) -> dict[str, Any]:
    mark = world.sb.calls.mark()
    with ThreadPoolExecutor(len(functions)) as pool:
        uploads = list(pool.map(lambda f: world.release_build(f, "healthy", "v4"), functions))
    first = min(u.uploaded_at for u in uploads)
    ends: list[Release] = []
    lost: list[str] = []
    deadline = time.monotonic() + 150
    for upload in uploads:
        try:
            ends.append(whole_release(world, upload, timeout=max(1.0, deadline - time.monotonic()))[0])
        except AssertionError:
            lost.append(upload.key)  # never recorded, or did not succeed
    wall = max(parse_time(r.completed_at).timestamp() for r in ends) - first if ends else float("nan")
    calls = world.sb.calls.since(mark)
    return {
        "functions": len(functions),
        "succeeded": len(ends),
        "not_succeeded": lost,
        "wall_s": round(wall, 2),
        "one_release_wall_s": round(single_wall, 2),
        "ratio_to_one": round(wall / single_wall, 2),
        # Where the burst's time went: waiting to deploy (upload -> DEPLOYING) or deploying.
        **burst_spans(ends, uploads),
        # What the sandbox served meanwhile ("operator": this benchmark's own uploads and polls).
        "sandbox_calls": len(calls),
        "sandbox_calls_per_second": round(len(calls) / wall, 1) if ends else None,
        "top_calls": dict(by_operation(calls).most_common(12)),
    }


def burst_spans(ends: list[Release], uploads: list[Upload]) -> dict[str, Any]:
    if not ends:
        return {}
    uploaded = {u.key: u.uploaded_at for u in uploads}
    waits = [parse_time(r.deploying_at).timestamp() - uploaded[r.key] for r in ends if r.deploying_at]
    deploying = [seconds(r.deploying_at, r.completed_at) for r in ends if r.deploying_at]
    spans = [(parse_time(r.deploying_at), parse_time(r.completed_at)) for r in ends if r.deploying_at]
    most = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans) if spans else 0
    return {
        "upload_to_deploying_s": {"median": round(statistics.median(waits), 2), "max": round(max(waits), 2)},
        "deploying_to_completed_s": {
            "median": round(statistics.median(deploying), 2),
            "max": round(max(deploying), 2),
        },
        "most_deploying_at_once": most,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument(
        "--deployer-concurrency", default="", help="the stack's DeployerReservedConcurrency (0: unreserved)"
    )
    args = parser.parse_args()
    parameters = (
        {"DeployerReservedConcurrency": args.deployer_concurrency} if args.deployer_concurrency else {}
    )
    logging.getLogger("sandbox").setLevel(logging.CRITICAL)
    started = time.monotonic()
    with rollout_world("e2e-bench", args.speed, parameters=parameters) as world:
        functions = bootstrapped(world, "bench", max(args.uploads, args.burst))
        linear = bootstrapped(world, "linear", 1, config=LINEAR)[0]
        reaction = reaction_latency(world, functions[: args.uploads])
        canary = overhead(world, functions[0], CANARY, "v3")
        linear_overhead = overhead(world, linear, LINEAR, "v2")
        burst_figures = burst(world, functions[: args.burst], canary["release_wall_s"])
    print(
        json.dumps(
            {
                "speed": args.speed,
                "parameters": parameters,
                "reaction_latency": reaction,
                "rollout_overhead": [canary, linear_overhead],
                "burst": burst_figures,
                "bench_seconds": round(time.monotonic() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
