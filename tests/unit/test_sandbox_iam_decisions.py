"""IAM decisions the sandbox remembers (sandbox/iam/policy.py `evaluate`) are the decisions it would make
afresh, on every kind of request, context and policy, and a changed policy is decided anew."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sandbox.iam.policy import IDENTITY, RESOURCE, Policy, Principal, _evaluate, evaluate

ACCOUNT = "123456789012"
ROLES = [f"arn:aws:iam::{ACCOUNT}:role/r{i}" for i in range(3)]
ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "lambda:GetFunction",
    "sns:Publish",
    "cloudwatch:DescribeAlarms",
]
RESOURCES = [
    f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/ledger",
    f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/ledger/index/open",
    f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:fn",
    f"arn:aws:sns:us-east-1:{ACCOUNT}:topic",
    f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:stack-canary-fn-v2-errors",
    "*",
]


def statement(rng: random.Random, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {"Effect": rng.choice(["Allow", "Allow", "Deny"])}
    action = rng.choice([*ACTIONS, "dynamodb:*", "*", "lambda:Get*", ["sns:Publish", "dynamodb:Get?tem"]])
    found["NotAction" if rng.random() < 0.15 else "Action"] = action
    resource = rng.choice([*RESOURCES, "arn:aws:dynamodb:*:*:table/ledger*", "arn:aws:*:*:*:*"])
    found["NotResource" if rng.random() < 0.15 else "Resource"] = resource
    if kind == RESOURCE:
        found["Principal"] = rng.choice(
            ["*", {"AWS": rng.choice(ROLES)}, {"AWS": ACCOUNT}, {"Service": "events.amazonaws.com"}]
        )
    if rng.random() < 0.6:
        operator = rng.choice(
            [
                "StringEquals",
                "StringLike",
                "StringNotEquals",
                "ForAnyValue:StringEquals",
                "Null",
                "StringEqualsIfExists",
            ]
        )
        key = rng.choice(
            [
                "aws:ResourceTag/rollout:managed",
                "dynamodb:LeadingKeys",
                "aws:SecureTransport",
                "aws:PrincipalArn",
            ]
        )
        value = "true" if operator == "Null" else rng.choice(["true", "FN#*", ["FN#a", "LOCK"], ROLES[0]])
        found["Condition"] = {operator: {key: value}}
    if rng.random() < 0.3:
        found["Sid"] = f"S{rng.randint(0, 9)}"
    return found


def policies(rng: random.Random) -> list[Policy]:
    made = []
    for index in range(rng.randint(0, 3)):
        document = {
            "Version": "2012-10-17",
            "Statement": [statement(rng, IDENTITY) for _ in range(rng.randint(1, 4))],
        }
        text = json.dumps(document)
        made.append(Policy.parse(IDENTITY, f"inline:p{index}", text if rng.random() < 0.7 else text.encode()))
    if rng.random() < 0.5:
        made.append(Policy(RESOURCE, "function policy", {"Statement": [statement(rng, RESOURCE)]}))
    return made


def context(rng: random.Random, principal: Principal) -> dict[str, Any]:
    found: dict[str, Any] = {"aws:securetransport": "true", "aws:principalarn": principal.role_arn or ""}
    if rng.random() < 0.5:
        found["aws:resourcetag/rollout:managed"] = rng.choice(["true", "false"])
    if rng.random() < 0.5:
        keys = rng.choice([["FN#a"], ["FN#a", "LOCK"], "FN#a", []])
        found["dynamodb:leadingkeys"] = keys
    return found


@pytest.mark.parametrize("seed", range(30))
def test_a_remembered_decision_is_the_decision(seed: int) -> None:
    rng = random.Random(seed)
    # Few of each, so that requests meet again with one part changed: who asks, what, on what, the
    # context, the policies.
    principals = [Principal(ACCOUNT, role_arn=role, session_name="s") for role in ROLES]
    principals += [
        Principal(ACCOUNT, role_arn=ROLES[0], session_name="t"),
        Principal(ACCOUNT, service="events.amazonaws.com"),
    ]
    contexts = [context(rng, principal) for principal in principals for _ in range(2)]
    written = [policies(rng) for _ in range(4)]
    for _ in range(200):
        principal, found, chosen = rng.choice(principals), rng.choice(contexts), rng.choice(written)
        action, resource = rng.choice(ACTIONS), rng.choice(RESOURCES)
        assert evaluate(principal, action, resource, found, chosen) == _evaluate(
            principal, action, resource, found, chosen
        )


def test_a_policy_rewritten_under_the_same_name_is_decided_anew() -> None:
    principal = Principal(ACCOUNT, role_arn=ROLES[0], session_name="s")
    allow = {"Statement": [{"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}]}
    deny = {"Statement": [*allow["Statement"], {"Effect": "Deny", "Action": "sns:*", "Resource": "*"}]}
    for document, allowed in ((allow, True), (deny, False), (allow, True)):
        for written in (json.dumps(document), document):
            decision = evaluate(
                principal, "sns:Publish", RESOURCES[3], {}, [Policy.parse(IDENTITY, "inline:p", written)]
            )
            assert decision.allowed is allowed
