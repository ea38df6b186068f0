"""The actions the dashboard offers: each one is a CLI operation, found by name, called the same way.

An action is one line in ACTIONS: its name, its button, what it acts on, and the CLI function that does
it (`module:function`, called as `function(backend, target, **fields)`). An action whose function does
not exist in this checkout is left out: its button is not shown and posting it answers 404. So when
`rollout rollback`, `approve`/`reject` or `freeze`/`unfreeze` land in the CLI, their buttons appear.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cli.backend import Backend
from cli.errors import CliError, ExitCode

DEPLOYMENT = "deployment"  # the target is a deployment id, shown while the deployment runs
GATE = "gate"  # the target is a deployment id, shown while its release awaits approval
FUNCTION = "function"  # the target is a function name


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    scope: str
    operation: str  # "module:function", called as function(backend, target, **fields)
    confirm: str  # the question asked before acting; {target} names what it acts on
    fields: tuple[str, ...] = ()  # text the person gives: reason, comment, ...
    danger: bool = False
    # What the page showed that the operation checks still holds (e.g. the live version a rollback
    # leaves): the page sends it with the request; a stale page is refused, not acted on.
    seen: tuple[str, ...] = ()

    def resolve(self) -> Callable[..., Any] | None:
        module_name, _, attribute = self.operation.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
        found = getattr(module, attribute, None)
        return found if callable(found) else None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("operation")
        data["fields"] = list(self.fields)
        data["seen"] = list(self.seen)
        return data


# One line per action. The last five are being added to the CLI (issue 15): until their functions
# exist they are not offered.
ACTIONS: tuple[Action, ...] = (
    Action("abort", "Abort", DEPLOYMENT, "cli.operations:abort_deployment", "Stop deployment {target} and roll traffic back to the previous version?", danger=True),
    Action("approve", "Approve", GATE, "cli.approvals:approve_deployment", "Approve the gate of deployment {target}?", ("comment",)),
    Action("reject", "Reject", GATE, "cli.approvals:reject_deployment", "Reject deployment {target}? It rolls back.", ("reason",), danger=True),
    Action("rollback", "Roll back", FUNCTION, "cli.actions:rollback_function", "Roll {target} back to its previous good version?", ("reason",), danger=True, seen=("live_version",)),
    Action("freeze", "Freeze", FUNCTION, "cli.actions:freeze_functions", "Freeze {target}? Uploads are held until it is unfrozen.", ("reason",)),
    Action("unfreeze", "Unfreeze", FUNCTION, "cli.actions:unfreeze_functions", "Unfreeze {target}? The newest held upload starts."),
)  # fmt: skip


def available(actions: tuple[Action, ...] | None = None) -> dict[str, Action]:
    """The actions whose CLI function exists in this checkout, by name."""
    return {action.name: action for action in actions or ACTIONS if action.resolve() is not None}


def run(action: Action, backend: Backend, target: str, fields: dict[str, Any]) -> Any:
    """Call the action's CLI function; its answer as JSON-ready data. CliError passes through."""
    operation = action.resolve()
    if operation is None:
        raise CliError(f"action {action.name} is not available in this version", ExitCode.NOT_FOUND)
    if not target:
        raise CliError(f"{action.name}: say which {action.scope} to act on", ExitCode.USAGE)
    given = {name: str(fields.get(name) or "") for name in (*action.fields, *action.seen) if fields.get(name)}
    result = operation(backend, target, **given)
    if hasattr(result, "to_json"):
        return result.to_json()
    return (
        result
        if isinstance(result, dict | list | str | int | float | bool) or result is None
        else str(result)
    )
