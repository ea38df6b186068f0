"""IAM in the sandbox: calls made with a role's credentials are refused where AWS refuses them.

Each test sets up a role and a resource with the operator's (`testing`) credentials, then acts with
credentials the sandbox issued for the role (as Lambda gives function code its execution role's), and
checks the answer: the service's own error code, HTTP status and message shape.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox import Sandbox
from sandbox.call_log import cpu_by_operation
from tests.support.sandbox_support import client, drain, invoke_json, queue, trust_policy, wait_for, zip_of

ACCOUNT = "123456789012"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(speed=60, iam=True) as running:
        yield running


def new_role(
    sb: Sandbox,
    statements: list[dict[str, Any]],
    managed: list[str] = (),  # type: ignore[assignment]
    trust: str = json.dumps(LAMBDA_TRUST),
) -> str:
    iam = client(sb, "iam")
    name = f"role-{uuid.uuid4().hex[:8]}"
    arn = str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"])
    if statements:
        iam.put_role_policy(
            RoleName=name,
            PolicyName="inline",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
    for policy in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy)
    return arn


def as_role(sb: Sandbox, role: str, service: str) -> Any:
    credentials = sb.iam.issue(role, "test-session")
    return boto3.client(
        service, endpoint_url=sb.endpoint_url, region_name=sb.region, **credentials.boto3_arguments()
    )


def refusal(call: Any, **params: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response
    return (
        str(error["Error"]["Code"]),
        int(error["ResponseMetadata"]["HTTPStatusCode"]),
        str(error["Error"].get("Message", "")),
    )


def table(sb: Sandbox) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client(sb, "dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{name}"


ITEM = {"id": {"S": "1"}}


# -- who is calling ---------------------------------------------------------------------------------


def test_function_code_calls_with_its_execution_role(sb):
    allowed, other = table(sb), table(sb)
    role = new_role(sb, [{"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": table_arn(allowed)}])
    source = """
import boto3, os
def handler(event, context):
    try:
        boto3.client("dynamodb").put_item(TableName=event["table"], Item={"id": {"S": "x"}})
        return {"ok": True, "key": os.environ["AWS_ACCESS_KEY_ID"][:4]}
    except Exception as exc:
        return {"ok": False, "code": exc.response["Error"]["Code"], "message": exc.response["Error"]["Message"]}
"""
    name = f"fn-{uuid.uuid4().hex[:6]}"
    client(sb, "lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": source})},
    )
    _, answer = invoke_json(sb, name, {"table": allowed})
    assert answer == {"ok": True, "key": "ASIA"}  # temporary credentials, as Lambda sets them
    _, answer = invoke_json(sb, name, {"table": other})
    assert answer["code"] == "AccessDeniedException"
    role_name = role.rsplit("/", 1)[1]
    assert answer["message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{name} is not authorized to perform: "
        f"dynamodb:PutItem on resource: {table_arn(other)} because no identity-based policy allows the "
        "dynamodb:PutItem action"
    )


def test_operator_credentials_are_never_refused(sb):
    name = table(sb)
    client(sb, "dynamodb").put_item(TableName=name, Item=ITEM)
    assert sb.iam.enforce


def test_a_session_token_the_sandbox_does_not_know_is_refused(sb):
    role = new_role(sb, [{"Effect": "Allow", "Action": "*", "Resource": "*"}])
    credentials = sb.iam.issue(role, "s")
    forged = boto3.client(
        "dynamodb",
        endpoint_url=sb.endpoint_url,
        region_name=sb.region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token + "x",
    )
    code, status, message = refusal(forged.list_tables)
    assert (code, status, message) == (
        "UnrecognizedClientException",
        400,
        "The security token included in the request is invalid.",
    )


# -- identity policies ----------------------------------------------------------------------------


def test_explicit_deny_beats_any_allow(sb):
    name = table(sb)
    role = new_role(
        sb,
        [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {
                "Sid": "NoDeletes",
                "Effect": "Deny",
                "Action": "dynamodb:DeleteItem",
                "Resource": table_arn(name),
            },
        ],
    )
    ddb = as_role(sb, role, "dynamodb")
    ddb.put_item(TableName=name, Item=ITEM)
    code, status, message = refusal(ddb.delete_item, TableName=name, Key=ITEM)
    assert (code, status) == ("AccessDeniedException", 400)
    assert message.endswith("with an explicit deny in an identity-based policy")


def test_wildcards_notaction_and_notresource(sb):
    kept, other = table(sb), table(sb)
    role = new_role(
        sb,
        [
            {
                "Effect": "Allow",
                "NotAction": ["dynamodb:Delete*"],
                "Resource": "arn:aws:dynamodb:*:*:table/t-*",
            },
            {"Effect": "Deny", "Action": "dynamodb:PutItem", "NotResource": table_arn(kept)},
        ],
    )
    ddb = as_role(sb, role, "dynamodb")
    ddb.put_item(TableName=kept, Item=ITEM)
    ddb.get_item(TableName=other, Key=ITEM)
    assert refusal(ddb.delete_item, TableName=kept, Key=ITEM)[0] == "AccessDeniedException"
    assert "explicit deny" in refusal(ddb.put_item, TableName=other, Item=ITEM)[2]


def test_query_on_an_index_needs_the_index_arn(sb):
    name = table(sb)
    role = new_role(sb, [{"Effect": "Allow", "Action": "dynamodb:Query", "Resource": table_arn(name)}])
    ddb = as_role(sb, role, "dynamodb")
    ddb.query(TableName=name, KeyConditionExpression="id = :v", ExpressionAttributeValues={":v": {"S": "1"}})
    _, _, message = refusal(
        ddb.query,
        TableName=name,
        IndexName="by-x",
        KeyConditionExpression="x = :v",
        ExpressionAttributeValues={":v": {"S": "1"}},
    )
    assert f"on resource: {table_arn(name)}/index/by-x " in message


def test_customer_and_aws_managed_policies_apply(sb):
    iam = client(sb, "iam")
    name = table(sb)
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": table_arn(name)}],
    }
    managed = iam.create_policy(PolicyName=f"p-{uuid.uuid4().hex[:6]}", PolicyDocument=json.dumps(document))[
        "Policy"
    ]["Arn"]
    basic = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    role = new_role(sb, [], managed=[managed, basic])
    as_role(sb, role, "dynamodb").get_item(TableName=name, Key=ITEM)
    logs = as_role(sb, role, "logs")
    client(sb, "logs").create_log_group(logGroupName="/aws/lambda/anything")
    logs.create_log_stream(logGroupName="/aws/lambda/anything", logStreamName="s")
    # AWS's own documents, at their real ARNs.
    version = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda")[
        "Policy"
    ]
    document = iam.get_policy_version(PolicyArn=version["Arn"], VersionId=version["DefaultVersionId"])[
        "PolicyVersion"
    ]["Document"]
    invoke = [s for s in document["Statement"] if s["Action"] == ["lambda:InvokeFunction"]]
    assert invoke[0]["Resource"] == "arn:aws:lambda:*:*:function:CodeDeployHook_*"


def test_a_policy_changed_between_two_calls_decides_the_second(sb):
    """Each call is decided on the policies as they are when it arrives, however often the same call was
    decided before: inline policies replaced or deleted, managed policies given a new default version,
    attached or detached."""
    iam = client(sb, "iam")
    name = table(sb)
    get_item = {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": table_arn(name)}
    role = new_role(sb, [get_item])
    role_name = role.rsplit("/", 1)[-1]
    ddb = as_role(sb, role, "dynamodb")
    for _ in range(3):
        ddb.get_item(TableName=name, Key=ITEM)
    deny = {"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": table_arn(name)}
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="inline",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [get_item, deny]}),
    )
    assert refusal(ddb.get_item, TableName=name, Key=ITEM)[2].endswith(
        "explicit deny in an identity-based policy"
    )
    iam.delete_role_policy(RoleName=role_name, PolicyName="inline")
    assert "because no identity-based policy allows" in refusal(ddb.get_item, TableName=name, Key=ITEM)[2]
    document = {"Version": "2012-10-17", "Statement": [get_item]}
    managed = iam.create_policy(PolicyName=f"p-{uuid.uuid4().hex[:6]}", PolicyDocument=json.dumps(document))[
        "Policy"
    ]["Arn"]
    iam.attach_role_policy(RoleName=role_name, PolicyArn=managed)
    ddb.get_item(TableName=name, Key=ITEM)
    narrowed = {**get_item, "Resource": table_arn(name) + "-other"}
    iam.create_policy_version(
        PolicyArn=managed,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [narrowed]}),
        SetAsDefault=True,
    )
    assert refusal(ddb.get_item, TableName=name, Key=ITEM)[0] == "AccessDeniedException"
    iam.set_default_policy_version(PolicyArn=managed, VersionId="v1")
    ddb.get_item(TableName=name, Key=ITEM)
    iam.detach_role_policy(RoleName=role_name, PolicyArn=managed)
    assert refusal(ddb.get_item, TableName=name, Key=ITEM)[0] == "AccessDeniedException"


def test_an_operation_the_sandbox_cannot_map_is_refused_loudly(sb):
    role = new_role(sb, [{"Effect": "Allow", "Action": "*", "Resource": "*"}])
    code, status, message = refusal(as_role(sb, role, "dynamodb").list_backups)
    assert (code, status) == ("NotImplemented", 501)
    assert "dynamodb:ListBackups" in message


# -- Lambda: tags as conditions, function policies ---------------------------------------------------


def managed_function(sb: Sandbox, tags: dict[str, str]) -> str:
    name = f"target-{uuid.uuid4().hex[:6]}"
    client(sb, "lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=new_role(sb, []),
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": "def handler(event, context):\n    return event\n"})},
        Tags=tags,
    )
    return name


TAGGED_ONLY = {
    "Effect": "Allow",
    "Action": ["lambda:GetFunction", "lambda:InvokeFunction", "lambda:GetAlias"],
    "Resource": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:*",
    "Condition": {"StringEquals": {"aws:ResourceTag/rollout:managed": "true"}},
}


def test_resource_tag_conditions_read_the_functions_tags(sb):
    tagged = managed_function(sb, {"rollout:managed": "true"})
    untagged = managed_function(sb, {})
    lam = as_role(sb, new_role(sb, [TAGGED_ONLY]), "lambda")
    lam.get_function(FunctionName=tagged)
    assert (
        json.loads(lam.invoke(FunctionName=tagged, Qualifier="$LATEST", Payload=b"{}")["Payload"].read())
        == {}
    )
    code, status, message = refusal(lam.get_function, FunctionName=untagged)
    assert (code, status) == ("AccessDeniedException", 403)
    assert (
        f"lambda:GetFunction on resource: arn:aws:lambda:us-east-1:{ACCOUNT}:function:{untagged} " in message
    )
    # A function that does not exist has no tags either: refused, not "not found".
    assert refusal(lam.get_function, FunctionName="no-such-function")[:2] == ("AccessDeniedException", 403)
    # Tags changed after the fact count at the next call.
    client(sb, "lambda").tag_resource(
        Resource=f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{untagged}", Tags={"rollout:managed": "true"}
    )
    lam.get_function(FunctionName=untagged)


def test_version_retentions_lists_are_refused_where_aws_refuses_them(sb):
    """The reconciler's version-retention grants: ListProvisionedConcurrencyConfigs only on managed
    functions, ListEventSourceMappings only on "*" (it has no resource type to narrow to)."""
    managed = managed_function(sb, {"rollout:managed": "true"})
    unmanaged = managed_function(sb, {})
    functions = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:*"
    tagged = {
        "Effect": "Allow",
        "Action": ["lambda:ListProvisionedConcurrencyConfigs"],
        "Resource": functions,
        "Condition": {"StringEquals": {"aws:ResourceTag/rollout:managed": "true"}},
    }
    mappings_on_functions = {
        "Effect": "Allow",
        "Action": "lambda:ListEventSourceMappings",
        "Resource": functions,
    }
    lam = as_role(sb, new_role(sb, [tagged, mappings_on_functions]), "lambda")

    assert (
        lam.list_provisioned_concurrency_configs(FunctionName=managed)["ProvisionedConcurrencyConfigs"] == []
    )
    code, status, message = refusal(lam.list_provisioned_concurrency_configs, FunctionName=unmanaged)
    assert (code, status) == ("AccessDeniedException", 403)
    assert f"lambda:ListProvisionedConcurrencyConfigs on resource: {functions[:-1]}{unmanaged} " in message
    # A function ARN in Resource never grants it: AWS authorises ListEventSourceMappings on "*" only.
    code, status, message = refusal(lam.list_event_source_mappings, FunctionName=managed)
    assert (code, status) == ("AccessDeniedException", 403)
    assert "perform: lambda:ListEventSourceMappings because no identity-based policy allows" in message

    anywhere = {"Effect": "Allow", "Action": "lambda:ListEventSourceMappings", "Resource": "*"}
    lam = as_role(sb, new_role(sb, [anywhere]), "lambda")
    assert lam.list_event_source_mappings(FunctionName=managed)["EventSourceMappings"] == []


def test_event_source_mappings_of_every_qualifier_are_listed_by_function_name(sb):
    """Lambda answers an unqualified FunctionName with the mappings on each of its versions and
    aliases (moto alone matches the name as a string, and retention would miss a version in use)."""
    name = managed_function(sb, {"rollout:managed": "true"})
    lam = client(sb, "lambda")
    version = lam.publish_version(FunctionName=name)["Version"]
    url, _ = queue(sb, f"esm-{uuid.uuid4().hex[:6]}")
    source = client(sb, "sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    lam.create_event_source_mapping(FunctionName=f"{name}:{version}", EventSourceArn=source, Enabled=False)

    (mapping,) = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert mapping["FunctionArn"].endswith(f":function:{name}:{version}")
    assert len(lam.list_event_source_mappings(FunctionName=f"{name}:{version}")["EventSourceMappings"]) == 1
    assert lam.list_event_source_mappings(FunctionName=f"{name}:live")["EventSourceMappings"] == []


def test_a_function_policy_alone_lets_a_role_invoke(sb):
    target = managed_function(sb, {})
    role = new_role(sb, [])
    lam = as_role(sb, role, "lambda")
    assert refusal(lam.invoke, FunctionName=target, Payload=b"{}")[0] == "AccessDeniedException"
    client(sb, "lambda").add_permission(
        FunctionName=target, StatementId="caller", Action="lambda:InvokeFunction", Principal=role
    )
    assert lam.invoke(FunctionName=target, Payload=b"{}")["StatusCode"] == 200
    client(sb, "lambda").remove_permission(FunctionName=target, StatementId="caller")
    assert refusal(lam.invoke, FunctionName=target, Payload=b"{}")[0] == "AccessDeniedException"


def test_pass_role_is_checked_with_the_service_it_is_passed_to(sb):
    passed = new_role(sb, [], trust=trust_policy("codedeploy"))
    other_service = new_role(
        sb,
        [
            {"Effect": "Allow", "Action": "codedeploy:*", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": passed,
                "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
            },
        ],
    )
    client(sb, "codedeploy").create_application(applicationName="pass-role-app", computePlatform="Lambda")
    codedeploy = as_role(sb, other_service, "codedeploy")
    request = {
        "applicationName": "pass-role-app",
        "deploymentGroupName": "g",
        "serviceRoleArn": passed,
        "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
    }
    code, status, message = refusal(codedeploy.create_deployment_group, **request)
    assert (code, status) == ("AccessDeniedException", 400)
    assert f"iam:PassRole on resource: {passed} " in message
    client(sb, "iam").put_role_policy(
        RoleName=other_service.rsplit("/", 1)[1],
        PolicyName="pass-to-codedeploy",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "iam:PassRole",
                        "Resource": passed,
                        "Condition": {"StringEquals": {"iam:PassedToService": "codedeploy.amazonaws.com"}},
                    }
                ],
            }
        ),
    )
    codedeploy.create_deployment_group(**request)


# -- S3 -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bucket(sb: Sandbox) -> str:
    name = f"b-{uuid.uuid4().hex[:8]}"
    s3 = client(sb, "s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def test_s3_reads_of_a_version_need_get_object_version(sb, bucket):
    version = client(sb, "s3").put_object(Bucket=bucket, Key="a.zip", Body=b"x")["VersionId"]
    s3 = as_role(
        sb,
        new_role(sb, [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]),
        "s3",
    )
    assert s3.get_object(Bucket=bucket, Key="a.zip")["Body"].read() == b"x"
    code, status, message = refusal(s3.get_object, Bucket=bucket, Key="a.zip", VersionId=version)
    assert (code, status) == ("AccessDenied", 403)
    assert f'perform: s3:GetObjectVersion on resource: "arn:aws:s3:::{bucket}/a.zip" because' in message
    # HEAD answers carry no body: botocore sees only the status.
    assert refusal(s3.head_object, Bucket=bucket, Key="a.zip", VersionId=version)[:2] == ("403", 403)


def test_a_missing_key_is_404_only_for_callers_allowed_to_list(sb, bucket):
    reader = [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]
    lister = [*reader, {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}]
    blind = as_role(sb, new_role(sb, reader), "s3")
    seeing = as_role(sb, new_role(sb, lister), "s3")
    assert refusal(blind.get_object, Bucket=bucket, Key="missing.zip")[:2] == ("AccessDenied", 403)
    assert refusal(seeing.get_object, Bucket=bucket, Key="missing.zip")[:2] == ("NoSuchKey", 404)
    assert refusal(seeing.head_object, Bucket=bucket, Key="missing.zip")[:2] == ("404", 404)
    client(sb, "s3").put_object(Bucket=bucket, Key="present.zip", Body=b"12345")
    assert blind.head_object(Bucket=bucket, Key="present.zip")["ContentLength"] == 5


def test_a_bucket_policy_deny_applies_to_allowed_roles(sb):
    name = f"b-{uuid.uuid4().hex[:8]}"
    s3 = client(sb, "s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    role = new_role(sb, [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}])
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Effect": "Deny",
                "Principal": {"AWS": role},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{name}/*",
            },
        ],
    }
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    mine = as_role(sb, role, "s3")
    mine.put_object(Bucket=name, Key="k2", Body=b"y")  # the transport rule does not apply: TLS stands in
    code, _, message = refusal(mine.get_object, Bucket=name, Key="k")
    assert code == "AccessDenied" and message.endswith("with an explicit deny in a resource-based policy")


def test_update_function_code_reads_s3_with_the_callers_permissions(sb, bucket):
    version = client(sb, "s3").put_object(
        Bucket=bucket, Key="code.zip", Body=zip_of({"app.py": "def handler(e, c):\n    return 2\n"})
    )["VersionId"]
    target = managed_function(sb, {})
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{target}"
    update = {"Effect": "Allow", "Action": "lambda:UpdateFunctionCode", "Resource": arn}
    unversioned = as_role(
        sb, new_role(sb, [update, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]), "lambda"
    )
    code, status, message = refusal(
        unversioned.update_function_code,
        FunctionName=target,
        S3Bucket=bucket,
        S3Key="code.zip",
        S3ObjectVersion=version,
    )
    assert (code, status) == ("AccessDeniedException", 403)
    assert "S3 Error Code: AccessDenied" in message
    versioned = as_role(
        sb,
        new_role(sb, [update, {"Effect": "Allow", "Action": "s3:GetObjectVersion", "Resource": "*"}]),
        "lambda",
    )
    versioned.update_function_code(
        FunctionName=target, S3Bucket=bucket, S3Key="code.zip", S3ObjectVersion=version
    )


# -- SNS topic policies ------------------------------------------------------------------------------


def test_a_topic_policy_limits_publishers_by_principal_arn(sb):
    sns = client(sb, "sns")
    topic = sns.create_topic(Name=f"topic-{uuid.uuid4().hex[:6]}")["TopicArn"]
    publish = [{"Effect": "Allow", "Action": "sns:Publish", "Resource": topic}]
    chosen, other = new_role(sb, publish), new_role(sb, publish)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": topic,
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [chosen]}},
            }
        ],
    }
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(policy))
    as_role(sb, chosen, "sns").publish(TopicArn=topic, Message="hello")
    code, status, message = refusal(as_role(sb, other, "sns").publish, TopicArn=topic, Message="hello")
    assert (code, status) == ("AuthorizationError", 403)
    assert message.endswith("with an explicit deny in a resource-based policy")


# -- services acting with roles and resource policies --------------------------------------------------


def recorder(sb: Sandbox, role: str) -> tuple[str, str]:
    """A function that forwards each event to a new SQS queue (with the operator's keys baked in, so
    what it may do is not the question); returns (function name, queue url)."""
    url, _ = queue(sb, f"q-{uuid.uuid4().hex[:6]}")
    source = f"""
import json, boto3
def handler(event, context):
    boto3.client("sqs", aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token=None).send_message(
        QueueUrl="{url}", MessageBody=json.dumps(event))
    return "ok"
"""
    name = f"rec-{uuid.uuid4().hex[:6]}"
    client(sb, "lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": source})},
    )
    return name, url


def test_eventbridge_invokes_a_function_only_with_its_permission(sb):
    name, url = recorder(sb, new_role(sb, []))
    events = client(sb, "events")
    rule = events.put_rule(
        Name=f"r-{uuid.uuid4().hex[:6]}", EventPattern=json.dumps({"source": ["iam.test"]})
    )["RuleArn"]
    events.put_targets(
        Rule=rule.rsplit("/", 1)[1],
        Targets=[{"Id": "1", "Arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"}],
    )
    send = {"Entries": [{"Source": "iam.test", "DetailType": "t", "Detail": json.dumps({"n": 1})}]}
    events.put_events(**send)
    wait_for(lambda: sb.iam.log.denied("events.amazonaws.com"), what="the refused delivery")
    client(sb, "lambda").add_permission(
        FunctionName=name,
        StatementId="rule",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule,
    )
    events.put_events(**{"Entries": [{**send["Entries"][0], "Detail": json.dumps({"n": 2})}]})
    bodies = drain(sb, url, 1)
    assert [b["detail"]["n"] for b in bodies] == [2]  # the first event was never delivered


def test_async_destinations_are_sent_with_the_execution_role(sb):
    url, arn = queue(sb, f"dest-{uuid.uuid4().hex[:6]}")
    refused_role = new_role(sb, [])
    allowed_role = new_role(sb, [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}])
    lam = client(sb, "lambda")
    for role, label in ((refused_role, "refused"), (allowed_role, "allowed")):
        name = f"dst-{label}-{uuid.uuid4().hex[:6]}"
        lam.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": zip_of({"app.py": "def handler(e, c):\n    return e\n"})},
        )
        lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn}}
        )
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"who": label}).encode())
    records = drain(sb, url, 1)
    wait_for(
        lambda: [e for e in sb.iam.log.denied(refused_role) if e.action == "sqs:SendMessage"],
        what="the refusal",
    )
    assert [r["requestPayload"]["who"] for r in records] == ["allowed"]
    assert client(sb, "sqs").receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None


def test_logs_are_written_only_with_the_roles_permission(sb):
    lam, logs = client(sb, "lambda"), client(sb, "logs")
    names = {}
    for label, managed in (
        ("silent", []),
        ("logged", ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]),
    ):
        names[label] = f"log-{label}-{uuid.uuid4().hex[:6]}"
        lam.create_function(
            FunctionName=names[label],
            Runtime="python3.13",
            Role=new_role(sb, [], managed=managed),
            Handler="app.handler",
            Code={"ZipFile": zip_of({"app.py": "def handler(e, c):\n    print('hello')\n"})},
        )
        invoke_json(sb, names[label])

    def streams(name: str) -> list[Any]:
        try:
            return list(logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")["logStreams"])
        except logs.exceptions.ResourceNotFoundException:
            return []

    assert streams(names["logged"])
    assert not streams(names["silent"])


def test_every_operation_the_control_plane_calls_has_an_iam_mapping():
    """A call the table does not know would be answered 501 under enforcement: catch it before it runs."""
    import re
    from pathlib import Path

    from sandbox.iam.actions import RULES

    root = Path(__file__).resolve().parents[2] / "layers" / "rollout" / "rollout"
    found: set[tuple[str, str]] = set()
    for path in root.glob("*.py"):
        text = path.read_text()
        names = {
            var: svc
            for var, svc in re.findall(r"(\w+) = aws\.(?:client|check_invoke_client)\(\"?(\w*)\"?\)", text)
        }
        names = {var: (svc or "lambda") for var, svc in names.items()}
        calls = re.findall(r"aws\.client\(\"(\w+)\"\)\.(\w+)\(", text)
        calls += re.findall(r"aws\.check_invoke_client\(\)\.()(\w+)\(", text)
        calls += [
            (names[var], method) for var, method in re.findall(r"\b(\w+)\.(\w+)\(", text) if var in names
        ]
        if "self._table." in text:
            calls += [("dynamodb", m) for m in re.findall(r"self\._table\.(\w+)\(", text)]
        for service, method in calls:
            found.add((service or "lambda", method))
    # Powertools: the idempotency layer's item calls, the parameters utility's secret read.
    found |= {("dynamodb", m) for m in ("get_item", "put_item", "update_item", "delete_item")}
    found.add(("secretsmanager", "get_secret_value"))
    missing = []
    for service, method in sorted(found):
        api = boto3.client(service, region_name="us-east-1").meta.method_to_api_mapping.get(method)
        if api is None:
            continue  # a paginator or waiter helper, not an operation
        if (service, api) not in RULES:
            missing.append(f"{service}:{api}")
    assert len(found) > 20
    assert missing == []


def test_query_compatible_json_services_refuse_with_their_query_code(sb):
    """CloudWatch and SQS speak JSON to botocore but keep their query error codes (x-amzn-query-error)."""
    role = new_role(sb, [])
    code, status, message = refusal(as_role(sb, role, "cloudwatch").describe_alarms, AlarmNames=["a"])
    assert (code, status) == ("AccessDenied", 403)
    assert (
        f"cloudwatch:DescribeAlarms on resource: arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:a " in message
    )
    url, _ = queue(sb, f"q-{uuid.uuid4().hex[:6]}")
    code, status, _ = refusal(as_role(sb, role, "sqs").send_message, QueueUrl=url, MessageBody="x")
    assert (code, status) == ("AccessDenied", 403)
    # An action without resource-level permissions names no resource in the message.
    _, _, message = refusal(as_role(sb, role, "cloudwatch").list_metrics)
    assert message.endswith(
        "is not authorized to perform: cloudwatch:ListMetrics because no identity-based policy allows the cloudwatch:ListMetrics action"
    )


def test_a_role_the_service_may_not_assume_is_refused_when_handed_over(sb):
    untrusting = new_role(sb, [], trust=trust_policy("ec2"))
    code, status, message = refusal(
        client(sb, "lambda").create_function,
        FunctionName=f"fn-{uuid.uuid4().hex[:6]}",
        Runtime="python3.13",
        Role=untrusting,
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": "def handler(e, c):\n    return 1\n"})},
    )
    assert (code, status, message) == (
        "InvalidParameterValueException",
        400,
        "The role defined for the function cannot be assumed by Lambda.",
    )
    codedeploy = client(sb, "codedeploy")
    codedeploy.create_application(applicationName="trust-app", computePlatform="Lambda")
    code, status, message = refusal(
        codedeploy.create_deployment_group,
        applicationName="trust-app",
        deploymentGroupName="g",
        serviceRoleArn=new_role(sb, []),  # trusts Lambda, not CodeDeploy
        deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
    )
    assert (code, status) == ("InvalidRoleException", 400)
    assert "does not have the permissions required to assume the role" in message


def test_every_call_is_recorded_with_its_caller_role_and_outcome(sb):
    import urllib.request

    role = new_role(sb, [{"Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"}])
    mark = sb.calls.mark()
    as_role(sb, role, "sqs").list_queues()
    with pytest.raises(ClientError):
        as_role(sb, role, "sqs").create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")
    client(sb, "sqs").list_queues()
    calls = sb.calls.since(mark)
    role_name = role.rsplit("/", 1)[-1]
    assert [(c.service, c.operation, c.role, c.session, c.outcome) for c in calls] == [
        ("sqs", "ListQueues", role_name, "test-session", "ok"),
        ("sqs", "CreateQueue", role_name, "test-session", "AccessDenied"),
        ("sqs", "ListQueues", "operator", "", "ok"),
    ]
    # The same record over HTTP, for a sandbox in another process.
    with urllib.request.urlopen(f"{sb.endpoint_url}/_sandbox/calls?since={mark}") as answer:
        body = json.loads(answer.read())
    assert [c["operation"] for c in body["calls"]] == ["ListQueues", "CreateQueue", "ListQueues"]
    assert body["calls"][1]["outcome"] == "AccessDenied" and body["next"] >= mark + 3
    # Each with the CPU the sandbox spent serving it, and summed by operation, costliest first.
    assert all(0 < c.cpu_ms < 5000 for c in calls)
    summary = cpu_by_operation(calls)
    assert summary["sqs:ListQueues"]["calls"] == 2 and summary["sqs:CreateQueue"]["calls"] == 1
    assert summary["sqs:ListQueues"]["cpu_ms"] == round(calls[0].cpu_ms + calls[2].cpu_ms, 1)
    assert [entry["cpu_ms"] for entry in summary.values()] == sorted(
        (entry["cpu_ms"] for entry in summary.values()), reverse=True
    )
