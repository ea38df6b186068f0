"""`sandbox/sts_api.py` with `rollout/sts_ops.py` and `rollout/identity.py`: the sandbox answers a signed
GetCallerIdentity with the role session whose access key signed it, and refuses a signature that does
not match the secret it issued or is older than STS's 15 minutes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.credentials import Credentials

from rollout import aws, identity, sts_ops
from sandbox.core import Sandbox
from sandbox.protocol import AwsRequest
from sandbox.sts_api import signature_problem
from tests.support.identity_proofs import signed_proof
from tests.support.sandbox_support import trust_policy


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(speed=60, iam=True) as running:
        yield running


@pytest.fixture
def session(sb: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Credentials]]:
    """A role session's credentials the sandbox issued, and DeploymentActions' endpoint: the sandbox."""
    iam = boto3.client("iam", endpoint_url=sb.endpoint_url, region_name=sb.region)
    name = f"approver-{uuid.uuid4().hex[:6]}"
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy("lambda"))["Role"]["Arn"]
    issued = sb.iam.issue(role, "alice")
    monkeypatch.setenv("AWS_ENDPOINT_URL", sb.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", sb.region)
    aws.reset_clients()
    yield (
        f"arn:aws:sts::{sb.account_id}:assumed-role/{name}/alice",
        Credentials(issued.access_key_id, issued.secret_access_key, issued.session_token),
    )
    aws.reset_clients()


def prove(sb: Sandbox, credentials: Credentials, deployment_id: str = "d-ABCDEFGH1") -> dict[str, object]:
    return signed_proof(
        "approve", deployment_id, url=sb.endpoint_url + "/", credentials=credentials, region=sb.region
    )


def test_a_signed_proof_names_the_role_session_that_signed_it(
    sb: Sandbox, session: tuple[str, Credentials]
) -> None:
    arn, credentials = session
    proof = identity.Proof.parse(prove(sb, credentials), "approve", "d-ABCDEFGH1")
    approver = identity.approver_from(*sts_ops.send_signed(proof.headers, proof.body))
    assert approver.kind == "aws" and approver.id == arn and approver.name.endswith(":alice")
    # The SDK's own GetCallerIdentity agrees.
    sts = boto3.client(
        "sts",
        endpoint_url=sb.endpoint_url,
        region_name=sb.region,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
    )
    assert sts.get_caller_identity()["Arn"] == arn


def test_a_forged_signature_is_refused(sb: Sandbox, session: tuple[str, Credentials]) -> None:
    _, credentials = session
    forged = Credentials(credentials.access_key, "not-the-secret", credentials.token)
    proof = identity.Proof.parse(prove(sb, forged), "approve", "d-ABCDEFGH1")
    with pytest.raises(identity.ProofRefused) as refused:
        identity.approver_from(*sts_ops.send_signed(proof.headers, proof.body))
    assert refused.value.code == identity.STS_REFUSED and "SignatureDoesNotMatch" in refused.value.reason


def test_a_changed_binding_breaks_the_signature(sb: Sandbox, session: tuple[str, Credentials]) -> None:
    _, credentials = session
    proof = identity.Proof.parse(prove(sb, credentials, "d-OTHERONE1"), "approve", "d-OTHERONE1")
    headers = {**proof.headers, "x-rollout-action": identity.binding("approve", "d-ABCDEFGH1")}
    status, body = sts_ops.send_signed(headers, proof.body)
    assert status == 403 and b"SignatureDoesNotMatch" in body


def test_a_proof_older_than_fifteen_minutes_is_refused(sb: Sandbox, session: tuple[str, Credentials]) -> None:
    _, credentials = session
    proof = prove(sb, credentials)
    host = sb.endpoint_url.split("://", 1)[1]
    headers: dict[str, str] = proof["headers"]  # type: ignore[assignment]
    environ = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    environ.update({"REQUEST_METHOD": "POST", "PATH_INFO": "/", "HTTP_HOST": host})
    environ["CONTENT_TYPE"] = environ.pop("HTTP_CONTENT_TYPE")
    request = AwsRequest(environ, "sts", sb.region, "GetCallerIdentity", "query", identity.BODY.encode())
    assert signature_problem(request, credentials.secret_key, time.time()) == ""
    assert "expired" in signature_problem(request, credentials.secret_key, time.time() + 16 * 60)
    assert "does not match" in signature_problem(request, "wrong", time.time())
