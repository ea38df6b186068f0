"""CloudWatch alarm evaluation on the sandbox clock, over the datapoints in moto's CloudWatch backend."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sandbox import metrics

if TYPE_CHECKING:
    from sandbox.core import Sandbox

log = logging.getLogger("sandbox.alarms")

COMPARISONS = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


@dataclass(frozen=True)
class Judged:
    """An alarm's last evaluation: what it read, and the state it found (None: it changed nothing whatever
    the state, as an alarm that ignores missing data and had none)."""

    alarm: Any  # the alarm object (moto makes a new one when PutMetricAlarm changes an alarm)
    metrics: list[metrics.MetricKey]
    inputs: tuple[Any, ...]  # the window judged and the version of the datapoints of `metrics`
    state: str | None


class AlarmEvaluator:
    """Evaluates every metric and metric-math alarm a few times per sandbox period.

    Only whole periods are judged: the window is the last `EvaluationPeriods` periods that have ended, never
    the one still filling (CloudWatch user guide, "Alarm evaluation": an alarm judges the datapoints of
    its evaluation periods, and a period's datapoint is complete only once the period is over). So steady
    traffic never looks like missing data at the start of a period, and an alarm reacts once the period
    holding the breaching datapoint ends. An alarm reads only what CloudWatch has: an AWS/Lambda datapoint
    once Lambda has published it (metrics.readable_before, the rule GetMetricData follows), so its window
    ends at the newest published period. CloudWatch judges "the most recent real data points that were
    successfully retrieved" from a wider evaluation range (user guide, "Configuring how CloudWatch alarms
    treat missing data"), so minutes not yet published are not judged as missing: an alarm on a Lambda
    metric fires a publish lag after its period ends, never sooner. A state set with SetAlarmState holds
    for one period (at least a sandbox minute), as AWS keeps it until the alarm's next evaluation.

    An evaluation depends on the alarm, the window of periods it judges and the datapoints of the metrics
    it reads, nothing else; it changes the alarm only when it finds another state than the alarm's. So an
    alarm whose window and datapoints are those of its last evaluation, and whose state is still the one
    that evaluation found, is not evaluated again: it would find the same and change nothing.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.clock = sandbox.clock
        self.manual_until: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sandbox-alarms", daemon=True)
        self._lock = threading.Lock()
        self._next_sqs_sample = 0.0
        self._judged: dict[str, Judged] = {}  # alarm name -> its last evaluation

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def tick_seconds(self) -> float:
        """Real seconds between evaluations: ten sandbox seconds, between 50 ms and 1 s."""
        return min(1.0, max(0.05, 10.0 / self.clock.speed))

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_seconds()):
            try:
                self.evaluate_all()
            except Exception:
                log.exception("alarm evaluation failed")

    def alarm_set_manually(self, name: str, period: int) -> None:
        self.manual_until[name] = self.clock.now() + max(60, int(period or 60))

    def evaluate_all(self) -> None:
        with self._lock:
            if self.clock.now() >= self._next_sqs_sample:
                # Queue metrics come from the sandbox, as AWS/SQS's come from SQS: sampled each minute.
                metrics.record_sqs_queues(self.sandbox)
                self._next_sqs_sample = self.clock.now() + metrics.SQS_SAMPLE_SECONDS
            backend = metrics.backend(self.sandbox)
            alarms = list(backend.alarms.values())
            for alarm in alarms:
                if getattr(alarm, "rule", None):
                    continue  # composite alarms are not evaluated
                try:
                    self.evaluate(alarm, backend)
                except Exception:
                    log.exception("evaluating alarm %s failed", alarm.name)
            for name in self._judged.keys() - {alarm.name for alarm in alarms}:
                del self._judged[name]  # deleted

    def evaluate(self, alarm: Any, backend: Any) -> None:
        now = self.clock.now()
        if self.manual_until.get(alarm.name, 0) > now:
            return
        self.manual_until.pop(alarm.name, None)
        period = int(alarm.period or 0) or _query_period(alarm)
        periods = int(alarm.evaluation_periods or 1)
        to_alarm = int(alarm.datapoints_to_alarm or periods)
        judged = self._judged.get(alarm.name)
        if judged is None or judged.alarm is not alarm:
            judged = Judged(alarm, self._metrics(alarm), (), None)
        # The newest periods whose datapoints are readable: not the one still filling, nor (for
        # AWS/Lambda) those Lambda has not published yet.
        readable = min(
            [now, *(metrics.readable_before(namespace, now) for namespace, _, _ in judged.metrics)]
        )
        end = readable - readable % period
        start = end - periods * period
        inputs = (
            start,
            end,
            self.sandbox.metric_index.version(backend, judged.metrics),
        )
        if judged.inputs == inputs and judged.state in (None, alarm.state_value):
            return  # the same evaluation would find the same state
        self._judged.pop(alarm.name, None)  # until this evaluation ends
        found = self._judge(alarm, now, period, periods, to_alarm, start, end)
        self._judged[alarm.name] = Judged(alarm, judged.metrics, inputs, found)

    def _judge(
        self, alarm: Any, now: float, period: int, periods: int, to_alarm: int, start: float, end: float
    ) -> str | None:
        """Evaluate the alarm over the periods from `start` to `end`; the state it found (None: none set)."""
        series = self._series(alarm, now, period, start, end)
        buckets = [start + i * period for i in range(periods)]
        values = [series.get(b) for b in buckets]
        compare, words = COMPARISONS.get(alarm.comparison_operator, COMPARISONS["GreaterThanThreshold"])
        threshold = float(alarm.threshold or 0)
        treat = alarm.treat_missing_data or "missing"
        present = [(b, v) for b, v in zip(buckets, values, strict=True) if v is not None]
        if not present and treat in ("missing", "ignore"):
            if treat == "ignore":
                return None
            self._set(
                alarm,
                "INSUFFICIENT_DATA",
                "Insufficient Data: no datapoints were received for the evaluation periods.",
                {},
            )
            return "INSUFFICIENT_DATA"
        breaching = 0
        for value in values:
            if value is None:
                breaching += treat == "breaching"
            elif compare(value, threshold):
                breaching += 1
        state = "ALARM" if breaching >= to_alarm else "OK"
        shown = ", ".join(f"{v} ({_fmt(b)})" for b, v in present[-5:]) or "no datapoints"
        verb = "was" if state == "ALARM" else "was not"
        reason = (
            f"Threshold Crossed: {breaching} out of the last {periods} datapoints [{shown}] {verb} {words} "
            f"the threshold ({threshold}) (minimum {to_alarm} datapoint{'s' if to_alarm > 1 else ''} for "
            f"{'OK -> ALARM' if state == 'ALARM' else 'ALARM -> OK'} transition)."
        )
        data = {
            "version": "1.0",
            "queryDate": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "startDate": datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "period": period,
            "recentDatapoints": [v for _, v in present],
            "threshold": threshold,
            "evaluatedDatapoints": [
                {
                    "timestamp": datetime.fromtimestamp(b, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                    "value": v,
                }
                for b, v in present
            ],
        }
        self._set(alarm, state, reason, data)
        return state

    def _metrics(self, alarm: Any) -> list[metrics.MetricKey]:
        """The metrics whose datapoints the alarm reads (as `_series` reads them)."""
        if alarm.metric_data_queries:
            return metrics.query_metrics([_query_dict(q) for q in alarm.metric_data_queries])
        dims = [{"Name": d.name, "Value": d.value} for d in alarm.dimensions]
        return [metrics.metric_key(alarm.namespace, alarm.metric_name, dims)]

    def _series(self, alarm: Any, now: float, period: int, start: float, end: float) -> metrics.Series:
        if alarm.metric_data_queries:
            queries = [_query_dict(q) for q in alarm.metric_data_queries]
            results = metrics.evaluate_queries(self.sandbox, queries, start, end, now)
            returned = [q["Id"] for q in queries if q.get("ReturnData", True)]
            chosen = alarm.threshold_metric_id or (returned[0] if returned else queries[-1]["Id"])
            return results.get(chosen, {})
        dims = [{"Name": d.name, "Value": d.value} for d in alarm.dimensions]
        stat = alarm.statistic or alarm.extended_statistic or "Average"
        return metrics.metric_series(
            self.sandbox, alarm.namespace, alarm.metric_name, dims, stat, period, start, end, alarm.unit, now
        )

    def _set(self, alarm: Any, state: str, reason: str, data: dict[str, Any]) -> None:
        if alarm.state_value == state:
            return
        previous = alarm.state_value
        alarm.update_state(reason, json.dumps(data), state)
        log.info("alarm %s: %s -> %s", alarm.name, previous, state)
        self._run_actions(alarm, previous, state, reason)

    def _run_actions(self, alarm: Any, previous: str, state: str, reason: str) -> None:
        if not alarm.actions_enabled:
            return
        actions = {
            "ALARM": alarm.alarm_actions,
            "OK": alarm.ok_actions,
            "INSUFFICIENT_DATA": alarm.insufficient_data_actions,
        }[state]
        message = {
            "AlarmName": alarm.name,
            "AlarmDescription": alarm.description,
            "AWSAccountId": self.sandbox.account_id,
            "NewStateValue": state,
            "NewStateReason": reason,
            "StateChangeTime": self.clock.now_datetime().strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "Region": "US East (N. Virginia)",
            "AlarmArn": alarm.alarm_arn,
            "OldStateValue": previous,
        }
        for arn in actions or []:
            if ":sns:" in arn:
                self.sandbox.events.deliver_to_arn(
                    arn, message, source="cloudwatch", subject=f'ALARM: "{alarm.name}"'
                )


def _query_dict(query: Any) -> dict[str, Any]:
    if isinstance(query, dict):
        return query
    result: dict[str, Any] = {"Id": query.id, "ReturnData": str(query.return_data).lower() != "false"}
    if query.expression:
        result["Expression"] = query.expression
    if query.period:
        result["Period"] = int(query.period)
    if query.metric_stat is not None:
        stat = query.metric_stat
        result["MetricStat"] = {
            "Metric": {
                "Namespace": stat.metric.namespace,
                "MetricName": stat.metric.metric_name,
                "Dimensions": [
                    {
                        "Name": d["Name"] if isinstance(d, dict) else d.name,
                        "Value": d["Value"] if isinstance(d, dict) else d.value,
                    }
                    for d in stat.metric.dimensions
                ],
            },
            "Period": int(stat.period),
            "Stat": stat.stat,
        }
        if stat.unit:
            result["MetricStat"]["Unit"] = stat.unit
    return result


def _query_period(alarm: Any) -> int:
    for query in alarm.metric_data_queries or []:
        q = _query_dict(query)
        if q.get("MetricStat"):
            return int(q["MetricStat"]["Period"])
    return 60


def _fmt(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%d/%m/%y %H:%M:%S")


def record_state_change(alarm: Any, old_state: str, old_reason: str, timestamp: datetime) -> None:
    """Keep a StateUpdate history item for DescribeAlarmHistory, in the shape CloudWatch gives it
    (HistorySummary "Alarm updated from OK to ALARM", HistoryData with the old and new state)."""
    new_state: dict[str, Any] = {"stateValue": alarm.state_value, "stateReason": alarm.state_reason}
    try:
        reason_data = json.loads(alarm.state_reason_data or "null")
    except ValueError:
        reason_data = None
    if reason_data:
        new_state["stateReasonData"] = reason_data
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)  # moto keeps naive UTC datetimes
    item = {
        "AlarmName": alarm.name,
        "AlarmType": "CompositeAlarm" if getattr(alarm, "rule", None) else "MetricAlarm",
        "Timestamp": timestamp,
        "HistoryItemType": "StateUpdate",
        "HistorySummary": f"Alarm updated from {old_state} to {alarm.state_value}",
        "HistoryData": json.dumps(
            {
                "version": "1.0",
                "oldState": {"stateValue": old_state, "stateReason": old_reason},
                "newState": new_state,
            }
        ),
    }
    alarm.__dict__.setdefault("_sandbox_history", []).append(item)


def alarm_history(
    sandbox: Sandbox,
    name: str | None,
    item_type: str | None,
    start: float | None,
    end: float | None,
    newest_first: bool,
) -> list[dict[str, Any]]:
    """History items of one alarm (or every alarm), filtered as DescribeAlarmHistory filters them.
    Alarms that were deleted keep no history here."""
    backend = metrics.backend(sandbox)
    items: list[dict[str, Any]] = []
    for alarm in list(backend.alarms.values()):
        if name is None or alarm.name == name:
            items += alarm.__dict__.get("_sandbox_history", [])
    if item_type:
        items = [i for i in items if i["HistoryItemType"] == item_type]
    if start is not None:
        items = [i for i in items if i["Timestamp"].timestamp() >= start]
    if end is not None:
        items = [i for i in items if i["Timestamp"].timestamp() <= end]
    return sorted(items, key=lambda i: i["Timestamp"], reverse=newest_first)
