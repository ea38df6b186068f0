"""A function's first release is tested before its alias exists (fail closed).

CodeDeploy cannot make a function's first release: a Lambda AppSpec shifts an alias from a
CurrentVersion to a TargetVersion, and there is no alias yet (CODEDEPLOY-FACTS). So the starter
creates the alias itself (`starter._bootstrap`), no hook runs, and without this module the first
build would reach whatever invokes the alias untested. Before the alias is created, the release's
checks run against the exact new version, as the hooks would run them:

- its pre-traffic checks, or the start probe when it has none (as the pre-traffic hook does);
- its post-traffic checks, against the version the alias is about to invoke (the post-traffic
  hook runs them through the alias, which does not exist yet).

There is no earlier version to compare a canary with. An approval gate waits on a CodeDeploy
lifecycle event, which a first release does not have, so a release whose checks ask for approval
is refused rather than put live unapproved. Any failed or unrun check refuses the release too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rollout.check_runner import FAILED, SUCCEEDED, Check, Invoke, run_checks
from rollout.checks import ChecksError, parse_checks
from rollout.deadlines import Deadline
from rollout.errors import Rejected
from rollout.hook_outcome import (
    LABELS,
    POST_TRAFFIC,
    PRE_TRAFFIC,
    HookOutcome,
    LifecycleEvent,
    judge_checks,
    pre_traffic_plan,
)
from rollout.ledger import Release
from rollout.states import ReasonCode

# A hook has 300 s (template.yaml: the hooks' Timeout); a start with no invocation limit (the CLI)
# gives the first release's checks no more than that.
MAX_SECONDS = 300.0
# A first release has no lifecycle event: its records name no deployment and no execution.
NO_LIFECYCLE = LifecycleEvent(deployment_id="", execution_id="")


@dataclass
class Verdict:
    """The outcomes of a first release's checks, and why its alias must not be created (if so)."""

    outcomes: list[HookOutcome] = field(default_factory=list)
    refusal: Rejected | None = None


def evaluate(
    release: Release,
    version: str,
    invoke: Invoke,
    deadline: Deadline,
    clock: Callable[[], float] = time.monotonic,
) -> Verdict:
    """The pre-traffic, then the post-traffic, outcome of `release`'s checks against `version`.

    The post-traffic checks run only once the pre-traffic ones passed (as CodeDeploy runs them).
    Nothing here raises for a failed check: the verdict's refusal says why.
    """
    until = clock() + min(MAX_SECONDS, deadline.remaining())
    tested = f"{release.function} version {version} (first release: before its alias {release.alias} exists)"
    origin = f"the checks of release {release.release_id}"
    try:
        checks = parse_checks(release.checks) if release.checks else None
    except ChecksError as exc:  # stored checks that no longer parse: nothing can be proven
        unreadable = HookOutcome(
            PRE_TRAFFIC, FAILED, f"the checks stored on {origin} are invalid: {exc}", tested=tested
        )
        return _refused([unreadable], ReasonCode.CHECKS_FAILED)
    if checks is None:
        origin = f"release {release.release_id} has no checks"
    approval = (checks or {}).get("approval")
    if approval:
        reason = (
            f"its checks ask for approval before {approval['before']}, and a first release has no "
            "deployment to hold for one: create the alias on a version you approved, or upload this "
            "build once without an approval"
        )
        gated = HookOutcome(PRE_TRAFFIC, FAILED, reason, checks_origin=origin, tested=tested)
        return _refused([gated], ReasonCode.APPROVAL_UNAVAILABLE)
    outcomes: list[HookOutcome] = []
    for hook in (PRE_TRAFFIC, POST_TRAFFIC):
        outcome = HookOutcome(hook, SUCCEEDED, "", checks_origin=origin, tested=tested)
        outcomes.append(outcome)
        if hook == PRE_TRAFFIC:
            to_run, warning = pre_traffic_plan(checks, origin)
        else:
            to_run = [Check.from_spec(spec) for spec in (checks or {}).get(hook) or []]
            warning = "" if to_run else f"no {LABELS[hook]} checks configured ({origin})"
        if warning:
            outcome.warnings.append(warning)
        if not to_run:
            outcome.reason = warning
            continue
        outcome.checks = run_checks(
            to_run, invoke, release.function, version, until, expected_version=version, clock=clock
        )
        judge_checks(outcome, f"version {version}")
        if not outcome.passed:
            return _refused(outcomes, ReasonCode.CHECKS_FAILED)
    outcomes[-1].warnings.append("first release: no earlier version to compare a canary with")
    return Verdict(outcomes)


def _refused(outcomes: list[HookOutcome], code: str) -> Verdict:
    return Verdict(outcomes, Rejected(code, f"first release not put live: {outcomes[-1].reason}"))


def records(outcomes: list[HookOutcome]) -> dict[str, Any]:
    """The outcomes as the release's `hook_results`, where the hooks record theirs (`rollout status`,
    the dashboard, notifications)."""
    return {o.hook: o.to_record(NO_LIFECYCLE, reported=False) for o in outcomes}
