"""The sandbox's small evaluators on their own: schedules, metric math, policy conditions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox.metrics import evaluate_expression
from sandbox.policy_conditions import condition_holds, request_context
from sandbox.schedule import Schedule, ScheduleError


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("expression", "now", "expected"),
    [
        ("rate(5 minutes)", "2026-01-01T10:02:00", "2026-01-01T10:05:00"),
        ("rate(1 hour)", "2026-01-01T10:00:00", "2026-01-01T11:00:00"),
        ("cron(0/15 * * * ? *)", "2026-01-01T10:01:00", "2026-01-01T10:15:00"),
        ("cron(30 9 ? * MON-FRI *)", "2026-01-03T12:00:00", "2026-01-05T09:30:00"),  # Saturday -> Monday
        ("cron(0 0 1 JAN ? 2027)", "2026-06-01T00:00:00", "2027-01-01T00:00:00"),
    ],
)
def test_schedules_fire_at_the_next_matching_time(expression, now, expected):
    assert Schedule.parse(expression).next_after(at(now)) == at(expected)


@pytest.mark.parametrize(
    "expression", ["rate(0 minutes)", "rate(5 fortnights)", "cron(* * * *)", "cron(0 0 L * ? *)", "every 5m"]
)
def test_bad_schedules_are_refused(expression):
    with pytest.raises(ScheduleError):
        Schedule.parse(expression)


def test_metric_math_combines_series_point_by_point():
    series = {"errors": {0.0: 1.0, 60.0: 0.0, 120.0: 3.0}, "invocations": {0.0: 4.0, 60.0: 0.0, 120.0: 6.0}}
    assert evaluate_expression("errors / invocations", series) == {
        0.0: 0.25,
        120.0: 0.5,
    }  # x/0 drops the point
    assert evaluate_expression("100 * (errors + 1) / invocations", series) == {
        0.0: 50.0,
        120.0: pytest.approx(66.666, 0.001),
    }
    assert evaluate_expression("FILL(errors, 0)", {"errors": {60.0: 2.0}}, grid=[0.0, 60.0]) == {
        0.0: 0.0,
        60.0: 2.0,
    }
    with pytest.raises(KeyError):
        evaluate_expression("missing / invocations", series)


def test_metric_math_if_and_comparisons_as_the_canary_alarm_uses_them():
    series = {"errors": {0.0: 1.0, 60.0: 2.0, 120.0: 0.0}, "invocations": {0.0: 2.0, 60.0: 20.0, 120.0: 0.0}}
    rate = evaluate_expression("IF(invocations >= 5, errors / invocations, 0)", series)
    assert rate == {0.0: 0.0, 60.0: 0.1, 120.0: 0.0}
    assert evaluate_expression("IF(errors > 0 AND invocations < 10, 1)", series) == {0.0: 1.0}
    assert evaluate_expression("errors >= 1 || invocations == 0", series) == {0.0: 1.0, 60.0: 1.0, 120.0: 1.0}


def test_policy_conditions_follow_iam_rules_for_the_sandbox_context():
    context = request_context("123456789012")
    assert not condition_holds({"Bool": {"aws:SecureTransport": "false"}}, context)
    assert condition_holds({"Bool": {"aws:SecureTransport": ["true"]}}, context)
    assert not condition_holds({"NumericLessThan": {"s3:TlsVersion": 1.2}}, context)
    assert not condition_holds({"StringEquals": {"aws:SourceVpce": "vpce-1"}}, context)  # absent key
    assert condition_holds({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}, context)
    assert condition_holds({"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}}, context)
    assert condition_holds({"Null": {"aws:SourceVpce": "true"}}, context)
    assert condition_holds({"StringLike": {"aws:PrincipalAccount": "1234*"}}, context)
    assert condition_holds(None, context)


def test_arn_operators_match_each_part_of_the_arn():
    role = "arn:aws:iam::123456789012:role/app-Deployer-X1"
    assert condition_holds(
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/app-*"}}, {"aws:principalarn": role}
    )
    assert not condition_holds(
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}, {"aws:principalarn": role}
    )
    assert condition_holds(
        {"ArnNotEquals": {"aws:PrincipalArn": ["arn:aws:iam::123456789012:role/other"]}},
        {"aws:principalarn": role},
    )
    assert not condition_holds(
        {"ArnNotEquals": {"aws:PrincipalArn": [role, "x"]}}, {"aws:principalarn": role}
    )


def test_set_operators_and_if_exists():
    tags = {"aws:tagkeys": ["team", "env"]}
    assert condition_holds({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env", "owner"]}}, tags)
    assert not condition_holds({"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}, tags)
    assert condition_holds({"ForAnyValue:StringEquals": {"aws:TagKeys": ["env"]}}, tags)
    assert condition_holds({"ForAllValues:StringEquals": {"aws:TagKeys": ["x"]}}, {})  # no values: vacuously
    assert not condition_holds({"ForAnyValue:StringEquals": {"aws:TagKeys": ["x"]}}, {})
    assert condition_holds({"StringEqualsIfExists": {"aws:ResourceTag/team": "a"}}, {})
    assert not condition_holds(
        {"StringEqualsIfExists": {"aws:ResourceTag/team": "a"}}, {"aws:resourcetag/team": "b"}
    )


def test_resources_and_actions_match_as_iam_matches_them():
    from sandbox.iam.policy import action_matches, resource_matches

    assert resource_matches(
        ["arn:aws:lambda:*:*:function:CodeDeployHook_*"],
        "arn:aws:lambda:us-east-1:1:function:CodeDeployHook_a_Pre",
    )
    assert not resource_matches(
        ["arn:aws:lambda:*:*:function:CodeDeployHook_*"], "arn:aws:lambda:us-east-1:1:function:hook"
    )
    # A trailing * reaches past the function name into a version or alias qualifier.
    assert resource_matches(
        ["arn:aws:lambda:us-east-1:1:function:*"], "arn:aws:lambda:us-east-1:1:function:f:live"
    )
    assert not resource_matches(
        ["arn:aws:lambda:us-east-1:1:function:f"], "arn:aws:lambda:us-east-1:1:function:f:live"
    )
    assert resource_matches(["*"], "*") and not resource_matches(["arn:aws:cloudwatch:*"], "*")
    assert action_matches(["SNS:Publish"], "sns:Publish") and action_matches(
        ["dynamodb:Get*"], "dynamodb:GetItem"
    )
