"""STS: send a caller's signed GetCallerIdentity request (an identity proof, see identity.py).

The endpoint is this function's own STS endpoint (its region's, or AWS_ENDPOINT_URL_STS /
AWS_ENDPOINT_URL, which boto3 honours), never one from the request: DeploymentActions needs outbound
HTTPS to STS and no IAM grant ("No permissions are required to perform this operation", STS API
reference, GetCallerIdentity).
"""

from __future__ import annotations

import functools

from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError
from botocore.httpsession import URLLib3Session

from rollout import aws
from rollout.identity import STS_UNREACHABLE, ProofRefused

TIMEOUT_SECONDS = 5


@functools.cache
def _http() -> URLLib3Session:
    return URLLib3Session(timeout=TIMEOUT_SECONDS)  # follows no redirect


def endpoint() -> str:
    """The STS endpoint this process's own configuration names."""
    return str(aws.client("sts").meta.endpoint_url).rstrip("/") + "/"


def send_signed(headers: dict[str, str], body: str) -> tuple[int, bytes]:
    """POST the signed request to our STS endpoint; its status and body. ProofRefused when unreachable."""
    request = AWSRequest(method="POST", url=endpoint(), data=body.encode(), headers=headers)
    try:
        response = _http().send(request.prepare())
    except BotoCoreError as exc:
        raise ProofRefused(
            STS_UNREACHABLE, f"STS could not be reached to check the identity proof: {exc}"
        ) from exc
    return int(response.status_code), bytes(response.content or b"")
