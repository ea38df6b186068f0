"""IAM policy evaluation for one account, as "Policy evaluation logic" describes it
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):

1. an explicit Deny in any applicable policy (identity or resource) denies;
2. otherwise an Allow in the resource's policy that names the principal allows (within one account a
   resource-based policy is enough on its own), as does an Allow in the principal's identity policies;
3. otherwise the request is implicitly denied.

No SCPs, permissions boundaries or session policies exist in the sandbox. A resource policy naming the
account (root) rather than the principal delegates to identity policies and so does not allow by itself.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sandbox.policy_conditions import Context, arn_like, condition_holds

IDENTITY = "identity"
RESOURCE = "resource"


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a role session (credentials the sandbox issued) or an AWS service."""

    account: str
    role_arn: str | None = None  # arn:aws:iam::<account>:role/<path><name>
    session_name: str | None = None
    service: str | None = None  # e.g. events.amazonaws.com

    @property
    def role_name(self) -> str:
        return (self.role_arn or "").rsplit("/", 1)[-1]

    @property
    def arn(self) -> str:
        """The ARN AWS names in an AccessDenied message (the assumed-role session for a role)."""
        if self.service:
            return self.service
        return f"arn:aws:sts::{self.account}:assumed-role/{self.role_name}/{self.session_name}"

    @property
    def key(self) -> str:
        """What the access log groups calls by: the role ARN, or the service principal."""
        return self.role_arn or self.service or self.arn


@dataclass(frozen=True)
class Policy:
    kind: str  # IDENTITY or RESOURCE
    name: str  # what the report calls it: "inline:<name>", a managed policy ARN, "bucket policy", ...
    document: dict[str, Any]

    @staticmethod
    def parse(kind: str, name: str, document: str | bytes | dict[str, Any]) -> Policy:
        if isinstance(document, bytes):
            document = document.decode()
        if isinstance(document, str):
            document = json.loads(document)
        assert isinstance(document, dict)
        return Policy(kind, name, document)

    def statements(self) -> Iterator[tuple[int, dict[str, Any]]]:
        statements = self.document.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        yield from enumerate(statements)


@dataclass(frozen=True)
class Match:
    """The statement that decided a request."""

    policy: str
    kind: str
    index: int
    sid: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # "allowed", "explicit-deny-identity", "explicit-deny-resource" or "implicit-deny"
    reason: str
    match: Match | None = None
    # Every statement that allowed the request (the permissions report counts each as used).
    allows: tuple[Match, ...] = field(default=())

    def because(self, action: str) -> str:
        """The tail AWS puts on an AccessDenied message ("Troubleshoot access denied error messages",
        https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html)."""
        if self.reason == "explicit-deny-identity":
            return "with an explicit deny in an identity-based policy"
        if self.reason == "explicit-deny-resource":
            return "with an explicit deny in a resource-based policy"
        return f"because no identity-based policy allows the {action} action"


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def action_matches(patterns: list[str], action: str) -> bool:
    """Action names are case-insensitive and may use * and ? ("IAM JSON policy elements: Action")."""
    wanted = action.lower()
    return any(fnmatch.fnmatchcase(wanted, p.lower()) for p in patterns)


def resource_matches(patterns: list[str], resource: str) -> bool:
    """ "*" matches anything; an ARN pattern is matched part by part, like ArnLike ("IAM JSON policy
    elements: Resource"). An action without resource-level permissions is checked against "*", which
    only "*" matches."""
    for pattern in patterns:
        if pattern == "*":
            return True
        if resource != "*" and arn_like(resource, pattern):
            return True
    return False


def _principal_match(value: Any, principal: Principal) -> str | None:
    """ "specific" when the Principal element names this principal, "account" when it names only its
    account (delegation to identity policies), None when it does not apply."""
    if value == "*":
        return "specific"
    if isinstance(value, str):
        # Stored shorthand (moto keeps AddPermission's Principal as given): a service or an AWS principal.
        value = {"Service": value} if value.endswith(".amazonaws.com") else {"AWS": value}
    if not isinstance(value, dict):
        return None
    for service in _as_list(value.get("Service")):
        if principal.service and service == principal.service:
            return "specific"
    found: str | None = None
    for aws in _as_list(value.get("AWS")):
        if aws == "*":
            return "specific"
        if principal.service:
            continue
        if aws in (principal.role_arn, principal.arn):
            return "specific"
        if aws in (principal.account, f"arn:aws:iam::{principal.account}:root"):
            found = "account"
    return found


def _statement_applies(
    statement: dict[str, Any], action: str, resource: str, context: Context, principal: Principal, kind: str
) -> str | None:
    """How the statement applies: None, or "specific"/"account" (resource policies) / "identity"."""
    if "Action" in statement and not action_matches(_as_list(statement["Action"]), action):
        return None
    if "NotAction" in statement and action_matches(_as_list(statement["NotAction"]), action):
        return None
    if "Resource" in statement and not resource_matches(_as_list(statement["Resource"]), resource):
        return None
    if "NotResource" in statement and resource_matches(_as_list(statement["NotResource"]), resource):
        return None
    scope = "identity"
    if kind == RESOURCE:
        if "NotPrincipal" in statement:
            scope_or_none = None if _principal_match(statement["NotPrincipal"], principal) else "specific"
        else:
            scope_or_none = _principal_match(statement.get("Principal"), principal)
        if scope_or_none is None:
            return None
        scope = scope_or_none
    if not condition_holds(statement.get("Condition"), context):
        return None
    return scope


def evaluate(
    principal: Principal, action: str, resource: str, context: Context, policies: list[Policy]
) -> Decision:
    deny: Decision | None = None
    allows: list[Match] = []
    for policy in policies:
        for index, statement in policy.statements():
            scope = _statement_applies(statement, action, resource, context, principal, policy.kind)
            if scope is None:
                continue
            match = Match(policy.name, policy.kind, index, str(statement.get("Sid", "")))
            if statement.get("Effect") == "Deny":
                if deny is None:
                    deny = Decision(False, f"explicit-deny-{policy.kind}", match)
            elif statement.get("Effect") == "Allow" and scope != "account":
                allows.append(match)
    if deny is not None:
        return deny
    if allows:
        return Decision(True, "allowed", allows[0], tuple(allows))
    return Decision(False, "implicit-deny")
