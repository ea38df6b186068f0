"""Proof of who asks DeploymentActions for something: a GetCallerIdentity request the caller signed.

Lambda does not tell a function who invoked it, so an approver named in the payload proves nothing. As
HashiCorp Vault's AWS IAM auth method does, the caller signs (SigV4, with its own credentials) an STS
GetCallerIdentity request and sends its headers and body; DeploymentActions sends that request to
the STS endpoint of its own configuration (never an address from the payload: a server the caller
chose would vouch for anyone) and records the ARN STS answers. STS checks the signature and refuses
a request signed more than 15 minutes away from its clock.

The signature covers the headers named in SignedHeaders, so the caller signs an `X-Rollout-Action:
<action> <deployment_id>` header too: a proof captured from one request cannot answer another
deployment or another action (STS ignores the header; the signature binds it). An unsigned binding
header is refused, since it could be added to any signed request.

A proof STS accepts names a principal, not a person: code running as one of Rollout's own functions
(a compromised dependency, a bug) could sign one with its execution role's credentials, and the
Reconciler's and SlackInteractions' roles may invoke DeploymentActions. So the principal is refused
when it is a session of one of the stack's roles (`RolloutRoles`, from the ROLLOUT_ROLE_ARNS variable
template.yaml sets), and every AWS principal is refused when that list is missing or malformed.

Pure logic: sending the request is `sts_ops.send_signed`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple
from xml.etree import ElementTree

from rollout.gates import Approver

PROOF_KEY = "proof"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
BINDING_HEADER = "X-Rollout-Action"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
# The headers a proof may carry, lower case; Host is the endpoint DeploymentActions chose, never the
# caller's (a payload naming it is refused).
PROOF_HEADERS = frozenset(
    {"authorization", "x-amz-date", "x-amz-security-token", "content-type", "x-rollout-action"}
)
MAX_HEADER = 8192  # session tokens run to a few kilobytes
_SIGNED_HEADERS = re.compile(r"SignedHeaders=([a-z0-9;-]+)")

# Refusal codes (the answer's `proof`), each with the reason people read.
NO_PROOF = "no_proof"
MALFORMED = "malformed_proof"
NOT_BOUND = "proof_not_bound"
STS_REFUSED = "sts_refused"
STS_UNREACHABLE = "sts_unreachable"
ROLLOUT_ROLE = "rollout_role"  # the signer is a session of one of the stack's own roles
ROLES_UNKNOWN = "rollout_roles_unknown"  # DeploymentActions cannot tell the stack's roles from people

# The stack's role ARNs, space separated (template.yaml, DeploymentActions' environment).
ROLLOUT_ROLES_VARIABLE = "ROLLOUT_ROLE_ARNS"
# An IAM role's ARN: arn:<partition>:iam::<account>:role/<path><name> ("IAM identifiers", IAM ARNs).
# Role names are letters, digits and +=,.@_- (at most 64: "IAM and AWS STS quotas", IAM name
# requirements and character quotas), so none holds a space. IAM would allow any printable character in
# a path; these are read with name characters only, so that ARNs joined by anything but whitespace
# (a comma, a colon) are malformed rather than one odd path.
_ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})", re.ASCII)
# A session of a role, as GetCallerIdentity names it: arn:<partition>:sts::<account>:assumed-role/
# <role name>/<session name>, the role's name without its path ("IAM identifiers", IAM ARNs: "The active
# session of someone assuming the role of 'Accounting-Role' ...: arn:aws:sts::123456789012:assumed-role/
# Accounting-Role/Mary"; "AWS JSON policy elements: Principal", Assumed-role session principals). The
# stack's roles have no Path, so their name is the last part of their ARN either way.
_ASSUMED_ROLE = re.compile(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([\w+=,.@-]{1,64})/.+", re.ASCII)


class ProofRefused(Exception):
    """The caller's identity is not proven; `code` is one of the codes above."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def binding(action: str, deployment_id: str) -> str:
    """The value of the binding header for one action on one deployment."""
    return f"{action} {deployment_id}"


@dataclass(frozen=True)
class Proof:
    headers: dict[str, str]
    body: str

    @classmethod
    def parse(cls, raw: Any, action: str, deployment_id: str) -> Proof:
        """The proof in a request, checked for its shape and binding; ProofRefused saying what is wrong."""
        if raw is None:
            raise ProofRefused(NO_PROOF, f"an AWS principal must prove who they are to {action} a deployment")
        if not isinstance(raw, dict) or not isinstance(raw.get("headers"), dict) or raw.get("body") != BODY:
            raise ProofRefused(MALFORMED, "the identity proof must be a signed STS GetCallerIdentity request")
        headers = {str(k).lower(): v for k, v in raw["headers"].items()}
        odd = sorted(k for k, v in headers.items() if k not in PROOF_HEADERS or not _fits(v))
        if odd or "authorization" not in headers or "x-amz-date" not in headers:
            raise ProofRefused(MALFORMED, f"the identity proof has unexpected or missing headers {odd[:5]}")
        signed = _SIGNED_HEADERS.search(headers["authorization"])
        names = set(signed.group(1).split(";")) if signed else set()
        if headers.get("x-rollout-action") != binding(action, deployment_id):
            raise ProofRefused(
                NOT_BOUND, f"the identity proof was made for another request, not {action} {deployment_id}"
            )
        if (
            not headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
            or not {"host", "x-rollout-action"} <= names
        ):
            raise ProofRefused(
                NOT_BOUND, "the identity proof's signature does not cover its host and binding header"
            )
        return cls(headers, BODY)


def _fits(value: Any) -> bool:
    """A header value SigV4 can have signed and HTTP can carry: printable ASCII, bounded."""
    return isinstance(value, str) and 0 < len(value) <= MAX_HEADER and value.isascii() and value.isprintable()


def approver_from(status: int, body: bytes) -> Approver:
    """The principal STS answered for a proof; ProofRefused when STS refused it or answered nonsense."""
    try:
        # The answer comes from the STS endpoint DeploymentActions chose, not from the caller.
        root = ElementTree.fromstring(body)  # noqa: S314
    except ElementTree.ParseError:
        root = None
    if status != 200:
        code = _text(root, "Error/{*}Code") or f"HTTP {status}"
        message = _text(root, "Error/{*}Message")
        raise ProofRefused(
            STS_REFUSED, f"STS refused the identity proof: {code}{': ' + message if message else ''}"[:500]
        )
    arn = _text(root, "GetCallerIdentityResult/{*}Arn")
    if not arn.startswith("arn:"):
        raise ProofRefused(STS_REFUSED, "STS answered the identity proof without an ARN")
    return Approver("aws", arn[:2048], _text(root, "GetCallerIdentityResult/{*}UserId")[:200])


class RolloutRoles(NamedTuple):
    """The stack's own roles, as (partition, account, role name in lower case): IAM role names are
    unique in an account whatever their case ("IAM and AWS STS quotas", IAM name requirements: "They
    are not distinguished by case"), so a session of one is recognised whatever case it is spelled in."""

    keys: frozenset[tuple[str, str, str]]

    @classmethod
    def parse(cls, raw: str | None) -> RolloutRoles:
        """The roles ROLLOUT_ROLE_ARNS lists; ProofRefused (ROLES_UNKNOWN) when it is missing, empty or
        holds anything but role ARNs: then no AWS principal can be told from Rollout itself (fail closed)."""
        listed = (raw or "").split()
        if not listed:
            raise ProofRefused(
                ROLES_UNKNOWN,
                f"DeploymentActions cannot tell Rollout's own roles from people ({ROLLOUT_ROLES_VARIABLE} is "
                "not set), so no AWS principal may act",
            )
        keys = set()
        for arn in listed:
            matched = _ROLE_ARN.fullmatch(arn)
            if matched is None:
                raise ProofRefused(
                    ROLES_UNKNOWN,
                    f"DeploymentActions cannot tell Rollout's own roles from people ({ROLLOUT_ROLES_VARIABLE} "
                    f"holds {arn[:100]!r}, not a role ARN), so no AWS principal may act",
                )
            partition, account, name = matched.groups()
            keys.add((partition, account, name.lower()))
        return cls(frozenset(keys))

    def refuse(self, approver: Approver) -> None:
        """ProofRefused (ROLLOUT_ROLE) when STS named a session of one of these roles: Rollout, not a person."""
        session = _ASSUMED_ROLE.fullmatch(approver.id)
        if session is not None:
            partition, account, name = session.groups()
            if (partition, account, name.lower()) in self.keys:
                raise ProofRefused(ROLLOUT_ROLE, f"{approver.id} is one of Rollout's own roles, not a person")


def _text(root: ElementTree.Element | None, path: str) -> str:
    if root is None:
        return ""
    found = root.find("{*}" + path)
    return (found.text or "").strip() if found is not None else ""
