"""CloudWatch and CloudWatch Logs on the sandbox clock: errors AWS answers with 4xx, logs at any speed."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from sandbox import Sandbox
from tests.support.sandbox_support import (
    ROLE_POLICY,
    client,
    invoke_json,
    trust_policy,
    unique,
    wait_for,
    zip_of,
)

# At this speed two sandbox hours pass in under half a real second.
FAST = 20_000.0


def test_a_time_window_that_does_not_move_forward_is_a_400():
    with Sandbox(speed=60) as sb:
        cw = client(sb, "cloudwatch")
        now = datetime.now(UTC)
        for start, end in ((now, now), (now, now - timedelta(minutes=5))):
            with pytest.raises(ClientError) as caught:
                cw.get_metric_statistics(
                    Namespace="AWS/Lambda",
                    MetricName="Errors",
                    StartTime=start,
                    EndTime=end,
                    Period=60,
                    Statistics=["Sum"],
                )
            error = caught.value.response
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert error["Error"]["Code"] == "InvalidParameterValue"
            assert (
                error["Error"]["Message"]
                == "The parameter StartTime must be less than the parameter EndTime."
            )


def test_function_logs_are_kept_when_the_sandbox_clock_runs_hours_ahead():
    with Sandbox(speed=FAST) as sb:
        iam = client(sb, "iam")
        role = iam.create_role(RoleName="fast-logs", AssumeRolePolicyDocument=trust_policy("lambda"))["Role"][
            "Arn"
        ]
        iam.put_role_policy(RoleName="fast-logs", PolicyName="logs", PolicyDocument=json.dumps(ROLE_POLICY))
        name = unique("fast")
        client(sb, "lambda").create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": zip_of({"app.py": "def handler(e, c):\n    print('marker-line')\n"})},
        )
        # Let the sandbox clock get well past moto's "2 hours in the future" limit on real time.
        wait_for(lambda: sb.clock.now() - time.time() > 3 * 3600, timeout=5, what="the clock to run ahead")
        invoke_json(sb, name)
        logs = client(sb, "logs")

        def marker() -> list[dict]:
            found = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern="marker-line")
            return list(found["events"])

        [event] = wait_for(marker, timeout=5, what="the log line")
        # Stamped and read back in sandbox time, not real time.
        assert event["timestamp"] / 1000 > time.time() + 3 * 3600
        assert abs(event["timestamp"] / 1000 - sb.clock.now()) < 24 * 3600


def test_an_expression_the_sandbox_cannot_evaluate_is_a_400_not_an_html_500():
    with Sandbox(speed=60) as sb:
        cw = client(sb, "cloudwatch", retries=False)
        now = datetime.now(UTC)
        with pytest.raises(ClientError) as caught:
            cw.get_metric_data(
                MetricDataQueries=[{"Id": "e1", "Expression": "m1 +* 2"}],
                StartTime=now - timedelta(minutes=5),
                EndTime=now,
            )
        error = caught.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert error["Error"]["Code"] == "ValidationError"
        assert "e1" in error["Error"]["Message"] and "<html" not in error["Error"]["Message"]
