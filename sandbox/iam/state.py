"""What authorisation reads from the sandbox's state (moto's backends): a role's policies, a resource's
policy and tags. Read-only; every function takes the account and region it looks in."""

from __future__ import annotations

import json
import logging
from functools import cache
from typing import Any

from sandbox.iam.policy import IDENTITY, RESOURCE, Policy

log = logging.getLogger("sandbox.iam")

# AWS managed policies the sandbox creates at their real ARNs with the documents AWS publishes (moto
# ships them, imported from AWS). Others load when a role attaches them (see patches._patch_iam).
PRELOADED_MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess",
)


@cache
def _aws_managed_data() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data: dict[str, Any] = json.loads(aws_managed_policies_data)
    return data


def aws_managed_policy_data(arn: str) -> tuple[str, dict[str, Any]] | None:
    """(name, moto's record) of an AWS managed policy ARN, if AWS publishes such a policy."""
    if not arn.startswith("arn:aws:iam::aws:policy/"):
        return None
    name = arn.rsplit("/", 1)[-1]
    record = _aws_managed_data().get(name)
    if record is None or f"arn:aws:iam::aws:policy{record.get('Path', '/')}{name}" != arn:
        return None
    return name, record


def ensure_aws_managed_policy(backend: Any, arn: str) -> bool:
    """Create the AWS managed policy `arn` in moto's IAM backend if AWS has it; True if it exists now."""
    if arn in backend.managed_policies:
        return True
    found = aws_managed_policy_data(arn)
    if found is None:
        return False
    from moto.iam.models import AWSManagedPolicy

    name, record = found
    policy = AWSManagedPolicy.from_data(name, backend.account_id, backend.region_name, record)
    backend.managed_policies[policy.arn] = policy
    return True


def iam_backend(account_id: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account_id]["global"]


def identity_policies(account_id: str, role_arn: str) -> list[Policy]:
    """The role's inline policies and the default versions of its attached managed policies."""
    name = role_arn.rsplit("/", 1)[-1]
    role = next((r for r in iam_backend(account_id).roles.values() if r.name == name), None)
    if role is None or role.arn != role_arn:
        return []  # a deleted or never-created role has no permissions
    policies = [Policy.parse(IDENTITY, f"inline:{n}", doc) for n, doc in role.policies.items()]
    for arn, managed in role.managed_policies.items():
        version = next((v for v in managed.versions if v.is_default), managed.versions[0])
        policies.append(Policy.parse(IDENTITY, arn, version.document))
    return policies


def trust_policy(account_id: str, role_arn: str) -> Policy | None:
    """The role's trust policy (who may assume it), as a resource policy on the role; None if no such role."""
    name = role_arn.rsplit("/", 1)[-1]
    role = next((r for r in iam_backend(account_id).roles.values() if r.name == name), None)
    if role is None or role.arn != role_arn:
        return None
    try:
        document = json.loads(role.assume_role_policy_document or "{}")
    except ValueError:
        return None
    # A trust policy's statements name no Resource: the role itself is the resource.
    return Policy(RESOURCE, "trust policy", document)


def _lambda_function(account_id: str, region: str, arn: str) -> Any:
    from moto.awslambda.utils import get_backend

    name = arn.split(":")[6] if arn.count(":") >= 6 else ""
    functions = get_backend(account_id, region)._lambdas._functions
    entry = functions.get(name)
    return None if entry is None else entry["latest"]


def resource_policies(account_id: str, region: str, arn: str) -> list[Policy]:
    """The resource-based policy that governs `arn`, if its service has one and it is set."""
    service = arn.split(":")[2] if arn.count(":") >= 5 else ""
    try:
        if service == "lambda":
            fn = _lambda_function(account_id, region, arn)
            statements = list(fn.policy.statements) if fn is not None else []
            return [Policy(RESOURCE, "function policy", {"Statement": statements})] if statements else []
        if service == "s3":
            from moto.s3.models import s3_backends

            bucket_name = arn.split(":::", 1)[1].split("/", 1)[0]
            bucket = s3_backends[account_id]["aws"].buckets.get(bucket_name)
            if bucket is not None and bucket.policy:
                return [Policy.parse(RESOURCE, "bucket policy", bucket.policy)]
        if service == "sns":
            from moto.sns.models import sns_backends

            topic = sns_backends[account_id][region].topics.get(arn)
            if topic is not None:
                return [Policy.parse(RESOURCE, "topic policy", topic.policy)]
        if service == "sqs":
            from moto.sqs.models import sqs_backends

            queue = sqs_backends[account_id][region].queues.get(arn.rsplit(":", 1)[-1])
            if queue is not None and queue.policy:
                return [Policy.parse(RESOURCE, "queue policy", queue.policy)]
    except (ValueError, KeyError, AttributeError):
        log.warning("could not read the resource policy of %s", arn, exc_info=True)
    return []


def resource_tags(account_id: str, region: str, arn: str) -> dict[str, str]:
    """The tags `aws:ResourceTag/<key>` reads: for Lambda, the function's (versions and aliases share them)."""
    service = arn.split(":")[2] if arn.count(":") >= 5 else ""
    if service == "lambda" and ":function:" in arn:
        fn = _lambda_function(account_id, region, arn)
        return dict(fn.tags or {}) if fn is not None else {}
    if service == "sns":
        from moto.sns.models import sns_backends

        topic = sns_backends[account_id][region].topics.get(arn)
        return dict(getattr(topic, "_tags", None) or {}) if topic is not None else {}
    return {}


def existing_object_tags(account_id: str, arn: str) -> dict[str, str]:
    """s3:ExistingObjectTag/<key>: the tags of the object an S3 object request names."""
    from moto.s3.models import s3_backends

    if not arn.startswith("arn:aws:s3:::") or "/" not in arn:
        return {}
    bucket, key = arn.removeprefix("arn:aws:s3:::").split("/", 1)
    backend = s3_backends[account_id]["aws"]
    try:
        obj = backend.get_object(bucket, key)
    except Exception:  # noqa: BLE001 - a missing bucket or key simply has no tags
        return {}
    if obj is None:
        return {}
    tags = backend.tagger.list_tags_for_resource(obj.arn).get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags}


def secret_arn(account_id: str, region: str, secret_id: str) -> str:
    """Secrets are authorised by ARN even when the request names them ("Secrets Manager permissions")."""
    if secret_id.startswith("arn:"):
        return secret_id
    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[account_id][region]
    try:
        return str(backend.secrets[secret_id].arn)
    except KeyError:
        return f"arn:aws:secretsmanager:{region}:{account_id}:secret:{secret_id}"
