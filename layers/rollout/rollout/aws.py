"""The one place boto3 clients are made, with the one retry configuration the project uses.

The only local switch is AWS_ENDPOINT_URL, which boto3 honours by itself: this module never
knows whether it talks to AWS or to the sandbox.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import boto3
from botocore.config import Config

# Standard mode retries throttling (ThrottlingException, TooManyRequestsException, "Rate exceeded") and
# transient errors, each pause a random share of 2^attempt seconds, at most 20 s. Ten attempts in all ride
# out Lambda's and CodeDeploy's control-plane rate limits when many functions release at once (a burst of
# fifty: docs/BENCHMARKS.md). `total_max_attempts`: in a Config, botocore reads `max_attempts` as retries.
RETRY_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 10},
    connect_timeout=5,
    read_timeout=70,
)


# Check invocations must not be retried: a retry would run the check (and its side effects) twice,
# and a check has its own time limit, so the read may wait as long as the longest check allows.
# `total_max_attempts`, not `max_attempts`: botocore reads the latter as retries (one attempt more).
# The one error that is retried, a throttle (the function never ran), is retried by check_runner
# within the hook's deadline.
CHECK_INVOKE_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=905
)

# A hand-over someone waits on (the Slack endpoint must acknowledge within three seconds): one attempt,
# short timeouts. A refusal is told to the person at once instead of being retried past their wait.
HANDOVER_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1, read_timeout=1.5
)

# A create that takes no client token (CodeDeploy's CreateDeployment): botocore would resend it as is after
# an error that may have followed the create, making a second one if the first has already ended. One
# attempt; the caller looks for what the attempt created before it sends another (`starter`).
SINGLE_ATTEMPT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=70
)

_CONFIGS = {
    "default": RETRY_CONFIG,
    "check-invoke": CHECK_INVOKE_CONFIG,
    "handover": HANDOVER_CONFIG,
    "single-attempt": SINGLE_ATTEMPT_CONFIG,
}


@functools.cache
def _cached_client(service: str, purpose: str = "default") -> Any:
    return boto3.client(service, config=_CONFIGS[purpose])


def client(service: str) -> Any:
    """A client for `service`, made once per process; Lambda reuses it across warm invocations."""
    return _cached_client(service)


def check_invoke_client() -> Any:
    """A Lambda client that never retries an invocation (for validation checks)."""
    return _cached_client("lambda", "check-invoke")


def single_attempt_client(service: str) -> Any:
    """A client for `service` that sends each request once (for creates that take no client token)."""
    return _cached_client(service, "single-attempt")


def handover_client() -> Any:
    """A Lambda client for asynchronous hand-overs someone waits on: one attempt, short timeouts."""
    return _cached_client("lambda", "handover")


@functools.cache
def table(name: str) -> Any:
    """A cached DynamoDB Table resource."""
    return boto3.resource("dynamodb", config=RETRY_CONFIG).Table(name)


def idempotency_store(table_name: str) -> Any:
    """Powertools' DynamoDB persistence layer for idempotency records, on the project's client."""
    # Imported here: only the two idempotent handlers pay for it at cold start.
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client("dynamodb"))


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


def server_time(response: dict[str, Any]) -> datetime | None:
    """The service's clock when it answered (the Date header, RFC 7231); None when it carries none.

    Ages of what a service stamped are measured on that service's clock, never the local one (the
    local sandbox runs its services faster than real time).
    """
    stamp = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        clock = parsedate_to_datetime(stamp) if stamp else None
    except (TypeError, ValueError):
        return None
    if clock is not None and clock.tzinfo is None:
        # parsedate_to_datetime answers a naive datetime for the zone "-0000" (UTC, per RFC 5322):
        # "if the input date has a timezone of -0000, the datetime will be a naive datetime"
        # (https://docs.python.org/3/library/email.utils.html#email.utils.parsedate_to_datetime).
        clock = clock.replace(tzinfo=UTC)
    return clock
