"""Starting a release: the one path from "this build should go out" to a CodeDeploy deployment.

A new upload (the deployer) and the queue (when a release ends) both call `start_release`. A queued
release is first claimed for this start alone (`StartClaim`: of deployment events, the reconciler, an
unfreeze and a rollback starting it at once, only one goes on; the others return it as it is, being
started elsewhere). A claim that replaced the expired claim of a start that died first looks for
the deployment that start may have created and adopts it (`orphans`). Then, under the function's
deployment lock, in order:

    the lock is held by another release   -> QUEUED (nothing published)
    the function has no alias yet         -> publish, test, create alias   -> BOOTSTRAPPED
    a newer upload already went out       -> SUPERSEDED (nothing published)
    CodeDeploy runs a deployment already  -> QUEUED (nothing published)
    publish the pinned artifact           -> UNCHANGED when the alias already serves that code
    canary alarms, group, AppSpec, create -> DEPLOYING (the lock stays with the release)

Every other ending releases the lock. A rule broken on the way ends the release REJECTED, any other
error FAILED; both are recorded and announced through `transitions.move`. CreateDeployment's own
error is not taken at its word: unless it is an outright refusal, the deployment it may have created
anyway is looked for first (`_create_or_find`), and when CodeDeploy cannot even be asked the release
waits QUEUED for the next start to look again, never FAILED while its deployment may shift traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any, NamedTuple

from rollout import canary_alarms, claims, codedeploy_ops, lambda_ops, release_gate, steps
from rollout.actions import KIND_ROLLBACK
from rollout.appspec import build_appspec, release_description, revision_for
from rollout.config import Settings
from rollout.errors import CreateOutcomeUnknown, DeploymentLimitExceeded, Rejected, TransitionRefused
from rollout.ledger import Ledger, Release
from rollout.observability import logger, tracer
from rollout.publishing import publish_artifact
from rollout.states import ReasonCode, State
from rollout.targets import AliasRouting, ManagedFunction, is_builtin_config
from rollout.transitions import ReleaseContext, fail, move, reject, start, supersede


class FunctionLock:
    """The function's deployment lock for one release: taken on entry, released on exit unless kept.

    Re-entrant for the same release, so a retried start of a release that crashed can go on.
    """

    def __init__(self, ledger: Ledger, release: Release) -> None:
        self._ledger = ledger
        self._release = release
        self.held = False
        self.kept = False
        self.holder = ""

    def __enter__(self) -> FunctionLock:
        self.held = self._ledger.acquire_lock(self._release.function, self._release.release_id)
        if not self.held:
            lock = self._ledger.get_lock(self._release.function) or {}
            self.holder = str(lock.get("release_id") or "another release")
        return self

    def take_again(self) -> bool:
        """Try once more: True if the lock was freed meanwhile and is now held for this release."""
        self.held = self._ledger.acquire_lock(self._release.function, self._release.release_id)
        return self.held

    def keep(self) -> None:
        """The release now has a deployment: the lock goes when that deployment ends."""
        self.kept = True

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.held and not self.kept:
            self._ledger.release_lock(self._release.function, self._release.release_id)


class Created(NamedTuple):
    """A deployment CodeDeploy accepted for a release."""

    release: Release
    deployment_id: str
    current_version: str
    deployment_config: str
    alarms: list[str]
    # Why the canary alarms cannot stop the deployment during its first traffic step ("" when they can).
    alarm_warning: str = ""


class StartClaim:
    """This start's claim on a queued release (`claims`): taken on entry, given back on every exit.

    Only a QUEUED release is claimed: a RECEIVED one is started by its own upload's deployer alone
    (Powertools' idempotency and the upload item see to that) until it queues, and it is claimed then.
    A caller that dies keeps its claim until `claims.claim_expiry`, the end of its invocation; the
    start that takes the claim over after that learns it (`after_dead_start`) from the same write.
    """

    def __init__(self, ctx: ReleaseContext, release: Release) -> None:
        self._ctx = ctx
        self.release = release
        self.owner = claims.new_owner()
        self.held = False
        self.kept = False
        self.elsewhere: Release | None = None  # the release as stored, when another start claimed it
        # This claim replaced one whose start died: that start may have created a deployment.
        self.after_dead_start = False

    def take(self, release: Release) -> bool:
        """True when this start may go on with `release`: not queued, or now claimed by this start."""
        if self.held or release.state != State.QUEUED:
            self.release = release
            return True
        now = claims.wall_clock()
        until = claims.claim_expiry(self._ctx.deadline, now)
        taken = self._ctx.ledger.claim_start(release.function, release.release_id, self.owner, until, now)
        if taken is None:
            self.elsewhere = self._ctx.ledger.get(release.function, release.release_id) or release
            logger.info(
                "Release is being started by another caller", extra={"state": str(self.elsewhere.state)}
            )
            return False
        self.held, self.release = True, taken.release
        if taken.before.starting_by != self.owner and claims.start_died(taken.before, now):
            logger.warning(
                "Took over the claim of a start that died", extra={"dead": taken.before.starting_by}
            )
            self.after_dead_start = True
        return True

    def keep(self) -> None:
        """Leave the claim to expire instead of giving it back, so the next start learns of the dead
        one too (a released claim says nothing about the starts before it)."""
        self.kept = True

    def __enter__(self) -> StartClaim:
        self.take(self.release)
        return self

    def settle(self, outcome: Release) -> Release:
        """`outcome` as it reads once this start's claim is given back."""
        if self.held and not self.kept and outcome.starting_by == self.owner:
            return replace(outcome, starting_by="", starting_until=None)
        return outcome

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.held and not self.kept:
            self._ctx.ledger.release_start_claim(self.release.function, self.release.release_id, self.owner)


@tracer.capture_method(capture_response=False)
def start_release(ctx: ReleaseContext, release: Release, managed: ManagedFunction | None = None) -> Release:
    """Start `release` (RECEIVED or QUEUED), or queue it; returns it as recorded in the ledger.

    `managed` is the target as this invocation has just read it (the deployer's validation); without
    it the function and its tags are read again (a queued release starts minutes later). A queued
    release another caller is starting comes back as it is (`claims.claimed_elsewhere`).
    """
    logger.append_keys(release_id=release.release_id, function=release.function)
    if release.state == State.HELD:
        # Started only by the caller whose own conditional move took it out of HELD (held_releases):
        # this path claims QUEUED releases only, so a HELD one would go on unclaimed beside that start.
        logger.warning("A held release was handed to the start path: left held")
        return release
    with StartClaim(ctx, release) as claim:
        if claim.elsewhere is not None:
            return claim.elsewhere  # claimed before anything was published: nothing to undo
        adopted = _adopt_after_dead_start(ctx, claim)  # before the gate: its deployment runs regardless
        if adopted is not None:
            return claim.settle(adopted)
        held = release_gate.hold_if_needed(ctx, claim.release, managed)  # a freeze or a pre-flight rule
        if held is not None:
            return claim.settle(held)
        return claim.settle(_start_claimed(ctx, claim, managed))


def adopt_dead_start(ctx: ReleaseContext, release: Release) -> Release | None:
    """A queued release whose start died (`claims.start_died`) on the deployment that start created.

    DEPLOYING when there is one; the release as stored when another caller has it or CodeDeploy could
    not be asked (still QUEUED); None when the dead start created none. It never starts a release:
    the queue starts its newest, which need not be the one whose start died.
    """
    logger.append_keys(release_id=release.release_id, function=release.function)
    with StartClaim(ctx, release) as claim:
        if claim.elsewhere is not None:
            return claim.elsewhere
        adopted = _adopt_after_dead_start(ctx, claim)
        return None if adopted is None else claim.settle(adopted)


def _start_claimed(ctx: ReleaseContext, claim: StartClaim, managed: ManagedFunction | None) -> Release:
    """Under the function's lock: publish and create the deployment, or queue."""
    release = claim.release
    with FunctionLock(ctx.ledger, release) as lock:
        if not lock.held:
            release = queue(ctx, release, f"release {lock.holder} holds the function's deployment lock")
            if release.state != State.QUEUED:
                return release  # another invocation started or ended it meanwhile
            # Queued, the release is the queue's to start too: claim it before trying again.
            if not claim.take(release):
                return claim.elsewhere or release
            adopted = _adopt_after_dead_start(ctx, claim)
            if adopted is not None:
                return adopted
            # The holder looks at the queue when it ends; if it ended before this release was
            # recorded QUEUED, it saw nothing, so look again now rather than wait for the reconciler.
            if not lock.take_again():
                return claim.release
            logger.info("The lock's holder ended while this release queued: starting it now")
            release = claim.release
        try:
            prepared = _prepare_and_create(ctx, release, managed)
        except CreateOutcomeUnknown as unknown:
            lock.keep()  # a deployment may run; its ending, or the start that looks again, frees the lock
            return _await_lost_answer(ctx, claim, release, str(unknown))
        if isinstance(prepared, Release):
            if prepared.state == State.DEPLOYING:
                lock.keep()  # another invocation started it meanwhile; its deployment owns the lock
            return prepared
        lock.keep()
        try:
            return _record_started(ctx, prepared)
        except Exception:
            # The deployment exists but the ledger does not name it. A claim given back would let the
            # next start (the queue's retry, the reconciler) find the release merely queued and deploy
            # the build again once this deployment ended, its outcome never recorded. Kept, the claim
            # expires as a dead start's, and that start adopts the deployment (`orphans`).
            claim.keep()
            raise


def _adopt_after_dead_start(ctx: ReleaseContext, claim: StartClaim) -> Release | None:
    """The release on the deployment a dead start created (`orphans`); None to start it as usual.

    Only when this claim replaced a dead start's: the normal start makes no extra call. Until
    CodeDeploy has answered, nothing may be created (it could be the build's second deployment), so a
    failed look leaves the release queued and keeps the claim: the next start looks again.
    """
    if not claim.after_dead_start:
        return None
    claim.after_dead_start = False
    from rollout import orphans  # only after a start that died

    try:
        return orphans.adopt_orphaned_deployment(ctx, claim.release)
    except Exception:  # fail closed: queued, not started, not FAILED (a deployment may be running)
        logger.exception("Could not look for the deployment of the start that died: left queued")
        claim.keep()
        return claim.release


def _await_lost_answer(ctx: ReleaseContext, claim: StartClaim, release: Release, why: str) -> Release:
    """QUEUED, with this start's claim kept: whether CreateDeployment created a deployment is not known.

    Not FAILED (the deployment may be shifting traffic) and not started again (it could be the build's
    second deployment). The deployment's own START event records the release DEPLOYING on it if it
    exists (`Ledger.of_deployment` finds the release by the description); once the claim expires, the
    next start of the queue takes it over as a dead start's and looks again (`adopt_dead_start`).
    """
    logger.error("CreateDeployment's outcome is not known: the release waits", extra={"why": why})
    queued = queue(ctx, release, why)
    if queued.state != State.QUEUED:
        return queued  # its deployment's START event recorded it meanwhile
    if not claim.take(queued):
        return claim.elsewhere or queued
    claim.keep()
    return claim.release


def _prepare_and_create(
    ctx: ReleaseContext, release: Release, managed: ManagedFunction | None = None
) -> Release | Created:
    """Every step up to CreateDeployment; a Release when it ended (or waits) instead.

    Raises CreateOutcomeUnknown when CreateDeployment raised and nobody can tell whether it created
    the deployment (the caller keeps the lock and the release's claim).
    """
    try:
        return _steps_to_deployment(ctx, release, managed)
    except DeploymentLimitExceeded:
        return queue(ctx, release, "CodeDeploy reports an active deployment for this function")
    except CreateOutcomeUnknown:
        raise
    except Rejected as rejected:
        return reject(ctx, release, rejected)
    except Exception as exc:  # the release ends FAILED with the error
        logger.exception("Could not start the deployment")
        return fail(ctx, release, f"could not start the deployment: {type(exc).__name__}: {exc}")


def _steps_to_deployment(
    ctx: ReleaseContext, release: Release, managed: ManagedFunction | None = None
) -> Release | Created:
    if managed is None:
        managed = lambda_ops.get_managed_function(release.function, ctx.settings.default_deployment_config)
    alias = lambda_ops.get_alias(release.function, release.alias)
    if alias is None:
        release = _bootstrap(ctx, release)
        if release.is_terminal:
            return release
        alias = lambda_ops.get_alias(release.function, release.alias)
        if alias is None:
            raise RuntimeError(
                f"alias {release.alias} of {release.function} disappeared before the deployment"
            )
    if not alias.version.isdigit():
        # An alias may invoke $LATEST (botocore's lambda model: CreateAlias FunctionVersion matches
        # "(\$LATEST(\.PUBLISHED)?|[0-9]+)"): UpdateFunctionCode would then put the build live untested.
        raise Rejected(
            ReasonCode.ALIAS_NOT_ON_VERSION,
            f"alias {release.alias} of {release.function} invokes {alias.version}, not a published version: "
            "any code update would reach its traffic untested; point the alias at a published version",
        )
    from concurrent.futures import ThreadPoolExecutor  # here: only a start that gets this far pays for it

    # The two reads that decide whether the release may go out are made at once (two round trips in the
    # time of one) and decided in the same order as ever: a newer release out first, then CodeDeploy.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout-start") as pool:
        deployments = pool.submit(
            codedeploy_ops.active_deployments, ctx.settings.codedeploy_application, release.function
        )
        newer = _newer_release_out(ctx, release)
        if newer is not None:
            # Uploads can be processed out of order; an older build never goes out over a newer one.
            return (
                supersede(ctx, release, newer)
                or ctx.ledger.get(release.function, release.release_id)
                or release
            )
        active = deployments.result()
    if active:
        return queue(ctx, release, f"CodeDeploy deployment {active[0]} is active for this function")
    _require_hooks(ctx.settings)
    release = _publish(ctx, release, alias)
    if release.is_terminal:
        return release
    return _create_deployment(ctx, release, alias, managed)


def _require_hooks(settings: Settings) -> None:
    """The AppSpec names both hooks or no deployment is made: CodeDeploy runs a step the AppSpec names
    no hook for untested (the hooks' names come from the environment template.yaml sets)."""
    missing = [
        variable
        for variable, hook in (
            ("PRE_TRAFFIC_HOOK", settings.pre_traffic_hook),
            ("POST_TRAFFIC_HOOK", settings.post_traffic_hook),
        )
        if not hook
    ]
    if missing:
        raise RuntimeError(
            f"{' and '.join(missing)} not set: a deployment would shift traffic with no hook to test it"
        )


def _bootstrap(ctx: ReleaseContext, release: Release) -> Release:
    """The function's first release: publish, test the version, create the alias on it.

    No deployment shifts traffic to a first version, so no hook tests it: the release's checks run
    against it here, and the alias is created only when they pass (`first_release`); a failed or
    unrun check ends the release REJECTED with no alias. The results are recorded where the hooks
    record theirs.
    """
    from rollout import first_release  # only a first release runs checks from the starter

    published = publish_artifact(ctx.ledger, release, None, ctx.deadline)
    release = ctx.ledger.update(
        release.function,
        release.release_id,
        code_sha256=published.code_sha256,
        target_version=published.version,
    )
    logger.append_keys(target_version=published.version)
    verdict = first_release.evaluate(release, published.version, lambda_ops.invoke_once, ctx.deadline)
    tested = first_release.records(verdict.outcomes)  # written with the ending: no write of their own
    if verdict.refusal is not None:
        return reject(ctx, release, verdict.refusal, hook_results=tested)
    description = f"created by rollout release {release.release_id}"
    if not lambda_ops.create_alias(release.function, release.alias, published.version, description):
        return release  # another release created it first: deploy over it as usual (the hooks test it)
    logger.info("First release: alias created", extra={"alias": release.alias})
    return move(ctx, release, State.BOOTSTRAPPED, hook_results=tested, **_step_timings())


def _newer_release_out(ctx: ReleaseContext, release: Release) -> Release | None:
    newer = ctx.ledger.newest_out(release.function)
    if newer is not None and newer.release_id != release.release_id and newer.order > release.order:
        return newer
    return None


def _publish(ctx: ReleaseContext, release: Release, alias: AliasRouting) -> Release:
    """The release with its version recorded, or UNCHANGED when the alias already serves its code."""
    if release.target_version:
        # Published by an earlier attempt of this start (or a release of an existing version).
        if release.target_version == alias.version:
            return _unchanged(ctx, release, alias.version)
        return release
    published = publish_artifact(ctx.ledger, release, alias, ctx.deadline)
    if published.unchanged:
        return _unchanged(ctx, release, published.version, published.code_sha256)
    logger.append_keys(target_version=published.version)
    return ctx.ledger.update(
        release.function,
        release.release_id,
        code_sha256=published.code_sha256,
        target_version=published.version,
    )


def _unchanged(ctx: ReleaseContext, release: Release, live_version: str, code_sha256: str = "") -> Release:
    logger.info("Code unchanged: nothing to deploy", extra={"current_version": live_version})
    return move(
        ctx,
        release,
        State.UNCHANGED,
        current_version=live_version,
        code_sha256=code_sha256 or release.code_sha256,
        reason_code=ReasonCode.CODE_UNCHANGED,
        reason=f"alias {release.alias} already serves this code (version {live_version})",
    )


def _create_deployment(
    ctx: ReleaseContext, release: Release, alias: AliasRouting, managed: ManagedFunction
) -> Created:
    """Canary alarms on the new version, the deployment group, the AppSpec, then CreateDeployment."""
    settings = ctx.settings
    # Pre-flight: a version still Pending (a SnapStart snapshot being taken) cannot take traffic yet.
    lambda_ops.wait_version_active(release.function, release.target_version, ctx.deadline)
    scope = canary_alarms.CanaryScope(release.function, release.alias, release.target_version)
    checks = release.checks or {}
    with steps.step(steps.ALARMS):
        alarms = canary_alarms.put_canary_alarms(settings.canary_alarm_prefix, scope, checks.get("canary"))
    config = release.deployment_config or managed.deployment_config
    alarm_warning = _alarms_outrun(config, settings.canary_alarm_prefix, scope, checks.get("canary"))
    group = codedeploy_ops.desired_group(
        settings.codedeploy_application,
        release.function,
        config,
        settings.codedeploy_role_arn,
        # A rollback is not stopped by the function's own alarms: they fire because of the version it
        # replaces. Its per-release canary alarms still watch the version it returns to.
        alarms + ([] if release.kind == KIND_ROLLBACK else managed.alarms),
    )
    with steps.step(steps.GROUP):
        outcome = codedeploy_ops.ensure_deployment_group(group)
    logger.info("Deployment group ready", extra={"group": release.function, "outcome": outcome})
    appspec = build_appspec(
        release.function,
        release.alias,
        alias.version,
        release.target_version,
        before_allow_traffic=settings.pre_traffic_hook or None,
        after_allow_traffic=settings.post_traffic_hook or None,
    )
    with steps.step(steps.CREATE):
        deployment_id = _create_or_find(
            ctx,
            release,
            lambda: codedeploy_ops.create_deployment(
                settings.codedeploy_application,
                release.function,
                revision_for(appspec),
                config,
                release_description(release.release_id, release.key),
            ),
        )
    return Created(release, deployment_id, alias.version, config, alarms, alarm_warning)


def _alarms_outrun(
    config: str, prefix: str, scope: canary_alarms.CanaryScope, canary: dict[str, Any] | None
) -> str:
    """The operator's warning when `config`'s first traffic step ends before the canary alarms can fire
    (a custom configuration's step read from CodeDeploy); "" when they can."""
    routing = None
    if not is_builtin_config(config):
        try:
            routing = codedeploy_ops.traffic_routing(config)
        except Exception as exc:  # noqa: BLE001 - a warning only: CreateDeployment judges the config itself
            logger.warning("Deployment config unreadable", extra={"config": config, "error": _describe(exc)})
            return (
                f"deployment config {config} could not be read ({_describe(exc)}): whether its canary "
                "alarms can stop it before its first traffic step ends is unknown"
            )
    to_fire = canary_alarms.seconds_to_fire(canary_alarms.alarm_definitions(prefix, scope, canary))
    first_step = canary_alarms.first_step_seconds(config, routing)
    return canary_alarms.step_outruns_alarms(config, first_step, to_fire)


def _create_or_find(ctx: ReleaseContext, release: Release, create: Callable[[], str]) -> str:
    """The deployment `create` (one CreateDeployment request) made; when it raised, the one it made
    all the same; resent, with pauses, only once CodeDeploy shows it made none.

    CreateDeployment takes no client token (botocore's codedeploy model has no idempotency token among
    its members), so its error may come after CodeDeploy created the deployment (a 5xx, a throttle, a
    reset connection: "Operations might also time out or encounter other server issues before they
    complete, even though the request has already returned a result", Amazon EC2 developer guide,
    "Ensuring idempotency in Amazon EC2 API requests"), and a resend then meets that very deployment
    as DeploymentLimitExceeded, or makes a second one if it already ended. So unless the error is an
    outright refusal (`codedeploy_ops.refused_outright`), a deployment whose description names the
    release is looked for (`orphans.deployment_of`) and taken as this start's: the release is recorded
    DEPLOYING on it rather than queued behind it or FAILED while it shifts traffic. None found: a
    DeploymentLimitExceeded stands (another deployment runs: the release queues), any other error is
    resent after a pause while attempts and the invocation last, then stands (FAILED). CodeDeploy not
    answering the look: CreateOutcomeUnknown.
    """
    attempt = 1
    while True:
        try:
            return create()
        except Exception as exc:
            if codedeploy_ops.refused_outright(exc):
                raise
            error = exc
        found = _created_anyway(ctx, release, error)
        if found is not None:
            return found
        pause = codedeploy_ops.resend_pause(attempt)
        if (
            isinstance(error, DeploymentLimitExceeded)
            or attempt >= codedeploy_ops.CREATE_ATTEMPTS
            or pause > ctx.deadline.remaining()
        ):
            raise error
        logger.info(
            "CreateDeployment failed and created nothing: sending it again",
            extra={"attempt": attempt, "pause": round(pause, 2), "error": _describe(error)},
        )
        codedeploy_ops.sleep(pause)
        attempt += 1


def _created_anyway(ctx: ReleaseContext, release: Release, error: Exception) -> str | None:
    """The id of the deployment of `release` CodeDeploy has although CreateDeployment raised `error`."""
    from rollout import orphans  # only after CreateDeployment raised

    try:
        found = orphans.deployment_of(ctx, release)
    except Exception as look:  # noqa: BLE001 - whatever kept CodeDeploy from answering, it is unknown
        raise CreateOutcomeUnknown(
            f"CreateDeployment failed ({_describe(error)}) and CodeDeploy could not be asked whether it "
            f"created the deployment anyway ({_describe(look)}): looking again when this start's claim expires"
        ) from error
    if found is None:
        return None
    deployment_id = str(found["deploymentId"])
    logger.warning(
        "CreateDeployment raised, but CodeDeploy created this release's deployment: recording it",
        extra={"deployment_id": deployment_id, "status": found.get("status"), "error": _describe(error)},
    )
    return deployment_id


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _record_started(ctx: ReleaseContext, created: Created) -> Release:
    """DEPLOYING, with the deployment on the lock and the release in one write (errors here leave
    both to the event path and the reconciler: the deployment exists, so the release must not end
    FAILED)."""
    release = created.release
    logger.append_keys(deployment_id=created.deployment_id)
    try:
        started = start(
            ctx,
            release,
            created.deployment_id,
            current_version=created.current_version,
            deployment_config=created.deployment_config,
            alarms=created.alarms,
            # A release that waited in the queue no longer waits: drop the queue's reason.
            reason_code="",
            reason="",
            **({"warnings": [created.alarm_warning]} if created.alarm_warning else {}),
            **_step_timings(),
        )
    except TransitionRefused as refused:
        logger.warning("Start already recorded by the deployment's own event", extra={"error": str(refused)})
        return refused.release or release
    logger.info(
        "Deployment started",
        extra={"current_version": created.current_version, "config": created.deployment_config},
    )
    return started


def _step_timings() -> dict[str, Any]:
    """This invocation's step timings, written with the state change (nothing when none were taken)."""
    timings = steps.recorded()
    return {"steps": timings} if timings else {}


def queue(ctx: ReleaseContext, release: Release, why: str) -> Release:
    """QUEUED behind the function's active deployment (a queued release stays as it is)."""
    if release.state == State.QUEUED:
        logger.info("Release stays queued", extra={"why": why})
        return release
    try:
        queued = move(ctx, release, State.QUEUED, reason_code=ReasonCode.WAITING, reason=why)
    except TransitionRefused as refused:
        # Two starts of one release (an unfreeze and the reconciler, say) both hold its re-entrant
        # lock; CodeDeploy lets only one create the deployment. The other finds the release moved on.
        current = refused.release
        if current is not None and (current.state == State.DEPLOYING or current.is_terminal):
            logger.info("Release already started elsewhere", extra={"state": str(current.state)})
            return current
        raise
    logger.info("Release queued", extra={"why": why})
    return queued
