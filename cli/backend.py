"""Every AWS call the `rollout` command makes, in one small adapter.

The command talks to AWS or to the local sandbox alike: the only switch is AWS_ENDPOINT_URL (which boto3
honours by itself), set from `--endpoint`. Errors come out as CliError with a meaningful exit code.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from cli.errors import CliError, ExitCode
from rollout import aws
from rollout.ledger import Ledger

# An operator at a terminal wants a clear error quickly rather than the control plane's ten patient
# attempts; throttling still gets a few retries with backoff.
CLI_CONFIG = aws.RETRY_CONFIG.merge(
    Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=30)
)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SANDBOX_REGION = "us-east-1"

MANAGED_TAG = "rollout:managed"
ALIAS_TAG = "rollout:alias"
CONFIG_TAG = "rollout:deployment-config"
ALARMS_TAG = "rollout:alarms"

ACCESS_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
}


def configure_environment(endpoint: str | None, region: str | None) -> None:
    """Apply --endpoint/--region the way every boto3 client (the ledger's too) will see them.

    A local endpoint needs no real account: without credentials or a region the sandbox's defaults apply.
    """
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    if region:
        os.environ["AWS_REGION"] = region
        os.environ["AWS_DEFAULT_REGION"] = region
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL", "")
    if endpoint and any(host in endpoint for host in LOCAL_HOSTS):
        session = boto3.session.Session()
        if session.region_name is None:
            os.environ["AWS_DEFAULT_REGION"] = SANDBOX_REGION
        if session.get_credentials() is None:
            os.environ["AWS_ACCESS_KEY_ID"] = "sandbox"
            os.environ["AWS_SECRET_ACCESS_KEY"] = "sandbox"  # noqa: S105 - the sandbox checks no signature
    aws.reset_clients()


def endpoint_description() -> str:
    return os.environ.get("AWS_ENDPOINT_URL") or "AWS"


@contextlib.contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn what botocore raises into a CliError that says what failed and what to do."""
    try:
        yield
    except CliError:
        raise
    except ClientError as exc:
        code = aws.error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        if code in ACCESS_CODES:
            raise CliError(
                f"{action}: access denied ({code}): {message}",
                ExitCode.AWS_ERROR,
                hint="check the credentials in use (aws sts get-caller-identity) and their IAM permissions",
            ) from exc
        if code in {"Throttling", "ThrottlingException", "TooManyRequestsException", "ThrottledException"}:
            raise CliError(
                f"{action}: AWS is throttling requests ({code})", ExitCode.AWS_ERROR, hint="try again shortly"
            ) from exc
        raise CliError(f"{action}: {code}: {message}", ExitCode.AWS_ERROR) from exc
    except NoCredentialsError as exc:
        raise CliError(
            f"{action}: no AWS credentials found",
            ExitCode.AWS_ERROR,
            hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or point --endpoint at the sandbox",
        ) from exc
    except NoRegionError as exc:
        raise CliError(
            f"{action}: no AWS region configured", ExitCode.USAGE, hint="set AWS_REGION or pass --region"
        ) from exc
    except EndpointConnectionError as exc:
        raise CliError(
            f"{action}: cannot reach {exc.kwargs.get('endpoint_url') or endpoint_description()}",
            ExitCode.AWS_ERROR,
            hint="is the sandbox running? start it with `rollout sandbox up`",
        ) from exc
    except BotoCoreError as exc:
        raise CliError(f"{action}: {exc}", ExitCode.AWS_ERROR) from exc


@dataclass(frozen=True)
class StackOutputs:
    stack_name: str
    outputs: dict[str, str] = field(default_factory=dict)

    def require(self, name: str) -> str:
        value = self.outputs.get(name)
        if not value:
            raise CliError(
                f"stack {self.stack_name} has no output {name}",
                ExitCode.NOT_FOUND,
                hint="is this a Rollout stack? redeploy it from template.yaml",
            )
        return value

    @property
    def bucket(self) -> str:
        return self.require("ArtifactBucketName")

    @property
    def ledger_table(self) -> str:
        return self.require("LedgerTableName")

    @property
    def application(self) -> str:
        return self.require("CodeDeployApplicationName")

    @property
    def topic_arn(self) -> str:
        return self.require("NotificationTopicArn")


class Backend:
    """The AWS side of every command: stack outputs, Lambda, S3, CodeDeploy, CloudWatch, the ledger."""

    def __init__(self, stack_name: str, outputs: dict[str, str] | None = None) -> None:
        self.stack_name = stack_name
        # Outputs already known (the demo provisioned the stack itself) spare the DescribeStacks call.
        if outputs is not None:
            self.__dict__["stack"] = StackOutputs(stack_name, dict(outputs))

    @functools.cache  # noqa: B019 - one Backend per command run; clients live as long as it does
    def client(self, service: str) -> Any:
        with aws_errors(f"create a {service} client"):
            return boto3.client(service, config=CLI_CONFIG)

    def caller(self) -> str:
        """The caller's AWS identity (an ARN), recorded as who asked."""
        with aws_errors("read the caller's identity (sts get-caller-identity)"):
            return str(self.client("sts").get_caller_identity().get("Arn") or "")

    # --- the stack ---------------------------------------------------------------------------
    @functools.cached_property
    def stack(self) -> StackOutputs:
        with aws_errors(f"read stack {self.stack_name}"):
            try:
                stacks = self.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"]
            except ClientError as exc:
                if aws.error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                    raise CliError(
                        f"stack {self.stack_name} not found on {endpoint_description()}",
                        ExitCode.NOT_FOUND,
                        hint="pass --stack NAME (or set ROLLOUT_STACK); deploy it with `sam deploy`, "
                        "or start the sandbox with `rollout sandbox up`",
                    ) from exc
                raise
        if not stacks:
            raise CliError(f"stack {self.stack_name} not found", ExitCode.NOT_FOUND)
        outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", [])}
        return StackOutputs(self.stack_name, outputs)

    @functools.cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.stack.ledger_table)

    # --- Lambda ------------------------------------------------------------------------------
    def get_function(self, name: str) -> dict[str, Any]:
        """GetFunction's answer (Configuration, Tags); NOT_FOUND for an unknown function."""
        with aws_errors(f"read function {name}"):
            try:
                return dict(self.client("lambda").get_function(FunctionName=name))
            except ClientError as exc:
                if aws.error_code(exc) == "ResourceNotFoundException":
                    raise CliError(
                        f"function {name} not found in {self.region}",
                        ExitCode.NOT_FOUND,
                        hint="check the name and the region (AWS_REGION / --region)",
                    ) from exc
                raise

    def function_tags(self, arn: str) -> dict[str, str]:
        with aws_errors("read function tags"):
            return dict(self.client("lambda").list_tags(Resource=arn).get("Tags", {}))

    def tag_function(self, arn: str, tags: dict[str, str], remove: list[str]) -> None:
        with aws_errors("tag the function"):
            self.client("lambda").tag_resource(Resource=arn, Tags=tags)
            if remove:
                self.client("lambda").untag_resource(Resource=arn, TagKeys=remove)

    def get_alias(self, function: str, alias: str) -> dict[str, Any] | None:
        with aws_errors(f"read alias {function}:{alias}"):
            try:
                return dict(self.client("lambda").get_alias(FunctionName=function, Name=alias))
            except ClientError as exc:
                if aws.error_code(exc) == "ResourceNotFoundException":
                    return None
                raise

    def managed_functions(self) -> list[str]:
        """Names of the functions tagged rollout:managed=true."""
        with aws_errors("list managed functions"):
            try:
                return self._managed_by_tagging_api()
            except ClientError as exc:
                if aws.error_code(exc) in ACCESS_CODES:
                    raise
            except BotoCoreError:
                pass
            # The tagging API is missing (some emulators) or refused: ask Lambda function by function.
            names: list[str] = []
            lam = self.client("lambda")
            for page in lam.get_paginator("list_functions").paginate():
                for fn in page.get("Functions", []):
                    tags = lam.list_tags(Resource=fn["FunctionArn"]).get("Tags", {})
                    if tags.get(MANAGED_TAG) == "true":
                        names.append(fn["FunctionName"])
            return sorted(names)

    def _managed_by_tagging_api(self) -> list[str]:
        names = []
        paginator = self.client("resourcegroupstaggingapi").get_paginator("get_resources")
        for page in paginator.paginate(
            TagFilters=[{"Key": MANAGED_TAG, "Values": ["true"]}], ResourceTypeFilters=["lambda:function"]
        ):
            for mapping in page.get("ResourceTagMappingList", []):
                arn = mapping["ResourceARN"]
                # arn:aws:lambda:region:account:function:name[:qualifier]
                parts = arn.split(":")
                if len(parts) >= 7:
                    names.append(parts[6])
        return sorted(set(names))

    @property
    def region(self) -> str:
        return str(self.client("lambda").meta.region_name)

    # --- S3 ----------------------------------------------------------------------------------
    def upload(self, bucket: str, key: str, body: bytes, metadata: dict[str, str]) -> dict[str, Any]:
        with aws_errors(f"upload s3://{bucket}/{key}"):
            try:
                return dict(
                    self.client("s3").put_object(
                        Bucket=bucket, Key=key, Body=body, Metadata=metadata, ContentType="application/zip"
                    )
                )
            except ClientError as exc:
                if aws.error_code(exc) == "NoSuchBucket":
                    raise CliError(f"artifact bucket {bucket} does not exist", ExitCode.NOT_FOUND) from exc
                raise

    # --- CodeDeploy --------------------------------------------------------------------------
    def get_deployment(self, deployment_id: str) -> dict[str, Any]:
        with aws_errors(f"read deployment {deployment_id}"):
            try:
                return dict(
                    self.client("codedeploy").get_deployment(deploymentId=deployment_id)["deploymentInfo"]
                )
            except ClientError as exc:
                code = aws.error_code(exc)
                if code == "DeploymentDoesNotExistException":
                    raise CliError(f"deployment {deployment_id} not found", ExitCode.NOT_FOUND) from exc
                if code == "InvalidDeploymentIdException":
                    raise CliError(
                        f"{deployment_id!r} is not a deployment id",
                        ExitCode.USAGE,
                        hint="deployment ids look like d-ABCDEF123 (see `rollout status`)",
                    ) from exc
                raise

    def lambda_targets(self, deployment_id: str) -> list[dict[str, Any]]:
        """The deployment's Lambda targets (lifecycle events, function info); [] before they exist."""
        cd = self.client("codedeploy")
        with aws_errors(f"read targets of {deployment_id}"):
            try:
                ids = cd.list_deployment_targets(deploymentId=deployment_id).get("targetIds", [])
                targets = []
                for target_id in ids:
                    target = cd.get_deployment_target(deploymentId=deployment_id, targetId=target_id)
                    lambda_target = target.get("deploymentTarget", {}).get("lambdaTarget")
                    if lambda_target:
                        targets.append(dict(lambda_target))
                return targets
            except ClientError as exc:
                if aws.error_code(exc) in {
                    "DeploymentNotStartedException",
                    "DeploymentTargetDoesNotExistException",
                }:
                    return []
                raise

    def stop_deployment(self, deployment_id: str) -> dict[str, Any]:
        with aws_errors(f"stop deployment {deployment_id}"):
            return dict(
                self.client("codedeploy").stop_deployment(
                    deploymentId=deployment_id, autoRollbackEnabled=True
                )
            )

    def deployment_config_exists(self, name: str) -> bool | None:
        """True/False when CodeDeploy can say; None when it cannot be asked (permissions, emulators)."""
        try:
            self.client("codedeploy").get_deployment_config(deploymentConfigName=name)
            return True
        except ClientError as exc:
            if aws.error_code(exc) == "DeploymentConfigDoesNotExistException":
                return False
            return None
        except BotoCoreError:
            return None

    # --- CloudWatch --------------------------------------------------------------------------
    def missing_alarms(self, names: list[str]) -> list[str]:
        if not names:
            return []
        with aws_errors("read alarms"):
            found: set[str] = set()
            paginator = self.client("cloudwatch").get_paginator("describe_alarms")
            for page in paginator.paginate(AlarmNames=names):
                found.update(a["AlarmName"] for a in page.get("MetricAlarms", []))
                found.update(a["AlarmName"] for a in page.get("CompositeAlarms", []))
            return [n for n in names if n not in found]

    # --- read-only views for the dashboard ----------------------------------------------------
    @functools.cache  # noqa: B019 - a config never changes once created; one Backend per run
    def get_deployment_config(self, name: str) -> dict[str, Any] | None:
        """GetDeploymentConfig's deploymentConfigInfo (its trafficRoutingConfig), None when unknown."""
        with aws_errors(f"read deployment config {name}"):
            try:
                answer = self.client("codedeploy").get_deployment_config(deploymentConfigName=name)
            except ClientError as exc:
                if aws.error_code(exc) == "DeploymentConfigDoesNotExistException":
                    return None
                raise
            return dict(answer.get("deploymentConfigInfo") or {})

    def metric_data(
        self, queries: list[dict[str, Any]], start: datetime, end: datetime
    ) -> dict[str, list[tuple[datetime, float]]]:
        """GetMetricData, every page: each query id's (timestamp, value) points, oldest first."""
        series: dict[str, list[tuple[datetime, float]]] = {q["Id"]: [] for q in queries}
        kwargs: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        with aws_errors("read CloudWatch metrics"):
            while True:
                answer = self.client("cloudwatch").get_metric_data(**kwargs)
                for result in answer.get("MetricDataResults", []):
                    points = zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                    series.setdefault(result["Id"], []).extend((t, float(v)) for t, v in points)
                if not answer.get("NextToken"):
                    break
                kwargs["NextToken"] = answer["NextToken"]
        return {key: sorted(points) for key, points in series.items()}
