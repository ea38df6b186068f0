"""The control-plane stack provisioned into a running local sandbox, driven only through AWS APIs.

`RolloutWorld` starts a sandbox, provisions template.yaml with Slack pointed at a local receiver
(the webhook URL kept in Secrets Manager), subscribes an SQS queue to the notification topic, and
offers what an end-to-end test needs: target functions built from examples/hello, uploads with
S3 PutObject, ledger reads from DynamoDB, notifications from SNS and Slack, and waits on conditions
with deadlines.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.dynamodb.conditions import Key
from botocore.config import Config

from examples.hello.build import CHECKS, artifact_bytes
from rollout.ledger import Release
from rollout.states import is_terminal
from sandbox import Sandbox
from sandbox.event_delivery import DeliveryTiming
from sandbox.provision import ProvisionedStack, provision_stack
from sandbox.queue_policy import let_aws_services_send
from tests.support.slack_receiver import SlackReceiver, slack_receiver

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ALIAS = "live"
# The per-release alarms judge a sandbox minute only once it has `min_invocations` calls to the new
# version; a small sample keeps the traffic a test must send low. Most of the suite's releases see no
# traffic through the alias, as a quiet function's do: their canary is inconclusive and passes unjudged
# only because `strict` is off, as such a function's owner sets it (by default it fails them:
# test_releases' test_a_canary_without_traffic_is_inconclusive_and_rolls_back_by_default).
E2E_CHECKS: dict[str, Any] = {
    **CHECKS,
    "canary": {**CHECKS["canary"], "min_invocations": 2, "strict": False},
}
# The test process talks to the sandbox a lot at once (traffic, polls): more connections, fewer retries
# than a throttled control plane would want, so a failure shows up instead of hiding behind backoff.
E2E_EVENT_DUPLICATE_RATE = 0.05
CLIENT_CONFIG = Config(max_pool_connections=50, retries={"mode": "standard", "total_max_attempts": 4})
TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def seconds_between(start: str, end: str) -> float:
    return (parse_time(end) - parse_time(start)).total_seconds()


@dataclass(frozen=True)
class Upload:
    function: str
    bucket: str
    key: str
    version_id: str
    uploaded_at: float  # time.time() just before PutObject
    code_sha256: str  # what Lambda reports as CodeSha256 for this zip

    @staticmethod
    def sha_of(data: bytes) -> str:
        return base64.b64encode(hashlib.sha256(data).digest()).decode()


@dataclass(frozen=True)
class Notice:
    """One SNS notification as a subscriber receives it."""

    kind: str
    subject: str
    message: dict[str, Any]
    attributes: dict[str, str]

    @property
    def text(self) -> str:
        return self.subject + "\n" + json.dumps(self.message, default=str)


def flatten_slack(payload: dict[str, Any]) -> str:
    """Every piece of text in a Slack webhook payload, for asserting what a reader sees."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("text", "fallback") and isinstance(value, str):
                    parts.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(payload)
    return "\n".join(parts)


class RolloutWorld:
    def __init__(self, sb: Sandbox, stack: ProvisionedStack, slack: SlackReceiver, stack_name: str) -> None:
        self.sb = sb
        self.stack = stack
        self.stack_name = stack_name
        self.slack = slack
        self.outputs = dict(stack.outputs)
        self.bucket = self.outputs["ArtifactBucketName"]
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.table = boto3.resource(
            "dynamodb",
            endpoint_url=sb.endpoint_url,
            region_name=sb.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).Table(self.outputs["LedgerTableName"])
        self._notices: list[Notice] = []
        self._notices_lock = threading.Lock()
        self.queue_url = self._subscribe_queue()

    # --- clients ---------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(
                    service,
                    endpoint_url=self.sb.endpoint_url,
                    region_name=self.sb.region,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                    config=CLIENT_CONFIG,
                )
            return self._clients[service]

    def fresh_client(self, service: str) -> Any:
        """A client of its own (boto3 clients are thread-safe, but a generator per thread keeps pools apart)."""
        return boto3.client(
            service,
            endpoint_url=self.sb.endpoint_url,
            region_name=self.sb.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=CLIENT_CONFIG,
        )

    # --- target functions -------------------------------------------------------------------
    def create_target(
        self,
        prefix: str,
        config: str = "Canary10Percent5Minutes",
        managed: bool = True,
        alarms: list[str] | None = None,
    ) -> str:
        """A new function built from examples/hello (healthy v0), tagged for Rollout; returns its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        iam = self.client("iam")
        role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=TRUST_POLICY)["Role"]["Arn"]
        tags = {"rollout:managed": "true", "rollout:alias": ALIAS, "rollout:deployment-config": config}
        if alarms:
            tags["rollout:alarms"] = " ".join(alarms)
        lam = self.client("lambda")
        lam.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": artifact_bytes("healthy", "v0")},
            Timeout=10,
            MemorySize=128,
            Tags=tags if managed else {},
        )
        lam.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        return name

    def alias(self, function: str) -> dict[str, Any] | None:
        lam = self.client("lambda")
        try:
            return dict(lam.get_alias(FunctionName=function, Name=ALIAS))
        except lam.exceptions.ResourceNotFoundException:
            return None

    def alias_version(self, function: str) -> str:
        alias = self.alias(function)
        return str(alias["FunctionVersion"]) if alias else ""

    def alias_weights(self, function: str) -> dict[str, float]:
        alias = self.alias(function) or {}
        return dict((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})

    def version_code(self, function: str, version: str) -> str:
        return str(
            self.client("lambda").get_function_configuration(FunctionName=function, Qualifier=version)[
                "CodeSha256"
            ]
        )

    def published_versions(self, function: str) -> list[str]:
        lam = self.client("lambda")
        versions: list[str] = []
        for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=function):
            versions.extend(v["Version"] for v in page["Versions"] if v["Version"] != "$LATEST")
        return versions

    # --- uploads ----------------------------------------------------------------------------
    def upload(
        self,
        function: str,
        data: bytes,
        key: str | None = None,
        commit: str = "",
        message: str = "",
        author: str = "e2e",
    ) -> Upload:
        key = (
            key
            if key is not None
            else f"{function}/{hashlib.sha256(data).hexdigest()[:12]}-{uuid.uuid4().hex[:6]}.zip"
        )
        metadata = {k: v for k, v in (("commit", commit), ("message", message), ("author", author)) if v}
        started = time.time()
        put = self.client("s3").put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=metadata)
        return Upload(
            function, self.bucket, key, str(put.get("VersionId") or ""), started, Upload.sha_of(data)
        )

    def release_build(
        self, function: str, variant: str, label: str, checks: dict[str, Any] | None = None, **options: Any
    ) -> Upload:
        data = artifact_bytes(variant, label, checks=E2E_CHECKS if checks is None else checks, **options)
        return self.upload(function, data, commit=f"{label}abc1234"[:7], message=f"{label}: {variant}")

    # --- the ledger -------------------------------------------------------------------------
    def releases(self, function: str) -> list[Release]:
        """The function's releases, oldest first (release ids sort by arrival)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"FN#{function}") & Key("sk").begins_with("REL#"),
            "ConsistentRead": True,
        }
        while True:
            resp = self.table.query(**kwargs)
            items.extend(resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return [Release.from_item(item) for item in items]

    def release_of(self, upload: Upload) -> Release | None:
        for release in self.releases(upload.function):
            if release.key == upload.key and (
                not upload.version_id or release.object_version == upload.version_id
            ):
                return release
        return None

    def release_of_id(self, function: str, release_id: str) -> Release:
        (release,) = [r for r in self.releases(function) if r.release_id == release_id]
        return release

    def lock(self, function: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": f"FN#{function}", "sk": "LOCK"}, ConsistentRead=True).get(
            "Item"
        )
        return dict(item) if item else None

    def wait_unlocked(self, function: str, timeout: float = 30.0) -> None:
        """The function's lock gone: a deployment's ending records the release first, then frees the lock
        and starts the queue (release_queue), so a release seen terminal may hold it a moment longer."""
        wait_for(lambda: self.lock(function) is None, timeout, f"the lock of {function} to be freed")

    def wait_release(
        self, upload: Upload, timeout: float = 90.0, state: str | None = None, interval: float = 0.2
    ) -> Release:
        """The upload's release once terminal (or once in `state`), read every `interval` real seconds."""

        def done() -> Release | None:
            release = self.release_of(upload)
            if release is None:
                return None
            if state is not None:
                return release if str(release.state) == state else None
            return release if is_terminal(release.state) else None

        want = state or "a terminal state"
        return wait_for(done, timeout, f"the release of {upload.key} to reach {want}", interval)

    def wait_terminal(self, function: str, count: int, timeout: float = 120.0) -> list[Release]:
        """The function's releases once `count` exist and all are terminal."""

        def done() -> list[Release] | None:
            found = self.releases(function)
            if len(found) >= count and all(r.is_terminal for r in found):
                return found
            return None

        return wait_for(done, timeout, f"{count} terminal releases of {function}")

    # --- notifications ----------------------------------------------------------------------
    def _subscribe_queue(self) -> str:
        sqs = self.client("sqs")
        url = str(sqs.create_queue(QueueName=f"{self.stack_name}-e2e-notifications")["QueueUrl"])
        arn = let_aws_services_send(sqs, url)
        self.client("sns").subscribe(
            TopicArn=self.outputs["NotificationTopicArn"], Protocol="sqs", Endpoint=arn
        )
        return url

    def _drain(self) -> None:
        sqs = self.client("sqs")
        with self._notices_lock:
            while True:
                messages = sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages:
                    return
                for raw in messages:
                    envelope = json.loads(raw["Body"])
                    message = json.loads(envelope["Message"])
                    attributes = {
                        name: str(value.get("Value"))
                        for name, value in (envelope.get("MessageAttributes") or {}).items()
                    }
                    self._notices.append(
                        Notice(
                            str(message.get("kind")), str(envelope.get("Subject") or ""), message, attributes
                        )
                    )
                    sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=raw["ReceiptHandle"])

    def notices(self, function: str) -> list[Notice]:
        self._drain()
        with self._notices_lock:
            return [n for n in self._notices if n.message.get("function") == function]

    def wait_notices(self, function: str, kinds: list[str], timeout: float = 30.0) -> list[Notice]:
        """The function's notifications once every kind in `kinds` arrived."""

        def arrived() -> list[Notice] | None:
            found = self.notices(function)
            return found if set(kinds) <= {n.kind for n in found} else None

        return wait_for(arrived, timeout, f"notifications {kinds} for {function}")

    def slack_texts(self, function: str) -> list[str]:
        return [text for text in map(flatten_slack, self.slack.payloads()) if function in text]

    def wait_slack(self, function: str, words: list[str], timeout: float = 30.0) -> str:
        """The first Slack post about `function` containing every word in `words`."""

        def found() -> str | None:
            for text in self.slack_texts(function):
                if all(word in text for word in words):
                    return text
            return None

        return wait_for(found, timeout, f"a Slack post about {function} with {words}")

    # --- the operations topic and the undelivered-events queue --------------------------------
    def subscribe_operations(self) -> str:
        """An SQS queue subscribed to the operations topic (CloudWatch's alarm messages); its URL."""
        sqs = self.client("sqs")
        url = str(sqs.create_queue(QueueName=f"{self.stack_name}-e2e-operations")["QueueUrl"])
        arn = let_aws_services_send(sqs, url)
        self.client("sns").subscribe(
            TopicArn=self.outputs["OperationsTopicArn"], Protocol="sqs", Endpoint=arn
        )
        return url

    def operations_message(self, inbox: str, state: str) -> dict[str, Any] | None:
        """The first alarm message on the operations topic whose new state is `state` (consumed)."""
        sqs = self.client("sqs")
        for raw in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=inbox, ReceiptHandle=raw["ReceiptHandle"])
            message = json.loads(json.loads(raw["Body"])["Message"])
            if message.get("NewStateValue") == state:
                return dict(message)
        return None

    # --- CodeDeploy -------------------------------------------------------------------------
    def deployments(self, function: str) -> list[dict[str, Any]]:
        """The function's deployment group's deployments, as BatchGetDeployments describes them."""
        codedeploy = self.client("codedeploy")
        ids: list[str] = []
        kwargs = {
            "applicationName": self.outputs["CodeDeployApplicationName"],
            "deploymentGroupName": function,
        }
        while True:
            try:
                resp = codedeploy.list_deployments(**kwargs)
            except codedeploy.exceptions.DeploymentGroupDoesNotExistException:
                return []  # the deployer creates the group with the function's first deployment
            ids.extend(resp.get("deployments", []))
            if not resp.get("nextToken"):
                break
            kwargs["nextToken"] = resp["nextToken"]
        infos: list[dict[str, Any]] = []
        for start in range(0, len(ids), 25):
            infos.extend(
                codedeploy.batch_get_deployments(deploymentIds=ids[start : start + 25])["deploymentsInfo"]
            )
        return infos

    def reconcile(self) -> dict[str, Any]:
        resp = self.client("lambda").invoke(FunctionName=self.outputs["ReconcilerName"], Payload=b"{}")
        payload = json.loads(resp["Payload"].read() or b"null")
        assert "FunctionError" not in resp, payload
        return dict(payload) if isinstance(payload, dict) else {"result": payload}


@contextmanager
def rollout_world(
    stack_name: str,
    speed: float,
    fault_seed: int = 11,
    parameters: dict[str, str] | None = None,
    gsi_lag: float | None = None,
    eventual_read_lag: float | None = None,
    slack_signing_secret: str = "",
    slack_approvers: str = "",
) -> Iterator[RolloutWorld]:
    """A sandbox at `speed` with the stack provisioned and Slack wired to a local receiver.

    `gsi_lag` None is the sandbox's AWS-like index lag; the hooks read their release by key, so a
    lagging by-deployment index cannot make them skip checks (tests/e2e/test_index_lag.py).
    `eventual_read_lag` None is its AWS-like lag of table reads made without ConsistentRead.
    """
    # S3 and CodeDeploy events arrive late and, at a low seeded rate, twice (as AWS allows); IAM, GSI lag,
    # eventually consistent reads and the rest of the sandbox's rules are on by default.
    timing = DeliveryTiming(duplicate_rate=E2E_EVENT_DUPLICATE_RATE)
    with (
        slack_receiver() as slack,
        Sandbox(
            speed=speed,
            fault_seed=fault_seed,
            event_timing=timing,
            gsi_lag=gsi_lag,
            eventual_read_lag=eventual_read_lag,
        ) as sb,
    ):
        secrets = boto3.client(
            "secretsmanager",
            endpoint_url=sb.endpoint_url,
            region_name=sb.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        secret_arn = secrets.create_secret(
            Name=f"{stack_name}/slack-webhook", SecretString=json.dumps({"webhook_url": slack.url})
        )["ARN"]
        if slack_signing_secret:
            # The buttons' endpoint: a signing secret and the Slack users allowed to use it.
            parameters = {
                "SlackSigningSecretArn": secrets.create_secret(
                    Name=f"{stack_name}/slack-signing",
                    SecretString=json.dumps({"signing_secret": slack_signing_secret}),
                )["ARN"],
                "SlackApprovers": slack_approvers,
                **(parameters or {}),
            }
        stack = provision_stack(
            sb.endpoint_url,
            TEMPLATE,
            stack_name,
            {"SlackWebhookSecretArn": secret_arn, "SlackWebhookOrigin": slack.origin, **(parameters or {})},
            region=sb.region,
        )
        yield RolloutWorld(sb, stack, slack, stack_name)
