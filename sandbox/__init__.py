"""A local AWS endpoint for Rollout: moto for state, plus a Lambda runtime, a CodeDeploy engine,
event delivery, alarm evaluation and a fast clock. Never imports `rollout` or `functions`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.core import Sandbox

__all__ = ["Sandbox"]


def __getattr__(name: str) -> Any:
    # Lazy so that `sandbox.clock` and friends import without loading moto.
    if name == "Sandbox":
        from sandbox.core import Sandbox

        return Sandbox
    raise AttributeError(name)
