"""The AWS bill of Rollout's own work, per 1,000 releases of each path and per month of scheduled runs.

Runs calls_bench's four paths (bootstrap, a healthy canary with checks under traffic, a rejected upload,
queued-then-superseded) on one provisioned stack at speed 60 and measures, for each path:

- the AWS calls the control plane made (the sandbox's call record, as calls_bench counts them);
- each function's invocations and billed milliseconds with its configured memory, from the REPORT lines the
  sandbox writes to CloudWatch Logs as Lambda does, and the bytes of log the functions wrote;
- how long the release's canary alarms lived (PutMetricAlarm to DeleteAlarms).

Then it lets the reconciler run on its schedule (rate(5 minutes), every 5 real seconds at speed 60) and
measures RUNS runs the same way. `benchmarks.cost_model` prices it all.

Function durations are the sandbox's: the functions' own work is real time on this machine, and each AWS call
is answered by the sandbox (20-100 ms under load, about what AWS takes), so they are an estimate, not AWS's.
The target function's invocations (the checks, the traffic) are the customer's and are left out.

Run: .venv/bin/python -m benchmarks.cost_bench [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
from collections import Counter
from typing import Any

from benchmarks import cost_model
from benchmarks.calls_bench import SPEED, Recorder, canary, queued_then_superseded, rejected, released
from rollout.canary_alarms import CanaryScope, alarm_definitions
from rollout.lambda_metrics import metric_queries
from sandbox.call_log import Call, by_operation
from tests.support.e2e_world import RolloutWorld, rollout_world, wait_for

RUNS = 3  # reconciler runs measured
REPORT = re.compile(
    r"^REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: (\d+) ms\tMemory Size: (\d+) MB"
)
LOG_EVENT_OVERHEAD = 26  # bytes CloudWatch Logs counts per event on top of its message (PutLogEvents quota)
RECONCILER_SCHEDULE = "rate(5 minutes)"  # template.yaml, Reconciler's Schedule event


class LogMeter:
    """The control plane's log events since a mark: REPORT lines (invocations, billed ms, memory) and bytes."""

    def __init__(self, world: RolloutWorld) -> None:
        from moto.logs.models import logs_backends

        self.world = world
        self.logs = logs_backends[world.sb.account_id][world.sb.region]
        self.prefixes = (
            f"/aws/lambda/{world.stack_name}-",
            f"/aws/lambda/CodeDeployHook_{world.stack_name}_",
        )

    def mark(self) -> dict[tuple[str, str], int]:
        return {
            (group, stream): len(log_stream.events)
            for group, log_group in list(self.logs.groups.items())
            if group.startswith(self.prefixes)
            for stream, log_stream in list(log_group.streams.items())
        }

    def since(
        self, mark: dict[tuple[str, str], int]
    ) -> tuple[dict[str, tuple[int, float, int]], dict[str, int]]:
        runs: dict[str, list[int]] = {}
        memory: dict[str, int] = {}
        log_bytes: Counter[str] = Counter()
        for group, log_group in list(self.logs.groups.items()):
            if not group.startswith(self.prefixes):
                continue
            function = self.short(group.removeprefix("/aws/lambda/"))
            for stream, log_stream in list(log_group.streams.items()):
                for event in list(log_stream.events)[mark.get((group, stream), 0) :]:
                    log_bytes[function] += len(event.message.encode()) + LOG_EVENT_OVERHEAD
                    match = REPORT.match(event.message)
                    if match:
                        runs.setdefault(function, []).append(int(match.group(1)))
                        memory[function] = int(match.group(2))
        return {f: (len(ms), float(sum(ms)), memory[f]) for f, ms in runs.items()}, dict(log_bytes)

    def short(self, function: str) -> str:
        stack = self.world.stack_name
        return function.removeprefix(f"{stack}-").replace(f"CodeDeployHook_{stack}_", "") or function


def alarm_metrics_per_release() -> int:
    """Metrics the deployer's canary alarms read (a metric-math alarm is billed per metric it reads)."""
    scope = CanaryScope("f", "live", "2")
    return sum(
        sum(1 for m in d.get("Metrics", []) if "MetricStat" in m) or 1
        for d in alarm_definitions("p", scope, None)
    )


def metrics_per_get_metric_data() -> int:
    """Metrics one canary analysis requests: the new and the old version's figures."""
    return len(metric_queries("f", "live", ["2", "1"], 60))


def alarm_lifetimes(calls: list[Call]) -> list[float]:
    """Sandbox seconds from each release's PutMetricAlarm calls to the DeleteAlarms that removed them."""
    puts = sorted(c.at for c in calls if c.operation == "PutMetricAlarm" and c.ok)
    deletes = sorted(c.at for c in calls if c.operation == "DeleteAlarms" and c.ok)
    lifetimes = []
    for deleted in deletes:
        before = [p for p in puts if p <= deleted]
        if before:
            lifetimes.append((deleted - before[0]) * SPEED)
            puts = [p for p in puts if p > deleted]
    return lifetimes


def measure(world: RolloutWorld, recorder: Recorder, meter: LogMeter, action: Any) -> dict[str, Any]:
    mark = world.sb.calls.mark()
    logs = meter.mark()
    action()
    calls = recorder.settle(mark)
    runs, log_bytes = meter.since(logs)
    reconciler = meter.short(recorder.reconciler)
    runs.pop(reconciler, None)
    log_bytes.pop(reconciler, None)
    return {
        "calls": dict(sorted(by_operation(calls, by_role=False).items())),
        "lambda_runs": runs,
        "log_bytes": sum(log_bytes.values()),
        "alarm_lifetimes_sandbox_s": [round(s) for s in alarm_lifetimes(calls)],
        "check_invocations": sum(
            1 for c in calls if c.operation == "Invoke" and c.session.startswith("CodeDeploy")
        ),
    }


def reconciler_runs(world: RolloutWorld, recorder: Recorder, meter: LogMeter) -> dict[str, Any]:
    """RUNS scheduled runs of the reconciler on a quiet stack."""
    name = meter.short(recorder.reconciler)
    mark = world.sb.calls.mark()
    logs = meter.mark()

    def done() -> dict[str, tuple[int, float, int]] | None:
        runs, _ = meter.since(logs)
        return runs if runs.get(name, (0, 0, 0))[0] >= RUNS else None

    wait_for(done, 60, f"{RUNS} reconciler runs", interval=0.5)
    runs, log_bytes = meter.since(logs)
    invocations, billed_ms, memory = runs[name]
    calls = [c for c in world.sb.calls.since(mark) if c.session == recorder.reconciler]
    per_run = {k: v / invocations for k, v in by_operation(calls, by_role=False).items()}
    return {
        "runs": invocations,
        "billed_ms_per_run": billed_ms / invocations,
        "memory_mb": memory,
        "log_bytes_per_run": log_bytes.get(name, 0) / invocations,
        "calls_per_run": dict(sorted(per_run.items())),
    }


def usage_of(path: dict[str, Any], alarm_metrics: int, gmd_metrics: int) -> cost_model.Usage:
    calls = path["calls"]
    lifetimes = path["alarm_lifetimes_sandbox_s"]
    releases_with_alarms = sum(n for k, n in calls.items() if k == "cloudwatch:PutMetricAlarm") // 2
    hours = sum(cost_model.alarm_metric_hours(alarm_metrics, s) for s in lifetimes[:releases_with_alarms])
    deployer = path["lambda_runs"].get("ArtifactDeployer", (0, 0.0, 0))[0]
    return cost_model.Usage(
        calls=calls,
        lambda_runs=path["lambda_runs"],
        log_bytes=path["log_bytes"],
        alarm_metric_hours=hours,
        get_metric_data_metrics=calls.get("cloudwatch:GetMetricData", 0) * gmd_metrics,
        eventbridge_events=deployer,  # one S3 object event per upload reaches the deployer; CodeDeploy's are free
        sns_kms_requests_per_publish=0,  # the notification topic uses alias/aws/sns; see docs/COST.md
        traces=sum(n for n, _, _ in path["lambda_runs"].values()),  # upper bound: every invocation sampled
        extra={"s3:PutObject": deployer},  # the CI's uploads, one per deployer invocation
    )


def run() -> dict[str, Any]:
    with rollout_world("cost-bench", SPEED) as world:
        recorder = Recorder(world)
        meter = LogMeter(world)
        function = world.create_target("cost")
        paths = {
            "bootstrap": measure(
                world,
                recorder,
                meter,
                lambda: released(
                    world,
                    world.release_build(function, "healthy", "v1"),
                    "BOOTSTRAPPED",
                    "release.bootstrapped",
                ),
            ),
            "canary": measure(world, recorder, meter, lambda: canary(world, function, "v2")),
            "rejected": measure(world, recorder, meter, lambda: rejected(world, function)),
            "queued_then_superseded": measure(
                world, recorder, meter, lambda: queued_then_superseded(world, function)
            ),
        }
        reconciler = reconciler_runs(world, recorder, meter)
        sizes = release_item_sizes(world)
    return {"speed": SPEED, "paths": paths, "reconciler": reconciler, "release_item_bytes": sizes}


def release_item_sizes(world: RolloutWorld) -> list[int]:
    from boto3.dynamodb.types import TypeDeserializer

    client = world.client("dynamodb")
    items = client.scan(TableName=world.outputs["LedgerTableName"])["Items"]
    deserialize = TypeDeserializer().deserialize
    plain = [{k: deserialize(v) for k, v in item.items()} for item in items]
    return sorted(cost_model.item_size(item) for item in plain if str(item.get("sk", "")).startswith("REL#"))


def priced(result: dict[str, Any]) -> dict[str, Any]:
    sizes = result["release_item_bytes"]
    assumptions = cost_model.Assumptions(
        write_units_per_write=cost_model.write_units(int(statistics.median(sizes))) if sizes else 1
    )
    alarm_metrics = alarm_metrics_per_release()
    gmd_metrics = metrics_per_get_metric_data()
    bills = {
        name: cost_model.bill(usage_of(path, alarm_metrics, gmd_metrics), assumptions)
        for name, path in result["paths"].items()
    }
    trio = bills["queued_then_superseded"]
    bills["superseded_upload_alone"] = {k: trio[k] - 2 * bills["canary"].get(k, 0.0) for k in trio}
    rec = result["reconciler"]
    reconciler_usage = cost_model.Usage(
        calls=rec["calls_per_run"],
        lambda_runs={"Reconciler": (1, rec["billed_ms_per_run"], rec["memory_mb"])},
        log_bytes=int(rec["log_bytes_per_run"]),
        traces=1,
    )
    fixed = cost_model.monthly_fixed(
        cost_model.bill(reconciler_usage, assumptions),
        cost_model.runs_per_day(RECONCILER_SCHEDULE),
        secrets=2,  # the Slack webhook and signing secrets, when Slack is configured
        kms_keys=1,  # OperationsKey (the operations topic)
        standing_alarm_metrics=1,  # UndeliveredEventsAlarm
    )
    return {
        "assumptions": {
            "write_units_per_write": assumptions.write_units_per_write,
            "release_item_bytes_median": int(statistics.median(sizes)) if sizes else None,
            "alarm_metrics_per_release": alarm_metrics,
            "metrics_per_get_metric_data": gmd_metrics,
        },
        "per_1000": {name: cost_model.per_thousand(lines) for name, lines in bills.items()},
        "monthly_fixed": fixed,
    }


def print_tables(result: dict[str, Any], prices: dict[str, Any]) -> None:
    per = prices["per_1000"]
    names = ["bootstrap", "canary", "rejected", "superseded_upload_alone"]
    items = sorted(
        {k for n in names for k, v in per[n].items() if abs(v) >= 0.00005},
        key=lambda k: -per["canary"].get(k, 0),
    )
    print("| line item (USD per 1,000) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for item in items:
        print(f"| {item} | " + " | ".join(f"{per[n].get(item, 0.0):.4f}" for n in names) + " |")
    print("| **total** | " + " | ".join(f"**{sum(per[n].values()):.4f}**" for n in names) + " |")
    print("\nmonthly, before any release:")
    for item, dollars in sorted(prices["monthly_fixed"].items(), key=lambda kv: -kv[1]):
        print(f"  {item}: {dollars:.4f}")
    print(f"  total: {sum(prices['monthly_fixed'].values()):.4f}")
    print(f"\nassumptions: {prices['assumptions']}")
    for name, path in result["paths"].items():
        print(
            f"\n{name}: lambda {path['lambda_runs']}, log bytes {path['log_bytes']}, "
            f"alarm lifetimes (sandbox s) {path['alarm_lifetimes_sandbox_s']}, checks {path['check_invocations']}"
        )
    print(f"\nreconciler per run: {result['reconciler']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the measurements and the bill as JSON")
    args = parser.parse_args()
    logging.getLogger("sandbox").setLevel(logging.CRITICAL)
    result = run()
    prices = priced(result)
    if args.json:
        print(json.dumps({"measured": result, "priced": prices}, indent=2))
    else:
        print_tables(result, prices)


if __name__ == "__main__":
    main()
