"""The sandbox's fixed CPU per call, and the calls and threads that are not DynamoDB's own work.

Starts a sandbox in this process (IAM enforced), provisions what a burst of releases touches (a role with
the release starter's kind of policy, a tagged function, a ledger-like table, a notification topic with a
queue subscribed, two canary alarms per function with datapoints), then makes each call shape the product
makes as that role, and reads the CPU the sandbox's request thread spent on each from its call log
(`Call.cpu_ms`). It also times, on this thread's CPU clock, one CloudWatch alarm evaluation pass over
every alarm and CodeDeploy's own client side of a 100-name DescribeAlarms.

    .venv/bin/python -m benchmarks.sandbox_front_bench [--calls 300] [--functions 50]

Prints one JSON document: ms of sandbox CPU per call by operation, and the two in-process figures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import boto3

from rollout.canary_alarms import CanaryScope, alarm_definitions
from sandbox import Sandbox, metrics
from sandbox.call_log import cpu_by_operation
from sandbox.codedeploy.aws import BotoAws
from tests.support.sandbox_support import client, queue, trust_policy, zip_of

ACCOUNT = "123456789012"
REGION = "us-east-1"
PREFIX = "bench"


def starter_policy(table_arn: str, topic_arn: str) -> dict[str, Any]:
    """The shape of the stack's release starter policy (template.yaml, ReleaseStarterPolicy)."""
    function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:*"
    alarm_arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ChangeOnlyManagedFunctions",
                "Effect": "Allow",
                "Action": [
                    "lambda:GetFunction",
                    "lambda:GetFunctionConfiguration",
                    "lambda:GetAlias",
                    "lambda:CreateAlias",
                    "lambda:UpdateFunctionCode",
                    "lambda:PublishVersion",
                    "lambda:GetProvisionedConcurrencyConfig",
                ],
                "Resource": function_arn,
                "Condition": {"StringEquals": {"aws:ResourceTag/rollout:managed": "true"}},
            },
            {
                "Sid": "ManageCanaryAlarms",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
                "Resource": f"{alarm_arn}{PREFIX}-canary-*",
            },
            {
                "Sid": "ReadAlarms",
                "Effect": "Allow",
                "Action": "cloudwatch:DescribeAlarms",
                "Resource": f"{alarm_arn}*",
            },
            {
                "Sid": "Ledger",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Query",
                    "dynamodb:Scan",
                ],
                "Resource": [table_arn, f"{table_arn}/index/*"],
            },
            {"Sid": "Notify", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn},
        ],
    }


def provision(sb: Sandbox, functions: int) -> dict[str, Any]:
    iam, lam, ddb, sns, cw = (client(sb, s) for s in ("iam", "lambda", "dynamodb", "sns", "cloudwatch"))
    table = ddb.create_table(
        TableName=f"{PREFIX}-ledger",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]
    topic = sns.create_topic(Name=f"{PREFIX}-notifications")["TopicArn"]
    _, queue_arn = queue(sb, f"{PREFIX}-notices")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    role = iam.create_role(RoleName=f"{PREFIX}-starter", AssumeRolePolicyDocument=trust_policy("lambda"))[
        "Role"
    ]
    policy = iam.create_policy(
        PolicyName=f"{PREFIX}-starter", PolicyDocument=json.dumps(starter_policy(table["TableArn"], topic))
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role["RoleName"], PolicyArn=policy)
    iam.attach_role_policy(
        RoleName=role["RoleName"],
        PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    )
    deploy_role = iam.create_role(
        RoleName=f"{PREFIX}-codedeploy", AssumeRolePolicyDocument=trust_policy("codedeploy")
    )
    iam.attach_role_policy(
        RoleName=deploy_role["Role"]["RoleName"],
        PolicyArn="arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda",
    )
    function = f"{PREFIX}-fn"
    lam.create_function(
        FunctionName=function,
        Runtime="python3.13",
        Role=role["Arn"],
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": "def handler(event, context):\n    return 1\n"})},
        Tags={"rollout:managed": "true"},
    )
    ddb.put_item(
        TableName=table["TableName"],
        Item={"pk": {"S": "FN#a"}, "sk": {"S": "REL#1"}, "state": {"S": "DEPLOYING"}, "n": {"N": "1"}},
    )
    alarms = []
    for index in range(functions):
        name = f"{PREFIX}-fn{index}"
        for definition in alarm_definitions(f"{PREFIX}-canary", CanaryScope(name, "live", "2"), None):
            cw.put_metric_alarm(**definition)
            alarms.append(definition["AlarmName"])
        for _ in range(3):
            metrics.record_lambda(sb, name, f"{name}:live", "2", duration_ms=12.5)
    return {
        "role": role["Arn"],
        "deploy_role": deploy_role["Role"]["Arn"],
        "table": table["TableName"],
        "topic": topic,
        "function": function,
        "alarms": alarms,
    }


def as_role(sb: Sandbox, role: str, service: str, session: str) -> Any:
    credentials = sb.iam.issue(role, session)
    return boto3.client(
        service, endpoint_url=sb.endpoint_url, region_name=REGION, **credentials.boto3_arguments()
    )


def thread_ms(action: Callable[[], Any], times: int) -> float:
    started = time.thread_time()
    for _ in range(times):
        action()
    return round((time.thread_time() - started) * 1000 / times, 2)


def run(calls: int, functions: int, only: list[str]) -> dict[str, Any]:
    with Sandbox(speed=60, iam=True) as sb:
        world = provision(sb, functions)
        session = f"{PREFIX}-fn"
        ddb, lam, sns, cw = (
            as_role(sb, world["role"], s, session) for s in ("dynamodb", "lambda", "sns", "cloudwatch")
        )
        key = {"pk": {"S": "FN#a"}, "sk": {"S": "REL#1"}}
        every: dict[str, Callable[[], Any]] = {
            "GetItem": lambda: ddb.get_item(TableName=world["table"], Key=key, ConsistentRead=True),
            "GetFunctionConfiguration": lambda: lam.get_function_configuration(
                FunctionName=world["function"]
            ),
            "Publish": lambda: sns.publish(
                TopicArn=world["topic"],
                Subject="Rollout: release deployed",
                Message=json.dumps({"kind": "deployed", "function": "a", "release": "1" * 26}),
                MessageAttributes={"kind": {"DataType": "String", "StringValue": "deployed"}},
            ),
            "DescribeAlarms": lambda: cw.describe_alarms(
                AlarmNames=world["alarms"][:100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            ),
        }
        shapes = [shape for name, shape in every.items() if not only or name in only]
        for shape in shapes:  # warm every path once before counting
            shape()
        mark = sb.calls.mark()
        for _ in range(calls):
            for shape in shapes:
                shape()
        result: dict[str, Any] = {
            "ms_per_call": {
                name: entry["ms_per_call"] for name, entry in cpu_by_operation(sb.calls.since(mark)).items()
            },
            "alarms": len(world["alarms"]),
        }
        rounds = max(1, calls // 10)
        if not only or "CodeDeployPoll" in only:
            deploy_credentials = sb.iam.issue(world["deploy_role"], "AWSCodeDeploy").boto3_arguments()
            codedeploy = BotoAws(sb.endpoint_url, REGION, deploy_credentials)
            names = world["alarms"][:100]
            codedeploy.alarm_states(names)
            mark = sb.calls.mark()
            result["codedeploy_describe_alarms_client_ms"] = thread_ms(
                lambda: codedeploy.alarm_states(names), rounds
            )
            served = cpu_by_operation(sb.calls.since(mark))["cloudwatch:DescribeAlarms"]["ms_per_call"]
            result["codedeploy_describe_alarms_served_ms"] = served
        if not only or "AlarmEvaluation" in only:
            result["alarm_evaluation_pass_ms"] = thread_ms(sb.alarms.evaluate_all, rounds)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls of each shape")
    parser.add_argument("--functions", type=int, default=50, help="functions with two canary alarms each")
    parser.add_argument(
        "--only",
        nargs="*",
        default=[],
        help="what to measure (default: all): GetItem GetFunctionConfiguration Publish DescribeAlarms CodeDeployPoll AlarmEvaluation",
    )
    args = parser.parse_args()
    print(json.dumps(run(args.calls, args.functions, args.only), indent=2))


if __name__ == "__main__":
    main()
