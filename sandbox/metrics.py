"""Metric data: Lambda's AWS/Lambda datapoints, statistics per period and simple metric math.

Datapoints live in moto's CloudWatch backend (so ListMetrics and PutMetricData keep working); this module
answers GetMetricData and feeds the alarm evaluator. Dimensions match exactly, as CloudWatch's do.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sandbox.server import AwsError

if TYPE_CHECKING:
    from sandbox.core import Sandbox

Series = dict[float, float]  # period start (epoch seconds) -> value
MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]  # namespace, metric name, dimensions


def backend(sandbox: Sandbox) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[sandbox.account_id][sandbox.region]


# "Lambda sends metric data to CloudWatch in 1-minute intervals" (AWS Lambda Developer Guide, "Using
# CloudWatch metrics with Lambda", https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics.html):
# an invocation's figures cannot be read before its minute ends, and CloudWatch takes a while more to
# make them readable (no bound is documented; AWS re:Post, "Understanding CloudWatch Alarm Evaluation:
# Why Alarms Delay"). The sandbox makes a minute's AWS/Lambda figures readable a minute after that minute
# ends: a deterministic lag, so a reader that judges a window before its figures are in misses them on
# every run. Every reader of the metric store goes through `readable_before`: GetMetricData,
# GetMetricStatistics (CloudWatch's API reference speaks of data points becoming "available for
# GetMetricData or GetMetricStatistics" alike, PutMetricData) and the alarm evaluator (sandbox/alarms.py).
LAMBDA_NAMESPACE = "AWS/Lambda"
LAMBDA_PUBLISH_LAG = 60.0


def lambda_readable_before(now: float) -> float:
    """AWS/Lambda datapoints stamped before this are readable at sandbox time `now`."""
    published_up_to = now - LAMBDA_PUBLISH_LAG
    return published_up_to - published_up_to % 60


def readable_before(namespace: str, now: float) -> float:
    """Datapoints of `namespace` stamped before this are readable at sandbox time `now` (no lag is
    modelled outside AWS/Lambda: PutMetricData's datapoints are readable at once)."""
    return lambda_readable_before(now) if namespace == LAMBDA_NAMESPACE else math.inf


def record_lambda(
    sandbox: Sandbox,
    function_name: str,
    resource: str,
    executed_version: str | None,
    error: bool = False,
    duration_ms: float | None = None,
    throttled: bool = False,
) -> None:
    """Datapoints for one invocation under each dimension set Lambda publishes."""
    from moto.cloudwatch.models import MetricDatum

    timestamp = sandbox.clock.now_datetime().replace(tzinfo=None)
    dimension_sets = [
        [{"Name": "FunctionName", "Value": function_name}],
        [{"Name": "FunctionName", "Value": function_name}, {"Name": "Resource", "Value": resource}],
    ]
    if executed_version is not None:
        dimension_sets.append(
            [
                {"Name": "FunctionName", "Value": function_name},
                {"Name": "Resource", "Value": resource},
                {"Name": "ExecutedVersion", "Value": executed_version},
            ]
        )
    values: list[tuple[str, float, str]]
    if throttled:
        values = [("Throttles", 1.0, "Count")]
    else:
        values = [("Invocations", 1.0, "Count"), ("Errors", 1.0 if error else 0.0, "Count")]
        if duration_ms is not None:
            values.append(("Duration", round(duration_ms, 3), "Milliseconds"))
    cloudwatch = backend(sandbox)
    data = [
        MetricDatum("AWS/Lambda", name, value, dims, timestamp, unit)
        for dims in dimension_sets
        for name, value, unit in values
    ]
    cloudwatch.metric_data.extend(data)


# SQS sends its queue metrics to CloudWatch once a minute (Amazon SQS Developer Guide, "Available
# CloudWatch metrics for Amazon SQS"); the sandbox samples on the same schedule, on its own clock.
SQS_SAMPLE_SECONDS = 60.0


def record_sqs_queues(sandbox: Sandbox) -> None:
    """One datapoint per queue for ApproximateNumberOfMessagesVisible and ...NotVisible (AWS/SQS)."""
    from moto.cloudwatch.models import MetricDatum
    from moto.sqs.models import sqs_backends

    timestamp = sandbox.clock.now_datetime().replace(tzinfo=None)
    queues = list(sqs_backends[sandbox.account_id][sandbox.region].queues.values())
    data = []
    for queue in queues:
        dims = [{"Name": "QueueName", "Value": queue.name}]
        data.append(
            MetricDatum(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                float(queue.approximate_number_of_messages),
                dims,
                timestamp,
                "Count",
            )
        )
        data.append(
            MetricDatum(
                "AWS/SQS",
                "ApproximateNumberOfMessagesNotVisible",
                float(queue.approximate_number_of_messages_not_visible),
                dims,
                timestamp,
                "Count",
            )
        )
    backend(sandbox).metric_data.extend(data)


def epoch(value: Any) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _dims_key(dimensions: Iterable[Any]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for d in dimensions:
        if isinstance(d, dict):
            pairs.append((str(d["Name"]), str(d.get("Value", ""))))
        else:
            pairs.append((str(d.name), str(d.value)))
    return tuple(sorted(pairs))


def metric_key(namespace: str, metric_name: str, dimensions: Iterable[Any]) -> MetricKey:
    return (namespace, metric_name, _dims_key(dimensions))


def query_metrics(queries: list[dict[str, Any]]) -> list[MetricKey]:
    """The metrics a set of metric data queries reads (their MetricStat queries), as evaluate_queries reads them."""
    keys = []
    for query in queries:
        stat = query.get("MetricStat")
        if stat:
            metric = stat["Metric"]
            keys.append(
                metric_key(
                    metric.get("Namespace", ""), metric.get("MetricName", ""), metric.get("Dimensions") or []
                )
            )
    return keys


def _statistic(stat: str, datapoints: Sequence[Any]) -> float | None:
    values: list[float] = []
    total = 0.0
    count = 0.0
    low = math.inf
    high = -math.inf
    for datum in datapoints:
        if hasattr(datum, "value"):
            v = float(datum.value)
            values.append(v)
            total += v
            count += 1
            low = min(low, v)
            high = max(high, v)
        else:
            total += float(datum.sum_stat)
            count += float(datum.sample_count)
            low = min(low, float(datum.min_stat))
            high = max(high, float(datum.max_stat))
    if count == 0:
        return None
    if stat == "Sum":
        return total
    if stat == "SampleCount":
        return count
    if stat == "Average":
        return total / count
    if stat == "Minimum":
        return low
    if stat == "Maximum":
        return high
    match = re.fullmatch(r"p(\d+(?:\.\d+)?)", stat)
    if match and values:
        ordered = sorted(values)
        rank = max(0, math.ceil(float(match.group(1)) / 100 * len(ordered)) - 1)
        return ordered[min(rank, len(ordered) - 1)]
    raise AwsError("InvalidParameterValue", f"The statistic {stat} is not supported by this sandbox.")


def metric_series(
    sandbox: Sandbox,
    namespace: str,
    metric_name: str,
    dimensions: Iterable[Any],
    stat: str,
    period: int,
    start: float,
    end: float,
    unit: str | None = None,
    now: float | None = None,
) -> Series:
    """Statistic per period over [start, end), periods starting at `start`; with `now`, only the
    datapoints CloudWatch would have made readable by then (see LAMBDA_PUBLISH_LAG)."""
    if period <= 0:
        raise AwsError("InvalidParameterValue", "The parameter Period must be greater than 0.")
    points = sandbox.metric_index.points(backend(sandbox), *metric_key(namespace, metric_name, dimensions))
    if now is not None:
        end = min(end, readable_before(namespace, now))
    buckets: dict[float, list[Any]] = {}
    for ts, datum in points:
        if not start <= ts < end:
            continue
        if unit and datum.unit and datum.unit != unit:
            continue
        # Periods count from StartTime, as CloudWatch's do for GetMetricData.
        buckets.setdefault(start + (ts - start) // period * period, []).append(datum)
    series: Series = {}
    for bucket, datapoints in buckets.items():
        value = _statistic(stat, datapoints)
        if value is not None:
            series[bucket] = value
    return series


def statistics(
    sandbox: Sandbox,
    namespace: str,
    metric_name: str,
    start_time: Any,
    end_time: Any,
    period: int,
    stats: list[str],
    dimensions: list[dict[str, str]],
    unit: str | None,
) -> list[Any]:
    """GetMetricStatistics with exact dimension matching, as moto's Statistics objects; only the datapoints
    CloudWatch has made readable by now (see LAMBDA_PUBLISH_LAG)."""
    from moto.cloudwatch.models import Statistics

    start, end = epoch(start_time), epoch(end_time)
    if start >= end:
        raise AwsError(
            "InvalidParameterValue", "The parameter StartTime must be less than the parameter EndTime."
        )
    end = min(end, readable_before(namespace, sandbox.clock.now()))
    points = sandbox.metric_index.points(backend(sandbox), namespace, metric_name, _dims_key(dimensions))
    buckets: dict[float, list[Any]] = {}
    for ts, datum in points:
        if start <= ts < end and (not unit or datum.unit == unit):
            buckets.setdefault(start + (ts - start) // period * period, []).append(datum)
    result = []
    for bucket in sorted(buckets):
        entry = Statistics(stats, datetime.fromtimestamp(bucket, UTC).replace(tzinfo=None))
        entry.metric_data = buckets[bucket]
        entry.unit = buckets[bucket][-1].unit
        result.append(entry)
    return result


class MetricIndex:
    """Datapoints by (namespace, name, dimensions), indexed incrementally from moto's append-only list, so
    alarm evaluation does not rescan every datapoint ever written on each tick."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: int | None = None
        self._position = 0
        self._generation = 0  # a new one each time the index starts again from an empty list
        self._by_metric: dict[MetricKey, list[tuple[float, Any]]] = {}

    def points(
        self, cloudwatch: Any, namespace: str, name: str, dimensions: tuple[tuple[str, str], ...]
    ) -> list[tuple[float, Any]]:
        with self._lock:
            self._catch_up(cloudwatch)
            return list(self._by_metric.get((namespace, name, dimensions), []))

    def version(self, cloudwatch: Any, metrics: list[MetricKey]) -> tuple[int, ...]:
        """Changes whenever a datapoint of one of `metrics` is added (or the datapoints start again): the
        same version, the same datapoints of those metrics."""
        with self._lock:
            self._catch_up(cloudwatch)
            return (self._generation, *(len(self._by_metric.get(metric, ())) for metric in metrics))

    def _catch_up(self, cloudwatch: Any) -> None:
        data = cloudwatch.metric_data
        if id(data) != self._source or len(data) < self._position:
            self._source, self._position, self._by_metric = id(data), 0, {}
            self._generation += 1
        fresh = data[self._position :]  # other threads may append meanwhile: count only what we read
        for datum in fresh:
            key = (datum.namespace, datum.name, _dims_key(datum.dimensions))
            self._by_metric.setdefault(key, []).append((epoch(datum.timestamp), datum))
        self._position += len(fresh)


def evaluate_queries(
    sandbox: Sandbox, queries: list[dict[str, Any]], start: float, end: float, now: float | None = None
) -> dict[str, Series]:
    """Every query's series by id: MetricStat queries first, then expressions over them (with `now`,
    on the datapoints readable by then)."""
    results: dict[str, Series] = {}
    for query in queries:
        stat = query.get("MetricStat")
        if stat:
            metric = stat["Metric"]
            results[query["Id"]] = metric_series(
                sandbox,
                metric.get("Namespace", ""),
                metric.get("MetricName", ""),
                metric.get("Dimensions") or [],
                str(stat["Stat"]),
                int(stat["Period"]),
                start,
                end,
                stat.get("Unit"),
                now,
            )
    periods = [int(q["MetricStat"]["Period"]) for q in queries if q.get("MetricStat")]
    periods += [int(q["Period"]) for q in queries if q.get("Period")]
    step = min(periods) if periods else 60
    grid = [float(t) for t in range(int(start - start % step), int(end), step) if t >= start - step]
    pending = [q for q in queries if not q.get("MetricStat") and q.get("Expression")]
    # Expressions may refer to each other: resolve in dependency order.
    for _ in range(len(pending) + 1):
        progress = False
        for query in list(pending):
            try:
                value = evaluate_expression(str(query["Expression"]), results, grid)
            except KeyError:
                continue
            results[query["Id"]] = value if isinstance(value, dict) else {}
            pending.remove(query)
            progress = True
        if not progress:
            break
    for query in pending:
        raise AwsError(
            "ValidationError",
            f"Unsupported or unresolvable expression in {query['Id']}: {query['Expression']}",
        )
    return results


def get_metric_data(
    sandbox: Sandbox, queries: list[dict[str, Any]], start_time: Any, end_time: Any, scan_by: str
) -> list[dict[str, Any]]:
    """GetMetricData in the shape moto's response layer renders."""
    start, end = epoch(start_time), epoch(end_time)
    if start >= end:
        raise AwsError("ValidationError", "The parameter EndTime must be greater than StartTime.")
    series = evaluate_queries(sandbox, queries, start, end, sandbox.clock.now())
    output = []
    for query in queries:
        if not query.get("ReturnData", True):
            continue
        points = sorted(series.get(query["Id"], {}).items(), reverse=scan_by != "TimestampAscending")
        label = query.get("Label") or (
            f"{query['MetricStat']['Metric'].get('MetricName')}" if query.get("MetricStat") else query["Id"]
        )
        output.append(
            {
                "id": query["Id"],
                "label": label,
                "values": [v for _, v in points],
                "timestamps": [datetime.fromtimestamp(t, UTC).replace(tzinfo=None) for t, _ in points],
                "status_code": "Complete",
            }
        )
    return output


# Metric math: + - * / on series and numbers, comparisons (>= > < <= == !=), AND/OR (&& ||), parentheses,
# IF(condition, true[, false]) and FILL(series, value).

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(>=|<=|==|!=|&&|\|\||.))")
_COMPARISONS = (">=", "<=", "==", "!=", ">", "<")

Value = float | Series


def evaluate_expression(expression: str, series: dict[str, Series], grid: Sequence[float] = ()) -> Value:
    """Evaluate `expression` over the named series; `grid` is every period start FILL may fill."""
    tokens = [(m.group(1), m.group(2), m.group(3)) for m in _TOKEN.finditer(expression) if m.group(0).strip()]
    parser = _Parser(tokens, series, expression, grid)
    value = parser.expr()
    if parser.pos != len(tokens):
        raise AwsError("ValidationError", f"Unsupported metric math expression: {expression}")
    return value


class _Parser:
    def __init__(
        self,
        tokens: list[tuple[str | None, str | None, str | None]],
        series: dict[str, Series],
        text: str,
        grid: Sequence[float],
    ) -> None:
        self.grid = grid
        self.tokens = tokens
        self.pos = 0
        self.series = series
        self.text = text

    def peek(self) -> str | None:
        """The next operator symbol (AND/OR keywords count as && and ||)."""
        if self.pos >= len(self.tokens):
            return None
        _, name, op = self.tokens[self.pos]
        if name is not None and name.upper() in ("AND", "OR"):
            return "&&" if name.upper() == "AND" else "||"
        return op

    def expr(self) -> Value:
        value = self.conjunction()
        while self.peek() == "||":
            self.pos += 1
            value = _combine(value, self.conjunction(), "||")
        return value

    def conjunction(self) -> Value:
        value = self.comparison()
        while self.peek() == "&&":
            self.pos += 1
            value = _combine(value, self.comparison(), "&&")
        return value

    def comparison(self) -> Value:
        value = self.additive()
        op = self.peek()
        if op in _COMPARISONS:
            self.pos += 1
            value = _combine(value, self.additive(), op or "==")
        return value

    def additive(self) -> Value:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.peek()
            self.pos += 1
            value = _combine(value, self.term(), op or "+")
        return value

    def term(self) -> Value:
        value = self.factor()
        while self.peek() in ("*", "/"):
            op = self.peek()
            self.pos += 1
            value = _combine(value, self.factor(), op or "*")
        return value

    def arguments(self) -> list[Value]:
        self._expect("(")
        values = [self.expr()]
        while self.peek() == ",":
            self.pos += 1
            values.append(self.expr())
        self._expect(")")
        return values

    def factor(self) -> Value:
        if self.pos >= len(self.tokens):
            raise AwsError("ValidationError", f"Unsupported metric math expression: {self.text}")
        number, name, op = self.tokens[self.pos]
        self.pos += 1
        if number is not None:
            return float(number)
        if op == "-":
            return _combine(-1.0, self.factor(), "*")
        if op == "(":
            value = self.expr()
            self._expect(")")
            return value
        if name is not None:
            function = name.upper()
            if function == "FILL" and self.peek() == "(":
                args = self.arguments()
                if len(args) != 2:
                    raise AwsError("ValidationError", f"FILL takes two arguments: {self.text}")
                return _fill(args[0], args[1], self.grid)
            if function == "IF" and self.peek() == "(":
                args = self.arguments()
                if len(args) not in (2, 3):
                    raise AwsError("ValidationError", f"IF takes two or three arguments: {self.text}")
                return _if(args[0], args[1], args[2] if len(args) == 3 else None)
            if name not in self.series:
                raise KeyError(name)
            return dict(self.series[name])
        raise AwsError("ValidationError", f"Unsupported metric math expression: {self.text}")

    def _expect(self, symbol: str) -> None:
        if self.peek() != symbol:
            raise AwsError("ValidationError", f"Unsupported metric math expression: {self.text}")
        self.pos += 1


def _apply(a: float, b: float, op: str) -> float | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return None if b == 0 else a / b  # CloudWatch drops the datapoint on division by zero
    truth = {
        ">=": a >= b,
        "<=": a <= b,
        "==": a == b,
        "!=": a != b,
        ">": a > b,
        "<": a < b,
        "&&": bool(a) and bool(b),
        "||": bool(a) or bool(b),
    }[op]
    return 1.0 if truth else 0.0


def _combine(left: Value, right: Value, op: str) -> Value:
    if isinstance(left, dict) and isinstance(right, dict):
        keys = left.keys() & right.keys()
        pairs = {k: _apply(left[k], right[k], op) for k in keys}
    elif isinstance(left, dict):
        pairs = {k: _apply(v, float(right), op) for k, v in left.items()}  # type: ignore[arg-type]
    elif isinstance(right, dict):
        pairs = {k: _apply(float(left), v, op) for k, v in right.items()}
    else:
        result = _apply(left, right, op)
        return math.nan if result is None else result
    return {k: v for k, v in pairs.items() if v is not None}


def _at(value: Value, timestamp: float) -> float | None:
    if isinstance(value, dict):
        return value.get(timestamp)
    return None if math.isnan(value) else value


def _if(condition: Value, when_true: Value, when_false: Value | None) -> Value:
    """Per datapoint of the condition: the true value where it is non-zero, else the false value (no
    false value: no datapoint)."""
    if not isinstance(condition, dict):
        chosen = when_true if condition else when_false
        return math.nan if chosen is None else chosen
    result: Series = {}
    for timestamp, flag in condition.items():
        picked = (
            _at(when_true, timestamp)
            if flag
            else (None if when_false is None else _at(when_false, timestamp))
        )
        if picked is not None:
            result[timestamp] = picked
    return result


def _fill(target: Value, fill: Value, grid: Sequence[float]) -> Value:
    if not isinstance(target, dict):
        return target
    if isinstance(fill, dict):
        return {t: target[t] if t in target else fill[t] for t in set(target) | set(fill)}
    return {t: target.get(t, float(fill)) for t in sorted(set(grid) | set(target))}
