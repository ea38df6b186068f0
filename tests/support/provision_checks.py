"""Read a provisioned stack back through the AWS APIs: every resource exists and is wired as declared."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from sandbox.provision import ProvisionedResource, ProvisionedStack
from sandbox.queue_policy import let_aws_services_send

Clients = Callable[[str], Any]
SLACK_SECRET_NAME = "rollout-slack-webhook"


def clients_for(endpoint_url: str, region: str = "us-east-1", config: Config | None = None) -> Clients:
    cache: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in cache:
            cache[service] = boto3.client(
                service,
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=config,
            )
        return cache[service]

    return client


def _sids(policy: str) -> set[str]:
    return {statement.get("Sid", "") for statement in json.loads(policy)["Statement"]}


def _declared_sids(resource: ProvisionedResource) -> set[str]:
    return {statement.get("Sid", "") for statement in resource.properties["PolicyDocument"]["Statement"]}


def _bucket(c: Clients, r: ProvisionedResource) -> None:
    c("s3").head_bucket(Bucket=r.physical_id)


def _bucket_policy(c: Clients, r: ProvisionedResource) -> None:
    assert _sids(c("s3").get_bucket_policy(Bucket=r.properties["Bucket"])["Policy"]) == _declared_sids(r)


def _table(c: Clients, r: ProvisionedResource) -> None:
    assert c("dynamodb").describe_table(TableName=r.physical_id)["Table"]["TableStatus"] == "ACTIVE"


def _topic(c: Clients, r: ProvisionedResource) -> None:
    c("sns").get_topic_attributes(TopicArn=r.physical_id)


def _topic_policy(c: Clients, r: ProvisionedResource) -> None:
    for topic in r.properties["Topics"]:
        policy = c("sns").get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"]
        assert _sids(policy) == _declared_sids(r)


def _subscription(c: Clients, r: ProvisionedResource) -> None:
    attributes = c("sns").get_subscription_attributes(SubscriptionArn=r.physical_id)["Attributes"]
    assert attributes["Endpoint"] == r.properties["Endpoint"]


def _queue(c: Clients, r: ProvisionedResource) -> None:
    c("sqs").get_queue_attributes(QueueUrl=r.physical_id, AttributeNames=["QueueArn"])


def _queue_policy(c: Clients, r: ProvisionedResource) -> None:
    for queue_url in r.properties["Queues"]:
        policy = c("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])["Attributes"][
            "Policy"
        ]
        assert _sids(policy) == _declared_sids(r)


def _role(c: Clients, r: ProvisionedResource) -> None:
    iam = c("iam")
    assert iam.get_role(RoleName=r.physical_id)["Role"]["Arn"] == r.attributes["Arn"]
    inline = set(iam.list_role_policies(RoleName=r.physical_id)["PolicyNames"])
    assert {policy["PolicyName"] for policy in r.properties.get("Policies", [])} <= inline


def _managed_policy(c: Clients, r: ProvisionedResource) -> None:
    c("iam").get_policy(PolicyArn=r.physical_id)


def _layer(c: Clients, r: ProvisionedResource) -> None:
    *_, layer_name, version = r.physical_id.split(":")
    layer = c("lambda").get_layer_version(LayerName=layer_name, VersionNumber=int(version))
    assert layer["LayerVersionArn"] == r.physical_id


def _function(c: Clients, r: ProvisionedResource) -> None:
    c("lambda").get_function(FunctionName=r.physical_id)


def _permission(c: Clients, r: ProvisionedResource) -> None:
    policy = c("lambda").get_policy(FunctionName=r.properties["FunctionName"])["Policy"]
    assert r.physical_id in _sids(policy)


def _event_invoke_config(c: Clients, r: ProvisionedResource) -> None:
    config = c("lambda").get_function_event_invoke_config(
        FunctionName=r.properties["FunctionName"], Qualifier=r.properties["Qualifier"]
    )
    if "DestinationConfig" in r.properties:
        assert config["DestinationConfig"] == r.properties["DestinationConfig"]


def _rule(c: Clients, r: ProvisionedResource) -> None:
    events = c("events")
    events.describe_rule(Name=r.physical_id)
    targets = events.list_targets_by_rule(Rule=r.physical_id)["Targets"]
    assert [(t["Id"], t["Arn"]) for t in targets] == [(t["Id"], t["Arn"]) for t in r.properties["Targets"]]


def _log_group(c: Clients, r: ProvisionedResource) -> None:
    groups = c("logs").describe_log_groups(logGroupNamePrefix=r.physical_id)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [r.physical_id]
    if "RetentionInDays" in r.properties:
        assert groups[0]["retentionInDays"] == int(r.properties["RetentionInDays"])


def _alarm(c: Clients, r: ProvisionedResource) -> None:
    assert len(c("cloudwatch").describe_alarms(AlarmNames=[r.physical_id])["MetricAlarms"]) == 1


def _key(c: Clients, r: ProvisionedResource) -> None:
    metadata = c("kms").describe_key(KeyId=r.physical_id)["KeyMetadata"]
    assert metadata["Enabled"] and metadata["KeyState"] == "Enabled"
    if r.properties.get("EnableKeyRotation") in (True, "true"):
        assert c("kms").get_key_rotation_status(KeyId=r.physical_id)["KeyRotationEnabled"]


def _application(c: Clients, r: ProvisionedResource) -> None:
    application = c("codedeploy").get_application(applicationName=r.physical_id)["application"]
    assert application["computePlatform"] == r.properties.get("ComputePlatform", "Server")


EXISTS: dict[str, Callable[[Clients, ProvisionedResource], None]] = {
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::DynamoDB::Table": _table,
    "AWS::SNS::Topic": _topic,
    "AWS::SNS::TopicPolicy": _topic_policy,
    "AWS::SNS::Subscription": _subscription,
    "AWS::SQS::Queue": _queue,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::IAM::Role": _role,
    "AWS::IAM::ManagedPolicy": _managed_policy,
    "AWS::Lambda::LayerVersion": _layer,
    "AWS::Lambda::Function": _function,
    "AWS::Lambda::Permission": _permission,
    "AWS::Lambda::EventInvokeConfig": _event_invoke_config,
    "AWS::Events::Rule": _rule,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::CodeDeploy::Application": _application,
    "AWS::KMS::Key": _key,
}


def assert_every_resource_exists(c: Clients, stack: ProvisionedStack) -> None:
    unchecked = {r.resource_type for r in stack.resources.values()} - EXISTS.keys()
    assert not unchecked, f"no read-back check for {unchecked}: add one to tests/support/provision_checks.py"
    for resource in stack.resources.values():
        try:
            EXISTS[resource.resource_type](c, resource)
        except Exception as exc:
            raise AssertionError(f"{resource.logical_id} ({resource.resource_type}): {exc!r}") from exc


def assert_uploads_reach_eventbridge(c: Clients, bucket: str) -> None:
    """The bucket sends "Object Created" events to EventBridge (read back through an SQS-target rule,
    since not every local S3 reports EventBridgeConfiguration in GetBucketNotificationConfiguration)."""
    sqs, events = c("sqs"), c("events")
    queue_url = sqs.create_queue(QueueName=f"probe-{bucket}"[:80])["QueueUrl"]
    queue_arn = let_aws_services_send(sqs, queue_url)
    rule = f"probe-{bucket}"[:64]
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}},
    }
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, Targets=[{"Id": "probe", "Arn": queue_arn}])
    try:
        c("s3").put_object(Bucket=bucket, Key="probe/artifact.zip", Body=b"not a zip")
        deadline = time.monotonic() + 10
        received: list[dict[str, Any]] = []
        while not received and time.monotonic() < deadline:
            messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
            received = [json.loads(m["Body"]) for m in messages]
        assert received, f"no Object Created event from {bucket} within 10 s"
        assert received[0]["detail"]["object"]["key"] == "probe/artifact.zip"
    finally:
        events.remove_targets(Rule=rule, Ids=["probe"])
        events.delete_rule(Name=rule)
        sqs.delete_queue(QueueUrl=queue_url)


def assert_rollout_stack_wired(c: Clients, stack: ProvisionedStack, *, slack_secret_arn: str | None) -> None:
    """What the control plane relies on, read back as a user would check it in the console."""
    out = stack.outputs
    name = stack.stack_name
    functions = stack.function_names
    expected_functions = {"ArtifactDeployer", "PreTrafficHook", "PostTrafficHook", "HookFailureReporter"}
    expected_functions |= {"DeploymentEvents", "Reconciler", "DeploymentActions"} | (
        {"SlackNotifier"} if slack_secret_arn else set()
    )
    # The buttons' endpoint exists only with a signing secret as well (HasSlackInteractivity).
    expected_functions |= {"SlackInteractions"} if "SlackInteractionsUrl" in out else set()
    assert set(functions) == expected_functions
    assert out["PreTrafficHookName"] == f"CodeDeployHook_{name}_PreTraffic"
    assert out["PostTrafficHookName"] == f"CodeDeployHook_{name}_PostTraffic"

    lambda_ = c("lambda")
    role_arns = {r.attributes["Arn"] for r in stack.resources.values() if r.resource_type == "AWS::IAM::Role"}
    for logical_id, function_name in functions.items():
        config = lambda_.get_function_configuration(FunctionName=function_name)
        env = config["Environment"]["Variables"]
        assert env["STACK_NAME"] == name
        assert env["LEDGER_TABLE"] == out["LedgerTableName"]
        assert env["IDEMPOTENCY_TABLE"] == out["IdempotencyTableName"]
        assert env["NOTIFICATION_TOPIC_ARN"] == out["NotificationTopicArn"]
        assert env["ARTIFACT_BUCKET"] == out["ArtifactBucketName"]
        assert env["CODEDEPLOY_APPLICATION"] == out["CodeDeployApplicationName"]
        assert env["CODEDEPLOY_ROLE_ARN"] == out["CodeDeployServiceRoleArn"]
        assert env["PRE_TRAFFIC_HOOK"] == out["PreTrafficHookName"]
        assert env["CANARY_ALARM_PREFIX"] == f"{name}-canary"
        assert [layer["Arn"] for layer in config["Layers"]] == [out["RolloutLayerArn"]], logical_id
        assert config["Handler"] == "app.lambda_handler"
        assert config["Runtime"] == "python3.13"
        assert config["Role"] in role_arns, logical_id
    if slack_secret_arn:
        slack_env = lambda_.get_function_configuration(FunctionName=functions["SlackNotifier"])["Environment"]
        assert slack_env["Variables"]["SLACK_WEBHOOK_SECRET_ARN"] == slack_secret_arn

    for hook in ("PreTrafficHook", "PostTrafficHook"):
        config = lambda_.get_function_event_invoke_config(FunctionName=functions[hook], Qualifier="$LATEST")
        assert config["MaximumRetryAttempts"] == 0
        assert config["DestinationConfig"]["OnFailure"]["Destination"] == out["HookFailureReporterArn"]

    events = c("events")
    targets_by_function: dict[str, list[dict[str, Any]]] = {}
    for resource in stack.resources.values():
        if resource.resource_type == "AWS::Events::Rule":
            for target in events.list_targets_by_rule(Rule=resource.physical_id)["Targets"]:
                targets_by_function.setdefault(target["Arn"], []).append(
                    {**target, "rule": events.describe_rule(Name=resource.physical_id)}
                )
    deployer_rules = targets_by_function[out["ArtifactDeployerArn"]]
    pattern = json.loads(deployer_rules[0]["rule"]["EventPattern"])
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail"]["bucket"]["name"] == [out["ArtifactBucketName"]]
    events_rules = targets_by_function[out["DeploymentEventsArn"]]
    pattern = json.loads(events_rules[0]["rule"]["EventPattern"])
    assert pattern["detail"]["application"] == [out["CodeDeployApplicationName"]]
    assert events_rules[0]["rule"]["Name"] == f"{name}-deployment-events"
    assert events_rules[0]["RetryPolicy"]["MaximumRetryAttempts"] == 185
    reconciler_rules = targets_by_function[out["ReconcilerArn"]]
    assert reconciler_rules[0]["rule"]["ScheduleExpression"] == "rate(5 minutes)"

    table = c("dynamodb").describe_table(TableName=out["LedgerTableName"])["Table"]
    assert {index["IndexName"] for index in table["GlobalSecondaryIndexes"]} == {
        "by-deployment",
        "open-releases",
    }
    ttl = c("dynamodb").describe_time_to_live(TableName=out["IdempotencyTableName"])["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expiration"
    ttl = c("dynamodb").describe_time_to_live(TableName=out["LedgerTableName"])["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"

    s3 = c("s3")
    bucket = out["ArtifactBucketName"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule_ids = {rule["ID"] for rule in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rule_ids == {"ExpireOldArtifactVersions", "AbortIncompleteUploads"}

    subscriptions = c("sns").list_subscriptions_by_topic(TopicArn=out["NotificationTopicArn"])[
        "Subscriptions"
    ]
    lambda_subscribers = {s["Endpoint"] for s in subscriptions if s["Protocol"] == "lambda"}
    assert lambda_subscribers == ({out["SlackNotifierArn"]} if slack_secret_arn else set())

    application = c("codedeploy").get_application(applicationName=out["CodeDeployApplicationName"])
    assert application["application"]["computePlatform"] == "Lambda"
    assert out["CodeDeployApplicationName"] == name
    _assert_operators_hear_of_undelivered_events(c, stack)
    reconciler_env = lambda_.get_function_configuration(FunctionName=functions["Reconciler"])["Environment"]
    assert reconciler_env["Variables"]["ARTIFACT_DEPLOYER_FUNCTION"] == out["ArtifactDeployerName"]
    assert reconciler_env["Variables"]["DEPLOYMENT_EVENTS_FUNCTION"] == out["DeploymentEventsName"]
    assert reconciler_env["Variables"]["UNDELIVERED_EVENTS_QUEUE_URL"] == out["UndeliveredEventsQueueUrl"]


def _assert_operators_hear_of_undelivered_events(c: Clients, stack: ProvisionedStack) -> None:
    """The queue's alarm acts on the operations topic, which the stack's own key encrypts."""
    out = stack.outputs
    (alarm,) = c("cloudwatch").describe_alarms(AlarmNames=[f"{stack.stack_name}-undelivered-events"])[
        "MetricAlarms"
    ]
    assert alarm["AlarmActions"] == [out["OperationsTopicArn"]]
    assert alarm["OKActions"] == [out["OperationsTopicArn"]]
    topic = c("sns").get_topic_attributes(TopicArn=out["OperationsTopicArn"])["Attributes"]
    assert topic["KmsMasterKeyId"] == stack.resources["OperationsKey"].physical_id
