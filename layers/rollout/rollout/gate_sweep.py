"""The reconciler's side of approval gates: hand those past their deadline (and answers whose report
was lost) to `deployment_actions`, the only function besides the hooks that reports a hook's verdict
(see `approvals`).

Apart from `approvals`, which is `deployment_actions`' side, so that the reconciler does not load it
at init.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollout import codedeploy_ops, lambda_ops
from rollout.observability import logger
from rollout.states import State
from rollout.transitions import ReleaseContext

if TYPE_CHECKING:
    from rollout.gates import Gate


def sweep(
    ctx: ReleaseContext,
    actions_function: str,
    hand_over: Callable[[str, dict[str, Any]], None] = lambda_ops.invoke_async,
) -> dict[str, int]:
    """Hand gates past their deadline (and answers whose report was lost) to deployment_actions.

    Each gate is handled on its own; one that raises is counted and the sweep goes on.
    """
    counts = {"expired": 0, "reported": 0, "failed": 0}
    if not actions_function:
        return counts
    try:
        deploying = ctx.ledger.open_releases(State.DEPLOYING)
    except Exception:
        logger.exception("could not list the deploying releases for their gates")
        counts["failed"] += 1
        return counts
    gated = [release for release in deploying if release.approval]
    if not gated:
        return counts
    # Imported here: approval gates are opt-in (rollout.json), and most runs find no release with one.
    from rollout.gates import Gate, GateStatus

    for release in gated:
        gate = Gate.from_record(release.approval)
        if gate is None or (gate.status != GateStatus.AWAITING and gate.reported):
            continue
        try:
            action = _sweep_action(gate)
            if action:
                by = {"kind": "rollout", "id": ctx.settings.reconciler_function or "reconciler"}
                hand_over(actions_function, {"action": action, "deployment_id": gate.deployment_id, "by": by})
                counts["expired" if action == "expire" else "reported"] += 1
        except Exception:
            logger.exception("could not sweep the gate", extra={"release_id": release.release_id})
            counts["failed"] += 1
    return counts


def _sweep_action(gate: Gate) -> str:
    from rollout import gates  # loaded by sweep already, for a release with a gate

    info, clock = codedeploy_ops.deployment_and_clock(gate.deployment_id)
    if info.get("status") not in codedeploy_ops.ACTIVE_STATUSES:
        return ""
    if gate.status != gates.GateStatus.AWAITING:
        return "report"
    return "expire" if gates.due(gate, clock or datetime.now(UTC)) else ""
