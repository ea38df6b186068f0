"""One handler per CloudFormation resource type, each creating the resource with plain AWS API calls.

A handler declares the properties it honours, those it accepts with no local effect (`ignored`, e.g.
X-Ray tracing), and the attributes `Fn::GetAtt` may read. Anything else in a template is an error that
names the resource: a resource type or property nobody handles never provisions silently wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from sandbox.provision import packaging
from sandbox.provision.context import Created, ResourceContext
from sandbox.provision.errors import TemplateError

CreateFunction = Callable[[ResourceContext], Created]

_FAST_WAIT = {"Delay": 0.2, "MaxAttempts": 300}


@dataclass(frozen=True)
class ResourceHandler:
    resource_type: str
    create: CreateFunction
    properties: frozenset[str]
    ignored: frozenset[str]
    attributes: frozenset[str]

    def unsupported_properties(self, properties: Iterable[str]) -> list[str]:
        return sorted(set(properties) - self.properties - self.ignored)


HANDLERS: dict[str, ResourceHandler] = {}


def handles(
    resource_type: str,
    *,
    properties: Iterable[str],
    ignored: Iterable[str] = (),
    attributes: Iterable[str] = (),
) -> Callable[[CreateFunction], CreateFunction]:
    def register(create: CreateFunction) -> CreateFunction:
        HANDLERS[resource_type] = ResourceHandler(
            resource_type, create, frozenset(properties), frozenset(ignored), frozenset(attributes)
        )
        return create

    return register


# -- helpers ------------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _iam_policy(document: Any) -> str:
    """An IAM policy document as JSON. SAM writes its generated policies without a Version, which
    IAM accepts; the local IAM insists on one, and these policies use nothing newer than 2012-10-17."""
    if isinstance(document, dict) and "Version" not in document:
        document = {"Version": "2012-10-17", **document}
    return _json(document)


def _tag_dict(tags: Any) -> dict[str, str]:
    """CloudFormation writes tags as [{Key, Value}] (or a plain map for a few types)."""
    if not tags:
        return {}
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {tag["Key"]: str(tag["Value"]) for tag in tags}


def _tag_list(tags: Any) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in _tag_dict(tags).items()]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return (
        value
        if isinstance(value, str)
        else json.dumps(value)
        if isinstance(value, dict | list)
        else str(value)
    )


def _pick(properties: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {name: properties[name] for name in names if name in properties}


def _lower_first_keys(value: Any) -> Any:
    """CloudFormation's PascalCase CodeDeploy properties as the API's camelCase parameters."""
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: _lower_first_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_lower_first_keys(item) for item in value]
    return value


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchEntity", "NoSuchEntityException")


# -- S3 -----------------------------------------------------------------------------------------


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {"Status": rule["Status"]}
    if "Id" in rule:
        converted["ID"] = rule["Id"]
    converted["Filter"] = {"Prefix": rule.get("Prefix", "")}
    expiration = _pick(rule, ["ExpiredObjectDeleteMarker"])
    if "ExpirationInDays" in rule:
        expiration["Days"] = rule["ExpirationInDays"]
    if "ExpirationDate" in rule:
        expiration["Date"] = rule["ExpirationDate"]
    if expiration:
        converted["Expiration"] = expiration
    if "NoncurrentVersionExpiration" in rule:
        converted["NoncurrentVersionExpiration"] = rule["NoncurrentVersionExpiration"]
    elif "NoncurrentVersionExpirationInDays" in rule:
        converted["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]
        }
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    if "Transitions" in rule:
        converted["Transitions"] = [
            {
                "StorageClass": t["StorageClass"],
                **({"Days": t["TransitionInDays"]} if "TransitionInDays" in t else {}),
            }
            for t in rule["Transitions"]
        ]
    if "NoncurrentVersionTransitions" in rule:
        converted["NoncurrentVersionTransitions"] = [
            {"StorageClass": t["StorageClass"], "NoncurrentDays": t["TransitionInDays"]}
            for t in rule["NoncurrentVersionTransitions"]
        ]
    return converted


def _s3_filter(notification: dict[str, Any]) -> dict[str, Any]:
    rules = notification.get("Filter", {}).get("S3Key", {}).get("Rules")
    return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}


def _notification_configuration(config: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled") in (True, "true"):
        converted["EventBridgeConfiguration"] = {}
    kinds = [
        ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
        ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
    ]
    for cfn_key, api_key, target_key, api_target in kinds:
        if cfn_key in config:
            converted[api_key] = [
                {api_target: item[target_key], "Events": [item["Event"]], **_s3_filter(item)}
                for item in config[cfn_key]
            ]
    unknown = set(config) - {"EventBridgeConfiguration", *(kind[0] for kind in kinds)}
    if unknown:
        raise TemplateError(f"NotificationConfiguration.{', '.join(sorted(unknown))} is not supported")
    return converted


@handles(
    "AWS::S3::Bucket",
    properties=[
        "BucketName",
        "VersioningConfiguration",
        "BucketEncryption",
        "PublicAccessBlockConfiguration",
        "OwnershipControls",
        "LifecycleConfiguration",
        "NotificationConfiguration",
        "Tags",
    ],
    # The sandbox delivers no server access logs (nothing in Rollout reads them).
    ignored=["LoggingConfiguration"],
    attributes=["Arn", "DomainName", "RegionalDomainName", "DualStackDomainName", "WebsiteURL"],
)
def create_bucket(ctx: ResourceContext) -> Created:
    s3 = ctx.client("s3")
    name = ctx.name("BucketName", 63, lowercase=True)
    region = ctx.stack.region
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    if "VersioningConfiguration" in ctx.properties:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=ctx.get("VersioningConfiguration"))
    if "BucketEncryption" in ctx.properties:
        rules = [
            {
                **_pick(rule, ["BucketKeyEnabled"]),
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
            }
            for rule in ctx.get("BucketEncryption")["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in ctx.properties:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=ctx.get("PublicAccessBlockConfiguration")
        )
    if "OwnershipControls" in ctx.properties:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=ctx.get("OwnershipControls"))
    if "LifecycleConfiguration" in ctx.properties:
        rules = [_lifecycle_rule(rule) for rule in ctx.get("LifecycleConfiguration")["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    if "NotificationConfiguration" in ctx.properties:
        s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration=_notification_configuration(ctx.get("NotificationConfiguration")),
        )
    if ctx.get("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tag_list(ctx.get("Tags"))})
    domain = f"{name}.s3.amazonaws.com"
    return Created(
        name,
        {
            "Arn": f"arn:{ctx.stack.partition}:s3:::{name}",
            "DomainName": domain,
            "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
            "DualStackDomainName": f"{name}.s3.dualstack.{region}.amazonaws.com",
            "WebsiteURL": f"http://{name}.s3-website-{region}.amazonaws.com",
        },
    )


@handles("AWS::S3::BucketPolicy", properties=["Bucket", "PolicyDocument"])
def create_bucket_policy(ctx: ResourceContext) -> Created:
    bucket = ctx.require("Bucket")
    ctx.client("s3").put_bucket_policy(Bucket=bucket, Policy=_json(ctx.require("PolicyDocument")))
    return Created(bucket)


# -- DynamoDB -----------------------------------------------------------------------------------


# Passed to CreateTable as the template gives them.
_TABLE_PROPERTIES = [
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "LocalSecondaryIndexes",
    "DeletionProtectionEnabled",
    "TableClass",
]


@handles(
    "AWS::DynamoDB::Table",
    properties=[
        "TableName",
        *_TABLE_PROPERTIES,
        "GlobalSecondaryIndexes",
        "TimeToLiveSpecification",
        "SSESpecification",
        "PointInTimeRecoverySpecification",
        "StreamSpecification",
        "Tags",
    ],
    ignored=["ContributorInsightsSpecification"],
    attributes=["Arn", "StreamArn"],
)
def create_table(ctx: ResourceContext) -> Created:
    dynamodb = ctx.client("dynamodb")
    name = ctx.name("TableName", 255)
    description = dynamodb.create_table(**_table_request(ctx, name))["TableDescription"]
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig=_FAST_WAIT)
    _enable_time_to_live(ctx, dynamodb, name)
    _enable_point_in_time_recovery(ctx, dynamodb, name)
    return Created(
        name, {"Arn": description["TableArn"], "StreamArn": description.get("LatestStreamArn", "")}
    )


def _table_request(ctx: ResourceContext, name: str) -> dict[str, Any]:
    """CreateTable's arguments: CloudFormation's property shapes turned into the API's."""
    request: dict[str, Any] = {"TableName": name, **_pick(ctx.properties, _TABLE_PROPERTIES)}
    if "GlobalSecondaryIndexes" in ctx.properties:
        request["GlobalSecondaryIndexes"] = [
            {key: value for key, value in index.items() if key != "ContributorInsightsSpecification"}
            for index in ctx.get("GlobalSecondaryIndexes")
        ]
    sse = ctx.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {
            "Enabled": sse.get("SSEEnabled") in (True, "true"),
            **_pick(sse, ["SSEType"]),
            **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if "KMSMasterKeyId" in sse else {}),
        }
    stream = ctx.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    if ctx.get("Tags"):
        request["Tags"] = _tag_list(ctx.get("Tags"))
    return request


def _enable_time_to_live(ctx: ResourceContext, dynamodb: Any, name: str) -> None:
    ttl = ctx.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled") in (True, "true"):
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
        )


def _enable_point_in_time_recovery(ctx: ResourceContext, dynamodb: Any, name: str) -> None:
    pitr = ctx.get("PointInTimeRecoverySpecification")
    if pitr and pitr.get("PointInTimeRecoveryEnabled") in (True, "true"):
        try:
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        except ClientError as exc:  # best effort: recovery has no meaning in a local sandbox
            ctx.note(f"point-in-time recovery not enabled locally: {exc}")


# -- SNS ----------------------------------------------------------------------------------------


_SUBSCRIPTION_ATTRIBUTES = [
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "DeliveryPolicy",
    "ReplayPolicy",
]


@handles(
    "AWS::SNS::Topic",
    properties=[
        "TopicName",
        "DisplayName",
        "KmsMasterKeyId",
        "FifoTopic",
        "ContentBasedDeduplication",
        "Subscription",
        "Tags",
    ],
    ignored=["TracingConfig", "SignatureVersion", "DeliveryStatusLogging", "ArchivePolicy"],
    attributes=["TopicArn", "TopicName"],
)
def create_topic(ctx: ResourceContext) -> Created:
    sns = ctx.client("sns")
    fifo = ctx.get("FifoTopic") in (True, "true")
    name = ctx.name("TopicName", 256, suffix=".fifo" if fifo else "")
    attributes = {
        key: _text(value) for key, value in ctx.properties.items() if key in ("DisplayName", "KmsMasterKeyId")
    }
    if fifo:
        attributes["FifoTopic"] = "true"
        if "ContentBasedDeduplication" in ctx.properties:
            attributes["ContentBasedDeduplication"] = _text(ctx.get("ContentBasedDeduplication"))
    request: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if ctx.get("Tags"):
        request["Tags"] = _tag_list(ctx.get("Tags"))
    arn = sns.create_topic(**request)["TopicArn"]
    for subscription in ctx.get("Subscription") or []:
        sns.subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
    return Created(arn, {"TopicArn": arn, "TopicName": name})


@handles("AWS::SNS::TopicPolicy", properties=["PolicyDocument", "Topics"])
def create_topic_policy(ctx: ResourceContext) -> Created:
    policy = _json(ctx.require("PolicyDocument"))
    for topic in ctx.require("Topics"):
        ctx.client("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=policy)
    return Created(ctx.name(None, 256))


@handles(
    "AWS::SNS::Subscription",
    properties=["TopicArn", "Protocol", "Endpoint", "Region", *_SUBSCRIPTION_ATTRIBUTES],
    ignored=["SubscriptionRoleArn"],
    attributes=["Arn"],
)
def create_subscription(ctx: ResourceContext) -> Created:
    attributes = {name: _text(ctx.get(name)) for name in _SUBSCRIPTION_ATTRIBUTES if name in ctx.properties}
    arn = ctx.client("sns").subscribe(
        TopicArn=ctx.require("TopicArn"),
        Protocol=ctx.require("Protocol"),
        Endpoint=ctx.require("Endpoint"),
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return Created(arn, {"Arn": arn})


# -- SQS ----------------------------------------------------------------------------------------

_QUEUE_ATTRIBUTES = [
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedrivePolicy",
    "RedriveAllowPolicy",
]


@handles(
    "AWS::SQS::Queue",
    properties=["QueueName", "Tags", *_QUEUE_ATTRIBUTES],
    attributes=["Arn", "QueueName", "QueueUrl"],
)
def create_queue(ctx: ResourceContext) -> Created:
    sqs = ctx.client("sqs")
    fifo = ctx.get("FifoQueue") in (True, "true")
    name = ctx.name("QueueName", 80, suffix=".fifo" if fifo else "")
    attributes = {key: _text(ctx.get(key)) for key in _QUEUE_ATTRIBUTES if key in ctx.properties}
    request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if ctx.get("Tags"):
        request["tags"] = _tag_dict(ctx.get("Tags"))
    url = sqs.create_queue(**request)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Created(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


@handles("AWS::SQS::QueuePolicy", properties=["PolicyDocument", "Queues"])
def create_queue_policy(ctx: ResourceContext) -> Created:
    policy = _json(ctx.require("PolicyDocument"))
    for queue_url in ctx.require("Queues"):
        ctx.client("sqs").set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy})
    return Created(ctx.name(None, 256))


# -- IAM ----------------------------------------------------------------------------------------


def _attach_managed_policies(ctx: ResourceContext, role_name: str, arns: list[str]) -> None:
    iam = ctx.client("iam")
    for arn in arns:
        try:
            iam.attach_role_policy(RoleName=role_name, PolicyArn=arn)
        except ClientError as exc:
            if not _is_missing(exc):
                raise
            # The local IAM may not carry AWS managed policies; permissions are not enforced locally.
            ctx.note(f"managed policy {arn} does not exist locally; not attached")


@handles(
    "AWS::IAM::Role",
    properties=[
        "RoleName",
        "AssumeRolePolicyDocument",
        "Path",
        "Description",
        "MaxSessionDuration",
        "PermissionsBoundary",
        "ManagedPolicyArns",
        "Policies",
        "Tags",
    ],
    attributes=["Arn", "RoleId"],
)
def create_role(ctx: ResourceContext) -> Created:
    iam = ctx.client("iam")
    name = ctx.name("RoleName", 64)
    request: dict[str, Any] = {
        "RoleName": name,
        "AssumeRolePolicyDocument": _iam_policy(ctx.require("AssumeRolePolicyDocument")),
        **_pick(ctx.properties, ["Path", "Description", "MaxSessionDuration", "PermissionsBoundary"]),
    }
    if ctx.get("Tags"):
        request["Tags"] = _tag_list(ctx.get("Tags"))
    role = iam.create_role(**request)["Role"]
    for policy in ctx.get("Policies") or []:
        iam.put_role_policy(
            RoleName=name,
            PolicyName=policy["PolicyName"],
            PolicyDocument=_iam_policy(policy["PolicyDocument"]),
        )
    _attach_managed_policies(ctx, name, ctx.get("ManagedPolicyArns") or [])
    return Created(name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})


@handles("AWS::IAM::Policy", properties=["PolicyName", "PolicyDocument", "Roles", "Users", "Groups"])
def create_inline_policy(ctx: ResourceContext) -> Created:
    iam = ctx.client("iam")
    name = ctx.require("PolicyName")
    document = _iam_policy(ctx.require("PolicyDocument"))
    for role in ctx.get("Roles") or []:
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=document)
    for user in ctx.get("Users") or []:
        iam.put_user_policy(UserName=user, PolicyName=name, PolicyDocument=document)
    for group in ctx.get("Groups") or []:
        iam.put_group_policy(GroupName=group, PolicyName=name, PolicyDocument=document)
    return Created(ctx.name(None, 128))


@handles(
    "AWS::IAM::ManagedPolicy",
    properties=["ManagedPolicyName", "PolicyDocument", "Path", "Description", "Roles", "Users", "Groups"],
    attributes=["PolicyArn", "PolicyId"],
)
def create_managed_policy(ctx: ResourceContext) -> Created:
    iam = ctx.client("iam")
    request = {
        "PolicyName": ctx.name("ManagedPolicyName", 128),
        "PolicyDocument": _iam_policy(ctx.require("PolicyDocument")),
        **_pick(ctx.properties, ["Path", "Description"]),
    }
    policy = iam.create_policy(**request)["Policy"]
    for role in ctx.get("Roles") or []:
        iam.attach_role_policy(RoleName=role, PolicyArn=policy["Arn"])
    for user in ctx.get("Users") or []:
        iam.attach_user_policy(UserName=user, PolicyArn=policy["Arn"])
    for group in ctx.get("Groups") or []:
        iam.attach_group_policy(GroupName=group, PolicyArn=policy["Arn"])
    return Created(policy["Arn"], {"PolicyArn": policy["Arn"], "PolicyId": policy["PolicyId"]})


# -- Lambda -------------------------------------------------------------------------------------


def _code(ctx: ResourceContext, location: dict[str, Any], *, layer: bool) -> dict[str, Any]:
    local_code = ctx.stack.local_code
    folder = local_code.folder(location)
    if folder is not None:
        if layer:
            return {"ZipFile": packaging.layer_zip(folder, compiled=local_code.is_compiled(location))}
        return {"ZipFile": packaging.function_zip(folder)}
    if "ZipFile" in location:
        return {"ZipFile": packaging.inline_zip(location["ZipFile"], ctx.get("Runtime"))}
    return _pick(location, ["S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri"])


@handles(
    "AWS::Lambda::LayerVersion",
    properties=[
        "LayerName",
        "Content",
        "CompatibleRuntimes",
        "CompatibleArchitectures",
        "Description",
        "LicenseInfo",
    ],
    attributes=["LayerVersionArn"],
)
def create_layer_version(ctx: ResourceContext) -> Created:
    request = {
        "LayerName": ctx.name("LayerName", 140),
        "Content": _code(ctx, ctx.require("Content"), layer=True),
        **_pick(
            ctx.properties, ["CompatibleRuntimes", "CompatibleArchitectures", "Description", "LicenseInfo"]
        ),
    }
    arn = ctx.client("lambda").publish_layer_version(**request)["LayerVersionArn"]
    return Created(arn, {"LayerVersionArn": arn})


# Passed to CreateFunction as the template gives them.
_FUNCTION_PROPERTIES = [
    "Handler",
    "Runtime",
    "Description",
    "Timeout",
    "MemorySize",
    "Layers",
    "Architectures",
    "TracingConfig",
    "LoggingConfig",
    "DeadLetterConfig",
    "EphemeralStorage",
    "PackageType",
]


@handles(
    "AWS::Lambda::Function",
    properties=[
        "FunctionName",
        "Code",
        "Role",
        *_FUNCTION_PROPERTIES,
        "Environment",
        "Tags",
        "KmsKeyArn",
        "ReservedConcurrentExecutions",
    ],
    # No local meaning: the sandbox runs code in its own Python with no snapshots or runtime pinning.
    ignored=["SnapStart", "RuntimeManagementConfig"],
    attributes=["Arn"],
)
def create_function(ctx: ResourceContext) -> Created:
    lambda_ = ctx.client("lambda")
    name = ctx.name("FunctionName", 64)
    request: dict[str, Any] = {
        "FunctionName": name,
        "Role": ctx.require("Role"),
        "Code": _code(ctx, ctx.require("Code"), layer=False),
        **_pick(ctx.properties, _FUNCTION_PROPERTIES),
    }
    if "KmsKeyArn" in ctx.properties:
        request["KMSKeyArn"] = ctx.get("KmsKeyArn")
    variables = (ctx.get("Environment") or {}).get("Variables")
    if variables:
        request["Environment"] = {"Variables": {key: _text(value) for key, value in variables.items()}}
    if ctx.get("Tags"):
        request["Tags"] = _tag_dict(ctx.get("Tags"))
    arn = lambda_.create_function(**request)["FunctionArn"]
    lambda_.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=_FAST_WAIT)
    if "ReservedConcurrentExecutions" in ctx.properties:
        lambda_.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=int(ctx.get("ReservedConcurrentExecutions"))
        )
    return Created(name, {"Arn": arn})


@handles(
    "AWS::Lambda::Permission",
    properties=[
        "FunctionName",
        "Action",
        "Principal",
        "SourceArn",
        "SourceAccount",
        "EventSourceToken",
        "FunctionUrlAuthType",
        "InvokedViaFunctionUrl",
        "PrincipalOrgID",
    ],
)
def create_permission(ctx: ResourceContext) -> Created:
    statement_id = ctx.name(None, 100)
    request = {
        "StatementId": statement_id,
        **_pick(
            ctx.properties,
            [
                "FunctionName",
                "Action",
                "Principal",
                "SourceArn",
                "SourceAccount",
                "EventSourceToken",
                "FunctionUrlAuthType",
                "InvokedViaFunctionUrl",
                "PrincipalOrgID",
            ],
        ),
    }
    if "InvokedViaFunctionUrl" in request:
        request["InvokedViaFunctionUrl"] = str(request["InvokedViaFunctionUrl"]).lower() == "true"
    ctx.client("lambda").add_permission(**request)
    return Created(statement_id)


@handles(
    "AWS::Lambda::Url",
    properties=["TargetFunctionArn", "AuthType", "Qualifier", "Cors", "InvokeMode"],
    attributes=["FunctionUrl", "FunctionArn"],
)
def create_function_url(ctx: ResourceContext) -> Created:
    """Served locally by the sandbox (sandbox/function_urls.py): FunctionUrl is a 127.0.0.1 address."""
    request = {
        "FunctionName": ctx.require("TargetFunctionArn"),
        "AuthType": ctx.require("AuthType"),
        **_pick(ctx.properties, ["Qualifier", "Cors", "InvokeMode"]),
    }
    created = ctx.client("lambda").create_function_url_config(**request)
    return Created(
        created["FunctionArn"], {"FunctionUrl": created["FunctionUrl"], "FunctionArn": created["FunctionArn"]}
    )


@handles(
    "AWS::Lambda::EventInvokeConfig",
    properties=[
        "FunctionName",
        "Qualifier",
        "MaximumRetryAttempts",
        "MaximumEventAgeInSeconds",
        "DestinationConfig",
    ],
)
def create_event_invoke_config(ctx: ResourceContext) -> Created:
    request = {
        "FunctionName": ctx.require("FunctionName"),
        "Qualifier": ctx.require("Qualifier"),
        **_pick(ctx.properties, ["MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"]),
    }
    for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
        if key in request:
            request[key] = int(request[key])
    ctx.client("lambda").put_function_event_invoke_config(**request)
    return Created(f"{request['FunctionName']}:{request['Qualifier']}")


@handles(
    "AWS::Lambda::Version",
    properties=["FunctionName", "Description", "CodeSha256"],
    ignored=["ProvisionedConcurrencyConfig", "RuntimePolicy"],
    attributes=["Version", "FunctionArn"],
)
def create_version(ctx: ResourceContext) -> Created:
    published = ctx.client("lambda").publish_version(
        **_pick(ctx.properties, ["FunctionName", "Description", "CodeSha256"])
    )
    return Created(
        published["FunctionArn"], {"Version": published["Version"], "FunctionArn": published["FunctionArn"]}
    )


@handles(
    "AWS::Lambda::Alias",
    properties=["FunctionName", "FunctionVersion", "Name", "Description", "RoutingConfig"],
    ignored=["ProvisionedConcurrencyConfig"],
    attributes=["AliasArn"],
)
def create_alias(ctx: ResourceContext) -> Created:
    request = _pick(ctx.properties, ["FunctionName", "FunctionVersion", "Name", "Description"])
    weights = (ctx.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    if weights:
        request["RoutingConfig"] = {
            "AdditionalVersionWeights": {w["FunctionVersion"]: float(w["FunctionWeight"]) for w in weights}
        }
    arn = ctx.client("lambda").create_alias(**request)["AliasArn"]
    return Created(arn, {"AliasArn": arn})


# -- EventBridge and Scheduler --------------------------------------------------------------------


@handles(
    "AWS::Events::Rule",
    properties=[
        "Name",
        "Description",
        "EventBusName",
        "EventPattern",
        "ScheduleExpression",
        "State",
        "RoleArn",
        "Targets",
    ],
    attributes=["Arn"],
)
def create_rule(ctx: ResourceContext) -> Created:
    events = ctx.client("events")
    name = ctx.name("Name", 64)
    request: dict[str, Any] = {
        "Name": name,
        **_pick(ctx.properties, ["Description", "EventBusName", "ScheduleExpression", "State", "RoleArn"]),
    }
    if "EventPattern" in ctx.properties:
        request["EventPattern"] = _json(ctx.get("EventPattern"))
    arn = events.put_rule(**request)["RuleArn"]
    targets = ctx.get("Targets") or []
    if targets:
        bus = {"EventBusName": request["EventBusName"]} if "EventBusName" in request else {}
        response = events.put_targets(Rule=name, Targets=targets, **bus)
        if response.get("FailedEntryCount"):
            raise TemplateError(f"{ctx.logical_id}: targets refused: {response['FailedEntries']}")
    bus_name = request.get("EventBusName", "default")
    physical_id = name if bus_name == "default" else f"{bus_name}|{name}"
    return Created(physical_id, {"Arn": arn})


@handles(
    "AWS::Events::EventBus", properties=["Name", "Tags"], ignored=["Description"], attributes=["Arn", "Name"]
)
def create_event_bus(ctx: ResourceContext) -> Created:
    name = ctx.require("Name")
    request: dict[str, Any] = {"Name": name}
    if ctx.get("Tags"):
        request["Tags"] = _tag_list(ctx.get("Tags"))
    arn = ctx.client("events").create_event_bus(**request)["EventBusArn"]
    return Created(name, {"Arn": arn, "Name": name})


_SCHEDULE_PROPERTIES = [
    "Description",
    "GroupName",
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "StartDate",
    "EndDate",
    "FlexibleTimeWindow",
    "State",
    "Target",
    "KmsKeyArn",
]


@handles("AWS::Scheduler::Schedule", properties=["Name", *_SCHEDULE_PROPERTIES], attributes=["Arn"])
def create_schedule(ctx: ResourceContext) -> Created:
    name = ctx.name("Name", 64)
    request = {
        "Name": name,
        **_pick(ctx.properties, _SCHEDULE_PROPERTIES),
    }
    arn = ctx.client("scheduler").create_schedule(**request)["ScheduleArn"]
    return Created(name, {"Arn": arn})


# -- Logs, CloudWatch ---------------------------------------------------------------------------


@handles(
    "AWS::Logs::LogGroup",
    properties=["LogGroupName", "RetentionInDays", "KmsKeyId", "Tags"],
    ignored=["LogGroupClass", "DataProtectionPolicy"],
    attributes=["Arn"],
)
def create_log_group(ctx: ResourceContext) -> Created:
    logs = ctx.client("logs")
    name = ctx.name("LogGroupName", 512)
    request: dict[str, Any] = {"logGroupName": name}
    if "KmsKeyId" in ctx.properties:
        request["kmsKeyId"] = ctx.get("KmsKeyId")
    if ctx.get("Tags"):
        request["tags"] = _tag_dict(ctx.get("Tags"))
    logs.create_log_group(**request)
    if "RetentionInDays" in ctx.properties:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(ctx.get("RetentionInDays")))
    return Created(name, {"Arn": ctx.stack.arn("logs", f"log-group:{name}:*")})


_ALARM_PROPERTIES = [
    "AlarmDescription",
    "ActionsEnabled",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "ThresholdMetricId",
]


@handles("AWS::CloudWatch::Alarm", properties=["AlarmName", "Tags", *_ALARM_PROPERTIES], attributes=["Arn"])
def create_alarm(ctx: ResourceContext) -> Created:
    name = ctx.name("AlarmName", 255)
    request: dict[str, Any] = {"AlarmName": name, **_pick(ctx.properties, _ALARM_PROPERTIES)}
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in request:
            request[key] = int(request[key])
    if "Threshold" in request:
        request["Threshold"] = float(request["Threshold"])
    if ctx.get("Tags"):
        request["Tags"] = _tag_list(ctx.get("Tags"))
    ctx.client("cloudwatch").put_metric_alarm(**request)
    return Created(name, {"Arn": ctx.stack.arn("cloudwatch", f"alarm:{name}")})


# -- CodeDeploy ---------------------------------------------------------------------------------


@handles("AWS::CodeDeploy::Application", properties=["ApplicationName", "ComputePlatform", "Tags"])
def create_application(ctx: ResourceContext) -> Created:
    name = ctx.name("ApplicationName", 100)
    request: dict[str, Any] = {"applicationName": name}
    if "ComputePlatform" in ctx.properties:
        request["computePlatform"] = ctx.get("ComputePlatform")
    if ctx.get("Tags"):
        request["tags"] = _tag_list(ctx.get("Tags"))
    ctx.client("codedeploy").create_application(**request)
    return Created(name)


@handles(
    "AWS::CodeDeploy::DeploymentConfig",
    properties=["DeploymentConfigName", "ComputePlatform", "TrafficRoutingConfig", "MinimumHealthyHosts"],
)
def create_deployment_config(ctx: ResourceContext) -> Created:
    name = ctx.name("DeploymentConfigName", 100)
    settings = {key: value for key, value in ctx.properties.items() if key != "DeploymentConfigName"}
    ctx.client("codedeploy").create_deployment_config(
        deploymentConfigName=name, **_lower_first_keys(settings)
    )
    return Created(name)


@handles(
    "AWS::CodeDeploy::DeploymentGroup",
    properties=[
        "ApplicationName",
        "DeploymentGroupName",
        "ServiceRoleArn",
        "DeploymentConfigName",
        "DeploymentStyle",
        "AlarmConfiguration",
        "AutoRollbackConfiguration",
        "TriggerConfigurations",
        "Tags",
    ],
)
def create_deployment_group(ctx: ResourceContext) -> Created:
    name = ctx.name("DeploymentGroupName", 100)
    settings = {
        key: value for key, value in ctx.properties.items() if key not in ("Tags", "DeploymentGroupName")
    }
    request: dict[str, Any] = {**_lower_first_keys(settings), "deploymentGroupName": name}
    if ctx.get("Tags"):
        request["tags"] = _tag_list(ctx.get("Tags"))
    ctx.client("codedeploy").create_deployment_group(**request)
    return Created(name)


# -- Secrets, KMS, SSM --------------------------------------------------------------------------


def _generated_secret(ctx: ResourceContext, spec: dict[str, Any]) -> str:
    options = {
        key: value for key, value in spec.items() if key not in ("GenerateStringKey", "SecretStringTemplate")
    }
    if "PasswordLength" in options:
        options["PasswordLength"] = int(options["PasswordLength"])
    password = ctx.client("secretsmanager").get_random_password(**options)["RandomPassword"]
    if "SecretStringTemplate" in spec:
        document = json.loads(spec["SecretStringTemplate"])
        document[spec["GenerateStringKey"]] = password
        return json.dumps(document)
    return str(password)


@handles(
    "AWS::SecretsManager::Secret",
    properties=["Name", "Description", "SecretString", "GenerateSecretString", "KmsKeyId", "Tags"],
    ignored=["ReplicaRegions"],
    attributes=["Id"],
)
def create_secret(ctx: ResourceContext) -> Created:
    request: dict[str, Any] = {
        "Name": ctx.name("Name", 512),
        **_pick(ctx.properties, ["Description", "SecretString", "KmsKeyId"]),
    }
    if "GenerateSecretString" in ctx.properties:
        request["SecretString"] = _generated_secret(ctx, ctx.get("GenerateSecretString"))
    if ctx.get("Tags"):
        request["Tags"] = _tag_list(ctx.get("Tags"))
    arn = ctx.client("secretsmanager").create_secret(**request)["ARN"]
    return Created(arn, {"Id": arn})


@handles(
    "AWS::KMS::Key",
    properties=["Description", "KeyPolicy", "Enabled", "EnableKeyRotation", "KeySpec", "KeyUsage", "Tags"],
    ignored=["PendingWindowInDays", "MultiRegion"],
    attributes=["Arn", "KeyId"],
)
def create_key(ctx: ResourceContext) -> Created:
    kms = ctx.client("kms")
    request: dict[str, Any] = _pick(ctx.properties, ["Description", "KeySpec", "KeyUsage"])
    if "KeyPolicy" in ctx.properties:
        request["Policy"] = _json(ctx.get("KeyPolicy"))
    if ctx.get("Tags"):
        request["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in _tag_dict(ctx.get("Tags")).items()]
    key = kms.create_key(**request)["KeyMetadata"]
    if ctx.get("EnableKeyRotation") in (True, "true"):
        kms.enable_key_rotation(KeyId=key["KeyId"])
    if ctx.get("Enabled") in (False, "false"):
        kms.disable_key(KeyId=key["KeyId"])
    return Created(key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]})


@handles("AWS::KMS::Alias", properties=["AliasName", "TargetKeyId"])
def create_key_alias(ctx: ResourceContext) -> Created:
    name = ctx.require("AliasName")
    ctx.client("kms").create_alias(AliasName=name, TargetKeyId=ctx.require("TargetKeyId"))
    return Created(name)


@handles(
    "AWS::SSM::Parameter",
    properties=["Name", "Type", "Value", "Description", "AllowedPattern", "Tier", "DataType", "Tags"],
    ignored=["Policies"],
    attributes=["Type", "Value"],
)
def create_parameter(ctx: ResourceContext) -> Created:
    name = ctx.name("Name", 2048)
    request: dict[str, Any] = {
        "Name": name,
        **_pick(ctx.properties, ["Type", "Value", "Description", "AllowedPattern", "Tier", "DataType"]),
    }
    if ctx.get("Tags"):
        request["Tags"] = _tag_list(ctx.get("Tags"))
    ctx.client("ssm").put_parameter(**request)
    return Created(name, {"Type": ctx.get("Type"), "Value": ctx.get("Value")})
