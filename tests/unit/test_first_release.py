"""A first release's checks, run against the new version before its alias exists (rollout.first_release)."""

from __future__ import annotations

import json
from typing import Any

from rollout.check_runner import Invocation
from rollout.deadlines import Deadline
from rollout.first_release import evaluate
from rollout.ledger import Release
from rollout.states import ReasonCode

HEALTH = {"name": "health", "event": {"path": "/health"}, "expect": {"statusCode": 200}}
VIA_ALIAS = {"name": "orders via alias", "event": {"path": "/orders"}, "expect": {"statusCode": 200}}


class Target:
    """A function that answers each path with a status, and records what it was asked."""

    def __init__(self, statuses: dict[str, int] | None = None, start_error: str = "") -> None:
        self.statuses = statuses or {}
        self.start_error = start_error
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, function: str, qualifier: str, payload: bytes) -> Invocation:
        event = json.loads(payload)
        self.calls.append((function, qualifier, event))
        if self.start_error:
            body = {"errorType": self.start_error, "errorMessage": "No module named 'app'"}
            return Invocation(json.dumps(body).encode(), "Unhandled", qualifier)
        status = self.statuses.get(str(event.get("path")), 200)
        return Invocation(json.dumps({"statusCode": status}).encode(), None, qualifier)


def first(checks: dict[str, Any] | None) -> Release:
    return Release("orders", "r1", alias="live", target_version="1", checks=checks)


def checks(**fields: Any) -> dict[str, Any]:
    return {"pre_traffic": [HEALTH], "post_traffic": [VIA_ALIAS], **fields}


def test_both_hooks_checks_run_against_the_new_version_and_pass() -> None:
    target = Target()
    verdict = evaluate(first(checks()), "1", target, Deadline())
    assert verdict.refusal is None
    assert [(o.hook, o.verdict) for o in verdict.outcomes] == [
        ("pre_traffic", "Succeeded"),
        ("post_traffic", "Succeeded"),
    ]
    # The exact version, never an alias (there is none yet, and it would name whatever it invokes).
    assert [(f, q, e["path"]) for f, q, e in target.calls] == [
        ("orders", "1", "/health"),
        ("orders", "1", "/orders"),
    ]
    assert "no earlier version to compare a canary with" in verdict.outcomes[-1].warnings[-1]


def test_a_failed_pre_traffic_check_refuses_the_alias_and_skips_the_post_traffic_checks() -> None:
    target = Target({"/health": 503})
    verdict = evaluate(first(checks()), "1", target, Deadline())
    assert verdict.refusal is not None and verdict.refusal.code == ReasonCode.CHECKS_FAILED
    assert "pre-traffic check 'health' failed against version 1" in verdict.refusal.reason
    assert [o.hook for o in verdict.outcomes] == ["pre_traffic"]
    assert len(target.calls) == 1


def test_a_failed_post_traffic_check_refuses_the_alias() -> None:
    verdict = evaluate(first(checks()), "1", Target({"/orders": 500}), Deadline())
    assert verdict.refusal is not None and verdict.refusal.code == ReasonCode.CHECKS_FAILED
    assert "post-traffic check 'orders via alias' failed" in verdict.refusal.reason
    assert [(o.hook, o.verdict) for o in verdict.outcomes] == [
        ("pre_traffic", "Succeeded"),
        ("post_traffic", "Failed"),
    ]


def test_without_checks_the_start_probe_proves_the_version_starts() -> None:
    healthy = evaluate(first(None), "1", Target(), Deadline())
    assert healthy.refusal is None
    assert [c.name for c in healthy.outcomes[0].checks] == ["start probe"]

    broken = evaluate(first(None), "1", Target(start_error="Runtime.ImportModuleError"), Deadline())
    assert broken.refusal is not None and "cannot start (Runtime.ImportModuleError)" in broken.refusal.reason


def test_checks_that_cannot_finish_in_time_refuse_the_alias() -> None:
    spent = Deadline(at=0.0)  # the invocation has no time left to wait for an answer
    verdict = evaluate(first(checks()), "1", Target(), spent)
    assert verdict.refusal is not None and verdict.refusal.code == ReasonCode.CHECKS_FAILED


def test_an_approval_cannot_be_waited_for_so_the_alias_is_refused_untested() -> None:
    target = Target()
    verdict = evaluate(
        first(checks(approval={"before": "traffic", "timeout_minutes": 30})), "1", target, Deadline()
    )
    assert verdict.refusal is not None and verdict.refusal.code == ReasonCode.APPROVAL_UNAVAILABLE
    assert (
        "approval before traffic" in verdict.refusal.reason and "create the alias" in verdict.refusal.reason
    )
    assert target.calls == []


def test_with_the_probe_off_and_no_checks_nothing_is_invoked_and_the_record_says_so() -> None:
    target = Target()
    verdict = evaluate(
        first({"pre_traffic": [], "post_traffic": [], "probe": False}), "1", target, Deadline()
    )
    assert verdict.refusal is None and target.calls == []
    assert all(o.warnings and not o.checks for o in verdict.outcomes)
