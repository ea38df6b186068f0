"""IAM policy Condition blocks, evaluated against a request context, as the IAM policy reference describes.

Operators, per "IAM JSON policy elements: Condition operators"
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
String*, Numeric*, Date*, Bool, Arn* (each of the six colon-separated ARN parts matched on its own),
IpAddress/NotIpAddress and Null; the `...IfExists` suffix, and the `ForAnyValue:` / `ForAllValues:` set
prefixes for multivalued keys. Several values for one key match if any matches (OR), several keys or
operators must all hold (AND). A key absent from the context makes a condition false, except for
`...IfExists` operators, negated operators (StringNotEquals on a missing key holds) and `ForAllValues`
(vacuously true), as the same page and "Single-valued vs. multivalued context keys" describe.

The sandbox's HTTP endpoint stands in for AWS's HTTPS one, so requests carry aws:SecureTransport=true
and a current TLS version (s3:TlsVersion).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

ContextValue = str | list[str]
Context = Mapping[str, ContextValue]


def request_context(account_id: str) -> dict[str, ContextValue]:
    """Keys every request to the sandbox carries, whoever makes it (lower-case: keys are case-insensitive)."""
    return {
        "aws:securetransport": "true",
        "s3:tlsversion": "1.3",
        "aws:principalaccount": account_id,
        "aws:principaltype": "Account",
        "aws:sourceip": "127.0.0.1",
    }


def _as_list(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> float | None:
    try:
        return float(text)  # epoch seconds are a valid Date* value
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def arn_like(actual: str, pattern: str) -> bool:
    """ArnLike/ArnEquals: "each of the six colon-delimited components of the ARN is checked separately"
    (IAM condition operators, ARN condition operators); the resource part keeps its own colons."""
    actual_parts = actual.split(":", 5)
    pattern_parts = pattern.split(":", 5)
    if len(actual_parts) != 6 or len(pattern_parts) != 6:
        return False
    return all(fnmatch.fnmatchcase(a, p) for a, p in zip(actual_parts, pattern_parts, strict=True))


_ORDER = {
    "Equals": lambda a, e: a == e,
    "LessThan": lambda a, e: a < e,
    "LessThanEquals": lambda a, e: a <= e,
    "GreaterThan": lambda a, e: a > e,
    "GreaterThanEquals": lambda a, e: a >= e,
}


def _compare(operator: str, actual: str, expected: str) -> bool:
    if operator == "StringEquals":
        return actual == expected
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    if operator == "StringLike":
        return fnmatch.fnmatchcase(actual, expected)
    if operator in ("ArnEquals", "ArnLike"):
        return arn_like(actual, expected)
    if operator == "Bool":
        return actual.lower() == expected.lower()
    if operator == "IpAddress":
        try:
            return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
        except ValueError:
            return False
    for family, parse in (("Numeric", _number), ("Date", _date)):
        if operator.startswith(family) and operator[len(family) :] in _ORDER:
            a, e = parse(actual), parse(expected)
            return a is not None and e is not None and bool(_ORDER[operator[len(family) :]](a, e))
    raise ValueError(f"unsupported condition operator {operator}")


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
}


def _lookup(context: Context, key: str) -> list[str] | None:
    value = context.get(key.lower())
    if value is None:
        return None
    return list(value) if isinstance(value, list) else [value]


def _clause_holds(operator: str, key: str, expected: Any, context: Context) -> bool:
    set_operator, _, operator = operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    actual = _lookup(context, key)
    if operator == "Null":
        return (actual is None) == (_as_list(expected)[0].lower() == "true")
    negated = operator in _NEGATED
    base = _NEGATED.get(operator, operator)
    wanted = _as_list(expected)
    if actual is None or (set_operator and not actual):
        # ForAllValues over no values is vacuously true; ForAnyValue is false.
        if set_operator == "ForAllValues":
            return True
        return if_exists or (negated and set_operator != "ForAnyValue")

    def matches(value: str) -> bool:
        hit = any(_compare(base, value, e) for e in wanted)
        return not hit if negated else hit

    if set_operator == "ForAllValues":
        return all(matches(v) for v in actual)
    if negated and not set_operator:
        # A negated operator holds only when no value of the key matches any policy value.
        return all(matches(v) for v in actual)
    return any(matches(v) for v in actual)


def condition_holds(condition: dict[str, Any] | None, context: Context) -> bool:
    """True when every operator block of the Condition is satisfied (unknown operators: not satisfied)."""
    for operator, clauses in (condition or {}).items():
        for key, expected in (clauses or {}).items():
            try:
                if not _clause_holds(operator, key, expected, context):
                    return False
            except ValueError:
                return False
    return True


def applicable_statements(policy: dict[str, Any], context: Context) -> dict[str, Any]:
    """The policy with only the statements whose Condition holds (and the Condition dropped)."""
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = []
    for statement in statements:
        if condition_holds(statement.get("Condition"), context):
            kept.append({k: v for k, v in statement.items() if k != "Condition"})
    return {**policy, "Statement": kept}
