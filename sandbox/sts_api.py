"""STS GetCallerIdentity where the sandbox answers for moto: credentials it issued to a role session.

moto names one fixed user for any key it does not know, and the sandbox's role credentials are unknown
to it. For keys the sandbox issued, the answer is the role session that holds them
(`arn:aws:sts::<account>:assumed-role/<role>/<session>`), and the SigV4 signature is checked as STS
checks it: recomputed with the secret key the sandbox issued (botocore's signer), refused with
`SignatureDoesNotMatch` when it differs or its X-Amz-Date is more than 15 minutes from now (wall
clock: the caller signs with real time). Keys the sandbox did not issue (the operator's) go to moto,
signature unchecked: a forged signature made with them passes locally, never on AWS.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from calendar import timegm
from typing import TYPE_CHECKING

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from sandbox.iam.credentials import CredentialStore
from sandbox.protocol import AwsRequest, Response, error_response
from sandbox.server import SandboxApp

if TYPE_CHECKING:
    from sandbox.core import Sandbox

WINDOW_SECONDS = 15 * 60
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
    r"SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$"
)


def signature_problem(request: AwsRequest, secret: str, now: float) -> str:
    """Why STS would refuse the request's signature ('' when it holds)."""
    match = _AUTHORIZATION.match(request.header("Authorization") or "")
    if match is None:
        return "The request signature is not a SigV4 Authorization header."
    key, _, region, service, signed, signature = match.groups()
    headers = {name: request.header(name) or "" for name in signed.split(";")}
    stamp = headers.get("x-amz-date", "")
    try:
        at = timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return "The request signature does not sign a valid X-Amz-Date."
    if abs(now - at) > WINDOW_SECONDS:
        return f"Signature expired: {stamp} is outside the 15-minute window."
    query = request.environ.get("QUERY_STRING") or ""
    url = f"http://{headers.get('host', '')}{request.path}" + (f"?{query}" if query else "")
    rebuilt = AWSRequest(method=request.method, url=url, data=request.body, headers=headers)
    rebuilt.context["timestamp"] = stamp
    signer = SigV4Auth(BotoCredentials(key, secret), service, region)
    expected = signer.signature(signer.string_to_sign(rebuilt, signer.canonical_request(rebuilt)), rebuilt)
    if not hmac.compare_digest(expected, signature):
        return "The request signature we calculated does not match the signature you provided."
    return ""


def get_caller_identity(sandbox: Sandbox, request: AwsRequest) -> Response | None:
    principal = request.principal
    if principal is None or not principal.role_arn:
        return None  # the operator: moto answers
    key = CredentialStore.from_headers(str(request.header("Authorization") or ""), None) or ""
    issued = sandbox.iam.credentials.issued(key)
    problem = signature_problem(request, issued.secret_access_key, time.time()) if issued else "unknown key"
    if problem:
        return error_response(request.protocol, "sts", "SignatureDoesNotMatch", problem, 403)
    role_id = hashlib.sha256(principal.role_arn.encode()).hexdigest()[:17].upper()
    user_id = f"AROA{role_id}:{principal.session_name}"
    xml = (
        '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<GetCallerIdentityResult><Arn>{principal.arn}</Arn><UserId>{user_id}</UserId>"
        f"<Account>{principal.account}</Account></GetCallerIdentityResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>"
    )
    return Response(200, xml.encode(), {"Content-Type": "text/xml"})


def register_sts_routes(app: SandboxApp, sandbox: Sandbox) -> None:
    app.route("sts", "GetCallerIdentity", lambda request: get_caller_identity(sandbox, request))
