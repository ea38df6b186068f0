"""Request constraints the service checks and botocore does not: `max` lengths and sizes, numeric ranges,
`pattern`s and `enum`s from the botocore service model (botocore's ParamValidator checks types, required
members and `min` only). AWS answers a violation with ValidationException (400) and a message such as
"1 validation error detected: Value 'x' at 'functionName' failed to satisfy constraint: Member must have
length less than or equal to 64" (the Smithy/Coral validation message every JSON service returns).

Checked for the JSON services whose errors have that shape (Lambda, DynamoDB, CloudWatch Logs,
EventBridge, Secrets Manager); CodeDeploy validates in its own engine, S3 limits its user metadata (2 KB) and
its keys (1,024 bytes).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from botocore.model import Shape

VALIDATED = frozenset({"lambda", "dynamodb", "logs", "events", "secretsmanager"})
# Shapes a service checks with its own error instead: Lambda answers an unknown Runtime with
# InvalidParameterValueException ("... Member must satisfy enum value set: [...] or be a valid ARN"),
# which sandbox/lambda_api.py gives.
OWN_CHECKS = frozenset({("lambda", "Runtime")})
MAX_ERRORS = 10
S3_METADATA_LIMIT = (
    2048  # "the user-defined metadata is limited to 2 KB in size" (S3 user guide, Object metadata)
)
# "The object key name is a sequence of Unicode characters with UTF-8 encoding of up to 1,024 bytes long" (S3
# user guide, "Naming Amazon S3 objects"); a longer one is KeyTooLongError, "Your key is too long" (400, S3 API
# reference, "Error responses"). moto stores any key.
S3_KEY_LIMIT = 1024


@cache
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # a Java-only construct: the sandbox cannot check it, so it does not


def _path(parent: str, member: str) -> str:
    name = member[:1].lower() + member[1:]
    return f"{parent}.{name}" if parent else name


def _shown(value: Any) -> str:
    return str(value) if not isinstance(value, dict | list) else "[...]"


def violations(shape: Shape, value: Any, path: str = "", service: str = "") -> list[str]:
    """The constraint messages for `value` against `shape`, in AWS's wording."""
    found: list[str] = []
    if (service, shape.name) in OWN_CHECKS:
        return found
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                found += violations(member, value[name], _path(path, name), service)
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"Member must have length less than or equal to {meta['max']}")
        for item in value:
            found += violations(shape.member, item, path, service)
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"Member must have length less than or equal to {meta['max']}")
        for key, item in value.items():
            found += violations(shape.key, key, path, service)
            found += violations(shape.value, item, path, service)
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"Member must have length less than or equal to {meta['max']}")
        if shape.enum and value not in shape.enum:
            found.append(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        regex = _regex(meta["pattern"]) if "pattern" in meta else None
        if regex is not None and not regex.fullmatch(value):
            found.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if "max" in meta and value > meta["max"]:
            found.append(f"Member must have value less than or equal to {meta['max']}")
        if "min" in meta and value < meta["min"]:
            found.append(f"Member must have value greater than or equal to {meta['min']}")
    return [
        message
        if message.startswith("Value ")
        else f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: {message}"
        for message in found
    ]


def message(problems: list[str]) -> str:
    shown = problems[:MAX_ERRORS]
    count = len(problems)
    return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(shown)


def s3_metadata_size(headers: dict[str, str]) -> int:
    """User metadata size as S3 counts it: the UTF-8 bytes of each x-amz-meta- key (without the prefix)
    and value ("Working with object metadata": "the sum of the number of bytes in the UTF-8 encoding of
    each key and value")."""
    total = 0
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith("x-amz-meta-"):
            total += len(lowered.removeprefix("x-amz-meta-").encode()) + len(value.encode())
    return total
