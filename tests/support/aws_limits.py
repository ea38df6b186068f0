"""AWS's own limits, checked on every call the package makes in the tests.

botocore validates types, required members and minimums on the client, but not the `max` lengths,
sizes and enums its service models carry: AWS answers those with a ValidationException (or worse,
a release that ends FAILED after a version was published). The `aws_limits` fixture hooks the
package's clients and records every parameter beyond its model's bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.model import Shape


@dataclass
class LimitViolations:
    found: list[str] = field(default_factory=list)
    calls_checked: int = 0

    def check(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls_checked += 1
        operation = f"{model.service_model.service_name}.{model.name}"
        self.found.extend(f"{operation}: {problem}" for problem in violations(params, model.input_shape, ""))


def violations(value: Any, shape: Shape | None, path: str) -> Iterator[str]:
    """Where `value` breaks its shape's max length/size or enum (recursively)."""
    if shape is None or value is None:
        return
    limit = shape.metadata.get("max")
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                yield from violations(value[name], member, f"{path}.{name}" if path else name)
    elif shape.type_name == "list" and isinstance(value, list | tuple):
        if limit is not None and len(value) > limit:
            yield f"{path} has {len(value)} items, at most {limit}"
        for index, item in enumerate(value):
            yield from violations(item, shape.member, f"{path}[{index}]")  # type: ignore[attr-defined]
    elif shape.type_name == "map" and isinstance(value, dict):
        if limit is not None and len(value) > limit:
            yield f"{path} has {len(value)} entries, at most {limit}"
        for key, item in value.items():
            yield from violations(key, shape.key, f"{path} key")  # type: ignore[attr-defined]
            yield from violations(item, shape.value, f"{path}[{key!r}]")  # type: ignore[attr-defined]
    elif shape.type_name == "string" and isinstance(value, str):
        if limit is not None and len(value) > limit:
            yield f"{path} is {len(value)} characters, at most {limit}"
        if shape.enum and value not in shape.enum:
            yield f"{path} is {value!r}, not one of {shape.enum}"
    elif _too_many_bytes(shape, value, limit):
        yield f"{path} is {len(value)} bytes, at most {limit}"


def _too_many_bytes(shape: Shape, value: Any, limit: int | None) -> bool:
    return (
        shape.type_name == "blob"
        and isinstance(value, bytes | bytearray)
        and limit is not None
        and len(value) > limit
    )
