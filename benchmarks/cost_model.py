"""What Rollout's own AWS usage costs: prices (cited) and pure functions from counts to dollars.

Inputs are what the sandbox measures (`benchmarks.cost_bench`): the AWS calls each path made, by
"service:Operation" (`sandbox.call_log.by_operation(..., by_role=False)`), and each function's invocations and
billed milliseconds with its configured memory (the REPORT lines Lambda writes). Nothing here calls AWS or the
sandbox, so the arithmetic is unit-tested on its own (tests/unit/test_cost_model.py).

Prices are us-east-1 list prices, without free tiers (an account running Rollout usually spends them
elsewhere) and without Savings Plans. Each one names the page it comes from and when it was read; a price that
could not be read on AWS's own page with the tools at hand says so (`assumption`), and docs/COST.md lists them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

HOURS_PER_MONTH = 730  # AWS's own monthly-hours figure in its pricing examples and calculator
READ = "2026-11-29"


@dataclass(frozen=True)
class Price:
    dollars: float
    unit: str
    source: str
    read: str = READ
    note: str = ""
    assumption: bool = False  # not read on AWS's page itself (see note)


PRICES: dict[str, Price] = {
    "lambda_request": Price(
        0.20 / 1e6,
        "request",
        "https://aws.amazon.com/lambda/pricing/",
        note="$0.20 per 1M requests. The page's rate cells are filled in by script and empty in the stored text; "
        "the figure is the one its examples use, as quoted by cloudchipr.com/blog/aws-lambda-pricing and "
        "artillery's prices.js (app.unpkg.com/artillery@2.0.28/files/lib/platform/aws-lambda/prices.js)",
        assumption=True,
    ),
    "lambda_gb_second_arm": Price(
        0.0000133334,
        "GB-second (arm64, first 7.5 billion GB-s a month)",
        "https://aws.amazon.com/lambda/pricing/",
        note="$0.0000133334 per GB-s for Arm; same sources as the request price (the page's cells are scripted)",
        assumption=True,
    ),
    "dynamodb_wru": Price(
        0.625 / 1e6,
        "write request unit (on-demand, standard table class)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        note="Units per request from the page (1 WRU per 1 KB written, transactional writes 2); the $0.625 per "
        "million rate (after the November 2024 50% cut) as quoted by airbyte.com/data-engineering-resources/"
        "dynamodb-pricing; the stored AWS page text does not show the rate",
        assumption=True,
    ),
    "dynamodb_rru": Price(
        0.125 / 1e6,
        "read request unit (on-demand)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        note="1 RRU per strongly consistent read up to 4 KB, 0.5 eventually consistent, 2 transactional (page); "
        "rate as for writes",
        assumption=True,
    ),
    "cloudwatch_alarm_metric_month": Price(
        0.10,
        "alarm metric-month (standard resolution), prorated by the hour",
        "https://aws.amazon.com/cloudwatch/pricing/",
        note="$0.10 per alarm metric; a metric-math alarm counts each metric it reads. Quoted by "
        "c3x.dev/resources/aws/aws_cloudwatch_metric_alarm and bills shown in amazonwebshark.com/"
        "unexpected-cloudwatch-in-the-billing-area (fractional alarm-months: prorated by time)",
        assumption=True,
    ),
    "cloudwatch_get_metric_data_metric": Price(
        0.01 / 1000,
        "metric requested by GetMetricData",
        "https://aws.amazon.com/cloudwatch/pricing/",
        note="$0.01 per 1,000 metrics requested (GetMetricData); GetMetricStatistics, ListMetrics, PutMetricData "
        "$0.01 per 1,000 requests; other CloudWatch API calls (PutMetricAlarm, DeleteAlarms, DescribeAlarms) "
        "are not on the price list. Quoted from the page in github.com/nishinoshake/aws-rough/issues/37",
        assumption=True,
    ),
    "cloudwatch_request": Price(
        0.01 / 1000,
        "GetMetricStatistics / ListMetrics / PutMetricData request",
        "https://aws.amazon.com/cloudwatch/pricing/",
        note="as above",
        assumption=True,
    ),
    "logs_ingested_gb": Price(
        0.50,
        "GB of CloudWatch Logs ingested (standard class)",
        "https://aws.amazon.com/cloudwatch/pricing/",
        note="not on the brief's list, but every invocation writes logs; $0.50 per GB is the long-standing "
        "standard-class rate, not read on the page with the tools at hand",
        assumption=True,
    ),
    "sns_publish": Price(
        0.50 / 1e6,
        "Publish to a standard topic (64 KB chunk)",
        "https://aws.amazon.com/sns/pricing/",
        note="$0.50 per 1M publishes; deliveries to Lambda carry no delivery charge. Quoted by "
        "factualminds.com/blog/amazon-sns-pricing-publishes-fanout-protocols (2026-06-13)",
        assumption=True,
    ),
    "eventbridge_event": Price(
        1.00 / 1e6,
        "event ingested (custom or AWS opt-in data event, 64 KB chunk)",
        "https://aws.amazon.com/eventbridge/pricing/",
        note="The page (read) says AWS management events (CodeDeploy's state changes) are ingested free and that "
        "S3's object events are 'AWS opt-in data events'; their rate is in a scripted table. $1.00 per million "
        "is the custom-events rate, assumed for S3's events",
        assumption=True,
    ),
    "s3_class_a": Price(
        0.005 / 1000,
        "PUT, COPY, POST, LIST request (S3 Standard)",
        "https://aws.amazon.com/s3/pricing/",
        note="The page's request rates are scripted (api-evangelist's capture of 2026-09-20 says so); $0.005 per "
        "1,000 is the long-standing us-east-1 rate",
        assumption=True,
    ),
    "s3_class_b": Price(
        0.0004 / 1000,
        "GET, HEAD and all other requests (S3 Standard)",
        "https://aws.amazon.com/s3/pricing/",
        note="as above: $0.0004 per 1,000",
        assumption=True,
    ),
    "sqs_request": Price(
        0.40 / 1e6,
        "standard queue request (64 KB chunk)",
        "https://aws.amazon.com/sqs/pricing/",
        note="$0.40 per 1M requests; the quoted 'SQS 1,000,000 requests $0.40' in gist.github.com/mkfmnn "
        "(2017, us-east-1)",
        assumption=True,
    ),
    "secret_month": Price(
        0.40,
        "secret-month",
        "https://aws.amazon.com/secrets-manager/pricing/",
        note="$0.40 per secret per month, prorated; from the page's pricing examples as captured (verbatim) by "
        "api-evangelist/amazon-secrets-manager on 2026-09-20",
    ),
    "secrets_api_call": Price(
        0.05 / 10000,
        "Secrets Manager API call",
        "https://aws.amazon.com/secrets-manager/pricing/",
        note="$0.05 per 10,000 API calls, same capture",
    ),
    "kms_key_month": Price(
        1.00,
        "customer managed key-month",
        "https://aws.amazon.com/kms/pricing/",
        note="$1 per key per month; quoted in gist.github.com/dasgoll (KMS pricing example). AWS managed keys "
        "(alias/aws/sns) have no monthly fee",
        assumption=True,
    ),
    "kms_request": Price(
        0.03 / 10000,
        "KMS request (symmetric)",
        "https://aws.amazon.com/kms/pricing/",
        note="$0.03 per 10,000 requests, same source",
        assumption=True,
    ),
    "xray_trace": Price(
        5.00 / 1e6,
        "trace recorded",
        "https://aws.amazon.com/xray/pricing/",
        note="$5.00 per 1M traces recorded (first 100,000 a month free); not found with the tools at hand",
        assumption=True,
    ),
}

# Call-log operations and how each is billed. Anything not listed is free or not billed per request
# (CodeDeploy for Lambda, IAM, STS, Lambda's control-plane API, CloudWatch's alarm API, ...).
DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
DYNAMODB_READS = {"GetItem", "Query", "Scan"}
S3_CLASS_A = {"PutObject", "CopyObject", "ListObjects", "ListObjectsV2", "ListObjectVersions", "PostObject"}
S3_CLASS_B = {"GetObject", "HeadObject", "GetObjectTagging", "GetObjectAttributes"}
CLOUDWATCH_PRICED_REQUESTS = {"GetMetricStatistics", "ListMetrics", "PutMetricData"}


@dataclass(frozen=True)
class Usage:
    """What one path (or one scheduled run) used, as the sandbox measured it."""

    calls: Mapping[str, int]  # "service:Operation" -> count, failed calls included (AWS bills them too)
    lambda_runs: Mapping[str, tuple[int, float, int]]  # function -> (invocations, billed ms, memory MB)
    log_bytes: int = 0
    alarm_metric_hours: float = 0.0  # per-release alarms: alarm metrics x billed hours each lived
    get_metric_data_metrics: int = 0  # metrics requested over all GetMetricData calls
    eventbridge_events: int = 0  # billed events (S3's object events; CodeDeploy's are free)
    sns_kms_requests_per_publish: int = 0  # KMS requests an encrypted topic makes per publish
    traces: int = 0  # X-Ray traces recorded
    extra: Mapping[str, int] | None = None  # calls made outside the recorded ones (e.g. the upload itself)


@dataclass(frozen=True)
class Assumptions:
    write_units_per_write: int = 1  # ceil(item KB) of the items written
    read_units_per_read: float = 1.0  # strongly consistent reads of items up to 4 KB
    items_per_transaction: int = 2  # TransactWriteItems: the release and the lock
    round_alarm_hours_up: bool = True  # an alarm that lives 7 minutes is billed for its hour


def lambda_cost(invocations: int, billed_ms: float, memory_mb: int) -> dict[str, float]:
    """Requests and duration (arm64) of one function."""
    gb_seconds = memory_mb / 1024 * billed_ms / 1000
    return {
        "requests": invocations * PRICES["lambda_request"].dollars,
        "duration": gb_seconds * PRICES["lambda_gb_second_arm"].dollars,
    }


def dynamodb_units(calls: Mapping[str, int], assumptions: Assumptions) -> tuple[float, float]:
    """(write units, read units) of the DynamoDB calls."""
    writes = reads = 0.0
    for key, count in calls.items():
        service, _, operation = _operation(key)
        if service != "dynamodb":
            continue
        if operation in DYNAMODB_WRITES:
            writes += count * assumptions.write_units_per_write
        elif operation == "TransactWriteItems":
            writes += count * 2 * assumptions.items_per_transaction * assumptions.write_units_per_write
        elif operation in DYNAMODB_READS:
            reads += count * assumptions.read_units_per_read
        elif operation == "TransactGetItems":
            reads += count * 2 * assumptions.items_per_transaction
    return writes, reads


def count(calls: Mapping[str, int], service: str, operations: set[str] | None = None) -> int:
    total = 0
    for key, n in calls.items():
        svc, _, operation = _operation(key)
        if svc == service and (operations is None or operation in operations):
            total += n
    return total


def alarm_metric_hours(alarm_metrics: int, lifetime_seconds: float, round_up: bool = True) -> float:
    """Alarm-metric hours of alarms that lived `lifetime_seconds` (CloudWatch prorates alarms by the hour)."""
    hours = lifetime_seconds / 3600
    if round_up:
        hours = max(1, math.ceil(hours)) if lifetime_seconds > 0 else 0
    return alarm_metrics * hours


def bill(usage: Usage, assumptions: Assumptions | None = None) -> dict[str, float]:
    """Dollars by line item for one occurrence of `usage`."""
    a = assumptions or Assumptions()
    calls: dict[str, int] = dict(usage.calls)
    for key, n in (usage.extra or {}).items():
        calls[key] = calls.get(key, 0) + n
    lines: dict[str, float] = {}
    for function, (invocations, billed_ms, memory_mb) in sorted(usage.lambda_runs.items()):
        cost = lambda_cost(invocations, billed_ms, memory_mb)
        lines[f"Lambda {function} requests"] = cost["requests"]
        lines[f"Lambda {function} duration"] = cost["duration"]
    writes, reads = dynamodb_units(calls, a)
    lines["DynamoDB writes"] = writes * PRICES["dynamodb_wru"].dollars
    lines["DynamoDB reads"] = reads * PRICES["dynamodb_rru"].dollars
    lines["CloudWatch alarms (per-release)"] = (
        usage.alarm_metric_hours / HOURS_PER_MONTH * PRICES["cloudwatch_alarm_metric_month"].dollars
    )
    lines["CloudWatch GetMetricData"] = (
        usage.get_metric_data_metrics * PRICES["cloudwatch_get_metric_data_metric"].dollars
    )
    lines["CloudWatch other priced requests"] = (
        count(calls, "cloudwatch", CLOUDWATCH_PRICED_REQUESTS) * PRICES["cloudwatch_request"].dollars
    )
    lines["CloudWatch Logs ingestion"] = usage.log_bytes / 1e9 * PRICES["logs_ingested_gb"].dollars
    publishes = count(calls, "sns", {"Publish"})
    lines["SNS publishes"] = publishes * PRICES["sns_publish"].dollars
    lines["EventBridge events"] = usage.eventbridge_events * PRICES["eventbridge_event"].dollars
    lines["S3 requests"] = (
        count(calls, "s3", S3_CLASS_A) * PRICES["s3_class_a"].dollars
        + count(calls, "s3", S3_CLASS_B) * PRICES["s3_class_b"].dollars
    )
    lines["SQS requests"] = count(calls, "sqs") * PRICES["sqs_request"].dollars
    lines["Secrets Manager API calls"] = count(calls, "secretsmanager") * PRICES["secrets_api_call"].dollars
    kms = count(calls, "kms") + publishes * usage.sns_kms_requests_per_publish
    lines["KMS requests"] = kms * PRICES["kms_request"].dollars
    lines["X-Ray traces"] = usage.traces * PRICES["xray_trace"].dollars
    return lines


def per_thousand(lines: Mapping[str, float]) -> dict[str, float]:
    return {name: dollars * 1000 for name, dollars in lines.items()}


def monthly_fixed(
    reconciler_run: Mapping[str, float],
    runs_per_day: float,
    secrets: int,
    kms_keys: int,
    standing_alarm_metrics: int,
) -> dict[str, float]:
    """What the stack costs a month before any release: the reconciler's scheduled runs (`reconciler_run` is
    `bill()` of one run), the secrets, the customer managed keys and the stack's own alarms."""
    runs = runs_per_day * 365 / 12
    lines = {f"reconciler: {name}": dollars * runs for name, dollars in reconciler_run.items() if dollars}
    lines["Secrets Manager secrets"] = secrets * PRICES["secret_month"].dollars
    lines["KMS customer managed keys"] = kms_keys * PRICES["kms_key_month"].dollars
    lines["CloudWatch standing alarms"] = (
        standing_alarm_metrics * PRICES["cloudwatch_alarm_metric_month"].dollars
    )
    return lines


def runs_per_day(schedule: str) -> float:
    """Runs a day of an EventBridge `rate(N unit)` schedule."""
    inner = schedule.strip().removeprefix("rate(").removesuffix(")")
    amount, unit = inner.split()
    seconds = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}[unit]
    return 86400 / (int(amount) * seconds)


def item_size(value: Any, name: str = "") -> int:
    """DynamoDB's size of an attribute (name included), per its item-size rules: strings and binaries by length,
    numbers about one byte per two digits plus one, booleans and nulls one byte, lists and maps 3 bytes plus one
    per element plus the elements."""
    size = len(name.encode())
    if isinstance(value, bool) or value is None:
        return size + 1
    if isinstance(value, str):
        return size + len(value.encode())
    if isinstance(value, bytes | bytearray):
        return size + len(value)
    if isinstance(value, int | float | Decimal):
        digits = len(str(abs(value)).replace(".", "").lstrip("0")) or 1
        return size + math.ceil(digits / 2) + 1
    if isinstance(value, Mapping):
        return size + 3 + sum(1 + item_size(v, str(k)) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return size + 3 + sum(1 + item_size(v) for v in value)
    raise TypeError(f"no DynamoDB size for {type(value).__name__}")


def write_units(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / 1024))


def _operation(key: str) -> tuple[str, str, str]:
    """("service", ":", "Operation") of a call-log key, its " [outcome]" suffix dropped."""
    return key.split(" [", 1)[0].partition(":")
