"""What a CodeDeploy deployment state means for a release, and why it ended as it did (pure).

CodeDeploy says *that* a deployment failed or stopped; the hooks recorded *which check* failed
and what it returned. The outcome combines both into one reason a person can act on.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, NamedTuple

from rollout.ledger import Release
from rollout.states import ReasonCode, State, notification_kind
from rollout.targets import AliasRouting


class DeploymentState(StrEnum):
    """`detail.state` of a CodeDeploy Deployment State-change Notification."""

    START = "START"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    STOP = "STOP"
    READY = "READY"


# GetDeployment status of a deployment that has ended, as the state its final event carries.
# The reconciler uses this to replay an event that never arrived.
FINAL_STATUS_TO_STATE: dict[str, DeploymentState] = {
    "Succeeded": DeploymentState.SUCCESS,
    "Failed": DeploymentState.FAILURE,
    "Stopped": DeploymentState.STOP,
}
ACTIVE_STATUSES = frozenset({"Created", "Queued", "InProgress", "Baking", "Ready"})

HOOK_LABELS = {"pre_traffic": "pre-traffic", "post_traffic": "post-traffic"}
REASON_LIMIT = 700
EXCERPT_LIMIT = 300


class Outcome(NamedTuple):
    """The transition a deployment state asks for; `target` None means nothing to change."""

    target: State | None
    reason_code: str = ""
    reason: str = ""

    @property
    def kind(self) -> str | None:
        """The notification the transition announces (a deployment's outcome: it was deploying)."""
        return notification_kind(State.DEPLOYING, self.target) if self.target else None

    def fields(self) -> dict[str, Any]:
        """Ledger fields written with the transition."""
        changes: dict[str, Any] = {}
        if self.reason_code:
            changes["reason_code"] = self.reason_code
        if self.reason:
            changes["reason"] = self.reason
        return changes


def decide(
    state: DeploymentState,
    release: Release,
    deployment: dict[str, Any] | None = None,
    alias: AliasRouting | None = None,
    firing_alarms: list[str] | None = None,
) -> Outcome:
    """The outcome of `state` for `release`.

    `deployment` is GetDeployment's deploymentInfo (None when it could not be read); `alias` is
    where the release's alias sends traffic now (None when unknown); `firing_alarms` are the
    deployment's alarms CloudWatch reports in ALARM (names the alarm when the message does not).
    """
    if state == DeploymentState.START:
        return Outcome(State.DEPLOYING)
    if state == DeploymentState.SUCCESS:
        unproven = failed_hook_reason(release)
        if unproven:
            return Outcome(
                State.FAILED,
                ReasonCode.UNPROVEN_SUCCESS,
                _clip(_unproven_success(release, unproven), REASON_LIMIT),
            )
        return Outcome(State.SUCCEEDED)
    if state in (DeploymentState.FAILURE, DeploymentState.STOP):
        code, reason = explain_failure(state, release, deployment or {}, firing_alarms or [])
        rolled_back, traffic = traffic_after_failure(release, deployment or {}, alias)
        if traffic:
            reason = f"{reason} ({traffic})"
        return Outcome(State.ROLLED_BACK if rolled_back else State.FAILED, code, _clip(reason, REASON_LIMIT))
    # READY is a blue/green wait state that Lambda deployments do not use.
    return Outcome(None)


def _unproven_success(release: Release, hook_reason: str) -> str:
    """Why a deployment CodeDeploy completed is not a success: the status CodeDeploy acted on was not
    the one Rollout's hook recorded (a duplicate invocation of the same execution, or someone with the
    hooks' reporting permission, reported first), so the version went live unproven."""
    return (
        f"CodeDeploy completed deployment {release.deployment_id or '(unknown)'}, so alias "
        f"{release.alias or 'live'} serves version {release.target_version}, but Rollout did not pass it: "
        f"{hook_reason}; roll it back (rollout rollback {release.function})"
    )


def traffic_after_failure(
    release: Release, deployment: dict[str, Any], alias: AliasRouting | None
) -> tuple[bool, str]:
    """Whether traffic is back on the old version, and a note when people should look at the alias.

    The alias is the ground truth. When it has not moved back yet but CodeDeploy started a
    rollback deployment, the rollback is under way and the release counts as rolled back.
    """
    rollback = deployment.get("rollbackInfo") or {}
    if alias is not None and release.current_version and alias.serves_only(release.current_version):
        return True, ""
    if rollback.get("rollbackDeploymentId"):
        return (
            True,
            f"rollback deployment {rollback['rollbackDeploymentId']} restores v{release.current_version}",
        )
    if alias is None:
        return False, "alias state unknown"
    return False, f"alias {release.alias or 'live'}: {alias.describe()}"


def explain_failure(
    state: DeploymentState,
    release: Release,
    deployment: dict[str, Any],
    firing_alarms: list[str] | None = None,
) -> tuple[str, str]:
    """(reason_code, reason) for a deployment that failed or stopped."""
    error = deployment.get("errorInformation") or {}
    code = str(error.get("code") or "")
    message = _one_line(str(error.get("message") or ""))
    rollback_message = _one_line(str((deployment.get("rollbackInfo") or {}).get("rollbackMessage") or ""))
    hook_reason = failed_hook_reason(release)

    if code == "HOOK_EXECUTION_FAILURE" or (not code and hook_reason):
        return "HOOK_EXECUTION_FAILURE", hook_reason or release.reason or _unrecorded_hook_failure(
            release, message
        )
    if code == "ALARM_ACTIVE":
        alarms = alarm_names(message + " " + rollback_message, release.alarms) or list(firing_alarms or [])
        named = ", ".join(alarms) if alarms else "a deployment group alarm"
        return code, f"alarm {named} went into ALARM during the deployment"
    if code == "MANUAL_STOP" or (state == DeploymentState.STOP and not code):
        by = f" by {release.abort_requested_by}" if release.abort_requested_by else ""
        return "MANUAL_STOP", f"deployment stopped on request{by}" + (f": {message}" if message else "")
    if code == "TIMEOUT":
        silent = silent_hooks(release)
        detail = f"; {' and '.join(silent)} hook never reported" if silent else ""
        return code, (message or "deployment timed out") + detail
    if code:
        return code, message or code
    if release.reason:
        return release.reason_code or "DEPLOYMENT_FAILED", release.reason
    detail = rollback_message or "CodeDeploy gave no error information"
    return "DEPLOYMENT_FAILED", f"deployment {state.value.lower()}: {detail}"


def _unrecorded_hook_failure(release: Release, message: str) -> str:
    """CodeDeploy failed a hook but Rollout's record holds no failing verdict nor a reason: say what the
    record lacks rather than guess which check failed (the hook may have died before recording, or
    someone with the hooks' reporting permission reported Failed)."""
    # A hook that is not recorded is no clue: a post-traffic hook never runs after a pre-traffic failure.
    what = "no hook recorded Failed" if release.hook_results else "no hook result was recorded"
    return f"{message or 'CodeDeploy failed a lifecycle hook'}; {what}"


def failed_hook_reason(release: Release) -> str:
    """The failing hook's reason, naming its failing check and excerpt; '' if no hook failed."""
    for hook in ("pre_traffic", "post_traffic"):
        result = (release.hook_results or {}).get(hook)
        if not isinstance(result, dict) or result.get("verdict") != "Failed":
            continue
        label = HOOK_LABELS[hook]
        failing = [
            c for c in result.get("checks") or [] if isinstance(c, dict) and c.get("verdict") == "Failed"
        ]
        recorded = _one_line(str(result.get("reason") or ""))
        if failing:
            check = failing[0]
            what = recorded or f"check '{check.get('name', '?')}' failed" + (
                f": {_one_line(str(check['error']))}" if check.get("error") else ""
            )
            if check.get("name") and str(check["name"]) not in what:
                what = f"check '{check['name']}': {what}"
            excerpt = _one_line(str(check.get("excerpt") or ""))
            if excerpt and excerpt not in what:
                what = f"{what}; excerpt: {_clip(excerpt, EXCERPT_LIMIT)}"
            more = f" (+{len(failing) - 1} more failing)" if len(failing) > 1 else ""
            # The hook's own reason usually names its phase already ("pre-traffic check ...").
            return f"{what}{more}" if what.startswith(label) else f"{label} {what}{more}"
        if recorded.startswith(f"{label} hook"):
            return recorded  # it names its hook already ("pre-traffic hook could not read ...")
        return f"{label} hook failed: {recorded or 'no reason recorded'}"
    return _unrecorded_answer(release)


def _unrecorded_answer(release: Release) -> str:
    """A gate answered no (rejected, expired) whose reason never reached its hook's record: the answer
    is written first, so an invocation that died next, or a deployment that ended before the answer
    was reported again, leaves only the gate to say who refused and why."""
    if not release.approval:
        return ""
    from rollout import gates  # only a release with a gate

    gate = gates.Gate.from_record(release.approval)
    if gate is None or gate.status not in (gates.GateStatus.REJECTED, gates.GateStatus.EXPIRED):
        return ""
    return f"{HOOK_LABELS.get(gate.hook, gate.hook)} hook failed: {gates.failure_reason(gate)}"


def silent_hooks(release: Release) -> list[str]:
    """Hooks with no recorded result, in lifecycle order (a hook that timed out records none)."""
    results = release.hook_results or {}
    if not results:
        return []
    return [HOOK_LABELS[h] for h in ("pre_traffic", "post_traffic") if h not in results]


_ACTIVATED = re.compile(r"activated alarms?:\s*(.+)$", re.IGNORECASE)


def alarm_names(text: str, known: list[str]) -> list[str]:
    """Alarm names a CodeDeploy message mentions: the release's own alarms first, then any it lists."""
    found = [name for name in known if name and re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text)]
    match = _ACTIVATED.search(text)
    if match:
        # Alarm names may contain spaces: only commas separate them.
        for name in match.group(1).split(","):
            name = name.strip(" .;[]\"'")
            if name and name not in found:
                found.append(name)
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
