"""What a resource handler gets: its resolved properties, names, clients, and a place for notes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.provision.errors import TemplateError
from sandbox.provision.template import LocalCode


@dataclass
class Created:
    """A created resource: what `Ref` returns, and what `Fn::GetAtt` can read."""

    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class StackContext:
    name: str
    region: str
    account_id: str
    partition: str
    local_code: LocalCode
    client: Callable[[str], Any]
    notes: list[str] = field(default_factory=list)

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account_id if account else ''}:{resource}"
        )


_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _suffix(seed: str, length: int = 12) -> str:
    # Deterministic where CloudFormation is random: provisioning the same stack twice gives the same names.
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    chars = []
    for _ in range(length):
        digest, index = divmod(digest, len(_SUFFIX_ALPHABET))
        chars.append(_SUFFIX_ALPHABET[index])
    return "".join(chars)


def generated_name(stack_name: str, logical_id: str, max_length: int, *, lowercase: bool = False) -> str:
    """CloudFormation's naming for resources without an explicit name: <stack>-<LogicalId>-<SUFFIX>,
    with the stack name and logical id shortened (stack first) when the whole would be too long."""
    suffix = _suffix(f"{stack_name}/{logical_id}", 12 if max_length >= 40 else 6)
    room = max_length - len(suffix) - 2
    stack_part, logical_part = stack_name, logical_id
    if len(stack_part) + len(logical_part) > room:
        logical_part = logical_part[: max(room // 2, room - len(stack_part))]
        stack_part = stack_part[: room - len(logical_part)]
    name = f"{stack_part}-{logical_part}-{suffix}"
    return name.lower() if lowercase else name


@dataclass
class ResourceContext:
    logical_id: str
    resource_type: str
    properties: dict[str, Any]
    stack: StackContext

    def client(self, service: str) -> Any:
        return self.stack.client(service)

    def name(self, prop: str | None, max_length: int, *, lowercase: bool = False, suffix: str = "") -> str:
        """The explicit name in property `prop`, else a generated CloudFormation-style name."""
        if prop is not None and self.properties.get(prop):
            value = self.properties[prop]
            if not isinstance(value, str):
                raise TemplateError(f"{self.logical_id}: {prop} must be a string, got {value!r}")
            return value
        return (
            generated_name(self.stack.name, self.logical_id, max_length - len(suffix), lowercase=lowercase)
            + suffix
        )

    def note(self, message: str) -> None:
        self.stack.notes.append(f"{self.logical_id}: {message}")

    def get(self, prop: str, default: Any = None) -> Any:
        return self.properties.get(prop, default)

    def require(self, prop: str) -> Any:
        if prop not in self.properties:
            raise TemplateError(f"{self.logical_id} ({self.resource_type}) needs property {prop}")
        return self.properties[prop]
