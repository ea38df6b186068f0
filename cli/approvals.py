"""`rollout approve` / `rollout reject`: answer a deployment's approval gate.

The verdict is reported to CodeDeploy by the stack's DeploymentActions function, never with the
operator's own credentials: an operator needs `lambda:InvokeFunction` on that one function, not
`codedeploy:PutLifecycleEventHookExecutionStatus`, which would let them report any hook's verdict
(skipping checks). Lambda does not tell a function who invoked it, so the command proves who is
asking: it signs an STS GetCallerIdentity request with the caller's credentials, bound to this action
on this deployment by a signed `X-Rollout-Action` header, and sends the signed headers (never a URL);
DeploymentActions sends it to STS itself and records the ARN STS answers (rollout/identity.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from cli.backend import Backend, aws_errors
from cli.errors import CliError, ExitCode
from rollout import identity

DEPLOYMENT_ID = re.compile(r"d-[A-Z0-9]{9}")  # fullmatch: "$" alone would let a trailing newline in
# deployment_actions' refusal codes (rollout.approvals) -> the CLI's exit codes (docs/OPERATOR.md).
REFUSAL_EXIT = {
    "not_found": ExitCode.NOT_FOUND,
    "nothing_to_do": ExitCode.CONFLICT,
    "bad_request": ExitCode.USAGE,
    "unauthenticated": ExitCode.AWS_ERROR,
}


def caller_identity(backend: Backend) -> dict[str, str]:
    with aws_errors("read the caller's identity (sts:GetCallerIdentity)"):
        identity = backend.client("sts").get_caller_identity()
    return {"kind": "aws", "id": str(identity["Arn"]), "name": str(identity.get("UserId") or "")}


def identity_proof(backend: Backend, action: str, deployment_id: str) -> dict[str, Any]:
    """A GetCallerIdentity request signed with the caller's credentials for STS's endpoint (the one
    DeploymentActions uses: the region's, or the configured endpoint), bound to this action on this
    deployment. Valid for STS's 15-minute window; it carries headers and a body, never a URL."""
    sts = backend.client("sts")
    with aws_errors("sign the identity proof (sts:GetCallerIdentity)"):
        credentials = boto3.session.Session().get_credentials()
        if credentials is None:
            raise CliError("no AWS credentials to prove who you are", ExitCode.AWS_ERROR)
        request = AWSRequest(
            method="POST",
            url=str(sts.meta.endpoint_url).rstrip("/") + "/",
            data=identity.BODY.encode(),
            headers={
                "Content-Type": identity.CONTENT_TYPE,
                identity.BINDING_HEADER: identity.binding(action, deployment_id),
            },
        )
        SigV4Auth(credentials.get_frozen_credentials(), "sts", sts.meta.region_name).add_auth(request)
    return {"headers": dict(request.headers.items()), "body": identity.BODY}


def answer_gate(backend: Backend, action: str, deployment_id: str, text: str) -> dict[str, Any]:
    """Ask DeploymentActions to approve or reject; its answer, or CliError with the refusal."""
    if not DEPLOYMENT_ID.fullmatch(deployment_id):
        raise CliError(f"{deployment_id!r} is not a deployment id (d-XXXXXXXXX)", ExitCode.USAGE)
    function = backend.stack.require("DeploymentActionsName")
    request = {
        "action": action,
        "deployment_id": deployment_id,
        "by": caller_identity(backend),  # a claim DeploymentActions replaces with what STS answers
        "text": text,
        identity.PROOF_KEY: identity_proof(backend, action, deployment_id),
    }
    with aws_errors(f"{action} {deployment_id} (invoke {function})"):
        response = backend.client("lambda").invoke(
            FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(request).encode()
        )
    payload = response["Payload"].read()
    if response.get("FunctionError"):
        raise CliError(f"{function} failed: {payload[:300].decode('utf-8', 'replace')}", ExitCode.AWS_ERROR)
    answer = json.loads(payload or b"null")
    if not isinstance(answer, dict):
        raise CliError(f"{function} answered {str(answer)[:200]}", ExitCode.AWS_ERROR)
    if not answer.get("ok"):
        code = REFUSAL_EXIT.get(str(answer.get("refused")), ExitCode.RELEASE_FAILED)
        raise CliError(f"{action} refused: {answer.get('reason')}", code)
    return answer


def summary(action: str, answer: dict[str, Any]) -> str:
    gate = answer.get("gate") or {}
    by = (gate.get("answered_by") or {}).get("id", "?")
    done = "approved" if action == "approve" else "rejected"
    told = (
        f"CodeDeploy told {answer.get('verdict')}"
        if answer.get("reported")
        else f"CodeDeploy not told ({answer.get('note') or 'the step is closed'})"
    )
    return (
        f"{answer.get('deployment_id')}: {answer.get('function')} {done} before {gate.get('position')} by {by}; "
        f"{told}"
    )


def approve_deployment(backend: Backend, deployment_id: str, comment: str = "") -> dict[str, Any]:
    """`rollout approve`, as the dashboard calls it."""
    return answer_gate(backend, "approve", deployment_id, comment)


def reject_deployment(backend: Backend, deployment_id: str, reason: str = "") -> dict[str, Any]:
    """`rollout reject`, as the dashboard calls it: a rejection says why."""
    if not reason.strip():
        raise CliError("a rejection must say why (reason)", ExitCode.USAGE)
    return answer_gate(backend, "reject", deployment_id, reason)
