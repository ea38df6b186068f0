"""The one place boto3 clients are made, with the one retry configuration the project uses.

The only local switch is AWS_ENDPOINT_URL, which boto3 honours by itself: this module never
knows whether it talks to AWS or to the sandbox.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

# Standard mode retries throttling and transient errors with exponential backoff and jitter.
# Ten attempts ride out CodeDeploy's "Rate exceeded" bursts when many groups are touched at once.
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},
    connect_timeout=5,
    read_timeout=70,
)


@functools.cache
def _cached_client(service: str) -> Any:
    return boto3.client(service, config=RETRY_CONFIG)


def client(service: str) -> Any:
    """A client for `service`, made once per process; Lambda reuses it across warm invocations."""
    return _cached_client(service)


@functools.cache
def table(name: str) -> Any:
    """A cached DynamoDB Table resource."""
    return boto3.resource("dynamodb", config=RETRY_CONFIG).Table(name)


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints and credentials between cases)."""
    _cached_client.cache_clear()
    table.cache_clear()


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, or '' for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
