"""Helpers for tests that talk to a running local sandbox through plain boto3 clients."""

from __future__ import annotations

import functools
import io
import json
import textwrap
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import boto3
import pytest
from botocore.config import Config

from sandbox import Sandbox, metrics
from sandbox.queue_policy import let_aws_services_send

T = TypeVar("T")

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
ROLE_NAME = "sandbox-test-lambda-role"


def client(sb: Any, service: str, retries: bool = True) -> Any:
    return boto3.client(
        service,
        endpoint_url=sb.endpoint_url,
        region_name=sb.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=None if retries else NO_RETRIES,
    )


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, textwrap.dedent(text))
    return buffer.getvalue()


@functools.cache
def zip_unzipping_to(total_bytes: int) -> bytes:
    """A small zip (zeros compress well) whose handler file plus padding unzip to `total_bytes`."""
    handler = b"def handler(event, context):\n    return 'ok'\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("app.py", handler)
        with archive.open("padding.bin", "w", force_zip64=True) as padding:
            left = total_bytes - len(handler)
            while left:
                chunk = min(left, 1024 * 1024)
                padding.write(bytes(chunk))
                left -= chunk
    return buffer.getvalue()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# What the test functions do with their execution role: write logs, forward to queues, send to their
# destinations (the sandbox enforces IAM on calls made with the role's credentials).
ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "sqs:GetQueueUrl",
                "sqs:SendMessage",
                "lambda:InvokeFunction",
                "sns:Publish",
                "events:PutEvents",
            ],
            "Resource": "*",
        }
    ],
}


def trust_policy(service: str) -> str:
    """A role's trust policy letting `service` (lambda, codedeploy) assume it, as the service requires."""
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": f"{service}.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def role_arn(sb: Any) -> str:
    iam = client(sb, "iam")
    try:
        return str(iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        arn = str(
            iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=trust_policy("lambda"))["Role"][
                "Arn"
            ]
        )
        iam.put_role_policy(
            RoleName=ROLE_NAME, PolicyName="test-functions", PolicyDocument=json.dumps(ROLE_POLICY)
        )
        return arn


def allow_invoke(sb: Any, function_arn: str, service: str, source_arn: str) -> None:
    """The function policy statement an event source needs (what SAM adds for an event)."""
    client(sb, "lambda").add_permission(
        FunctionName=function_arn,
        StatementId=unique("source"),
        Action="lambda:InvokeFunction",
        Principal=service,
        SourceArn=source_arn,
    )


def create_function(
    sb: Any, name: str, source: str, handler: str = "app.handler", **extra: Any
) -> dict[str, Any]:
    lam = client(sb, "lambda")
    config: dict[str, Any] = lam.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role_arn(sb),
        Handler=handler,
        Code={"ZipFile": zip_of({"app.py": source})},
        **extra,
    )
    return config


def ledger_shaped_table(sb: Any, prefix: str = "table") -> tuple[Any, str]:
    """A DynamoDB client and a new on-demand table keyed as the ledger is (string `pk` and `sk`)."""
    dynamodb = client(sb, "dynamodb")
    name = unique(prefix)
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb, name


def invoke_json(sb: Any, name: str, payload: Any = None, **extra: Any) -> tuple[dict[str, Any], Any]:
    response = client(sb, "lambda").invoke(
        FunctionName=name, Payload=json.dumps(payload or {}).encode(), **extra
    )
    return response, json.loads(response["Payload"].read() or b"null")


def wait_for(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_lambda_metrics_published(sb: Sandbox, through: float) -> None:
    """Wait until CloudWatch reads every AWS/Lambda datapoint stamped up to sandbox time `through`
    (Lambda publishes a minute's figures a lag after the minute ends: sandbox/metrics.py)."""
    bound = sb.clock.real_seconds(metrics.LAMBDA_PUBLISH_LAG + 60) + 5
    wait_for(
        lambda: metrics.lambda_readable_before(sb.clock.now()) > through,
        bound,
        what=f"Lambda's figures up to {through:.0f} to be published",
    )


def queue(sb: Any, name: str) -> tuple[str, str]:
    sqs = client(sb, "sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, let_aws_services_send(sqs, url)


def drain(sb: Any, url: str, want: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Receive until `want` message bodies (JSON) arrived."""
    sqs = client(sb, "sqs")
    bodies: list[dict[str, Any]] = []

    def enough() -> bool:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        ):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(bodies) >= want

    wait_for(enough, timeout, 0.05, f"{want} messages on {url}")
    return bodies


# A Lambda handler that forwards its event to the SQS queue named in its environment.
FORWARDER = """
import json, os
import boto3

def handler(event, context):
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=os.environ["OUT_QUEUE"])["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"event": event, "version": context.function_version}))
    return "forwarded"
"""


class HttpReceiver:
    """An HTTP server on 127.0.0.1 that records every POST (path, headers, body)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/sns"

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """One sandbox per test module at speed 60 (a sandbox minute per real second)."""
    with Sandbox(speed=60, fault_seed=7) as running:
        yield running
    assert running.lambda_service.worker_pids() == []
