"""CodeDeploy deployment state changes applied to the ledger: one code path for two triggers.

The EventBridge handler and the scheduled reconciler both call `apply_state`; the reconciler
just reads the state from GetDeployment when the event never arrived. Transitions are conditional
ledger writes, so a duplicate or late event is refused by the ledger and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rollout import aws
from rollout.config import Settings
from rollout.deadlines import Deadline
from rollout.deployment_facts import DeploymentFacts
from rollout.errors import MalformedEvent, TransitionRefused
from rollout.ledger import Release
from rollout.observability import logger
from rollout.outcomes import (
    REASON_LIMIT,
    DeploymentState,
    Outcome,
    decide,
    explain_failure,
    failed_hook_reason,
)
from rollout.release_queue import QueueEffects, QueueReport, advance_queue, finish_release
from rollout.states import ReasonCode, State
from rollout.transitions import NOT_ENDED, ReleaseContext, move

DETAIL_TYPE = "CodeDeploy Deployment State-change Notification"
FINAL_STATES = frozenset({DeploymentState.SUCCESS, DeploymentState.FAILURE, DeploymentState.STOP})


@dataclass(frozen=True)
class StateChange:
    deployment_id: str
    state: DeploymentState
    application: str = ""
    deployment_group: str = ""

    def key(self) -> dict[str, str]:
        """What makes two deliveries the same event (the idempotency key)."""
        return {"deployment_id": self.deployment_id, "state": str(self.state)}


def parse_state_change(event: Any) -> StateChange:
    """The state change in an EventBridge event, or MalformedEvent saying what is wrong (pure)."""
    if not isinstance(event, dict):
        raise MalformedEvent("event is not a JSON object")
    # The EventBridge envelope read as the plain dict it is: Powertools' EventBridgeEvent would add
    # nothing here but the import of its whole data_classes package (some 40 event modules) at init.
    if event.get("detail-type") != DETAIL_TYPE:
        raise MalformedEvent(f"unexpected detail-type {event.get('detail-type')!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("event has no detail object")
    deployment_id = detail.get("deploymentId")
    if not isinstance(deployment_id, str) or not deployment_id.strip():
        raise MalformedEvent("detail.deploymentId is missing")
    try:
        state = DeploymentState(str(detail.get("state", "")).upper())
    except ValueError:
        raise MalformedEvent(f"unknown detail.state {detail.get('state')!r}") from None
    return StateChange(
        deployment_id=deployment_id.strip(),
        state=state,
        application=str(detail.get("application") or ""),
        deployment_group=str(detail.get("deploymentGroup") or ""),
    )


@dataclass
class Applied:
    """What applying a state did to a release."""

    release_id: str
    function: str
    state_before: str
    state_after: str
    changed: bool
    queue: QueueReport | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "release_id": self.release_id,
            "function": self.function,
            "from": self.state_before,
            "to": self.state_after,
            "changed": self.changed,
        }
        if self.queue is not None:
            data["queue"] = self.queue.as_dict()
        return data


def apply_state(
    release: Release,
    state: DeploymentState,
    ctx: ReleaseContext,
    effects: QueueEffects,
    facts: DeploymentFacts,
    deployment: dict[str, Any] | None = None,
) -> Applied:
    """Move `release` as CodeDeploy's `state` says, notify, and on an ending clean up and start the next.

    `deployment` is GetDeployment's deploymentInfo when the caller already has it.
    """
    logger.append_keys(release_id=release.release_id, function=release.function)
    if release.deployment_id:
        logger.set_correlation_id(release.deployment_id)
    if state == DeploymentState.READY:
        return Applied(release.release_id, release.function, str(release.state), str(release.state), False)
    if state == DeploymentState.START:
        return _apply_start(release, ctx)
    return _apply_ending(release, state, ctx, effects, facts, deployment)


def _apply_start(release: Release, ctx: ReleaseContext) -> Applied:
    before = str(release.state)
    if release.state not in (State.RECEIVED, State.QUEUED):
        logger.info("start already recorded", extra={"state": before})
        return Applied(release.release_id, release.function, before, before, changed=False)
    started = _move_quietly(release, State.DEPLOYING, ctx)
    after = str(started.state) if started else before
    return Applied(release.release_id, release.function, before, after, changed=started is not None)


def _apply_ending(
    release: Release,
    state: DeploymentState,
    ctx: ReleaseContext,
    effects: QueueEffects,
    facts: DeploymentFacts,
    deployment: dict[str, Any] | None,
) -> Applied:
    before = str(release.state)
    if release.state in (State.RECEIVED, State.QUEUED):
        # The deployment ran although the start was never recorded (the starter died after
        # CreateDeployment): record that it deployed, so the history stays true.
        release = _move_quietly(release, State.DEPLOYING, ctx) or release
    if deployment is None:
        deployment = facts.deployment(release.deployment_id)
    release = _with_kept_hook_results(release, state, ctx, deployment)
    outcome = _outcome(release, state, facts, deployment)
    assert outcome.target is not None  # every final state has a target
    try:
        ended = move(ctx, release, outcome.target, only_from=NOT_ENDED, **outcome.fields())
    except TransitionRefused as refused:
        current = refused.release
        logger.info(
            "transition refused: event already applied or out of order",
            extra={"state": str(state), "current": str(current.state) if current else "missing"},
        )
        if current is not None and current.is_terminal:
            # A retry after a crash half-way through: finish the clean-up, announce nothing twice.
            finish_release(current, ctx, effects)
        after = str(current.state) if current else "missing"
        return Applied(release.release_id, release.function, before, after, changed=False)
    queue = finish_release(ended, ctx, effects)
    return Applied(release.release_id, release.function, before, str(ended.state), changed=True, queue=queue)


def _with_kept_hook_results(
    release: Release, state: DeploymentState, ctx: ReleaseContext, deployment: dict[str, Any] | None
) -> Release:
    """The release with what its hooks kept under the deployment id, recorded on it now: a hook that
    failed without finding its release (its deployment unreadable, the index behind) kept why there
    (`Ledger.keep_hook_result`). Read only when a hook failed the deployment and the release says nothing
    of it (one consistent Query)."""
    code = str(((deployment or {}).get("errorInformation") or {}).get("code") or "")
    if (
        state != DeploymentState.FAILURE
        or code not in ("", ReasonCode.HOOK_EXECUTION_FAILURE)
        or not release.deployment_id
        or failed_hook_reason(release)
    ):
        return release
    kept = ctx.ledger.kept_hook_results(release.deployment_id)
    for hook, result in kept.items():
        ctx.ledger.record_hook_result(release.function, release.release_id, hook, result)
    if not kept:
        return release
    ctx.ledger.forget_kept_hook_results(release.deployment_id, list(kept))
    return replace(release, hook_results={**(release.hook_results or {}), **kept})


def _outcome(
    release: Release, state: DeploymentState, facts: DeploymentFacts, deployment: dict[str, Any] | None
) -> Outcome:
    """What CodeDeploy's ending means, with the facts `decide` needs read first."""
    alias = facts.alias(release.function, release.alias) if state != DeploymentState.SUCCESS else None
    firing: list[str] = []
    if ((deployment or {}).get("errorInformation") or {}).get("code") == ReasonCode.ALARM_ACTIVE:
        firing = facts.firing_alarms(list(release.alarms))
    return decide(state, release, deployment, alias, firing)


def _move_quietly(release: Release, target: State, ctx: ReleaseContext) -> Release | None:
    """`move`, or None when the ledger refuses it (an event already applied)."""
    changes: dict[str, Any] = {"deployment_id": release.deployment_id} if release.deployment_id else {}
    try:
        return move(ctx, release, target, **changes)
    except TransitionRefused as refused:
        logger.info("transition refused", extra={"target": str(target), "error": str(refused)})
        return None


def release_of_deployment(deployment_id: str, ctx: ReleaseContext, facts: DeploymentFacts) -> Release | None:
    """The release a deployment belongs to (`Ledger.of_deployment`); None for one Rollout did not start."""
    return ctx.ledger.of_deployment(deployment_id, facts.deployment)


def handle_state_change(
    change: StateChange,
    ctx: ReleaseContext,
    effects: QueueEffects,
    facts: DeploymentFacts,
) -> dict[str, Any]:
    """Apply one state change event; deployments Rollout did not start are logged and left alone."""
    logger.set_correlation_id(change.deployment_id)
    application = ctx.settings.codedeploy_application
    if application and change.application not in ("", application):
        logger.info("event for another application ignored", extra={"application": change.application})
        return {"ignored": "other application"}
    release = release_of_deployment(change.deployment_id, ctx, facts)
    if release is None:
        return _foreign_deployment(change, ctx, effects, facts)
    return apply_state(release, change.state, ctx, effects, facts).as_dict()


def _foreign_deployment(
    change: StateChange, ctx: ReleaseContext, effects: QueueEffects, facts: DeploymentFacts
) -> dict[str, Any]:
    """A deployment not in the ledger. When it is CodeDeploy's rollback of one of ours and it has
    ended, the function's group is free again: start what is queued."""
    if change.state not in FINAL_STATES:
        logger.info("deployment not started by Rollout: ignored", extra={"state": str(change.state)})
        return {"ignored": "not a Rollout deployment"}
    info = facts.deployment(change.deployment_id) or {}
    triggering = str((info.get("rollbackInfo") or {}).get("rollbackTriggeringDeploymentId") or "")
    original = release_of_deployment(triggering, ctx, facts) if triggering else None
    if original is None:
        logger.info("deployment not started by Rollout: ignored", extra={"state": str(change.state)})
        return {"ignored": "not a Rollout deployment"}
    logger.append_keys(release_id=original.release_id, function=original.function)
    if change.state == DeploymentState.SUCCESS:
        queue = advance_queue(original.function, ctx, effects)
        return {"rollback_of": original.release_id, "queue": queue.as_dict()}
    logger.error(
        "CodeDeploy's rollback did not succeed: the alias may be split",
        extra={"rollback_deployment_id": change.deployment_id, "error": info.get("errorInformation")},
    )
    failed = record_rollback_failure(original, change.deployment_id, info, ctx, facts)
    queue = finish_release(failed, ctx, effects)
    return {"rollback_of": original.release_id, "state": str(failed.state), "queue": queue.as_dict()}


def record_rollback_failure(
    original: Release, rollback_id: str, rollback: dict[str, Any], ctx: ReleaseContext, facts: DeploymentFacts
) -> Release:
    """FAILED with ROLLBACK_FAILED: why the deployment failed, why its rollback failed, where the alias is.

    From DEPLOYING (the rollback's event came first) or ROLLED_BACK (recorded while the rollback ran).
    """
    error = rollback.get("errorInformation") or {}
    why = " ".join(str(error.get("message") or error.get("code") or "CodeDeploy gave no reason").split())
    first = original.reason
    if original.state == State.DEPLOYING or not first:
        deployment = facts.deployment(original.deployment_id) or {}
        first = explain_failure(DeploymentState.FAILURE, original, deployment)[1]
    alias = facts.alias(original.function, original.alias)
    where = f"alias {original.alias or 'live'}: {alias.describe()}" if alias else "alias state unknown"
    reason = f"{first}; then rollback deployment {rollback_id} failed: {why} ({where})"
    try:
        return move(
            ctx,
            original,
            State.FAILED,
            only_from=frozenset({State.DEPLOYING, State.ROLLED_BACK}),
            announce={"rollback": {"deployment_id": rollback_id, "error": error or None}},
            reason_code=ReasonCode.ROLLBACK_FAILED,
            reason=reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 1] + "…",
        )
    except TransitionRefused as refused:
        logger.info("rollback failure already recorded", extra={"error": str(refused)})
        return refused.release or original


def handle_state_change_once(
    change: StateChange,
    settings: Settings,
    lambda_context: Any,
    effects: QueueEffects | None = None,
    facts: DeploymentFacts | None = None,
) -> dict[str, Any]:
    """`handle_state_change` at most once per (deployment id, state), recorded in the idempotency table.

    A failure deletes the in-progress record, so Lambda's retry runs it again.
    """
    # Imported here, not at the top: the reconciler uses this module without Idempotency. The
    # deployment events function, which runs every event through it, loads it at init (its app.py).
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    persistence = aws.idempotency_store(settings.idempotency_table)
    config = IdempotencyConfig(event_key_jmespath="[deployment_id, state]", raise_on_no_idempotency_key=True)
    config.register_lambda_context(lambda_context)
    ctx = ReleaseContext.from_settings(settings, deadline=Deadline.of_invocation(lambda_context))
    queue_effects = effects or QueueEffects.default()
    reader = facts or DeploymentFacts()

    @idempotent_function(data_keyword_argument="key", persistence_store=persistence, config=config)
    def once(key: dict[str, str]) -> dict[str, Any]:
        return handle_state_change(change, ctx, queue_effects, reader)

    result: dict[str, Any] = once(key=change.key())
    return result
