"""Approval gates (pure): when a deployment waits for a person, until when, and who may answer.

`rollout.json` may ask for a human (`"approval": {"before": "traffic" | "completion",
"timeout_minutes": N}`, validated by `checks.py`). The hook whose step the gate guards does its tests
first; when they pass it opens the gate instead of reporting, and returns. The verdict is reported
later, with the hooks' authority, by the `deployment_actions` function (approve, reject) or, when
nobody answers, by the same function on the reconciler's word (expire).

A gate moves once: AWAITING -> APPROVED | REJECTED | EXPIRED (`GATE_TRANSITIONS`), as one
conditional ledger write, so two answers can never both count. Every time here is CodeDeploy's
clock (the lifecycle event's start, the Date of its answers), never the local one: the sandbox runs
CodeDeploy faster than real time, and the hook limit is CodeDeploy's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

# The gate position in rollout.json -> the hook that holds it.
POSITIONS: dict[str, str] = {"traffic": "pre_traffic", "completion": "post_traffic"}
HOOK_EVENTS = {"pre_traffic": "BeforeAllowTraffic", "post_traffic": "AfterAllowTraffic"}

# CodeDeploy fails a lifecycle hook that has not reported within one hour of its start.
HOOK_LIMIT = timedelta(hours=1)
# The reconciler runs every five minutes and rejects a gate past its deadline; one run may be late
# by its own length (at most 4 minutes of timeout) plus a margin for the report.
RECONCILER_PERIOD = timedelta(minutes=5)
REPORT_MARGIN = timedelta(minutes=2)
# The latest any gate may wait, counted from the start of the hook's lifecycle event.
LATEST_DEADLINE_AFTER_HOOK_START = HOOK_LIMIT - RECONCILER_PERIOD - REPORT_MARGIN
# What rollout.json may ask for. Checks run before the gate opens (a hook may run 5 minutes), so 45
# minutes keeps every gate inside LATEST_DEADLINE_AFTER_HOOK_START; the cap above holds regardless.
MIN_TIMEOUT_MINUTES = 1
MAX_TIMEOUT_MINUTES = 45
DEFAULT_TIMEOUT_MINUTES = 30
MAX_TEXT = 500  # a comment or reason is a sentence, stored and announced
# The approver kinds that are people; "rollout" is Rollout itself (the reconciler expiring a gate).
PEOPLE = frozenset({"aws", "slack"})


class GateStatus(StrEnum):
    AWAITING = "AWAITING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


GATE_TRANSITIONS: dict[GateStatus, frozenset[GateStatus]] = {
    GateStatus.AWAITING: frozenset({GateStatus.APPROVED, GateStatus.REJECTED, GateStatus.EXPIRED}),
}

# The notification each gate status announces.
GATE_KINDS: dict[GateStatus, str] = {
    GateStatus.AWAITING: "approval.requested",
    GateStatus.APPROVED: "approval.approved",
    GateStatus.REJECTED: "approval.rejected",
    GateStatus.EXPIRED: "approval.expired",
}

# What a caller may ask of a gate, and the status each answer gives.
ANSWERS = {"approve": GateStatus.APPROVED, "reject": GateStatus.REJECTED, "expire": GateStatus.EXPIRED}


@dataclass
class Approver:
    """Who answered: an AWS principal (STS GetCallerIdentity's Arn) or a Slack user."""

    kind: str  # "aws" | "slack" | "rollout"
    id: str
    name: str = ""

    def describe(self) -> str:
        if self.kind == "slack":
            return f"Slack user {self.name or self.id} ({self.id})" if self.name else f"Slack user {self.id}"
        if self.kind == "rollout":
            return "Rollout (nobody answered in time)"
        return self.id

    @classmethod
    def parse(cls, value: Any) -> Approver:
        """An approver from a request; ValueError when it names nobody."""
        if not isinstance(value, dict):
            raise ValueError("the request names no approver")
        kind, ident = str(value.get("kind") or ""), str(value.get("id") or "").strip()
        if kind not in ("aws", "slack", "rollout") or not ident or len(ident) > 2048:
            raise ValueError("the request names no approver")
        return cls(kind, ident, str(value.get("name") or "")[:200])


@dataclass
class Gate:
    """One release's gate, as stored on the release (`approval`) in the ledger."""

    position: str
    hook: str
    deployment_id: str
    execution_id: str
    timeout_minutes: int
    opened_at: str
    deadline_at: str
    status: GateStatus = GateStatus.AWAITING
    answered_by: dict[str, Any] = field(default_factory=dict)
    answered_at: str = ""
    comment: str = ""
    reported: bool = False

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["status"] = str(self.status)
        return record

    @classmethod
    def from_record(cls, record: Any) -> Gate | None:
        if not isinstance(record, dict) or not record.get("execution_id"):
            return None
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in record.items() if k in known}
        try:
            data["status"] = GateStatus(str(data.get("status", GateStatus.AWAITING)))
            data["timeout_minutes"] = int(data.get("timeout_minutes", 0))
            return cls(**data)
        except (TypeError, ValueError):
            return None

    def public(self) -> dict[str, Any]:
        """What notifications, Slack and the CLI show: never the lifecycle hook execution id, which
        would let anyone able to invoke a hook report a verdict for this step."""
        return {
            "position": self.position,
            "status": str(self.status),
            "timeout_minutes": self.timeout_minutes,
            "opened_at": self.opened_at,
            "deadline_at": self.deadline_at,
            "answered_by": dict(self.answered_by) or None,
            "answered_at": self.answered_at or None,
            "comment": self.comment or None,
        }

    @property
    def verdict(self) -> str:
        """What CodeDeploy is told for an answered gate."""
        return "Succeeded" if self.status == GateStatus.APPROVED else "Failed"


def wanted(checks: dict[str, Any] | None, hook: str) -> dict[str, Any] | None:
    """The approval settings when `hook` holds the release's gate, else None."""
    approval = (checks or {}).get("approval")
    if isinstance(approval, dict) and POSITIONS.get(str(approval.get("before"))) == hook:
        return approval
    return None


def open_gate(
    approval: dict[str, Any],
    deployment_id: str,
    execution_id: str,
    now: datetime,
    hook_started: datetime | None,
) -> Gate:
    """A new gate opened at `now`: waits `timeout_minutes`, never past the hook's safe limit."""
    position = str(approval["before"])
    minutes = int(approval.get("timeout_minutes") or DEFAULT_TIMEOUT_MINUTES)
    deadline = now + timedelta(minutes=minutes)
    latest = (hook_started or now) + LATEST_DEADLINE_AFTER_HOOK_START
    return Gate(
        position=position,
        hook=POSITIONS[position],
        deployment_id=deployment_id,
        execution_id=execution_id,
        timeout_minutes=minutes,
        opened_at=iso(now),
        deadline_at=iso(min(deadline, latest)),
    )


def refusal(gate: Gate | None, deployment_id: str, action: str, now: datetime) -> str:
    """Why `action` on the gate of `deployment_id` must be refused ('' when it may proceed).

    Fails closed: no gate, another deployment's gate, an answered gate, a gate past its deadline
    (for approve and reject) or not yet past it (for expire) are all refused with the reason.
    """
    if action not in ANSWERS:
        return f"unknown action {action!r} (allowed: {', '.join(sorted(ANSWERS))})"
    if gate is None:
        return f"deployment {deployment_id} has no approval gate"
    if gate.deployment_id != deployment_id:
        return f"the gate belongs to deployment {gate.deployment_id}, not {deployment_id}"
    if gate.status != GateStatus.AWAITING:
        who = Approver.parse(gate.answered_by).describe() if gate.answered_by else "nobody"
        return f"the gate was already answered: {gate.status.lower()} by {who} at {gate.answered_at}"
    if action == "expire":
        return "" if past(gate.deadline_at, now) else f"the gate is open until {gate.deadline_at}"
    if past(gate.deadline_at, now):
        return f"the gate expired at {gate.deadline_at}; the deployment is being rejected"
    return ""


def answered(gate: Gate, action: str, by: Approver, now: datetime, text: str) -> Gate:
    """The gate as answered (the caller checked `refusal` first)."""
    status = ANSWERS[action]
    if status not in GATE_TRANSITIONS.get(gate.status, frozenset()):
        raise ValueError(f"a {gate.status} gate cannot become {status}")
    return Gate(
        **{
            **{f.name: getattr(gate, f.name) for f in fields(gate)},
            "status": status,
            "answered_by": asdict(by),
            "answered_at": iso(now),
            "comment": " ".join(text.split())[:MAX_TEXT],
        }
    )


def failure_reason(gate: Gate) -> str:
    """The release's reason for a gate that was not approved."""
    label = "traffic" if gate.position == "traffic" else "completion"
    if gate.status == GateStatus.EXPIRED:
        return (
            f"approval before {label} timed out: nobody answered within {gate.timeout_minutes} "
            f"minute(s) (deadline {gate.deadline_at})"
        )
    who = Approver.parse(gate.answered_by).describe() if gate.answered_by else "someone"
    return f"approval before {label} rejected by {who}" + (f": {gate.comment}" if gate.comment else "")


def due(gate: Gate | None, now: datetime) -> bool:
    """Whether an awaiting gate is past its deadline (the reconciler's question)."""
    if gate is None or gate.status != GateStatus.AWAITING:
        return False
    return past(gate.deadline_at, now)


def past(deadline_at: str, now: datetime) -> bool:
    """Whether `now` is at or past the deadline. Fail closed: a deadline or a clock without a time
    zone (or unreadable) cannot be compared, so the deadline counts as passed (never approved, expired)."""
    deadline = parse_iso(deadline_at)
    return deadline is None or now.tzinfo is None or now >= deadline


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(stamp: str) -> datetime | None:
    """An ISO 8601 time with its zone; None when unreadable or without a zone (a naive time cannot be
    compared with CodeDeploy's clock)."""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def stored_gate(record: dict[str, Any] | None, hook: str, execution_id: str) -> Gate | None:
    """The gate of a release's approval record when it belongs to this hook execution (a repeated invocation)."""
    gate = Gate.from_record(record)
    if gate is not None and gate.hook == hook and gate.execution_id == execution_id:
        return gate
    return None
