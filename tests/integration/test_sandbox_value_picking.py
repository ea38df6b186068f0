"""moto's responses read with the sandbox's memo of where each member lives (sandbox/value_picking.py) are
exactly the responses moto's own picker gives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from enum import Enum
from typing import Any

import pytest
from moto.core.responses import get_service_model
from moto.core.serialize import ResponseSerializer, XFormedAttributePicker, get_serializer_class

from rollout.canary_alarms import CanaryScope, alarm_definitions
from sandbox import Sandbox
from tests.support.sandbox_support import client, queue, trust_policy, unique, zip_of

Rendered = tuple[Any, Any, Any]


class Recorder:
    """Every response the sandbox serializes, rendered again at once with moto's own picker."""

    def __init__(self) -> None:
        self.compared: list[str] = []
        self.different: list[tuple[str, Rendered, Rendered]] = []
        self._lock = threading.Lock()

    def serialize(self, original: Any) -> Any:
        recorder = self

        def serialize_twice(serializer: Any, result: Any) -> Any:
            with recorder._lock:  # one rendering at a time: moto's own methods are put back for the second
                fast = original(serializer, result)
                again = type(serializer)(
                    operation_model=serializer.operation_model,
                    pretty_print=serializer.pretty_print,
                    value_picker=serializer._value_picker,
                )
                with moto_s_own():
                    slow = original(again, result)
                name = f"{serializer.service_model.service_name}:{serializer.operation_name}"
                recorder.compared.append(name)
                if _shown(fast) != _shown(slow):
                    recorder.different.append((name, _shown(fast), _shown(slow)))
            return fast

        return serialize_twice


@contextmanager
def moto_s_own() -> Iterator[None]:
    """moto's own value picking and structure writing, in place of the sandbox's, for a while."""
    fast = {name: getattr(ResponseSerializer, name) for name in ("get_value", "_serialize_type_structure")}
    try:
        for name, method in fast.items():
            setattr(ResponseSerializer, name, getattr(method, "original", method))
        yield
    finally:
        for name, method in fast.items():
            setattr(ResponseSerializer, name, method)


def _shown(response: dict[str, Any]) -> Rendered:
    return (response["status_code"], dict(response["headers"]), response["body"])


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[Sandbox, Recorder]]:
    recorder = Recorder()
    with Sandbox(speed=60, iam=True) as running, pytest.MonkeyPatch.context() as patch:
        patch.setattr(ResponseSerializer, "serialize", recorder.serialize(ResponseSerializer.serialize))
        yield running, recorder


def test_every_response_the_product_reads_is_moto_s_own(recorded: tuple[Sandbox, Recorder]) -> None:
    sb, recorder = recorded
    iam, lam, cw, sns, sqs, ddb, s3 = (
        client(sb, s) for s in ("iam", "lambda", "cloudwatch", "sns", "sqs", "dynamodb", "s3")
    )
    role = iam.create_role(RoleName=unique("picker"), AssumeRolePolicyDocument=trust_policy("lambda"))["Role"]
    iam.put_role_policy(
        RoleName=role["RoleName"],
        PolicyName="inline",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    iam.get_role(RoleName=role["RoleName"])
    iam.list_role_policies(RoleName=role["RoleName"])
    function = unique("picker-fn")
    lam.create_function(
        FunctionName=function,
        Runtime="python3.13",
        Role=role["Arn"],
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": "def handler(event, context):\n    return 1\n"})},
        Tags={"rollout:managed": "true"},
        Environment={"Variables": {"STAGE": "1"}},
    )
    lam.get_function_configuration(FunctionName=function)
    lam.get_function(FunctionName=function)
    version = lam.publish_version(FunctionName=function)["Version"]
    lam.create_alias(FunctionName=function, Name="live", FunctionVersion=version)
    lam.get_alias(FunctionName=function, Name="live")
    lam.list_versions_by_function(FunctionName=function)
    lam.list_tags(Resource=lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"])
    scope = CanaryScope(function, "live", version)
    canary = alarm_definitions("picker-canary", scope, None)
    for definition in canary:
        cw.put_metric_alarm(**definition, AlarmActions=["arn:aws:sns:us-east-1:123456789012:nowhere"])
    cw.put_metric_alarm(
        AlarmName=f"{function}-p99",
        Namespace="AWS/Lambda",
        MetricName="Duration",
        Dimensions=scope.dimensions,
        ExtendedStatistic="p99",
        Period=60,
        Threshold=100.0,
        ComparisonOperator="GreaterThanThreshold",
        EvaluationPeriods=1,
    )
    names = [definition["AlarmName"] for definition in canary]
    cw.set_alarm_state(AlarmName=names[0], StateValue="ALARM", StateReason="test")
    cw.tag_resource(
        ResourceARN=f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{names[1]}",
        Tags=[{"Key": "team", "Value": "a"}],
    )
    cw.describe_alarms(AlarmNames=[*names, f"{function}-p99", "missing"])
    cw.describe_alarms(AlarmNamePrefix=function, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    cw.list_tags_for_resource(ResourceARN=f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{names[1]}")
    cw.list_metrics(Namespace="AWS/Lambda")
    topic = sns.create_topic(Name=unique("picker"))["TopicArn"]
    _, queue_arn = queue(sb, unique("picker"))
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    sns.get_topic_attributes(TopicArn=topic)
    sns.list_subscriptions_by_topic(TopicArn=topic)
    sns.publish(
        TopicArn=topic, Message="hello", MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}}
    )
    url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    table = unique("picker")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.describe_table(TableName=table)
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "g": {"S": "x"}, "n": {"N": "1"}})
    ddb.get_item(TableName=table, Key={"pk": {"S": "a"}}, ReturnConsumedCapacity="TOTAL")
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET n = n + :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )
    bucket = unique("picker")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="a/b.zip", Body=b"zip", Metadata={"hotfix": "true"})
    s3.head_object(Bucket=bucket, Key="a/b.zip")
    s3.list_objects_v2(Bucket=bucket, Prefix="a/")
    s3.list_object_versions(Bucket=bucket)
    with pytest.raises(Exception):  # noqa: B017 - an error is rendered by the serializer too
        lam.get_function(FunctionName=unique("missing"))

    services = {name.split(":")[0] for name in recorder.compared}
    assert {"cloudwatch", "sns", "sqs", "dynamodb", "iam", "s3"} <= services
    assert "cloudwatch:DescribeAlarms" in recorder.compared
    assert recorder.different == []


# -- the proposals moto's alias providers make, on objects made to exercise each ------------------


class MetricAlarm:
    """Named as the shape: moto's ClassPrefixAlias strips "MetricAlarm" from member names."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


class Aliased:
    class Meta:
        serialization_aliases = {"AlarmName": "title", "StateValue": "mood"}

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


class Pathed:
    """An alias that is a path: moto reads "inner.title" as value.inner.title."""

    class Meta:
        serialization_aliases = {"AlarmName": "inner.title", "AlarmArn": "inner.missing"}

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


class State(Enum):
    ALARM = "ALARM"


class Indexed:
    """An object read with [] (moto's get_value uses __getitem__ when an object has one)."""

    def __init__(self, values: Any) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]


class Dynamic:
    """Attributes made up when asked for (a __getattr__ that answers every spelling of a name)."""

    def __getattr__(self, name: str) -> Any:
        if name.lower().endswith(("name", "value", "arn", "description")):
            return f"dynamic {name}"
        raise AttributeError(name)


def every_shape() -> list[Any]:
    now = 1_700_000_000
    return [
        {"MetricAlarms": [{"AlarmName": "plain", "StateValue": "OK", "Threshold": 1.5, "Dimensions": []}]},
        {"MetricAlarms": [{"alarm_name": "snake", "state_value": "ALARM", "evaluation_periods": 3}]},
        {"MetricAlarms": [MetricAlarm(Name="class prefix", Arn="arn", alarm_description="d", Period=60)]},
        {"MetricAlarms": [Aliased(title="aliased", mood="INSUFFICIENT_DATA", AlarmName="not this one")]},
        {"MetricAlarms": [Indexed({"AlarmName": "indexed", "StateUpdatedTimestamp": now})]},
        {"MetricAlarms": [Pathed(inner=Aliased(title="by path"), alarm_arn="arn")]},
        # Meta and __getitem__ on the object itself, not its class
        {"MetricAlarms": [MetricAlarm(Meta=Aliased.Meta, title="own meta", AlarmName="not this one")]},
        {"MetricAlarms": [MetricAlarm(__getitem__=len, Name="own __getitem__: moto indexes, and fails")]},
        {"MetricAlarms": [Indexed(["a list: [] with a name is a TypeError"])]},
        {"MetricAlarms": [Dynamic()]},
        {"MetricAlarms": [{"AlarmName": None, "Dimensions": [{"Name": "n", "Value": "v"}], "Metrics": []}]},
        {"CompositeAlarms": [{"AlarmName": "composite", "AlarmRule": "ALARM(a)"}], "NextToken": "t"},
        {
            "MetricAlarms": [
                {
                    "AlarmName": {},
                    "AlarmDescription": [],
                    "StateValue": State.ALARM,
                    "ActionsEnabled": "yes",
                    "Period": "60",
                    "Threshold": "1.5",
                    "EvaluationPeriods": 2.9,
                    "StateReasonData": 0,
                }
            ]
        },
        {},
    ]


@pytest.mark.parametrize(
    "transformers",
    [None, {}, {"MetricAlarms.AlarmName": lambda value: f"<{value}>", "StateValue": lambda value: None}],
)
def test_each_alias_moto_proposes_is_picked_as_moto_picks_it(
    recorded: tuple[Sandbox, Recorder], transformers: dict[str, Any] | None
) -> None:
    service = get_service_model("cloudwatch")
    serializer_class = get_serializer_class("cloudwatch", "json")
    for result in every_shape():
        bodies = []
        for rendering in (nullcontext, moto_s_own):
            serializer = serializer_class(
                operation_model=service.operation_model("DescribeAlarms"),
                value_picker=XFormedAttributePicker(response_transformers=transformers),
            )
            with rendering():
                bodies.append(serializer.serialize(result)["body"])
        assert bodies[0] == bodies[1]
