"""The control-plane resources, created in moto the way template.yaml declares them."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any

import boto3

REGION = "us-east-1"
ACCOUNT = "123456789012"

LEDGER_TABLE = "rollout-test-ledger"
IDEMPOTENCY_TABLE = "rollout-test-idempotency"
ARTIFACT_BUCKET = "rollout-test-artifacts"
TOPIC_NAME = "rollout-test-notifications"
APPLICATION = "rollout-test"
PRE_HOOK = "CodeDeployHook_rollout-test_PreTraffic"
POST_HOOK = "CodeDeployHook_rollout-test_PostTraffic"
CODEDEPLOY_ROLE = "rollout-test-codedeploy"
FUNCTION_ROLE = "rollout-test-target"


def moto_client(service: str) -> Any:
    """A test-side client for the in-process moto, made once per process.

    moto's stubber sits in every client made after `import moto` and answers for whichever
    `mock_aws()` is open, so one client serves every test. Keyed by the environment the client
    reads when it is made (endpoint, credentials), so a test that points boto3 elsewhere gets its own.
    The clients carry no per-test event handlers: register those on a client of your own.
    """
    return _moto_client(service, os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_ACCESS_KEY_ID"))


@functools.cache
def _moto_client(service: str, _endpoint: str | None, _access_key: str | None) -> Any:
    return boto3.client(service, region_name=REGION)


def create_ledger_table(name: str = LEDGER_TABLE) -> None:
    moto_client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "deployment_id", "AttributeType": "S"},
            {"AttributeName": "open_state", "AttributeType": "S"},
            {"AttributeName": "release_id", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-deployment",
                "KeySchema": [{"AttributeName": "deployment_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "open-releases",
                "KeySchema": [
                    {"AttributeName": "open_state", "KeyType": "HASH"},
                    {"AttributeName": "release_id", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )


def create_idempotency_table(name: str = IDEMPOTENCY_TABLE) -> None:
    moto_client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )


@dataclass
class StackUnderTest:
    """Names of the stack's resources and ways to read what it did."""

    bucket: str
    topic_arn: str
    queue_url: str
    function_role_arn: str
    codedeploy_role_arn: str
    received: list[dict[str, Any]] = field(default_factory=list)

    def notifications(self) -> list[dict[str, Any]]:
        """Every notification published so far, read back through the SQS subscriber.

        Each is the SNS envelope's parsed Message plus `_subject` and `_attributes`.
        """
        sqs = moto_client("sqs")
        while True:
            resp = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            messages = resp.get("Messages", [])
            if not messages:
                break
            for msg in messages:
                envelope = json.loads(msg["Body"])
                body = json.loads(envelope["Message"])
                body["_subject"] = envelope.get("Subject")
                body["_attributes"] = {
                    k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()
                }
                self.received.append(body)
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"])
        return list(self.received)

    def kinds(self) -> list[str]:
        return [n["kind"] for n in self.notifications()]


def create_stack() -> StackUnderTest:
    iam = moto_client("iam")
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    function_role = iam.create_role(RoleName=FUNCTION_ROLE, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    codedeploy_role = iam.create_role(RoleName=CODEDEPLOY_ROLE, AssumeRolePolicyDocument=trust)["Role"]["Arn"]

    s3 = moto_client("s3")
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    s3.put_bucket_versioning(Bucket=ARTIFACT_BUCKET, VersioningConfiguration={"Status": "Enabled"})

    create_ledger_table()
    create_idempotency_table()

    sns = moto_client("sns")
    sqs = moto_client("sqs")
    topic_arn = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    queue_url = sqs.create_queue(QueueName="rollout-test-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return StackUnderTest(
        bucket=ARTIFACT_BUCKET,
        topic_arn=topic_arn,
        queue_url=queue_url,
        function_role_arn=function_role,
        codedeploy_role_arn=codedeploy_role,
    )


def stack_environment(stack: StackUnderTest) -> dict[str, str]:
    """The environment template.yaml gives the control-plane functions."""
    return {
        "STACK_NAME": "rollout-test",
        "LEDGER_TABLE": LEDGER_TABLE,
        "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
        "NOTIFICATION_TOPIC_ARN": stack.topic_arn,
        "ARTIFACT_BUCKET": stack.bucket,
        "CODEDEPLOY_APPLICATION": APPLICATION,
        "CODEDEPLOY_ROLE_ARN": stack.codedeploy_role_arn,
        "PRE_TRAFFIC_HOOK": PRE_HOOK,
        "POST_TRAFFIC_HOOK": POST_HOOK,
        "DEFAULT_DEPLOYMENT_CONFIG": "Canary10Percent5Minutes",
        "POWERTOOLS_SERVICE_NAME": "rollout",
        "POWERTOOLS_METRICS_NAMESPACE": "Rollout",
    }
