"""What a hook's outcome is and how checks are judged into one: shared by the hooks and by a first
release, which runs the same checks before its alias exists (rollout.first_release)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollout.check_runner import (
    FAILED,
    PROBE_EVENT,
    PROBE_MAX_DURATION_MS,
    PROBE_NAME,
    SUCCEEDED,
    Check,
    CheckResult,
    excerpt,
)
from rollout.errors import HookEventError
from rollout.ledger import now_iso

PRE_TRAFFIC = "pre_traffic"
POST_TRAFFIC = "post_traffic"
HOOKS = (PRE_TRAFFIC, POST_TRAFFIC)
LABELS = {PRE_TRAFFIC: "pre-traffic", POST_TRAFFIC: "post-traffic"}


@dataclass(frozen=True)
class LifecycleEvent:
    deployment_id: str
    execution_id: str

    @classmethod
    def parse(cls, event: Any) -> LifecycleEvent:
        if not isinstance(event, Mapping):
            raise HookEventError(f"expected a lifecycle hook event object, got {type(event).__name__}")
        # Read as the plain mapping it is: Powertools' CodeDeployLifecycleHookEvent would add nothing
        # here but the import of its whole data_classes package (some 40 event modules) at init.
        ids = []
        for name in ("DeploymentId", "LifecycleEventHookExecutionId"):
            value = event.get(name)
            if not isinstance(value, str) or not value:
                raise HookEventError(f"the event has no {name}")
            ids.append(value)
        return cls(*ids)


@dataclass
class HookOutcome:
    hook: str
    verdict: str
    reason: str
    checks: list[CheckResult] = field(default_factory=list)
    canary: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    checks_origin: str = ""
    tested: str = ""
    awaiting_approval: bool = False

    @property
    def passed(self) -> bool:
        return self.verdict == SUCCEEDED

    def to_record(self, event: LifecycleEvent, reported: bool) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "checks": [c.to_record() for c in self.checks],
            "canary": self.canary,
            "warnings": list(self.warnings),
            "checks_origin": self.checks_origin,
            "tested": self.tested,
            "awaiting_approval": self.awaiting_approval,
            "deployment_id": event.deployment_id,
            "execution_id": event.execution_id,
            "reported": reported,
            "at": now_iso(),
        }


def start_probe() -> Check:
    """Without pre-traffic checks, one invocation still proves the version imports and starts."""
    return Check(PROBE_NAME, PROBE_EVENT, max_duration_ms=PROBE_MAX_DURATION_MS, probe=True)


def pre_traffic_plan(checks: Mapping[str, Any] | None, origin: str) -> tuple[list[Check], str]:
    """The pre-traffic checks to run and the warning to record ('' for none): the configured checks;
    without any, the start probe; with the probe switched off too, nothing (the warning says so)."""
    specs = (checks or {}).get(PRE_TRAFFIC) or []
    if specs:
        return [Check.from_spec(spec) for spec in specs], ""
    if (checks or {}).get("probe") is False:
        return [], f"no pre-traffic checks configured ({origin}) and the start probe is off; nothing tested"
    return [start_probe()], f"no pre-traffic checks configured ({origin}); probed that the version starts"


def judge_checks(outcome: HookOutcome, target: str) -> None:
    label = LABELS[outcome.hook]
    failed = [c for c in outcome.checks if not c.passed]
    if not failed:
        outcome.verdict = SUCCEEDED
        outcome.reason = f"{len(outcome.checks)} {label} check(s) passed against {target}"
        return
    first = failed[0]
    detail = first.error + (f": {excerpt(first.excerpt, 200)}" if first.excerpt else "")
    more = f" (and {len(failed) - 1} more of {len(outcome.checks)} failed)" if len(failed) > 1 else ""
    outcome.verdict = FAILED
    outcome.reason = f"{label} check '{first.name}' failed against {target}: {detail}{more}"
