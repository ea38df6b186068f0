"""Approval gates on the ledger: opened by a hook, answered by a person, expired by the reconciler.

Who reports what to CodeDeploy:
- the hook that holds the gate records it AWAITING (with its lifecycle hook execution id, which stays
  in the ledger) and returns without reporting;
- `deployment_actions` (`act`) is the only other function allowed to report a hook's verdict. The
  CLI (`rollout approve/reject`) and the Slack endpoint invoke it; it checks the request against the
  gate (`gates.refusal`: fail closed), writes the answer with one conditional update (a gate is
  answered once), records why a rejected release failed, reports, and announces;
- the reconciler (`gate_sweep.sweep`) asks `deployment_actions` to expire gates past their deadline,
  and to report answers whose report was lost. It holds no CodeDeploy reporting permission itself.

`deployment_actions` also rolls a function back from the deployment that put its live release out
(Slack's Roll back button on the success message): `rollback.request_rollback`, as the CLI's
`rollout rollback`, refused unless that release is still the live one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollout import aws, codedeploy_ops, gates, lambda_ops
from rollout.actions import MAX_REASON, RefusedAction, not_live_reason
from rollout.appspec import release_id_in
from rollout.config import Settings
from rollout.deadlines import NO_DEADLINE, Deadline
from rollout.errors import Rejected
from rollout.gates import Approver, Gate, GateStatus
from rollout.ledger import Release, now_iso
from rollout.observability import logger
from rollout.states import ReasonCode
from rollout.transitions import ReleaseContext

if TYPE_CHECKING:
    from rollout.slack_interactions import Click

ACTIVE = frozenset({"Created", "Queued", "InProgress", "Baking", "Ready"})
ACTIONS = ("approve", "reject", "expire", "report", "abort", "rollback")
# What only a person (an AWS principal or a Slack user, never Rollout itself) may ask for.
PERSON_ACTIONS = frozenset({"approve", "reject", "abort", "rollback"})
# Refusal codes the CLI maps to its exit codes (docs/OPERATOR.md).
NOT_FOUND, NOTHING_TO_DO, BAD_REQUEST = "not_found", "nothing_to_do", "bad_request"
# The caller's AWS identity is not proven (the answer's `proof` says how: identity.py's codes).
UNAUTHENTICATED = "unauthenticated"
# A report CodeDeploy cannot take any more: the step already has a status, or is gone.
GONE = (
    "LifecycleEventAlreadyCompletedException",
    "InvalidLifecycleEventHookExecutionIdException",
    "DeploymentDoesNotExistException",
    "DeploymentAlreadyCompletedException",
)

# What _report did: told CodeDeploy the verdict, or found the step already closed with a status of its own.
REPORTED, ALREADY_CLOSED = "reported", "closed"
CLOSED_NOTE = "CodeDeploy had already closed this step with its own status; the answer is recorded only"


class GateNotOpened(Exception):
    """The release already has a gate for another hook execution: the hook must fail closed."""


# --- the hook's side ------------------------------------------------------------------------------
def open_gate(
    ctx: ReleaseContext, release: Release, hook: str, deployment_id: str, execution_id: str
) -> Gate | None:
    """Open the release's gate for this hook execution and announce it; None when no gate is wanted.

    Opening twice for the same execution (a repeated invocation) returns the stored gate unchanged.
    """
    approval = gates.wanted(release.checks, hook)
    if approval is None:
        return None
    _, clock = codedeploy_ops.deployment_and_clock(deployment_id)
    now = clock or datetime.now(UTC)
    gate = gates.open_gate(approval, deployment_id, execution_id, now, _hook_started(deployment_id, hook))
    if not ctx.ledger.open_gate(release.function, release.release_id, gate.to_record()):
        stored = ctx.ledger.get(release.function, release.release_id)
        existing = Gate.from_record(stored.approval if stored else None)
        if existing is not None and existing.execution_id == execution_id:
            return existing
        raise GateNotOpened(f"release {release.release_id} already has a gate for another hook execution")
    logger.info("approval gate opened", extra={"position": gate.position, "deadline": gate.deadline_at})
    _announce(ctx, release, gate)
    return gate


def _hook_started(deployment_id: str, hook: str) -> datetime | None:
    """When the gated lifecycle event started, on CodeDeploy's clock (its one-hour limit counts from then)."""
    try:
        events = codedeploy_ops.lifecycle_events(deployment_id) or []
    except Exception as exc:  # noqa: BLE001 - the gate then counts from its own opening, capped the same
        logger.warning(
            "could not read the lifecycle events", extra={"error": aws.error_code(exc) or str(exc)}
        )
        return None
    for event in events:
        if event.get("lifecycleEventName") == gates.HOOK_EVENTS[hook]:
            started = event.get("startTime")
            return started if isinstance(started, datetime) else None
    return None


# --- answering: deployment_actions ----------------------------------------------------------------
@dataclass(frozen=True)
class ActionRequest:
    action: str
    deployment_id: str
    by: Approver
    text: str = ""
    # The click Slack signed, once proven (`proven`): the outcome is answered in its thread.
    click: Click | None = None

    @classmethod
    def parse(cls, event: Any) -> ActionRequest:
        """The request in an invocation event; ValueError saying what is wrong."""
        if not isinstance(event, dict):
            raise ValueError("the request must be a JSON object")
        action = str(event.get("action") or "")
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} (allowed: {', '.join(ACTIONS)})")
        deployment_id = str(event.get("deployment_id") or "")
        if not deployment_id.startswith("d-") or len(deployment_id) > 20:
            raise ValueError(f"not a deployment id: {deployment_id[:40]!r}")
        text = " ".join(str(event.get("text") or "").split())[: gates.MAX_TEXT]
        if action == "reject" and not text:
            raise ValueError("a rejection needs a reason")
        return cls(action, deployment_id, Approver.parse(event.get("by")), text)


def proven(request: ActionRequest, event: dict[str, Any]) -> ActionRequest:
    """The request with its approver proven, whatever the payload's `by` claims; identity.ProofRefused
    (fail closed) when the proof is missing, bound to another request, or refused.

    - An AWS principal: STS names the signer of the event's `proof` (identity.py); refused when STS
      refuses it or cannot be reached, and when it names a session of one of the stack's own roles
      (the Reconciler's and SlackInteractions' may invoke DeploymentActions): that is Rollout, not a
      person. Without the list of those roles (ROLLOUT_ROLE_ARNS), every AWS principal is refused.
    - A Slack user: Slack's signed request, handed over by the Slack endpoint, is verified again here
      with the signing secret (slack_interactions.proven_click), and the request must be the one its
      click asked for. Lambda does not tell a function who invoked it, so without this anyone allowed
      to invoke DeploymentActions could approve in any Slack user's name.
    - Rollout's own hand-overs (`kind: rollout`) need none: they may only expire a gate already past
      its deadline or report an answer already recorded (`act` refuses them anything else), which
      decides nothing anyone could not wait for.
    """
    # deployment_actions' requests only (its app.py loads these at init).
    from rollout import identity, slack_interactions, sts_ops

    if request.by.kind == "slack":
        return _proven_slack(request, event.get(slack_interactions.SIGNED_KEY))
    if request.by.kind != "aws":
        return request

    checked = identity.Proof.parse(event.get(identity.PROOF_KEY), request.action, request.deployment_id)
    rollout_roles = identity.RolloutRoles.parse(os.environ.get(identity.ROLLOUT_ROLES_VARIABLE))
    status, body = sts_ops.send_signed(checked.headers, checked.body)
    approver = identity.approver_from(status, body)
    rollout_roles.refuse(approver)
    return replace(request, by=approver)


def _proven_slack(request: ActionRequest, signed: Any) -> ActionRequest:
    from rollout import identity, slack_interactions  # see proven

    try:
        click = slack_interactions.proven_click(signed, slack_interactions.Endpoint.from_env())
    except slack_interactions.Refused as refused:
        raise identity.ProofRefused(slack_interactions.NOT_SIGNED_BY_SLACK, refused.reason) from None
    clicked = ActionRequest.parse(slack_interactions.action_request(click))
    if (clicked.action, clicked.deployment_id, clicked.by.id) != (
        request.action,
        request.deployment_id,
        request.by.id,
    ):
        raise identity.ProofRefused(
            slack_interactions.NOT_SIGNED_BY_SLACK,
            "the request is not the one the signed Slack click asked for",
        )
    return replace(clicked, click=click)


def act(ctx: ReleaseContext, request: ActionRequest) -> dict[str, Any]:
    """Carry out one request; the answer says what happened or why it was refused (never raises
    for a refusal)."""
    if request.action in PERSON_ACTIONS and request.by.kind not in gates.PEOPLE:
        # Fail closed: Rollout's own identity only expires gates and reports recorded answers; an
        # approval must name the person who gave it.
        return _refused(BAD_REQUEST, f"only a person may {request.action} a deployment")
    info, clock = _deployment(request.deployment_id)
    if info is None:
        return _refused(NOT_FOUND, f"deployment {request.deployment_id} does not exist")
    if info.get("applicationName") != ctx.settings.codedeploy_application:
        return _refused(NOT_FOUND, f"deployment {request.deployment_id} is not one of Rollout's")
    if request.action == "rollback":
        return _rollback(ctx, request, info)
    if info.get("status") not in ACTIVE:
        return _refused(NOTHING_TO_DO, f"deployment {request.deployment_id} has ended ({info.get('status')})")
    release = _release_of(ctx, info)
    if request.action == "abort":
        return _abort(ctx, request, release)
    if release is None:
        return _refused(NOT_FOUND, f"deployment {request.deployment_id} names no Rollout release")
    gate = Gate.from_record(release.approval)
    if request.action == "report":
        return _report_again(ctx, release, gate)
    now = clock or datetime.now(UTC)
    why = gates.refusal(gate, request.deployment_id, request.action, now)
    if why or gate is None:
        code = NOT_FOUND if gate is None else NOTHING_TO_DO
        return _refused(code, why or f"deployment {request.deployment_id} has no approval gate")
    answered = gates.answered(gate, request.action, request.by, now, request.text)
    if not ctx.ledger.answer_gate(
        release.function, release.release_id, gate.execution_id, answered.to_record()
    ):
        return _refused(NOTHING_TO_DO, "the gate was answered by someone else a moment ago")
    logger.info("approval gate answered", extra={"status": str(answered.status), "by": answered.answered_by})
    return _settle(ctx, release, answered)


def _settle(ctx: ReleaseContext, release: Release, gate: Gate) -> dict[str, Any]:
    """Record why, report the verdict to CodeDeploy, announce; the answer for the caller."""
    _record_answer(ctx, release, gate)
    outcome = _report(gate)
    if outcome:
        ctx.ledger.mark_gate_reported(release.function, release.release_id, gate.execution_id)
    stored = ctx.ledger.get(release.function, release.release_id) or release
    _announce(ctx, stored, gate)
    answer = _gate_answer(release, gate, reported=outcome == REPORTED)
    if outcome != REPORTED:
        answer["note"] = CLOSED_NOTE
    return answer


def _gate_answer(release: Release, gate: Gate, reported: bool) -> dict[str, Any]:
    """The caller's answer for a gate this request answered."""
    return {
        "ok": True,
        "status": str(gate.status),
        "verdict": gate.verdict,
        "function": release.function,
        "release_id": release.release_id,
        "deployment_id": gate.deployment_id,
        "gate": gate.public(),
        "reported": reported,
    }


def _report(gate: Gate) -> str:
    """Tell CodeDeploy the gate's verdict with the hooks' authority: REPORTED; ALREADY_CLOSED when the step
    already had a status (CodeDeploy's one-hour limit or the failure reporter may have set it first, so it
    need not be this verdict, and none is pending); "" when CodeDeploy no longer knows the step."""
    try:
        codedeploy_ops.put_hook_status(gate.deployment_id, gate.execution_id, gate.verdict)
    except Exception as exc:
        if aws.error_code(exc) in GONE:
            logger.warning(
                "CodeDeploy no longer takes this step's status", extra={"code": aws.error_code(exc)}
            )
            return ALREADY_CLOSED if aws.error_code(exc) == "LifecycleEventAlreadyCompletedException" else ""
        raise  # the gate stays answered and unreported: the reconciler reports it again
    return REPORTED


def _report_again(ctx: ReleaseContext, release: Release, gate: Gate | None) -> dict[str, Any]:
    """Report an answer whose first report was lost (the reconciler's hand-over), as `_settle` would have.

    The invocation that took the answer may have died anywhere after the ledger took it, even before
    it recorded why (a rejection's words and who said them) or announced it: both are done here
    again, so the release's ending carries the answer's reason whichever step was lost. Announced only
    once the report is settled (reported, or the step already closed): `_settle` announces after
    marking the gate reported, so an unmarked gate was never announced.
    """
    if gate is None or gate.status == GateStatus.AWAITING or gate.reported:
        return _refused(NOTHING_TO_DO, "no answered gate waits for its report")
    _record_answer(ctx, release, gate)
    outcome = _report(gate)
    if outcome:
        ctx.ledger.mark_gate_reported(release.function, release.release_id, gate.execution_id)
        _announce(ctx, ctx.ledger.get(release.function, release.release_id) or release, gate)
    answer = {
        "ok": True,
        "status": str(gate.status),
        "verdict": gate.verdict,
        "reported": outcome == REPORTED,
        "gate": gate.public(),
    }
    if gate.status != GateStatus.APPROVED:
        answer["reason"] = gates.failure_reason(gate)
    if outcome != REPORTED:
        answer["note"] = CLOSED_NOTE
    return answer


def _record_answer(ctx: ReleaseContext, release: Release, gate: Gate) -> None:
    """Before the report, on the hook's record: the answer, and for a gate not approved the reason
    the rollback notification gives (outcomes reads the failing hook's record), as a failing check
    would leave it."""
    record = dict((release.hook_results or {}).get(gate.hook) or {})
    record.update({"approval": gate.public(), "awaiting_approval": False, "at": now_iso()})
    if gate.status == GateStatus.APPROVED:
        ctx.ledger.record_hook_result(release.function, release.release_id, gate.hook, record)
        return
    reason = gates.failure_reason(gate)
    record.update({"verdict": "Failed", "reason": reason})
    ctx.ledger.record_hook_result(release.function, release.release_id, gate.hook, record)
    ctx.ledger.update(
        release.function, release.release_id, reason_code=ReasonCode.HOOK_EXECUTION_FAILURE, reason=reason
    )


def _abort(ctx: ReleaseContext, request: ActionRequest, release: Release | None) -> dict[str, Any]:
    """Stop the deployment with CodeDeploy's rollback; its ending is announced as any other."""
    who = request.by.describe()
    if release is not None:
        # Recorded before the stop, so the release's ending (MANUAL_STOP) names who asked however soon
        # CodeDeploy's stop event arrives; best effort, since the stop is the safety action.
        try:
            ctx.ledger.update(
                release.function, release.release_id, abort_requested_by=who, abort_requested_at=now_iso()
            )
        except Exception:
            logger.exception(
                "could not record who asked to stop", extra={"deployment_id": request.deployment_id}
            )
    stopped = codedeploy_ops.stop_deployment(request.deployment_id)
    logger.warning("deployment aborted on request", extra={"by": who, "deployment_id": request.deployment_id})
    return {
        "ok": True,
        "status": "ABORTING",
        "deployment_id": request.deployment_id,
        "stop": stopped,
        "by": who,
    }


def _rollback(ctx: ReleaseContext, request: ActionRequest, info: dict[str, Any]) -> dict[str, Any]:
    """Roll the function back from the deployment that put the live release out (the Slack button on
    its success message, or on its UNPROVEN_SUCCESS failure), through the same code as `rollout rollback
    FUNCTION`. Fail closed: refused unless CodeDeploy completed that deployment and its release is still
    the live one (actions.not_live_reason)."""
    if info.get("status") != "Succeeded":
        return _refused(
            NOTHING_TO_DO, f"deployment {request.deployment_id} did not succeed ({info.get('status')})"
        )
    release = _release_of(ctx, info)
    if release is None:
        return _refused(NOT_FOUND, f"deployment {request.deployment_id} names no Rollout release")
    # Imported here: the rollback brings the whole start path (starter and what it uses), which the
    # gates' answers and the hooks and reconciler that use this module never need at init.
    from rollout import rollback

    releases = ctx.ledger.releases(release.function, limit=rollback.HISTORY_DEPTH)
    stale = not_live_reason(release, releases, lambda_ops.get_alias(release.function, release.alias))
    if stale:
        return _refused(NOTHING_TO_DO, stale)
    who = request.by.describe()
    wanted = rollback.RollbackRequest(
        release.function, requested_by=who, reason=(request.text or f"rolled back by {who}")[:MAX_REASON]
    )
    try:
        started = rollback.request_rollback(ctx, wanted).release
    except RefusedAction as refused:
        return _refused(NOTHING_TO_DO, str(refused))
    except Rejected as rejected:
        return _refused(NOT_FOUND, rejected.reason)
    logger.warning("rollback requested", extra={"by": who, "release_id": started.release_id})
    return {
        "ok": True,
        "status": str(started.state),
        "function": started.function,
        "release_id": started.release_id,
        "deployment_id": started.deployment_id,
        "target_version": started.target_version,
        "from_version": release.target_version,
        "rolled_back_release": release.release_id,
        "reason": started.reason if started.is_terminal else "",
        "by": who,
    }


def _deployment(deployment_id: str) -> tuple[dict[str, Any] | None, datetime | None]:
    try:
        return codedeploy_ops.deployment_and_clock(deployment_id)
    except Exception as exc:
        if aws.error_code(exc) in ("DeploymentDoesNotExistException", "InvalidDeploymentIdException"):
            return None, None
        raise


def _release_of(ctx: ReleaseContext, info: dict[str, Any]) -> Release | None:
    """The release a deployment names in its description, read by key (the group is the function)."""
    release_id = release_id_in(str(info.get("description") or ""))
    function = str(info.get("deploymentGroupName") or "")
    if not release_id or not function:
        return None
    release = ctx.ledger.get(function, release_id)
    if release is None or release.deployment_id != info.get("deploymentId"):
        return None
    return release


def _refused(code: str, reason: str, **detail: str) -> dict[str, Any]:
    logger.warning("request refused", extra={"refusal": code, "reason": reason, **detail})
    return {"ok": False, "refused": code, "reason": reason, **detail}


def _announce(ctx: ReleaseContext, release: Release, gate: Gate) -> None:
    by = Approver.parse(gate.answered_by).describe() if gate.answered_by else None
    ctx.notifier.announce(gates.GATE_KINDS[gate.status], release, approval={**gate.public(), "by": by})


def handle(event: Any, settings: Settings | None = None, deadline: Deadline = NO_DEADLINE) -> dict[str, Any]:
    """deployment_actions' whole invocation: parse, prove, act; a bad or unproven request is refused,
    never raised. A click Slack signed (handed over by the Slack endpoint, asynchronously) is answered
    in its thread, failures too: nobody else would hear of them. Nothing unproven is answered
    anywhere: the thread is the one in Slack's signed request, never one the payload names.
    `deadline` is the invocation's: a release this action starts is claimed only for as long as the
    invocation can live (see claims.py)."""
    # The request's parts (identity proofs, Slack clicks) are imported with the request: the hooks and
    # the reconciler, which use this module's gates only, skip them at init; deployment_actions' app.py
    # loads them at its init.
    from rollout import identity, slack_interactions

    try:
        request = proven(ActionRequest.parse(event), event)
    except ValueError as exc:
        return _refused(BAD_REQUEST, str(exc))
    except identity.ProofRefused as refused:
        return _refused(UNAUTHENTICATED, refused.reason, proof=refused.code)
    logger.set_correlation_id(request.deployment_id)
    logger.append_keys(action=request.action, by=request.by.describe())
    if request.click is None:
        return _act(request, settings, deadline)
    try:
        answer: dict[str, Any] | None = _act(request, settings, deadline)
    except Exception:
        logger.exception("the Slack action failed")
        answer = _recorded_before_it_failed(request, settings)
    slack_interactions.answer_in_thread(request.click, answer, logger)
    return answer or {"ok": False, "error": "the action failed; see the deployment_actions logs"}


def _recorded_before_it_failed(request: ActionRequest, settings: Settings | None) -> dict[str, Any] | None:
    """The answer for a click whose action failed after it recorded the click's own answer on the gate
    (CodeDeploy refused the report): the reconciler reports a recorded answer again (`_report_again`),
    so the thread is told it is pending, not that it failed. None when nothing of this click is
    recorded, or the ledger cannot say."""
    status = gates.ANSWERS.get(request.action)
    if status is None:
        return None
    try:
        ctx = ReleaseContext.from_settings(settings or Settings.from_env())
        # Found as the action found it (by the deployment's description, a consistent read by key): the
        # by-deployment index may trail.
        info, _ = _deployment(request.deployment_id)
        release = _release_of(ctx, info) if info is not None else None
    except Exception:
        logger.exception("could not read whether the answer was recorded")
        return None
    gate = Gate.from_record(release.approval) if release is not None else None
    if release is None or gate is None or gate.reported:
        return None
    if gate.status != status or gate.answered_by != asdict(request.by):
        return None
    return {**_gate_answer(release, gate, reported=False), "pending": True}


def _act(request: ActionRequest, settings: Settings | None, deadline: Deadline) -> dict[str, Any]:
    return act(ReleaseContext.from_settings(settings or Settings.from_env(), deadline=deadline), request)
