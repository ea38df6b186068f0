"""Building blocks for artifact tests: zips built in the test, target functions, uploads, events."""

from __future__ import annotations

import io
import itertools
import json
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from tests.support.aws_stack import ACCOUNT, REGION, StackUnderTest, moto_client

HANDLER_SOURCE = "def handler(event, context):\n    return {'statusCode': 200, 'build': %r}\n"


def build_zip(files: dict[str, bytes | str], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding `files` (name -> content); the same files always give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as bundle:
        for name, content in files.items():
            # A fixed timestamp: writestr(name) would stamp the current time, so two builds of the
            # same code a second apart would differ in CodeSha256.
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = compression
            bundle.writestr(info, content)
    return buffer.getvalue()


def function_zip(
    build: str, checks: dict[str, Any] | str | None = None, checks_name: str = "rollout.json"
) -> bytes:
    """A deployable package whose code differs per `build`, optionally with a checks file."""
    files: dict[str, bytes | str] = {"app.py": HANDLER_SOURCE % build}
    if checks is not None:
        files[checks_name] = checks if isinstance(checks, str) else json.dumps(checks)
    return build_zip(files)


def symlink_zip(name: str = "app.py", target: str = "/etc/passwd") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (0o120777 << 16) & 0xFFFF0000
        bundle.writestr(info, target)
    return buffer.getvalue()


@dataclass
class Uploaded:
    bucket: str
    key: str
    version_id: str
    size: int
    etag: str


class ArtifactWorld:
    """Target functions and artifact uploads against the moto stack."""

    def __init__(self, stack: StackUnderTest) -> None:
        self.stack = stack
        self.lambda_client = moto_client("lambda")
        self.s3 = moto_client("s3")

    def create_function(self, name: str, tags: dict[str, str] | None = None, managed: bool = True) -> None:
        all_tags = {"rollout:managed": "true"} if managed else {}
        all_tags.update(tags or {})
        self.lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=self.stack.function_role_arn,
            Handler="app.handler",
            Code={"ZipFile": function_zip("initial")},
            Tags=all_tags,
        )

    def create_alarms(self, *names: str) -> None:
        """CloudWatch alarms a function's rollout:alarms tag may name (pre-flight rejects a missing one)."""
        cloudwatch = moto_client("cloudwatch")
        for name in names:
            cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="AWS/Lambda",
                MetricName="Errors",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )

    def upload(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> Uploaded:
        resp = self.s3.put_object(Bucket=self.stack.bucket, Key=key, Body=body, Metadata=metadata or {})
        return Uploaded(self.stack.bucket, key, resp["VersionId"], len(body), resp["ETag"].strip('"'))

    def alias_version(self, function: str, alias: str = "live") -> str | None:
        try:
            return str(self.lambda_client.get_alias(FunctionName=function, Name=alias)["FunctionVersion"])
        except self.lambda_client.exceptions.ResourceNotFoundException:
            return None

    def published_versions(self, function: str) -> list[str]:
        versions = self.lambda_client.list_versions_by_function(FunctionName=function)["Versions"]
        return [v["Version"] for v in versions if v["Version"] != "$LATEST"]


_SEQUENCE = itertools.count(0x62E99A88DC4074)


def next_sequencer() -> str:
    """S3 sequencers grow with each event of a bucket; tests send events in upload order by default."""
    return f"{next(_SEQUENCE):018X}"


def eventbridge_event(
    uploaded: Uploaded,
    *,
    key: str | None = None,
    at: datetime | None = None,
    sequencer: str | None = None,
) -> dict[str, Any]:
    """An S3 `Object Created` event as EventBridge delivers it (plain key, `version-id`, `etag`)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:s3:::{uploaded.bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": uploaded.bucket},
            "object": {
                "key": uploaded.key if key is None else key,
                "size": uploaded.size,
                "etag": uploaded.etag,
                "version-id": uploaded.version_id,
                "sequencer": sequencer or next_sequencer(),
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "source-ip-address": "203.0.113.15",
            "reason": "PutObject",
        },
    }


def s3_record_event(uploaded: Uploaded) -> dict[str, Any]:
    """A classic S3 notification: the key URL-encoded with `+` for spaces."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.15"},
                "responseElements": {
                    "x-amz-request-id": "C3D13FE58DE4C810",
                    "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "artifact-uploads",
                    "bucket": {
                        "name": uploaded.bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                        "arn": f"arn:aws:s3:::{uploaded.bucket}",
                    },
                    "object": {
                        "key": quote_plus(uploaded.key, safe="/"),
                        "size": uploaded.size,
                        "eTag": uploaded.etag,
                        "versionId": uploaded.version_id,
                        "sequencer": next_sequencer(),
                    },
                },
            }
        ]
    }
