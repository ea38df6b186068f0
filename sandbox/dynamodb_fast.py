"""Where the sandbox swaps a piece of moto's DynamoDB code for a faster one that answers exactly the same.

Each replacement is recorded with what it replaced, so that tests can put moto's own code back for a
request and compare the two answers (tests/integration/test_sandbox_dynamodb_speed.py).
"""

from __future__ import annotations

from typing import Any

MISSING = object()  # the class had no attribute of its own by that name (it inherited one)

# (owner, attribute name, the owner's own attribute before the swap, or MISSING)
REPLACED: list[tuple[Any, str, Any]] = []


def replace(owner: Any, name: str, new: Any) -> None:
    before = owner.__dict__.get(name, MISSING) if isinstance(owner, type) else getattr(owner, name)
    REPLACED.append((owner, name, before))
    setattr(owner, name, new)
