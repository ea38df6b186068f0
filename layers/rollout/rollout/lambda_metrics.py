"""Reading a function's per-version `AWS/Lambda` figures from CloudWatch (GetMetricData).

Lambda publishes Invocations, Errors, Throttles and Duration with the dimensions FunctionName,
Resource (`function:alias`) and ExecutedVersion for invocations through an alias, which is how a
canary's traffic reaches each version.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from rollout import aws
from rollout.canary import VersionFigures
from rollout.errors import MetricsUnreadable

_SUMS = ("Invocations", "Errors", "Throttles")
_PERIOD_UNIT = 60

# How long after a minute ends its figures are taken as complete. "Lambda sends metric data to
# CloudWatch in 1-minute intervals" (AWS Lambda Developer Guide, "Using CloudWatch metrics with
# Lambda"): a minute's invocations reach CloudWatch only after that minute ends, and CloudWatch then
# takes a while more to make them readable (AWS re:Post, "Understanding CloudWatch Alarm Evaluation:
# Why Alarms Delay"); neither documents a bound. Read earlier, the canary's last minute (and its
# errors) may be missing, and a version that failed at the end of its canary would pass.
METRICS_SETTLE = timedelta(minutes=2)
# Pauses between reads while the window's figures settle: doubling from the first, at most the last
# (CloudWatch's clock, in the Date of its answers, decides when they are final; see read_version_figures).
FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 30.0


def query_window(start: datetime, end: datetime) -> tuple[datetime, datetime, int]:
    """Whole-minute bounds covering [start, end) and one period spanning them (a multiple of 60 s)."""
    start = start.astimezone(UTC).replace(second=0, microsecond=0)
    end_utc = end.astimezone(UTC)
    rounded_end = end_utc.replace(second=0, microsecond=0)
    if rounded_end < end_utc:
        rounded_end += timedelta(minutes=1)
    if rounded_end <= start:
        rounded_end = start + timedelta(minutes=1)
    period = math.ceil((rounded_end - start).total_seconds() / _PERIOD_UNIT) * _PERIOD_UNIT
    return start, rounded_end, period


def metric_queries(function: str, alias: str, versions: Iterable[str], period: int) -> list[dict[str, Any]]:
    queries = []
    for index, version in enumerate(versions):
        dimensions = [
            {"Name": "FunctionName", "Value": function},
            {"Name": "Resource", "Value": f"{function}:{alias}"},
            {"Name": "ExecutedVersion", "Value": version},
        ]
        stats = [(name, "Sum") for name in _SUMS] + [("Duration", "p99")]
        for name, stat in stats:
            queries.append(
                {
                    "Id": f"{name.lower()}_{index}",
                    "Label": f"{version} {name} {stat}",
                    "MetricStat": {
                        "Metric": {"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": dimensions},
                        "Period": period,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )
    return queries


def read_version_figures(
    function: str,
    alias: str,
    versions: list[str],
    start: datetime,
    end: datetime,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, VersionFigures]:
    """Each version's invocations, errors, throttles (sums) and p99 duration over the window, read
    once CloudWatch's own clock (the Date of its answer) is METRICS_SETTLE past the window's last minute.

    Raises MetricsUnreadable when CloudWatch did not return a figure in full: GetMetricData answers
    each query with a StatusCode (Complete, PartialData while a NextToken follows, InternalError or
    Forbidden, the latter two with no values), and a figure it could not return is unknown, never 0;
    and when the window's figures are not yet final by `deadline` (on `clock`): figures that may
    still lack the window's last minute prove nothing.
    """
    final_from = query_window(start, end)[1] + METRICS_SETTLE
    pause = FIRST_PAUSE_S
    while True:
        figures, cloudwatch_now = _read_figures(function, alias, versions, start, end)
        if cloudwatch_now >= final_from:
            return figures
        wait = min(pause, (final_from - cloudwatch_now).total_seconds())
        if clock() + wait >= deadline:
            raise MetricsUnreadable(
                f"CloudWatch's figures for the canary window (to {_iso(end)}) are not final before the "
                f"hook's deadline: Lambda sends them a minute at a time, so they are read from "
                f"{_iso(final_from)} on CloudWatch's clock, which said {_iso(cloudwatch_now)}"
            )
        sleep(wait)
        pause = min(pause * 2, MAX_PAUSE_S)


def _read_figures(
    function: str, alias: str, versions: list[str], start: datetime, end: datetime
) -> tuple[dict[str, VersionFigures], datetime]:
    """One reading of the figures, and CloudWatch's clock when it answered (the local one if unsaid)."""
    query_start, query_end, period = query_window(start, end)
    queries = metric_queries(function, alias, versions, period)
    answered: datetime | None = None
    values: dict[str, list[float]] = {q["Id"]: [] for q in queries}
    status: dict[str, str] = {}  # each query's last StatusCode (and message), page after page
    kwargs: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": query_start,
        "EndTime": query_end,
        "ScanBy": "TimestampAscending",
    }
    cloudwatch = aws.client("cloudwatch")
    while True:
        response = cloudwatch.get_metric_data(**kwargs)
        answered = answered or aws.server_time(response)
        for result in response.get("MetricDataResults", []):
            values.setdefault(result["Id"], []).extend(float(v) for v in result.get("Values", []))
            messages = "; ".join(str(m.get("Value") or m.get("Code")) for m in result.get("Messages", []))
            code = str(result.get("StatusCode") or "no StatusCode")
            status[result["Id"]] = code + (f" ({messages})" if messages and code != "Complete" else "")
        token = response.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token

    unreadable = [
        f"{_described(q)}: {status.get(q['Id'], 'not returned')}"
        for q in queries
        if status.get(q["Id"]) != "Complete"
    ]
    if unreadable:
        raise MetricsUnreadable("CloudWatch did not return " + ", ".join(unreadable))

    figures = {}
    for index, version in enumerate(versions):
        durations = values.get(f"duration_{index}", [])
        figures[version] = VersionFigures(
            version=version,
            invocations=round(sum(values.get(f"invocations_{index}", []))),
            errors=round(sum(values.get(f"errors_{index}", []))),
            throttles=round(sum(values.get(f"throttles_{index}", []))),
            # One period normally covers the window; should CloudWatch split it, the worst p99 counts.
            p99_duration_ms=max(durations) if durations else None,
        )
    return figures, answered or datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _described(query: dict[str, Any]) -> str:
    stat = query["MetricStat"]
    dimensions = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
    return f"version {dimensions['ExecutedVersion']}'s {stat['Metric']['MetricName']} ({stat['Stat']})"
