"""Which IAM action(s) and resource ARN(s) each API operation is authorised as.

Derived per operation from the Service Authorization Reference ("Actions, resources, and condition keys
for <service>", https://docs.aws.amazon.com/service-authorization/latest/reference/) and the botocore
input shapes the parameters come from. Most operations are `service:OperationName` on one resource; the
exceptions are written out where they occur, each with the page that says so.

An operation missing here cannot be authorised: the sandbox answers it with NotImplemented (501) rather
than guess, so the table grows with what the project really calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

from sandbox.policy_conditions import ContextValue


@dataclass(frozen=True)
class Check:
    """One authorisation a request needs: `action` on `resource`, with extra condition keys."""

    action: str
    resource: str
    context: dict[str, ContextValue] = field(default_factory=dict)


class Scope(Protocol):
    """What a rule may look up beyond the request (names that only the service can resolve)."""

    region: str
    account_id: str

    def deployment_group_of(self, deployment_id: str) -> tuple[str, str] | None: ...

    def secret_arn(self, secret_id: str) -> str: ...


Rule = Callable[[dict[str, Any], Scope], list[Check]]
RULES: dict[tuple[str, str], Rule] = {}


def rule(service: str, *operations: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for operation in operations:
            RULES[(service, operation)] = fn
        return fn

    return register


def checks_for(service: str, operation: str, params: dict[str, Any], scope: Scope) -> list[Check] | None:
    """The checks the request needs, or None when the sandbox does not know how AWS authorises it."""
    found = RULES.get((service, operation))
    return None if found is None else found(params, scope)


Resource = Callable[[dict[str, Any], Scope], str]


def _on(action: str, resource: Resource) -> Rule:
    """One action on the one resource the request names."""
    return lambda params, scope: [Check(action, resource(params, scope))]


def _unscoped(service: str, *operations: str) -> None:
    """Operations whose action has no resource-level permissions: the policy must say Resource "*"."""
    for operation in operations:
        rule(service, operation)(_on(f"{service}:{operation}", lambda _p, _s: "*"))


# -- Lambda ---------------------------------------------------------------------------------------
# "Fine-tuning the Resources and Conditions sections of policies"
# (https://docs.aws.amazon.com/lambda/latest/dg/lambda-api-permissions-ref.html): Invoke and the
# Get/Delete operations that take a Qualifier act on the function, version or alias ARN the request
# names; alias, publishing and code operations act on the (unqualified) function ARN.


def lambda_function_arn(scope: Scope, name_or_arn: str, qualifier: str | None = None) -> str:
    parts = name_or_arn.split(":")
    if name_or_arn.startswith("arn:"):
        region, account = parts[3], parts[4]
        name, in_arn = parts[6] if len(parts) > 6 else "", parts[7] if len(parts) > 7 else None
    elif len(parts) >= 3 and parts[1] == "function":  # 123456789012:function:name[:qualifier]
        region, account = scope.region, parts[0]
        name, in_arn = parts[2], parts[3] if len(parts) > 3 else None
    else:
        region, account = scope.region, scope.account_id
        name, in_arn = parts[0], parts[1] if len(parts) > 1 else None
    qualifier = in_arn or qualifier
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def _lambda(action: str, qualified: bool) -> Rule:
    def checks(params: dict[str, Any], scope: Scope) -> list[Check]:
        name = str(params.get("FunctionName") or params.get("Resource") or "")
        qualifier = params.get("Qualifier") if qualified else None
        arn = lambda_function_arn(scope, name, qualifier)
        if not qualified:
            arn = ":".join(arn.split(":")[:7])
        return [Check(action, arn)]

    return checks


for _operation, _action in {
    "Invoke": "lambda:InvokeFunction",
    "GetFunction": "lambda:GetFunction",
    "GetFunctionConfiguration": "lambda:GetFunctionConfiguration",
    "GetPolicy": "lambda:GetPolicy",
    "DeleteFunction": "lambda:DeleteFunction",
    "GetProvisionedConcurrencyConfig": "lambda:GetProvisionedConcurrencyConfig",
    "GetFunctionEventInvokeConfig": "lambda:GetFunctionEventInvokeConfig",
    "PutFunctionEventInvokeConfig": "lambda:PutFunctionEventInvokeConfig",
    "AddPermission": "lambda:AddPermission",
    "RemovePermission": "lambda:RemovePermission",
}.items():
    rule("lambda", _operation)(_lambda(_action, qualified=True))

for _operation in (
    "GetAlias",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "ListAliases",
    "PublishVersion",
    "ListVersionsByFunction",
    "UpdateFunctionCode",
    "PutFunctionConcurrency",
    "DeleteFunctionConcurrency",
    "GetFunctionConcurrency",
    "ListTags",
    "TagResource",
    "UntagResource",
    "ListProvisionedConcurrencyConfigs",
):
    rule("lambda", _operation)(_lambda(f"lambda:{_operation}", qualified=False))


def _pass_role(role_arn: str, service: str) -> Check:
    """Handing a role to a service is iam:PassRole on the role, with iam:PassedToService naming the service
    ("Grant a user permissions to pass a role to an AWS service",
    https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html)."""
    return Check("iam:PassRole", role_arn, {"iam:passedtoservice": service})


@rule("lambda", "CreateFunction", "UpdateFunctionConfiguration")
def _lambda_configure(params: dict[str, Any], scope: Scope) -> list[Check]:
    action = "lambda:CreateFunction" if "Code" in params else "lambda:UpdateFunctionConfiguration"
    checks = [Check(action, lambda_function_arn(scope, str(params.get("FunctionName", ""))))]
    if params.get("Role"):
        checks.append(_pass_role(str(params["Role"]), "lambda.amazonaws.com"))
    return checks


# ListEventSourceMappings has no resource type in the Service Authorization Reference ("Actions,
# resources, and condition keys for AWS Lambda"): only Resource "*" grants it, whatever FunctionName says.
_unscoped("lambda", "ListFunctions", "GetAccountSettings", "ListLayers", "ListEventSourceMappings")


# -- S3 -------------------------------------------------------------------------------------------
# "Actions, resources, and condition keys for Amazon S3": GetObject/HeadObject with a versionId are
# s3:GetObjectVersion, HeadObject needs s3:GetObject, ListObjects(V2)/HeadBucket are s3:ListBucket and
# ListObjectVersions is s3:ListBucketVersions.


def _object(params: dict[str, Any]) -> str:
    return f"arn:aws:s3:::{params.get('Bucket', '')}/{params.get('Key', '')}"


def _bucket(params: dict[str, Any]) -> str:
    return f"arn:aws:s3:::{params.get('Bucket', '')}"


def _versioned(plain: str, versioned: str) -> Rule:
    return lambda p, _s: [Check(versioned if p.get("VersionId") else plain, _object(p))]


rule("s3", "GetObject", "HeadObject")(_versioned("s3:GetObject", "s3:GetObjectVersion"))
rule("s3", "GetObjectTagging")(_versioned("s3:GetObjectTagging", "s3:GetObjectVersionTagging"))
rule("s3", "DeleteObject")(_versioned("s3:DeleteObject", "s3:DeleteObjectVersion"))
rule("s3", "PutObject")(lambda p, _s: [Check("s3:PutObject", _object(p))])
rule("s3", "PutObjectTagging")(lambda p, _s: [Check("s3:PutObjectTagging", _object(p))])
rule("s3", "ListObjects", "ListObjectsV2", "HeadBucket")(lambda p, _s: [Check("s3:ListBucket", _bucket(p))])
rule("s3", "ListObjectVersions")(lambda p, _s: [Check("s3:ListBucketVersions", _bucket(p))])
for _operation in ("GetBucketVersioning", "GetBucketPolicy", "GetBucketLocation", "GetBucketTagging"):
    rule("s3", _operation)(_on(f"s3:{_operation}", lambda p, _s: _bucket(p)))


@rule("s3", "CopyObject")
def _copy_object(params: dict[str, Any], _scope: Scope) -> list[Check]:
    source = str(params.get("CopySource", "")).lstrip("/")
    path, _, query = source.partition("?versionId=")
    read = "s3:GetObjectVersion" if query else "s3:GetObject"
    return [Check("s3:PutObject", _object(params)), Check(read, f"arn:aws:s3:::{path}")]


_unscoped("s3", "ListBuckets")


# -- DynamoDB -------------------------------------------------------------------------------------
# "Actions, resources, and condition keys for Amazon DynamoDB": item operations act on the table, Query
# and Scan on the index when IndexName is given; batch and transaction operations need the single-item
# action on each table they touch ("DynamoDB API permissions: Actions, resources, and conditions
# reference", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/api-permissions-reference.html).


def _table(scope: Scope, name: str, index: str | None = None) -> str:
    arn = (
        name
        if name.startswith("arn:")
        else f"arn:aws:dynamodb:{scope.region}:{scope.account_id}:table/{name}"
    )
    return f"{arn}/index/{index}" if index else arn


for _operation in (
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "DescribeTable",
    "DescribeTimeToLive",
    "UpdateTimeToLive",
    "DeleteTable",
    "CreateTable",
    "UpdateTable",
):
    rule("dynamodb", _operation)(
        _on(f"dynamodb:{_operation}", lambda p, s: _table(s, str(p.get("TableName", ""))))
    )
for _operation in ("Query", "Scan"):
    rule("dynamodb", _operation)(
        _on(f"dynamodb:{_operation}", lambda p, s: _table(s, str(p.get("TableName", "")), p.get("IndexName")))
    )


@rule("dynamodb", "BatchGetItem", "BatchWriteItem")
def _batch(params: dict[str, Any], scope: Scope) -> list[Check]:
    checks: list[Check] = []
    for table, request in (params.get("RequestItems") or {}).items():
        if isinstance(request, dict):  # BatchGetItem: {"Keys": [...]}
            checks.append(Check("dynamodb:BatchGetItem", _table(scope, table)))
            continue
        kinds = {next(iter(entry)) for entry in request if isinstance(entry, dict) and entry}
        for kind in sorted(kinds):
            action = "dynamodb:PutItem" if kind == "PutRequest" else "dynamodb:DeleteItem"
            checks.append(Check(action, _table(scope, table)))
    return checks


@rule("dynamodb", "TransactWriteItems", "TransactGetItems")
def _transact(params: dict[str, Any], scope: Scope) -> list[Check]:
    actions = {
        "ConditionCheck": "dynamodb:ConditionCheckItem",
        "Put": "dynamodb:PutItem",
        "Update": "dynamodb:UpdateItem",
        "Delete": "dynamodb:DeleteItem",
        "Get": "dynamodb:GetItem",
    }
    checks: list[Check] = []
    for item in params.get("TransactItems") or []:
        for kind, body in item.items():
            check = Check(
                actions.get(kind, f"dynamodb:{kind}"), _table(scope, str(body.get("TableName", "")))
            )
            if check not in checks:
                checks.append(check)
    return checks


_unscoped("dynamodb", "ListTables", "DescribeLimits", "DescribeEndpoints")


# -- SNS, SQS -------------------------------------------------------------------------------------


@rule("sns", "Publish")
def _publish(params: dict[str, Any], _scope: Scope) -> list[Check]:
    return [Check("sns:Publish", str(params.get("TopicArn") or params.get("TargetArn") or ""))]


for _operation in (
    "Subscribe",
    "GetTopicAttributes",
    "SetTopicAttributes",
    "ListSubscriptionsByTopic",
    "DeleteTopic",
    "TagResource",
    "ListTagsForResource",
):
    rule("sns", _operation)(
        _on(f"sns:{_operation}", lambda p, _s: str(p.get("TopicArn") or p.get("ResourceArn") or ""))
    )
rule("sns", "CreateTopic")(
    lambda p, s: [Check("sns:CreateTopic", f"arn:aws:sns:{s.region}:{s.account_id}:{p.get('Name', '')}")]
)
_unscoped("sns", "ListTopics", "ListSubscriptions")


def queue_arn(scope: Scope, url_or_name: str) -> str:
    """SQS requests name a queue by URL (…/<account>/<name>); IAM names it by ARN."""
    path = urlparse(url_or_name).path.strip("/").split("/") if "/" in url_or_name else [url_or_name]
    account, name = (path[0], path[-1]) if len(path) >= 2 else (scope.account_id, path[-1])
    return f"arn:aws:sqs:{scope.region}:{account}:{name}"


for _operation in (
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "GetQueueAttributes",
    "SetQueueAttributes",
    "PurgeQueue",
    "DeleteQueue",
):
    rule("sqs", _operation)(_on(f"sqs:{_operation}", lambda p, s: queue_arn(s, str(p.get("QueueUrl", "")))))
for _operation in ("GetQueueUrl", "CreateQueue"):
    rule("sqs", _operation)(_on(f"sqs:{_operation}", lambda p, s: queue_arn(s, str(p.get("QueueName", "")))))
_unscoped("sqs", "ListQueues")


# -- CodeDeploy ------------------------------------------------------------------------------------
# "Actions, resources, and condition keys for AWS CodeDeploy": deployment operations act on the
# deployment group the deployment belongs to (arn:…:deploymentgroup:<application>/<group>), revision and
# application operations on the application, configuration reads on the deployment configuration.


def _application(scope: Scope, name: str) -> str:
    return f"arn:aws:codedeploy:{scope.region}:{scope.account_id}:application:{name}"


def _group(scope: Scope, application: str, group: str) -> str:
    return f"arn:aws:codedeploy:{scope.region}:{scope.account_id}:deploymentgroup:{application}/{group}"


def _by_deployment(action: str, id_key: str = "deploymentId") -> Rule:
    def checks(params: dict[str, Any], scope: Scope) -> list[Check]:
        ids = params.get(id_key)
        found: list[Check] = []
        for deployment_id in ids if isinstance(ids, list) else [ids]:
            owner = scope.deployment_group_of(str(deployment_id or ""))
            # A deployment that does not exist has no group: the service answers its own not-found error.
            if owner is not None:
                check = Check(action, _group(scope, *owner))
                if check not in found:
                    found.append(check)
        return found

    return checks


for _operation in (
    "GetDeployment",
    "StopDeployment",
    "ContinueDeployment",
    "ListDeploymentTargets",
    "GetDeploymentTarget",
    "BatchGetDeploymentTargets",
    "PutLifecycleEventHookExecutionStatus",
):
    rule("codedeploy", _operation)(_by_deployment(f"codedeploy:{_operation}"))
rule("codedeploy", "BatchGetDeployments")(_by_deployment("codedeploy:BatchGetDeployments", "deploymentIds"))

for _operation in ("GetDeploymentGroup", "DeleteDeploymentGroup", "CreateDeployment", "ListDeployments"):
    rule("codedeploy", _operation)(
        _on(
            f"codedeploy:{_operation}",
            lambda p, s: _group(s, str(p.get("applicationName", "")), str(p.get("deploymentGroupName", ""))),
        )
    )


@rule("codedeploy", "CreateDeploymentGroup", "UpdateDeploymentGroup")
def _configure_group(params: dict[str, Any], scope: Scope) -> list[Check]:
    creating = "deploymentGroupName" in params
    name = str(params.get("deploymentGroupName") or params.get("currentDeploymentGroupName") or "")
    action = "codedeploy:CreateDeploymentGroup" if creating else "codedeploy:UpdateDeploymentGroup"
    checks = [Check(action, _group(scope, str(params.get("applicationName", "")), name))]
    if params.get("serviceRoleArn"):
        checks.append(_pass_role(str(params["serviceRoleArn"]), "codedeploy.amazonaws.com"))
    return checks


for _operation in (
    "CreateApplication",
    "GetApplication",
    "DeleteApplication",
    "GetApplicationRevision",
    "RegisterApplicationRevision",
    "ListApplicationRevisions",
    "ListDeploymentGroups",
):
    rule("codedeploy", _operation)(
        _on(f"codedeploy:{_operation}", lambda p, s: _application(s, str(p.get("applicationName", ""))))
    )
for _operation in ("GetDeploymentConfig", "CreateDeploymentConfig", "DeleteDeploymentConfig"):
    rule("codedeploy", _operation)(
        _on(
            f"codedeploy:{_operation}",
            lambda p, s: (
                f"arn:aws:codedeploy:{s.region}:{s.account_id}:deploymentconfig:{p.get('deploymentConfigName', '')}"
            ),
        )
    )
_unscoped("codedeploy", "ListApplications", "ListDeploymentConfigs")


# -- CloudWatch, Logs, EventBridge, Secrets Manager, X-Ray, STS -------------------------------------


def _alarm(scope: Scope, name: str) -> str:
    return f"arn:aws:cloudwatch:{scope.region}:{scope.account_id}:alarm:{name}"


def _alarms(action: str) -> Rule:
    """One check per named alarm; a DescribeAlarms by prefix (or of every alarm) acts on the pattern."""

    def checks(params: dict[str, Any], scope: Scope) -> list[Check]:
        names = params.get("AlarmNames") or []
        if not names:
            return [Check(action, _alarm(scope, str(params.get("AlarmNamePrefix", "")) + "*"))]
        return [Check(action, _alarm(scope, str(name))) for name in names]

    return checks


rule("cloudwatch", "DescribeAlarms")(_alarms("cloudwatch:DescribeAlarms"))
rule("cloudwatch", "DeleteAlarms")(_alarms("cloudwatch:DeleteAlarms"))


for _operation in (
    "PutMetricAlarm",
    "SetAlarmState",
    "DescribeAlarmHistory",
    "EnableAlarmActions",
    "DisableAlarmActions",
):
    rule("cloudwatch", _operation)(
        _on(
            f"cloudwatch:{_operation}",
            lambda p, s: _alarm(s, str(p.get("AlarmName") or (p.get("AlarmNames") or [""])[0])),
        )
    )
_unscoped(
    "cloudwatch",
    "GetMetricData",
    "GetMetricStatistics",
    "PutMetricData",
    "ListMetrics",
    "DescribeAlarmsForMetric",
)


def _log_group(scope: Scope, group: str, stream: str | None = None) -> str:
    arn = f"arn:aws:logs:{scope.region}:{scope.account_id}:log-group:{group}"
    return f"{arn}:log-stream:{stream}" if stream is not None else arn


# CreateLogStream and PutLogEvents act on the log stream (…:log-group:<g>:log-stream:<s>), which is why
# execution-role policies grant them on "…:log-group:<g>:*" ("Amazon CloudWatch Logs permissions
# reference", https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/permissions-reference-cwl.html).
for _operation in ("CreateLogStream", "PutLogEvents"):
    rule("logs", _operation)(
        _on(
            f"logs:{_operation}",
            lambda p, s: _log_group(s, str(p.get("logGroupName", "")), str(p.get("logStreamName", ""))),
        )
    )
for _operation in (
    "CreateLogGroup",
    "DescribeLogStreams",
    "GetLogEvents",
    "FilterLogEvents",
    "PutRetentionPolicy",
):
    rule("logs", _operation)(
        _on(f"logs:{_operation}", lambda p, s: _log_group(s, str(p.get("logGroupName", ""))))
    )
_unscoped("logs", "DescribeLogGroups")


@rule("events", "PutEvents")
def _put_events(params: dict[str, Any], scope: Scope) -> list[Check]:
    buses = {str(e.get("EventBusName") or "default") for e in params.get("Entries") or []} or {"default"}
    return [
        Check(
            "events:PutEvents",
            bus
            if bus.startswith("arn:")
            else f"arn:aws:events:{scope.region}:{scope.account_id}:event-bus/{bus}",
        )
        for bus in sorted(buses)
    ]


for _operation in ("GetSecretValue", "DescribeSecret", "PutSecretValue"):
    rule("secretsmanager", _operation)(
        _on(f"secretsmanager:{_operation}", lambda p, s: s.secret_arn(str(p.get("SecretId", ""))))
    )
_unscoped("xray", "PutTraceSegments", "PutTelemetryRecords", "GetSamplingRules", "GetSamplingTargets")
# GetCallerIdentity needs no permission: "No permissions are required to perform this operation"
# (STS API reference, GetCallerIdentity).
rule("sts", "GetCallerIdentity")(lambda _p, _s: [])
