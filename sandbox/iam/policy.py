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
from functools import cached_property
from typing import Any

from sandbox.policy_conditions import Context, arn_like, condition_holds

IDENTITY = "identity"
RESOURCE = "resource"
# Entries each memo below keeps at most before it starts again (distinct documents; distinct requests).
MEMO_LIMIT = 4096


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
        """The policy a document says. Authorisation reads a role's policies for every check it makes, so a
        document given as text is parsed once: the text is all it means."""
        if not isinstance(document, str | bytes):
            return Policy(kind, name, document)
        known = _PARSED.get((kind, name, document))
        if known is not None:
            return known
        text = document.decode() if isinstance(document, bytes) else document
        parsed = json.loads(text)
        assert isinstance(parsed, dict)
        policy = Policy(kind, name, parsed)
        _remember(_PARSED, (kind, name, document), policy)
        return policy

    @cached_property
    def content(self) -> tuple[str, str, str]:
        """The policy as a key: two policies with the same content decide every request alike. The repr of
        a JSON document tells its values and their types apart."""
        return (self.kind, self.name, repr(self.document))

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


_PARSED: dict[tuple[str, str, str | bytes], Policy] = {}
_DECIDED: dict[tuple[Any, ...], Decision] = {}


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[key] = value


def evaluate(
    principal: Principal, action: str, resource: str, context: Context, policies: list[Policy]
) -> Decision:
    """The decision for one request. It depends on nothing but these arguments, so the same request
    against the same policies is decided once (a CodeDeploy poll asks the same hundred alarms again and
    again); a changed policy, tag or condition key is a different request."""
    key = _request_key(principal, action, resource, context, policies)
    if key is None:
        return _evaluate(principal, action, resource, context, policies)
    decided = _DECIDED.get(key)
    if decided is None:
        decided = _evaluate(principal, action, resource, context, policies)
        _remember(_DECIDED, key, decided)
    return decided


def _request_key(
    principal: Principal, action: str, resource: str, context: Context, policies: list[Policy]
) -> tuple[Any, ...] | None:
    # A list of values and a single value are different context values: tagged apart.
    keys = tuple(
        sorted(
            (name, True, tuple(value)) if isinstance(value, list) else (name, False, value)
            for name, value in context.items()
        )
    )
    key = (principal, action, resource, keys, tuple(policy.content for policy in policies))
    try:
        hash(key)
    except TypeError:
        return None  # a value that is no key (never in the sandbox's contexts): decided afresh
    return key


def _evaluate(
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
