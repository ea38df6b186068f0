"""The cost model's arithmetic: call counts and durations to dollars (benchmarks/cost_model.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from benchmarks import cost_model
from benchmarks.cost_model import PRICES, Assumptions, Usage


def test_lambda_cost_is_requests_plus_gb_seconds_at_the_arm_rate() -> None:
    cost = cost_model.lambda_cost(invocations=1000, billed_ms=1000 * 2000.0, memory_mb=1024)
    assert cost["requests"] == pytest.approx(1000 * 0.20 / 1e6)
    # 1,000 runs of 2 s at 1 GB: 2,000 GB-s
    assert cost["duration"] == pytest.approx(2000 * 0.0000133334)


def test_half_the_memory_costs_half_the_duration() -> None:
    full = cost_model.lambda_cost(1, 1000.0, 1024)["duration"]
    assert cost_model.lambda_cost(1, 1000.0, 512)["duration"] == pytest.approx(full / 2)


def test_dynamodb_units_count_writes_reads_and_transactions_and_skip_other_services() -> None:
    calls = {
        "dynamodb:PutItem": 3,
        "dynamodb:UpdateItem": 2,
        "dynamodb:UpdateItem [ConditionalCheckFailedException]": 1,  # failed writes are billed too
        "dynamodb:DeleteItem": 1,
        "dynamodb:TransactWriteItems": 1,
        "dynamodb:GetItem": 4,
        "dynamodb:Query": 2,
        "lambda:GetFunction": 9,
    }
    writes, reads = cost_model.dynamodb_units(calls, Assumptions())
    assert writes == 3 + 2 + 1 + 1 + 2 * 2  # a transaction of two items is billed twice per item
    assert reads == 6
    writes_3kb, _ = cost_model.dynamodb_units(calls, Assumptions(write_units_per_write=3))
    assert writes_3kb == 3 * writes


def test_alarms_are_billed_by_the_hour_they_lived() -> None:
    # two alarms reading three metrics, alive seven minutes: one hour each when partial hours round up
    assert cost_model.alarm_metric_hours(3, 7 * 60) == 3
    assert cost_model.alarm_metric_hours(3, 7 * 60, round_up=False) == pytest.approx(3 * 7 / 60)
    assert cost_model.alarm_metric_hours(3, 61 * 60) == 6
    assert cost_model.alarm_metric_hours(3, 0) == 0


def test_bill_prices_each_service_from_its_calls() -> None:
    usage = Usage(
        calls={
            "s3:HeadObject": 1,
            "s3:GetObject": 1,
            "sns:Publish": 2,
            "cloudwatch:GetMetricData": 1,
            "cloudwatch:PutMetricAlarm": 2,
            "cloudwatch:DescribeAlarms": 15,
            "codedeploy:CreateDeployment": 1,
            "secretsmanager:GetSecretValue": 1,
            "sqs:SendMessage": 1,
        },
        lambda_runs={"ArtifactDeployer": (1, 3000.0, 1024)},
        log_bytes=2_000_000,
        alarm_metric_hours=3,
        get_metric_data_metrics=8,
        eventbridge_events=1,
        sns_kms_requests_per_publish=2,
        traces=4,
        extra={"s3:PutObject": 1},
    )
    lines = cost_model.bill(usage)
    assert lines["S3 requests"] == pytest.approx(
        PRICES["s3_class_a"].dollars + 2 * PRICES["s3_class_b"].dollars
    )
    assert lines["SNS publishes"] == pytest.approx(2 * PRICES["sns_publish"].dollars)
    assert lines["KMS requests"] == pytest.approx(4 * PRICES["kms_request"].dollars)
    assert lines["CloudWatch GetMetricData"] == pytest.approx(8 * 0.01 / 1000)
    assert lines["CloudWatch other priced requests"] == 0  # alarms' API and DescribeAlarms are not priced
    assert lines["CloudWatch alarms (per-release)"] == pytest.approx(3 * 0.10 / 730)
    assert lines["CloudWatch Logs ingestion"] == pytest.approx(0.002 * 0.50)
    assert lines["EventBridge events"] == pytest.approx(1e-6)
    assert lines["X-Ray traces"] == pytest.approx(4 * 5e-6)
    assert lines["Secrets Manager API calls"] == pytest.approx(0.05 / 10000)
    assert lines["SQS requests"] == pytest.approx(0.40 / 1e6)
    assert lines["Lambda ArtifactDeployer duration"] == pytest.approx(3 * 0.0000133334)
    assert all(value >= 0 for value in lines.values())
    assert cost_model.per_thousand(lines)["SNS publishes"] == pytest.approx(1000 * lines["SNS publishes"])


def test_monthly_fixed_counts_the_reconciler_runs_of_a_month() -> None:
    assert cost_model.runs_per_day("rate(5 minutes)") == 288
    assert cost_model.runs_per_day("rate(1 hour)") == 24
    fixed = cost_model.monthly_fixed(
        {"Lambda Reconciler duration": 0.001, "SNS publishes": 0.0},
        runs_per_day=288,
        secrets=2,
        kms_keys=1,
        standing_alarm_metrics=1,
    )
    assert fixed["reconciler: Lambda Reconciler duration"] == pytest.approx(0.001 * 288 * 365 / 12)
    assert "reconciler: SNS publishes" not in fixed
    assert fixed["Secrets Manager secrets"] == pytest.approx(0.80)
    assert fixed["KMS customer managed keys"] == pytest.approx(1.00)
    assert fixed["CloudWatch standing alarms"] == pytest.approx(0.10)


def test_item_size_follows_dynamodbs_rules() -> None:
    assert cost_model.item_size("abc", "pk") == 5
    assert cost_model.item_size(True, "ok") == 3
    assert cost_model.item_size(Decimal("12345"), "n") == 1 + 3 + 1
    assert cost_model.item_size({"a": "xy"}, "m") == 1 + 3 + (1 + 1 + 2)
    assert cost_model.item_size(["x", "y"]) == 3 + 2 * (1 + 1)
    item = {"pk": "FN#orders", "sk": "REL#1", "steps": {"total": Decimal(1723)}}
    assert cost_model.write_units(cost_model.item_size(item)) == 1
    assert cost_model.write_units(1025) == 2
    with pytest.raises(TypeError):
        cost_model.item_size(object())


def test_every_price_names_its_page_and_the_date_it_was_read() -> None:
    for name, price in PRICES.items():
        assert price.dollars > 0, name
        assert price.source.startswith("https://aws.amazon.com/"), name
        assert price.read == "2026-11-29", name
        assert price.note, name
