"""Provisioning template.yaml into the local sandbox: the stack exists and its functions run."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.config import Config

from sandbox import Sandbox
from sandbox.provision import ProvisionedStack, provision_stack
from tests.support.provision_checks import (
    SLACK_SECRET_NAME,
    Clients,
    assert_every_resource_exists,
    assert_rollout_stack_wired,
    assert_uploads_reach_eventbridge,
    clients_for,
)

ROOT = Path(__file__).resolve().parents[2]
STACK = "rollout-sb"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(speed=60) as sb:
        yield sb


@pytest.fixture(scope="module")
def provisioned(sandbox: Sandbox) -> tuple[ProvisionedStack, str, float]:
    clients = clients_for(sandbox.endpoint_url, sandbox.region)
    secret_arn = clients("secretsmanager").create_secret(
        Name=SLACK_SECRET_NAME, SecretString="http://127.0.0.1:9/unused"
    )["ARN"]
    started = time.perf_counter()
    stack = provision_stack(
        sandbox.endpoint_url,
        ROOT / "template.yaml",
        STACK,
        {"SlackWebhookSecretArn": secret_arn},
        region=sandbox.region,
    )
    return stack, secret_arn, time.perf_counter() - started


@pytest.fixture
def clients(sandbox: Sandbox) -> Clients:
    return clients_for(sandbox.endpoint_url, sandbox.region)


def test_every_resource_exists_and_is_wired(
    provisioned: tuple[ProvisionedStack, str, float], clients: Clients
) -> None:
    stack, secret_arn, elapsed = provisioned
    assert stack.account_id == "123456789012"
    assert_every_resource_exists(clients, stack)
    assert_rollout_stack_wired(clients, stack, slack_secret_arn=secret_arn)
    described = clients("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    assert {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]} == stack.outputs
    print(f"\nprovisioned {len(stack.resources)} resources into the sandbox in {elapsed:.2f}s")


def test_the_provisioned_functions_run_from_their_zips_and_the_layer(
    provisioned: tuple[ProvisionedStack, str, float], sandbox: Sandbox
) -> None:
    stack, _, _ = provisioned
    # The reconciler reads the ledger table named by its environment: an empty ledger needs no repairs.
    # Its reserved concurrency is 1 and its schedule runs it every sandbox minute (one real second at
    # speed 60), so a hand-made invoke can meet that run and be throttled (429), as on AWS: retry the
    # way an operator's SDK would, with standard-mode backoff, until the one slot is free.
    patient = clients_for(
        sandbox.endpoint_url, sandbox.region, Config(retries={"mode": "standard", "max_attempts": 12})
    )
    response = patient("lambda").invoke(FunctionName=stack.outputs["ReconcilerName"], Payload=b"{}")
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    assert isinstance(payload, dict)


def test_uploads_to_the_artifact_bucket_reach_eventbridge(
    provisioned: tuple[ProvisionedStack, str, float], clients: Clients
) -> None:
    stack, _, _ = provisioned
    assert_uploads_reach_eventbridge(clients, stack.outputs["ArtifactBucketName"])
