"""CloudWatch alarms and metric math evaluated by the sandbox on its clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sandbox.queue_policy import let_aws_services_send
from tests.support.sandbox_support import (
    client,
    create_function,
    sb,  # noqa: F401 - module fixture
    unique,
    wait_for,
)

FLAKY = """
def handler(event, context):
    if event.get("fail"):
        raise RuntimeError("failing on purpose")
    return "ok"
"""


def alarm_state(sb, name: str) -> dict:  # noqa: F811
    [alarm] = client(sb, "cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return alarm


def invoke_until(sb, function: str, alarm: str, state: str, fail: bool, qualifier: str | None = None) -> dict:  # noqa: F811
    """Keep invoking (failing or not) until the alarm reaches `state`."""
    lam = client(sb, "lambda")
    payload = b'{"fail": true}' if fail else b"{}"
    target = f"{function}:{qualifier}" if qualifier else function

    def reached() -> dict | None:
        lam.invoke(FunctionName=target, Payload=payload)
        found = alarm_state(sb, alarm)
        return found if found["StateValue"] == state else None

    return wait_for(reached, 10, 0.1, f"{alarm} to reach {state}")


def test_threshold_alarm_moves_from_insufficient_data_to_alarm_and_back_to_ok(sb):  # noqa: F811
    function = unique("alarmed")
    create_function(sb, function, FLAKY)
    cloudwatch = client(sb, "cloudwatch")
    alarm = unique("errors")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="missing",
    )
    initial = alarm_state(sb, alarm)
    assert initial["StateValue"] == "INSUFFICIENT_DATA"

    before = sb.clock.now_datetime()
    alarmed = invoke_until(sb, function, alarm, "ALARM", fail=True)
    after = sb.clock.now_datetime()
    assert "Threshold Crossed" in alarmed["StateReason"]
    # Stamped on the sandbox clock (which runs ahead of real time), between the two readings of it.
    slack = timedelta(seconds=1)  # the timestamp is rounded to the millisecond
    assert before - slack <= alarmed["StateUpdatedTimestamp"] <= after + slack
    assert alarmed["StateUpdatedTimestamp"] > datetime.now(UTC)

    recovered = invoke_until(sb, function, alarm, "OK", fail=False)
    assert recovered["StateUpdatedTimestamp"] > alarmed["StateUpdatedTimestamp"]


def test_metric_math_alarm_on_error_rate(sb):  # noqa: F811
    function = unique("rate")
    create_function(sb, function, FLAKY)
    cloudwatch = client(sb, "cloudwatch")
    alarm = unique("error-rate")
    lam = client(sb, "lambda")
    version = lam.publish_version(FunctionName=function)["Version"]
    lam.create_alias(FunctionName=function, Name="live", FunctionVersion=version)
    # The per-release canary alarm's shape: the version's traffic through the alias.
    dims = [
        {"Name": "FunctionName", "Value": function},
        {"Name": "Resource", "Value": f"{function}:live"},
        {"Name": "ExecutedVersion", "Value": version},
    ]
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        EvaluationPeriods=1,
        Threshold=0.5,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
        Metrics=[
            {
                "Id": "errors",
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Dimensions": dims},
                    "Period": 60,
                    "Stat": "Sum",
                },
                "ReturnData": False,
            },
            {
                "Id": "invocations",
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Invocations", "Dimensions": dims},
                    "Period": 60,
                    "Stat": "Sum",
                },
                "ReturnData": False,
            },
            {
                "Id": "rate",
                "Expression": "IF(invocations >= 2, errors / invocations, 0)",
                "Label": "error rate",
                "ReturnData": True,
            },
        ],
    )
    # No data and notBreaching: OK on the first evaluation.
    wait_for(lambda: alarm_state(sb, alarm)["StateValue"] == "OK", 5, what="initial OK")
    invoke_until(sb, function, alarm, "ALARM", fail=True, qualifier="live")

    def readable_error_rate() -> dict | None:
        now = sb.clock.now_datetime()
        data = cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "e",
                    "MetricStat": {
                        "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Dimensions": dims},
                        "Period": 60,
                        "Stat": "Sum",
                    },
                    "ReturnData": False,
                },
                {
                    "Id": "i",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/Lambda",
                            "MetricName": "Invocations",
                            "Dimensions": dims,
                        },
                        "Period": 60,
                        "Stat": "Sum",
                    },
                    "ReturnData": False,
                },
                {"Id": "pct", "Expression": "100 * e / i"},
            ],
            StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=1),
        )
        return data if data["MetricDataResults"][0]["Values"] else None

    # Lambda's figures become readable a minute after their minute ends (sandbox/metrics.py).
    data = wait_for(readable_error_rate, what="the error rate's figures")
    [result] = data["MetricDataResults"]
    assert result["Id"] == "pct"
    assert result["Values"] and all(v == 100.0 for v in result["Values"])


def test_put_metric_data_alarm_and_set_alarm_state(sb):  # noqa: F811
    cloudwatch = client(sb, "cloudwatch")
    alarm = unique("latency")
    dims = [{"Name": "Service", "Value": "checkout"}]
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="Rollout/Test",
        MetricName="Latency",
        Dimensions=dims,
        Statistic="Average",
        Period=60,
        EvaluationPeriods=5,
        DatapointsToAlarm=1,
        Threshold=500,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.put_metric_data(
        Namespace="Rollout/Test", MetricData=[{"MetricName": "Latency", "Dimensions": dims, "Value": 900}]
    )
    wait_for(lambda: alarm_state(sb, alarm)["StateValue"] == "ALARM", 5, what="ALARM from PutMetricData")

    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="operator says fine")
    held = alarm_state(sb, alarm)
    assert (held["StateValue"], held["StateReason"]) == ("OK", "operator says fine")
    # The manual state holds until the alarm's next evaluation period, then the data decides again.
    sb.alarms.evaluate_all()
    assert alarm_state(sb, alarm)["StateValue"] == "OK"
    wait_for(lambda: alarm_state(sb, alarm)["StateValue"] == "ALARM", 4, what="ALARM again after the hold")


def test_treat_missing_data_breaching(sb):  # noqa: F811
    cloudwatch = client(sb, "cloudwatch")
    alarm = unique("heartbeat")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="Rollout/Test",
        MetricName=unique("Heartbeat"),
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        TreatMissingData="breaching",
    )
    wait_for(lambda: alarm_state(sb, alarm)["StateValue"] == "ALARM", 5, what="missing data breaching")


def test_a_message_waiting_in_a_queue_fires_its_alarm_which_publishes_to_sns_and_recovers(sb):  # noqa: F811
    sqs, sns, cloudwatch = client(sb, "sqs"), client(sb, "sns"), client(sb, "cloudwatch")
    watched = sqs.create_queue(QueueName=unique("dead-letters"))["QueueUrl"]
    inbox = sqs.create_queue(QueueName=unique("on-call"))["QueueUrl"]
    inbox_arn = let_aws_services_send(sqs, inbox)
    topic = sns.create_topic(Name=unique("operations"))["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    alarm = unique("undelivered")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": watched.rsplit("/", 1)[-1]}],
        Statistic="Maximum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        AlarmActions=[topic],
        OKActions=[topic],
    )

    sqs.send_message(QueueUrl=watched, MessageBody='{"undelivered": true}')

    wait_for(lambda: alarm_state(sb, alarm)["StateValue"] == "ALARM", 15, 0.1, f"{alarm} to reach ALARM")

    def alarm_message() -> dict | None:
        for message in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", []):
            envelope = json.loads(message["Body"])
            body = json.loads(envelope["Message"])
            if body.get("AlarmName") == alarm and body.get("NewStateValue") == "ALARM":
                return body
        return None

    notice = wait_for(alarm_message, 10, 0.1, "the alarm's message on the topic")
    assert notice["NewStateReason"].startswith("Threshold Crossed")


def test_steady_traffic_judges_whole_periods_and_the_history_shows_each_change(sb):  # noqa: F811
    function = unique("steady")
    create_function(sb, function, FLAKY)
    cloudwatch = client(sb, "cloudwatch")
    alarm = unique("steady-errors")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1000,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="missing",
    )
    invoke_until(sb, function, alarm, "OK", fail=False)
    # Steady traffic, one call every half sandbox minute, for several sandbox minutes: every minute has
    # datapoints, but each begins empty. Judging the minute still filling would read it as missing data.
    lam = client(sb, "lambda")
    minutes_later = sb.clock.now() + 4 * 60
    half_minute = sb.clock.real_seconds(30)

    def steady_for_minutes() -> bool:
        lam.invoke(FunctionName=function, Payload=b"{}")
        return sb.clock.now() > minutes_later

    wait_for(steady_for_minutes, 20, half_minute, "four sandbox minutes of steady traffic")
    history = cloudwatch.describe_alarm_history(
        AlarmName=alarm, HistoryItemType="StateUpdate", ScanBy="TimestampAscending"
    )
    summaries = [item["HistorySummary"] for item in history["AlarmHistoryItems"]]
    assert summaries == ["Alarm updated from INSUFFICIENT_DATA to OK"]
    [item] = history["AlarmHistoryItems"]
    assert item["AlarmName"] == alarm and item["AlarmType"] == "MetricAlarm"
    data = json.loads(item["HistoryData"])
    assert data["oldState"]["stateValue"] == "INSUFFICIENT_DATA"
    assert data["newState"]["stateValue"] == "OK" and "Threshold Crossed" in data["newState"]["stateReason"]
    assert item["Timestamp"] > datetime.now(UTC)  # on the sandbox clock


def test_a_manual_state_change_is_in_the_history_with_its_reason(sb):  # noqa: F811
    cloudwatch = client(sb, "cloudwatch")
    alarm = unique("manual")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="Sandbox/Test",
        MetricName="Nothing",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="testing the pager")
    [item] = cloudwatch.describe_alarm_history(AlarmName=alarm)["AlarmHistoryItems"]
    assert item["HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM"
    assert json.loads(item["HistoryData"])["newState"]["stateReason"] == "testing the pager"
