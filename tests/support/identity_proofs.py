"""Identity proofs for tests: GetCallerIdentity requests signed as the CLI signs them
(cli/approvals.identity_proof), and STS's answers to them."""

from __future__ import annotations

from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from rollout import identity

ALICE_ARN = "arn:aws:iam::123456789012:user/alice"


def signed_proof(
    action: str,
    deployment_id: str,
    url: str = "https://sts.us-east-1.amazonaws.com/",
    credentials: Credentials | None = None,
    region: str = "us-east-1",
) -> dict[str, Any]:
    request = AWSRequest(
        method="POST",
        url=url,
        data=identity.BODY.encode(),
        headers={
            "Content-Type": identity.CONTENT_TYPE,
            identity.BINDING_HEADER: identity.binding(action, deployment_id),
        },
    )
    SigV4Auth(credentials or Credentials("AKIDEXAMPLE", "secret"), "sts", region).add_auth(request)
    return {"headers": dict(request.headers.items()), "body": identity.BODY}


def sts_answer(arn: str = ALICE_ARN, user_id: str = "AIDAALICE") -> tuple[int, bytes]:
    return 200, (
        '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<GetCallerIdentityResult><Arn>{arn}</Arn><UserId>{user_id}</UserId><Account>123456789012</Account>"
        "</GetCallerIdentityResult></GetCallerIdentityResponse>"
    ).encode()


def sts_refusal(code: str = "SignatureDoesNotMatch", message: str = "Signature expired") -> tuple[int, bytes]:
    return 403, (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
    ).encode()
