"""End-to-end figures of the control plane in the local sandbox, printed as JSON.

- reaction latency: upload (just before PutObject) -> the release's deploying_at in the ledger, over N
  uploads made one after another (each waits for the previous one to start deploying);
- rollout overhead: a whole release (upload -> completed_at) divided by the deployment config's shifting
  time at the sandbox's speed, for a canary and a linear config;
- burst: N functions released at once (first upload -> last completion) against one release alone.

Run: .venv/bin/python -m benchmarks.e2e_bench [--speed 60] [--uploads 20] [--burst 20[,50...]] [--throttle SHARE]
Every time is real (wall-clock) seconds; the ledger's stamps come from the same machine's clock.

`--burst 20,50` measures each burst in turn on one stack, against the same one-release figure. `--throttle 0.2`
makes the sandbox refuse that share of the control plane's UpdateFunctionCode, PublishVersion and GetFunction
calls (TooManyRequestsException, as Lambda throttles) and CreateDeployment calls (ThrottlingException "Rate
exceeded", as CodeDeploy does) during the bursts; the burst figures then count the throttled calls from the
sandbox's call record (each one retried by the client, or the release would not succeed).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from rollout.ledger import Release
from sandbox.call_log import OPERATOR, Call, by_operation, cpu_by_operation
from tests.support.e2e_world import RolloutWorld, Upload, parse_time, rollout_world, wait_for

CANARY = "Canary10Percent5Minutes"
LINEAR = "Linear10PercentEvery1Minute"
BATCH = 4
# (service, operation, error code, message) the sandbox answers with `--throttle`: what Lambda and CodeDeploy
# answer when a control-plane API's request rate is exceeded.
THROTTLES = (
    ("lambda", "UpdateFunctionCode", "TooManyRequestsException", "Rate exceeded"),
    ("lambda", "PublishVersion", "TooManyRequestsException", "Rate exceeded"),
    ("lambda", "GetFunction", "TooManyRequestsException", "Rate exceeded"),
    ("codedeploy", "CreateDeployment", "ThrottlingException", "Rate exceeded"),
)
THROTTLE_CODES = {code for _, _, code, _ in THROTTLES}
BURST_POLL_SECONDS = 1.0


def tree_cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by this process (the sandbox runs in it; its own time and that of children it
    reaped) and by every process under it (the Lambda workers the sandbox's zygote forks, alive, or ended and
    counted in their parent's children time)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended between the listing and the read
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = sum(int(f) for f in fields[11:15]) / tick  # utime, stime, cutime, cstime
    mine, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in mine:
                mine.add(pid)
                frontier.append(pid)
    own = used.get(os.getpid(), 0.0)
    return own, sum(used.get(pid, 0.0) for pid in mine) - own


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


def whole_release(
    world: RolloutWorld, upload: Upload, timeout: float = 300, interval: float = 0.2
) -> tuple[Release, float]:
    release = world.wait_release(upload, timeout=timeout, interval=interval)
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
        add_step_timings(steps, release, upload.uploaded_at)
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


def add_step_timings(steps: dict[str, list[float]], release: Release, uploaded_at: float) -> None:
    """Upload to the release in the ledger (S3 event, EventBridge, the deployer's start), then the deployer's
    own steps (rollout.steps), in milliseconds."""
    received = parse_time(release.received_at).timestamp() - uploaded_at
    steps.setdefault("upload_to_received", []).append(received * 1000)
    timed = dict(release.steps or {})
    if timed:
        timed["unnamed"] = timed["total"] - sum(v for k, v in timed.items() if k != "total")
    for name, millis in timed.items():
        steps.setdefault(name, []).append(float(millis))


def overhead(world: RolloutWorld, function: str, config: str, label: str) -> dict[str, Any]:
    sandbox_cpu, functions_cpu = tree_cpu_seconds()
    release, wall = whole_release(world, world.release_build(function, "healthy", label))
    sandbox_after, functions_after = tree_cpu_seconds()
    sandbox_cpu, functions_cpu = sandbox_after - sandbox_cpu, functions_after - functions_cpu
    shifting = shifting_sandbox_seconds(world, config) / world.sb.clock.speed
    return {
        # The sandbox, the functions and this benchmark's polls, from upload to the ledger's completion.
        "cpu_s": round(sandbox_cpu + functions_cpu, 2),
        "cpu_s_sandbox": round(sandbox_cpu, 2),
        "cpu_s_lambda_workers": round(functions_cpu, 2),
        "config": config,
        "release_wall_s": round(wall, 2),
        "shifting_s": round(shifting, 2),
        "overhead_ratio": round(wall / shifting, 2),
        "deploying_to_completed_s": round(seconds(release.deploying_at, release.completed_at), 2),
        "deployment_phases_s": deployment_phases(world, [release]),
    }


def deployment_phases(world: RolloutWorld, releases: list[Release]) -> dict[str, float]:
    """Median real seconds of each phase of the releases' CodeDeploy deployments: created -> started, each
    lifecycle event (its hook's run, or the traffic shift), and completed -> the ledger's completion (the
    state-change event's delivery and the DeploymentEvents function)."""
    codedeploy = world.client("codedeploy")
    clock = world.sb.clock

    origin = clock._sandbox_origin  # sandbox time and this machine's clock agree there

    def real(stamp: Any) -> float:  # the deployment's stamps are sandbox time: back to this machine's
        return origin + (stamp.timestamp() - origin) / clock.speed

    phases: dict[str, list[float]] = {}
    for release in releases:
        if not release.deployment_id:
            continue
        info = codedeploy.get_deployment(deploymentId=release.deployment_id)["deploymentInfo"]
        (target,) = codedeploy.list_deployment_targets(deploymentId=release.deployment_id)["targetIds"]
        lambda_target = codedeploy.get_deployment_target(deploymentId=release.deployment_id, targetId=target)[
            "deploymentTarget"
        ]["lambdaTarget"]
        spans = [("created_to_started", info["createTime"], info.get("startTime"))]
        spans += [
            (event["lifecycleEventName"], event.get("startTime"), event.get("endTime"))
            for event in lambda_target["lifecycleEvents"]
        ]
        for name, start, end in spans:
            if start is not None and end is not None:
                phases.setdefault(name, []).append(real(end) - real(start))
        if info.get("completeTime") is not None and release.completed_at:
            ledger = parse_time(release.completed_at).timestamp()
            phases.setdefault("completed_to_ledger", []).append(ledger - real(info["completeTime"]))
    return {name: round(statistics.median(values), 2) for name, values in phases.items()}


def seconds(start: str, end: str) -> float:
    return (parse_time(end) - parse_time(start)).total_seconds()


def burst(
    world: RolloutWorld,
    functions: list[str],
    single: dict[str, Any],
    label: str = "v4",
    throttle: float = 0.0,
) -> dict[str, Any]:
    single_wall = single["release_wall_s"]
    single_bake = single["deployment_phases_s"].get("AllowTraffic", 0.0)
    mark = world.sb.calls.mark()
    throttles_before = deployer_throttles(world)
    faults = [
        world.sb.faults.fail(service, operation, code, share=throttle, message=message)
        for service, operation, code, message in (THROTTLES if throttle else ())
    ]
    lambdas = world.sb.lambda_service
    cold_before, invocations_before = lambdas.cold_starts, lambdas.invocations
    sandbox_cpu, functions_cpu = tree_cpu_seconds()
    with ThreadPoolExecutor(len(functions)) as pool:
        uploads = list(pool.map(lambda f: world.release_build(f, "healthy", label), functions))
    first = min(u.uploaded_at for u in uploads)
    ends: list[Release] = []
    lost: list[str] = []
    deadline = time.monotonic() + 150 + 3 * len(functions)
    for upload in uploads:
        try:
            # The figures come from the ledger's own stamps, so reading it once a second loses nothing,
            # and keeps this benchmark's own reads (its process is the sandbox's) out of the burst's CPU.
            remaining = max(1.0, deadline - time.monotonic())
            ends.append(whole_release(world, upload, timeout=remaining, interval=BURST_POLL_SECONDS)[0])
        except AssertionError:
            lost.append(upload.key)  # never recorded, or did not succeed
    for fault in faults:
        fault.remaining = 0  # the rules stay listed (their counts are read below) but stop refusing
    wall = max(parse_time(r.completed_at).timestamp() for r in ends) - first if ends else float("nan")
    sandbox_after, functions_after = tree_cpu_seconds()
    sandbox_cpu, functions_cpu = sandbox_after - sandbox_cpu, functions_after - functions_cpu
    cpu = sandbox_cpu + functions_cpu
    invocations = lambdas.invocations - invocations_before
    calls = world.sb.calls.since(mark)
    return {
        "functions": len(functions),
        "succeeded": len(ends),
        "not_succeeded": lost,
        "wall_s": round(wall, 2),
        "one_release_wall_s": round(single_wall, 2),
        "ratio_to_one": round(wall / single_wall, 2),
        # CPU seconds of the whole burst (sandbox, functions, polls), per release, and the least wall time
        # that CPU allows on this machine's cores, as a share of one release: the ratio's floor here.
        "cpu_s": round(cpu, 1),
        "cpu_s_sandbox": round(sandbox_cpu, 1),
        "cpu_s_lambda_workers": round(functions_cpu, 1),
        "cpu_s_per_release": round(cpu / len(functions), 2),
        # Lambda invocations the burst made (control plane and the released functions), how many started a
        # new worker, and the workers' CPU per invocation.
        "lambda_invocations": invocations,
        "lambda_cold_starts": lambdas.cold_starts - cold_before,
        "lambda_worker_cpu_ms_per_invocation": round(functions_cpu * 1000 / max(1, invocations), 1),
        "cpu_floor_ratio": round(cpu / (os.cpu_count() or 1) / single_wall, 2),
        # The releases of a burst move in step: all wait out the canary's bake (AllowTraffic) at about the
        # same time, when there is little to compute, so the burst cannot end before that wait plus its CPU
        # spread over the cores: the ratio's floor with the wait counted.
        "cpu_and_bake_floor_ratio": round((single_bake + cpu / (os.cpu_count() or 1)) / single_wall, 2),
        # Where the burst's time went: waiting to deploy (upload -> DEPLOYING) or deploying.
        **burst_spans(ends, uploads),
        "deployment_phases_s": deployment_phases(world, ends),
        # What the sandbox served meanwhile ("operator": this benchmark's own uploads and polls).
        "sandbox_calls": len(calls),
        "sandbox_calls_per_second": round(len(calls) / wall, 1) if ends else None,
        "top_calls": dict(by_operation(calls).most_common(12)),
        # The sandbox's request threads' CPU for those calls (the rest of its CPU is CodeDeploy's runner, the
        # alarm evaluator, the Lambda runtime's and the event delivery's threads), and the costliest operations.
        "sandbox_request_cpu_s": round(sum(c.cpu_ms for c in calls) / 1000, 1),
        "sandbox_cpu_by_operation": dict(list(cpu_by_operation(calls).items())[:12]),
        # A release that went QUEUED waited behind another release of its own function; none should here,
        # each function has one upload in the burst.
        "queued": sorted(r.key for r in ends if any(h.get("state") == "QUEUED" for h in r.history or [])),
        # Deployer invocations Lambda refused for its reserved concurrency (their events wait and retry).
        "deployer_throttles": deployer_throttles(world) - throttles_before,
        "throttling": throttled_calls(calls, sum(f.injected for f in faults)) if throttle else None,
    }


def throttled_calls(calls: list[Call], injected: int) -> dict[str, Any]:
    """The control plane's throttled calls in the burst and what followed each: a retry of the same operation
    by the same caller (botocore's standard mode backs off with jitter between attempts)."""
    mine = [c for c in calls if c.role != OPERATOR]
    throttled = [c for c in mine if c.error in THROTTLE_CODES]
    by_op: dict[str, int] = {}
    for call in throttled:
        by_op[f"{call.service}:{call.operation}"] = by_op.get(f"{call.service}:{call.operation}", 0) + 1
    retried = 0
    for call in throttled:
        later = (
            c
            for c in mine
            if c.seq > call.seq and c.session == call.session and c.operation == call.operation
        )
        if next(later, None) is not None:
            retried += 1
    return {
        "injected": injected,
        "throttled_calls": len(throttled),
        "by_operation": dict(sorted(by_op.items())),
        "followed_by_a_retry": retried,
        "control_plane_calls": len(mine),
    }


def deployer_throttles(world: RolloutWorld) -> int:
    """Throttles of the artifact deployer the sandbox recorded (Lambda's AWS/Lambda Throttles metric)."""
    from sandbox.metrics import backend

    name = world.outputs["ArtifactDeployerName"]
    return sum(
        1
        for datum in list(backend(world.sb).metric_data)
        if datum.namespace == "AWS/Lambda"
        and datum.name == "Throttles"
        and [(d.name, d.value) for d in datum.dimensions] == [("FunctionName", name)]
    )


def burst_spans(ends: list[Release], uploads: list[Upload]) -> dict[str, Any]:
    if not ends:
        return {}
    uploaded = {u.key: u.uploaded_at for u in uploads}
    waits = [parse_time(r.deploying_at).timestamp() - uploaded[r.key] for r in ends if r.deploying_at]
    steps: dict[str, list[float]] = {}
    for release in ends:
        add_step_timings(steps, release, uploaded[release.key])
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
        "median_step_ms": {name: round(statistics.median(values)) for name, values in steps.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--burst", default="20", help="functions released at once; several: 20,50")
    parser.add_argument(
        "--throttle", type=float, default=0.0, help="share of control-plane calls throttled during the bursts"
    )
    parser.add_argument(
        "--deployer-concurrency", default="", help="the stack's DeployerReservedConcurrency (0: unreserved)"
    )
    args = parser.parse_args()
    parameters = (
        {"DeployerReservedConcurrency": args.deployer_concurrency} if args.deployer_concurrency else {}
    )
    logging.getLogger("sandbox").setLevel(logging.CRITICAL)
    started = time.monotonic()
    bursts = [int(n) for n in str(args.burst).split(",") if n.strip()]
    with rollout_world("e2e-bench", args.speed, parameters=parameters) as world:
        functions = bootstrapped(world, "bench", max([args.uploads, *bursts]))
        linear = bootstrapped(world, "linear", 1, config=LINEAR)[0]
        reaction = reaction_latency(world, functions[: args.uploads])
        canary = overhead(world, functions[0], CANARY, "v3")
        linear_overhead = overhead(world, linear, LINEAR, "v2")
        burst_figures = [
            burst(world, functions[:n], canary, f"b{i}-{n}", args.throttle) for i, n in enumerate(bursts)
        ]
    print(
        json.dumps(
            {
                "speed": args.speed,
                "parameters": parameters,
                "reaction_latency": reaction,
                "rollout_overhead": [canary, linear_overhead],
                "throttle": args.throttle,
                "burst": burst_figures[0] if len(burst_figures) == 1 else burst_figures,
                "bench_seconds": round(time.monotonic() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
