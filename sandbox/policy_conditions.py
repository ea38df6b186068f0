"""IAM policy Condition blocks, evaluated against the request context the sandbox stands for.

moto applies bucket-policy statements as if they had no Condition, so a usual "Deny unless
aws:SecureTransport" statement denies everything. The sandbox's HTTP endpoint stands in for AWS's HTTPS
one, so requests carry aws:SecureTransport=true and a current TLS version; keys absent from the context
follow IAM's rules (a condition on an absent key is false, except for ...IfExists and negated operators).
"""

from __future__ import annotations

import fnmatch
from typing import Any


def request_context(account_id: str) -> dict[str, str]:
    return {
        "aws:securetransport": "true",
        "s3:tlsversion": "1.3",
        "aws:principalaccount": account_id,
        "aws:principaltype": "Account",
    }


def _as_list(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _compare(operator: str, actual: str, expected: str) -> bool:
    if operator in ("StringEquals", "ArnEquals"):
        return actual == expected
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    if operator in ("StringLike", "ArnLike"):
        return fnmatch.fnmatchcase(actual, expected)
    if operator == "Bool":
        return actual.lower() == expected.lower()
    if operator.startswith("Numeric"):
        a, e = _number(actual), _number(expected)
        if a is None or e is None:
            return False
        return {
            "NumericEquals": a == e,
            "NumericLessThan": a < e,
            "NumericLessThanEquals": a <= e,
            "NumericGreaterThan": a > e,
            "NumericGreaterThanEquals": a >= e,
        }.get(operator, False)
    raise ValueError(f"unsupported condition operator {operator}")


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}


def condition_holds(condition: dict[str, Any] | None, context: dict[str, str]) -> bool:
    """True when every operator block of the Condition is satisfied (unknown operators: not satisfied)."""
    for raw_operator, clauses in (condition or {}).items():
        operator = raw_operator.split(":", 1)[-1]  # ForAnyValue:/ForAllValues: on single-valued keys
        if_exists = operator.endswith("IfExists")
        operator = operator.removesuffix("IfExists")
        for key, expected in (clauses or {}).items():
            actual = context.get(key.lower())
            if operator == "Null":
                wants_absent = _as_list(expected)[0].lower() == "true"
                if (actual is None) != wants_absent:
                    return False
                continue
            negated = operator in _NEGATED
            base = _NEGATED.get(operator, operator)
            if actual is None:
                if if_exists or negated:
                    continue
                return False
            try:
                matched = any(_compare(base, actual, e) for e in _as_list(expected))
            except ValueError:
                return False
            if matched == negated:
                return False
    return True


def applicable_statements(policy: dict[str, Any], context: dict[str, str]) -> dict[str, Any]:
    """The policy with only the statements whose Condition holds (and the Condition dropped)."""
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = []
    for statement in statements:
        if condition_holds(statement.get("Condition"), context):
            kept.append({k: v for k, v in statement.items() if k != "Condition"})
    return {**policy, "Statement": kept}
