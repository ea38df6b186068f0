"""Roll back: a release in the ledger (kind "rollback") that returns the alias to an earlier version
through a CodeDeploy deployment with AllAtOnce, so CodeDeploy stays the only thing moving traffic.

It goes through `starter.start_release` like any release: the lock, the deployment group, the
hooks (the pre-traffic checks of the version it returns to, unless skipped), the events and the
reconciler all treat it the same way. It is refused while another deployment of the function runs,
unless the caller asks to stop that one first (CodeDeploy rolls it back; the rollback then waits in
the queue and starts when the stopped deployment has ended).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rollout import aws, codedeploy_ops, lambda_ops, starter
from rollout.actions import (
    ALL_AT_ONCE,
    KIND_ROLLBACK,
    RefusedAction,
    parse_version,
    reason_text,
    release_of_version,
    rollback_checks,
    rollback_target,
)
from rollout.errors import Rejected
from rollout.ledger import Release, new_release_id, now_iso
from rollout.observability import logger
from rollout.release_queue import advance_queue
from rollout.states import ReasonCode, State
from rollout.targets import AliasRouting
from rollout.transitions import ReleaseContext

HISTORY_DEPTH = 200  # releases read back to find the version to return to


@dataclass(frozen=True)
class RollbackRequest:
    function: str
    requested_by: str
    reason: str = ""
    to_version: str = ""
    skip_checks: bool = False
    abort_current: bool = False


@dataclass
class RollbackResult:
    release: Release
    stopped: list[str] = field(default_factory=list)  # deployments stopped for it (--abort-current)


def request_rollback(ctx: ReleaseContext, request: RollbackRequest) -> RollbackResult:
    """Record the rollback and start it (or queue it behind the deployment it stopped).

    Rejected for a function that is missing or not managed, or a version that does not exist;
    RefusedAction when the function's state does not allow it (another deployment runs, nothing
    to return to, the version is already live).
    """
    function = request.function
    request = replace(request, reason=reason_text(request.reason))  # bounded before anything is read
    managed = lambda_ops.get_managed_function(function, ctx.settings.default_deployment_config)
    alias = lambda_ops.get_alias(function, managed.alias)
    if alias is None:
        raise RefusedAction(f"{function} has no alias {managed.alias} yet: there is nothing to roll back")
    running = running_deployments(ctx, function)
    if running and not request.abort_current:
        raise RefusedAction(
            f"deployment {running[0]} of {function} is running; roll back once it has ended, "
            "or pass --abort-current to stop it first"
        )
    releases = ctx.ledger.releases(function, limit=HISTORY_DEPTH)
    target = _target_version(function, releases, alias, request)
    stopped = [deployment for deployment in running if _stop(ctx, deployment, releases, request.requested_by)]
    release = ctx.ledger.create(_rollback_release(request, managed.alias, target, releases, alias.version))
    logger.info("Rollback requested", extra={"release_id": release.release_id, "target_version": target})
    started = starter.start_release(ctx, release)
    if started.is_terminal:
        advance_queue(function, ctx)
    return RollbackResult(started, stopped)


def running_deployments(ctx: ReleaseContext, function: str) -> list[str]:
    """Deployments of the function that have not ended: the lock's, and any CodeDeploy still runs."""
    found: list[str] = []
    lock = ctx.ledger.get_lock(function)
    if lock is not None:
        holder = ctx.ledger.get(function, str(lock.get("release_id") or ""))
        if holder is not None and not holder.is_terminal:
            found.append(
                str(lock.get("deployment_id") or holder.deployment_id or f"release {holder.release_id}")
            )
    for deployment in codedeploy_ops.active_deployments(ctx.settings.codedeploy_application, function):
        if deployment not in found:
            found.append(deployment)
    return found


def _target_version(
    function: str, releases: list[Release], alias: AliasRouting, request: RollbackRequest
) -> str:
    if request.to_version:
        target = parse_version(request.to_version)
        if not lambda_ops.version_exists(function, target):
            raise Rejected("VERSION_NOT_FOUND", f"{function} has no version {target}")
        if release_of_version(releases, target) is None:
            # Fail closed: a version no release put live never passed the checks (its rollback would
            # run none, AllAtOnce, past freezes and alarms), or went live too long ago to tell.
            raise RefusedAction(
                f"version {target} of {function} never went live through Rollout (no SUCCEEDED or "
                f"BOOTSTRAPPED release among the last {HISTORY_DEPTH} put it live): a rollback returns "
                "only to a version that did; deploy that build as an upload instead"
            )
    else:
        previous = rollback_target(releases, alias.version)
        if previous is None:
            raise RefusedAction(
                f"no earlier release of {function} went live before version {alias.version}: "
                "nothing to roll back to (name one with --to VERSION)"
            )
        target = previous.target_version
    if target == alias.version and not alias.has_weights:
        raise RefusedAction(f"version {target} of {function} is already live on alias {alias.name}")
    _check_same_code(function, target, release_of_version(releases, target))
    return target


def _check_same_code(function: str, version: str, source: Release | None) -> None:
    """Refused unless Lambda's `version` holds the code that went live under that number (fail closed).

    A version number names a build only within one function's life: a function deleted and created again
    under its name (a CloudFormation replacement) numbers its versions from 1 again, while the ledger keeps
    the releases of the old one. A rollback restores the bytes that were live; another build under the
    same number never passed anything, and a rollback (AllAtOnce, checks skippable) must not put it live.
    """
    recorded = source.code_sha256 if source else ""
    if not recorded:
        raise RefusedAction(
            f"the release that put version {version} of {function} live recorded no code fingerprint "
            "(CodeSha256): Rollout cannot prove the version still holds that code; deploy that build as "
            "an upload instead"
        )
    try:
        actual = lambda_ops.code_sha256(function, version)
    except Exception as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            raise Rejected("VERSION_NOT_FOUND", f"{function} has no version {version}") from None
        raise
    if actual != recorded:
        raise RefusedAction(
            f"version {version} of {function} is not the code that went live under that number "
            f"(CodeSha256 {actual or 'unknown'}, release {source.release_id if source else '?'} put "
            f"{recorded} live; was the function created again?): nothing was rolled back; deploy that "
            "build as an upload instead"
        )


def _stop(ctx: ReleaseContext, deployment: str, releases: list[Release], who: str) -> bool:
    if not deployment.startswith("d-"):
        return False  # a release still starting has no deployment to stop; the rollback queues behind it
    stopping = next((r for r in releases if r.deployment_id == deployment and not r.is_terminal), None)
    if stopping is not None:
        # Its ending (MANUAL_STOP) names who asked; best effort, since the rollback matters more.
        try:
            ctx.ledger.update(
                stopping.function,
                stopping.release_id,
                abort_requested_by=f"{who or 'unknown caller'} (for a rollback)",
                abort_requested_at=now_iso(),
            )
        except Exception:
            logger.exception("could not record who asked to stop", extra={"deployment_id": deployment})
    try:
        status = str(codedeploy_ops.stop_deployment(deployment).get("status") or "")
    except Exception as exc:
        if aws.error_code(exc) != "DeploymentAlreadyCompletedException":
            raise
        status = "completed"  # it ended meanwhile: the rollback starts when its ending is recorded
    logger.warning(
        "Stopped a running deployment for a rollback", extra={"deployment_id": deployment, "status": status}
    )
    return True


def _rollback_release(
    request: RollbackRequest, alias: str, target: str, releases: list[Release], live: str
) -> Release:
    """The rollback's ledger record: QUEUED from the start, so a caller that dies before starting it
    leaves it to the queue (the reconciler starts it), never to the upload recovery."""
    source = release_of_version(releases, target)
    by = request.requested_by or "unknown caller"
    return Release(
        function=request.function,
        release_id=new_release_id(),
        state=State.QUEUED,
        kind=KIND_ROLLBACK,
        requested_by=request.requested_by,
        # After every release the caller could see (S3's clock orders uploads, this one has no
        # upload): no older build may supersede it, and a later upload still goes after it.
        upload_order=max([now_iso(), *(r.order[0] for r in releases)]),
        author=by,
        message=request.reason,
        commit=source.commit if source else "",
        alias=alias,
        deployment_config=ALL_AT_ONCE,
        target_version=target,
        current_version=live,
        code_sha256=source.code_sha256 if source else "",
        checks=rollback_checks(source, request.skip_checks),
        reason_code=ReasonCode.WAITING,
        reason=f"rollback to version {target} requested by {by}"
        + (" (pre-traffic checks skipped)" if request.skip_checks else ""),
    )
