"""IAM in the sandbox: credentials for roles, and every call made with them authorised as AWS would.

Behaviour only; how a refusal looks on the wire is in sandbox/protocol.py (`access_denied`), and where
requests are stopped is sandbox/server.py. `Iam.authorize` evaluates each check an operation needs
(actions.py) against the caller's identity policies and the resource's policy (policy.py), with the
condition keys the request carries, the resource's tags among them (state.py), and records the outcome
per role for the permissions report (access_log.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.iam import actions, state
from sandbox.iam.access_log import AccessLog
from sandbox.iam.actions import Check
from sandbox.iam.credentials import Credentials, CredentialStore, InvalidToken
from sandbox.iam.policy import Decision, Policy, Principal, evaluate
from sandbox.policy_conditions import ContextValue, request_context

__all__ = ["Check", "Credentials", "Denial", "Iam", "InvalidToken", "Principal"]


@dataclass(frozen=True)
class Denial:
    principal: Principal
    check: Check
    decision: Decision

    def message(self, quote_resource: bool = False) -> str:
        """AWS's AccessDenied text: "User: <arn> is not authorized to perform: <action> on resource:
        <arn> because ..." ("Troubleshoot access denied error messages" in the IAM user guide); an action
        without resource-level permissions names no resource."""
        action = self.check.action
        resource = self.check.resource
        where = ""
        if resource != "*":
            where = f' on resource: "{resource}"' if quote_resource else f" on resource: {resource}"
        return f"User: {self.principal.arn} is not authorized to perform: {action}{where} {self.decision.because(action)}"


class Iam:
    """One sandbox's IAM: `enforce` off leaves every call allowed (credentials are still issued)."""

    def __init__(
        self,
        account_id: str,
        region: str,
        enforce: bool = True,
        deployment_group_of: Callable[[str], tuple[str, str] | None] | None = None,
    ) -> None:
        self.account_id = account_id
        self.region = region
        self.enforce = enforce
        self.credentials = CredentialStore(account_id)
        self.log = AccessLog()
        self._deployment_group_of = deployment_group_of

    # -- actions.Scope ---------------------------------------------------------------------------
    def deployment_group_of(self, deployment_id: str) -> tuple[str, str] | None:
        return self._deployment_group_of(deployment_id) if self._deployment_group_of else None

    def secret_arn(self, secret_id: str) -> str:
        return state.secret_arn(self.account_id, self.region, secret_id)

    # -- principals ------------------------------------------------------------------------------
    def issue(self, role_arn: str, session_name: str) -> Credentials:
        return self.credentials.issue(role_arn, session_name)

    def service_principal(self, service: str) -> Principal:
        return Principal(self.account_id, service=service)

    def principal_for(self, access_key_id: str | None, session_token: str | None) -> Principal | None:
        """The role session behind a request's credentials; None for the operator. Raises InvalidToken."""
        return self.credentials.principal_for(access_key_id, session_token)

    def service_may_assume(self, role_arn: str, service: str) -> bool:
        """Whether the role's trust policy lets `service` assume it (always, when IAM is not enforced).

        Lambda and CodeDeploy check this when a role is handed to them, before any call is made with it.
        The service assumes the role on the account's behalf, so aws:SourceAccount is the account.
        """
        if not self.enforce:
            return True
        trust = state.trust_policy(self.account_id, role_arn)
        if trust is None:
            return False
        principal = self.service_principal(service)
        context: dict[str, ContextValue] = {
            **request_context(self.account_id),
            "aws:sourceaccount": self.account_id,
            "aws:principalservicename": service,
        }
        return evaluate(principal, "sts:AssumeRole", role_arn, context, [trust]).allowed

    # -- decisions -------------------------------------------------------------------------------
    def checks(self, service: str, operation: str, params: dict[str, Any]) -> list[Check] | None:
        return actions.checks_for(service, operation, params, self)

    def authorize(
        self, principal: Principal, checks: list[Check], context: dict[str, ContextValue] | None = None
    ) -> Denial | None:
        """The first check the principal may not do (each check is recorded), or None when all pass. A
        request is judged on one reading of the caller's policies, however many checks it needs (a
        DescribeAlarms of a hundred alarms needs a hundred)."""
        identity = self._identity_policies(principal)
        for check in checks:
            decision = self.decide(principal, check, context, identity)
            if not decision.allowed:
                return Denial(principal, check, decision)
        return None

    def allowed(
        self, principal: Principal, action: str, resource: str, context: dict[str, ContextValue] | None = None
    ) -> bool:
        return self.decide(principal, Check(action, resource), context).allowed

    def decide(
        self,
        principal: Principal,
        check: Check,
        context: dict[str, ContextValue] | None = None,
        identity: list[Policy] | None = None,
    ) -> Decision:
        """`identity`: the principal's policies, when the caller read them already."""
        if not self.enforce:
            return Decision(True, "not-enforced")
        if identity is None:
            identity = self._identity_policies(principal)
        policies = identity + state.resource_policies(self.account_id, self.region, check.resource)
        full = self._context(principal, check)
        full.update(context or {})
        decision = evaluate(principal, check.action, check.resource, full, policies)
        self.log.record(principal.key, check.action, check.resource, decision)
        return decision

    def _identity_policies(self, principal: Principal) -> list[Policy]:
        if not self.enforce or not principal.role_arn:
            return []
        return state.identity_policies(self.account_id, principal.role_arn)

    def _context(self, principal: Principal, check: Check) -> dict[str, ContextValue]:
        context: dict[str, ContextValue] = dict(request_context(self.account_id))
        if principal.role_arn:
            # For a role session aws:PrincipalArn is the role's ARN, not the session's ("AWS global
            # condition context keys", aws:PrincipalArn).
            context["aws:principalarn"] = principal.role_arn
            context["aws:principaltype"] = "AssumedRole"
        if principal.service:
            context["aws:principalservicename"] = principal.service
            context["aws:principaltype"] = "Service"
            context.pop("aws:principalaccount", None)
        if check.resource != "*":
            for key, value in state.resource_tags(self.account_id, self.region, check.resource).items():
                context[f"aws:resourcetag/{key.lower()}"] = value
            if check.action.startswith("s3:") and check.resource.count("/") >= 1:
                for key, value in state.existing_object_tags(self.account_id, check.resource).items():
                    context[f"s3:existingobjecttag/{key.lower()}"] = value
        context.update(check.context)
        return context
