"""The CodeDeploy lifecycle hooks: what they test, how they judge, and reporting exactly once.

A hook is invoked with only {DeploymentId, LifecycleEventHookExecutionId}. It reads the deployment's
own AppSpec to learn the function, alias and versions; takes its checks from the release in the
ledger (or, for a deployment Rollout did not start, from the document the function's
`rollout:checks` tag names); tests; records what it saw on the release; and tells CodeDeploy
Succeeded or Failed. Every path reports, and the hook stops waiting for its work while there is
still time to report, so no deployment waits out CodeDeploy's one-hour hook timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from rollout import aws, codedeploy_ops, gates, lambda_ops, s3_ops
from rollout.appspec import LambdaAppSpec, parse_appspec, release_id_in
from rollout.check_runner import (
    FAILED,
    SUCCEEDED,
    Check,
    CheckResult,
    Invoke,
    excerpt,
    run_checks,
)
from rollout.checks import CHECKS_FILENAMES, MAX_DOCUMENT_BYTES, ChecksError, parse_checks
from rollout.config import Settings
from rollout.errors import ChecksUnavailable, HookEventError, MetricsUnreadable
from rollout.hook_outcome import (
    LABELS,
    POST_TRAFFIC,
    PRE_TRAFFIC,
    HookOutcome,
    LifecycleEvent,
    judge_checks,
    pre_traffic_plan,
)
from rollout.ledger import Ledger, Release
from rollout.observability import logger, metrics
from rollout.transitions import ReleaseContext

if TYPE_CHECKING:
    from rollout.canary import CanaryPolicy, CanaryVerdict

REASON_CODE = "HOOK_EXECUTION_FAILURE"
# The lifecycle event each hook answers; it acts only while that event is in progress.
LIFECYCLE_EVENTS = {PRE_TRAFFIC: "BeforeAllowTraffic", POST_TRAFFIC: "AfterAllowTraffic"}
REFUSED = "Refused"  # not this hook's turn: nothing is tested, recorded or reported
AWAITING_APPROVAL = "AwaitingApproval"  # tests passed; a person answers (rollout.approvals)
CHECKS_TAG = "rollout:checks"

# Time kept back from the hook's own timeout for recording results and reporting the status.
REPORT_MARGIN_MS = 10_000
# Time kept back from the work's deadline for the check runner to wrap up its results.
WRAP_UP_MS = 500


@dataclass(frozen=True)
class Deployment:
    """A deployment as the hooks see it: its AppSpec and the times it reports."""

    deployment_id: str
    application: str
    group: str
    appspec: LambdaAppSpec
    create_time: datetime | None = None
    start_time: datetime | None = None
    description: str = ""
    # Set only on the deployment CodeDeploy itself creates to roll another one back.
    rollback_of: str = ""


@dataclass
class _Progress:
    """What the work has learnt so far, shared with the thread that reports if the work overruns."""

    step: str = "starting"
    release: Release | None = None
    deployment: Deployment | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, step: str) -> None:
        with self.lock:
            self.step = step


# --- the entry point the two handlers share ---------------------------------------------------
def handle_lifecycle_event(
    hook: str,
    event: Any,
    context: Any,
    invoke: Invoke,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.monotonic,
    report_margin_ms: int = REPORT_MARGIN_MS,
) -> dict[str, Any]:
    """Test, record, report: the whole of one hook invocation. Never raises for a failed test."""
    settings = settings or Settings.from_env()
    metrics.add_dimension(name="hook", value=hook)
    try:
        lifecycle = LifecycleEvent.parse(event)
    except HookEventError as exc:
        # Without the ids there is nobody to report to; say so loudly and stop.
        logger.error("not a lifecycle hook event; nothing to report", extra={"problem": str(exc)})
        return {"status": "Ignored", "reason": str(exc)}
    logger.set_correlation_id(lifecycle.deployment_id)
    logger.append_keys(hook=hook, execution_id=lifecycle.execution_id)

    started = clock()
    remaining_ms = _remaining_ms(context)
    deadline = started + max(0, remaining_ms - report_margin_ms) / 1000
    ledger = Ledger(settings.ledger_table) if settings.ledger_table else None
    progress = _Progress()

    caller = HookCaller(hook, _own_name(hook, settings, context), settings.codedeploy_application)
    outcome = _run_with_deadline(
        lambda: _evaluate(caller, lifecycle, ledger, invoke, progress, deadline - WRAP_UP_MS / 1000, clock),
        hook,
        progress,
        deadline,
        clock,
    )
    if outcome is None:
        logger.info("this hook execution was already reported; not reporting again")
        return {"status": "AlreadyReported", "deploymentId": lifecycle.deployment_id}
    if outcome.verdict in (REFUSED, AWAITING_APPROVAL):
        return _not_reported(outcome, lifecycle)

    _emit_metrics(outcome)
    release = _release_to_record_on(ledger, lifecycle, outcome, progress)
    held = _hold_for_approval(settings, ledger, release, lifecycle, outcome)
    if held is not None:
        return held
    keep = release is None and _unread(progress) and not outcome.passed
    if keep:
        outcome.reason = _join(outcome.reason, "no release found for it")
    _record(ledger, release, lifecycle, outcome, reported=False, keep=keep)
    log = logger.info if outcome.passed else logger.warning
    log(
        f"{LABELS[hook]} hook verdict: {outcome.verdict}",
        extra={"reason": outcome.reason, "checks": [c.to_record() for c in outcome.checks]},
    )
    if report_status(lifecycle, outcome.verdict):
        _record(ledger, release, lifecycle, outcome, reported=True, keep=keep)
    return {"status": outcome.verdict, "reason": outcome.reason, "deploymentId": lifecycle.deployment_id}


def _not_reported(outcome: HookOutcome, lifecycle: LifecycleEvent) -> dict[str, Any]:
    if outcome.verdict == REFUSED:
        # Reporting would answer for another hook's lifecycle event (a confused deputy).
        logger.error("not this hook's lifecycle event; nothing reported", extra={"reason": outcome.reason})
    else:
        logger.info("repeated invocation of a gate that awaits approval; nothing reported")
    return {"status": outcome.verdict, "reason": outcome.reason, "deploymentId": lifecycle.deployment_id}


def _hold_for_approval(
    settings: Settings,
    ledger: Ledger | None,
    release: Release | None,
    lifecycle: LifecycleEvent,
    outcome: HookOutcome,
) -> dict[str, Any] | None:
    """When the tests passed and the release asks for a person at this step: open the gate, record,
    return without reporting (the answer is reported by deployment_actions). None otherwise; a gate
    that cannot be opened turns the outcome into Failed (fail closed)."""
    if ledger is None or release is None or not outcome.passed:
        return None
    if gates.wanted(release.checks, outcome.hook) is None:
        return None
    # The test results are on the release before the gate opens: whoever answers sees what passed.
    outcome.awaiting_approval = True
    _record(ledger, release, lifecycle, outcome, reported=False)
    # Only a gated release needs the approval machinery (and its imports): not at every hook's init.
    from rollout import approvals

    ctx = ReleaseContext.from_settings(settings, ledger)
    try:
        gate = approvals.open_gate(
            ctx, release, outcome.hook, lifecycle.deployment_id, lifecycle.execution_id
        )
    except Exception as exc:
        logger.exception("could not open the approval gate; reporting Failed")
        outcome.verdict = FAILED
        outcome.awaiting_approval = False
        outcome.reason = (
            f"{LABELS[outcome.hook]} approval gate could not be opened: {type(exc).__name__}: {exc}"
        )
        return None
    if gate is None or gate.status != gates.GateStatus.AWAITING:
        outcome.awaiting_approval = False
        if gate is not None:
            # A repeated invocation raced the first one, whose gate was answered meanwhile: the
            # answer stands, never this invocation's own test result.
            outcome.verdict, outcome.reason = gate.verdict, _gate_reason(gate)
        return None
    logger.info("tests passed; awaiting approval", extra={"deadline": gate.deadline_at})
    reason = _join(outcome.reason, f"awaiting approval until {gate.deadline_at}")
    return {"status": AWAITING_APPROVAL, "reason": reason, "deploymentId": lifecycle.deployment_id}


def _run_with_deadline(
    work: Callable[[], HookOutcome | None],
    hook: str,
    progress: _Progress,
    deadline: float,
    clock: Callable[[], float],
) -> HookOutcome | None:
    """Run `work` in a worker thread; past `deadline`, stop waiting and fail with time to spare."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hook-work")
    future = pool.submit(work)
    try:
        return future.result(timeout=max(0.0, deadline - clock()))
    except FutureTimeout:
        with progress.lock:
            step = progress.step
        logger.error("hook ran out of time; reporting Failed", extra={"step": step})
        return HookOutcome(
            hook,
            FAILED,
            f"{LABELS[hook]} hook ran out of time while {step}; reported Failed before its own timeout",
        )
    except Exception as exc:
        logger.exception("hook failed; reporting Failed")
        return HookOutcome(
            hook, FAILED, f"{LABELS[hook]} hook error: {type(exc).__name__}: {excerpt(str(exc), 300)}"
        )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class HookCaller:
    """Which hook this is: its lifecycle event, its own function name, and this stack's application."""

    hook: str
    own_name: str
    application: str

    @property
    def lifecycle_event(self) -> str:
        return LIFECYCLE_EVENTS[self.hook]


def _evaluate(
    caller: HookCaller,
    lifecycle: LifecycleEvent,
    ledger: Ledger | None,
    invoke: Invoke,
    progress: _Progress,
    deadline: float,
    clock: Callable[[], float],
) -> HookOutcome | None:
    hook = caller.hook
    progress.at("reading the deployment")
    deployment = _read_deployment(hook, lifecycle.deployment_id)
    if isinstance(deployment, HookOutcome):
        return deployment
    with progress.lock:
        progress.deployment = deployment
    progress.at(f"checking that {caller.lifecycle_event} is in progress and names this hook")
    events = codedeploy_ops.lifecycle_events(deployment.deployment_id)
    refusal = turn_refusal(caller, deployment, events)
    if refusal:
        return HookOutcome(hook, REFUSED, refusal)
    if deployment.rollback_of:
        # Only CodeDeploy creates rollback deployments; they restore the version that was live.
        return HookOutcome(
            hook,
            SUCCEEDED,
            f"rollback of deployment {deployment.rollback_of} restores version "
            f"{deployment.appspec.target_version}, which was live before; not tested again",
        )
    progress.at("looking up the release in the ledger")
    release = release_of(ledger, deployment) if ledger else None
    with progress.lock:
        progress.release = release
    gate = gates.stored_gate(release.approval if release else None, hook, lifecycle.execution_id)
    if gate is not None:
        return _outcome_of_gate(hook, gate)
    previous = (release.hook_results or {}).get(hook) if release else None
    if previous and previous.get("execution_id") == lifecycle.execution_id:
        # A repeated invocation of an execution already judged: report that verdict, do not re-test.
        if previous.get("reported"):
            return None
        logger.info("repeated invocation: reporting the recorded verdict")
        return _outcome_from_record(hook, previous)
    unproven = _unproven_release(caller, deployment, release)
    if unproven:
        return HookOutcome(hook, FAILED, f"{LABELS[hook]} hook: {unproven}", checks_origin="unavailable")

    progress.at("reading the checks")
    try:
        checks, origin = find_checks(release, deployment.appspec.function)
    except ChecksUnavailable as exc:
        return HookOutcome(
            hook, FAILED, f"{LABELS[hook]} checks unavailable: {exc}", checks_origin="unavailable"
        )
    if hook == PRE_TRAFFIC:
        return evaluate_pre_traffic(deployment, checks, origin, invoke, progress, deadline, clock)
    # AfterAllowTraffic is in progress, so the traffic window's times in `events` are final: read once.
    return evaluate_post_traffic(deployment, checks, origin, invoke, progress, deadline, clock, events)


def _read_deployment(hook: str, deployment_id: str) -> Deployment | HookOutcome:
    """The deployment, or (nothing can be judged) Failed, saying which deployment could not be read."""
    try:
        return describe_deployment(deployment_id)
    except Exception as exc:
        logger.exception("could not read the deployment; reporting Failed")
        return HookOutcome(
            hook,
            FAILED,
            f"{LABELS[hook]} hook could not read deployment {deployment_id}: "
            f"{type(exc).__name__}: {excerpt(str(exc), 300)}",
        )


def _outcome_of_gate(hook: str, gate: gates.Gate) -> HookOutcome | None:
    """A repeated invocation of a gated execution: wait on, report the answer, or nothing if reported."""
    if gate.status == gates.GateStatus.AWAITING:
        return HookOutcome(hook, AWAITING_APPROVAL, f"awaiting approval until {gate.deadline_at}")
    if gate.reported:
        return None
    return HookOutcome(hook, gate.verdict, _gate_reason(gate))


def _gate_reason(gate: gates.Gate) -> str:
    if gate.status == gates.GateStatus.APPROVED:
        return f"approved by {gates.Approver.parse(gate.answered_by).describe()}"
    return gates.failure_reason(gate)


def turn_refusal(caller: HookCaller, deployment: Deployment, events: list[dict[str, Any]] | None) -> str:
    """Why this invocation is not this hook's to answer ('' when it is).

    Anyone allowed to invoke a hook can hand it any execution id; answering only while the
    deployment's AppSpec names this function for this hook's lifecycle event, and that event is in
    progress, keeps one hook from reporting for another's step (skipping the canary analysis).
    """
    named = (
        deployment.appspec.before_allow_traffic
        if caller.hook == PRE_TRAFFIC
        else deployment.appspec.after_allow_traffic
    )
    if not named or _function_name(named) != caller.own_name:
        return (
            f"the deployment's AppSpec names {named or 'no function'} for {caller.lifecycle_event}, "
            f"not this hook ({caller.own_name})"
        )
    if events is None:
        return "the deployment lists no target, so no lifecycle event of it is in progress"
    status = next(
        (str(e.get("status")) for e in events if e.get("lifecycleEventName") == caller.lifecycle_event),
        "missing",
    )
    if status != "InProgress":
        return f"{caller.lifecycle_event} is {status}, not InProgress"
    return ""


def release_of(ledger: Ledger, deployment: Deployment) -> Release | None:
    """The release a deployment's description names, read by primary key (a consistent read)."""
    release_id = release_id_in(deployment.description)
    if release_id:
        return ledger.get(deployment.appspec.function, release_id)
    return None


def _unproven_release(caller: HookCaller, deployment: Deployment, release: Release | None) -> str:
    """Why the deployment cannot be judged against a release ('' when it can, or is not Rollout's)."""
    spec = deployment.appspec
    if release is None:
        if not caller.application:
            # Rollout's own deployments cannot be told from other tools' (fail closed).
            return (
                f"deployment {deployment.deployment_id} names no release, and this hook does not know "
                "Rollout's application (CODEDEPLOY_APPLICATION is not set); nothing is passed untested"
            )
        if deployment.application == caller.application:
            return (
                f"deployment {deployment.deployment_id} of Rollout's application {caller.application} "
                "names no release in the ledger; a version nobody validated is never passed"
            )
        return ""
    if release.function != spec.function or release.target_version != spec.target_version:
        return (
            f"the deployment targets {spec.function} version {spec.target_version}, but release "
            f"{release.release_id} is {release.function} version {release.target_version or '(none)'}"
        )
    if release.deployment_id and release.deployment_id != deployment.deployment_id:
        # Its description names the release, but the release started another deployment: a copied
        # description proves nothing about this one.
        return (
            f"deployment {deployment.deployment_id} names release {release.release_id}, whose own "
            f"deployment is {release.deployment_id}; a version nobody validated is never passed"
        )
    if release.is_terminal and not release.deployment_id:
        # The release ended without recording a deployment (an upload given up after its attempts died,
        # one of which had created this deployment): passed, it would go live under a release whose
        # record says it never went out, and nothing could end that record.
        return (
            f"release {release.release_id} already ended {release.state} ({release.reason_code or 'no code'}) "
            f"without recording deployment {deployment.deployment_id}; a deployment its release does not "
            "know is never passed"
        )
    return ""


def _function_name(reference: str) -> str:
    """A function's name from its name, name:qualifier, or ARN (as AppSpecs may name hooks)."""
    parts = reference.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6]
    return parts[0]


def _own_name(hook: str, settings: Settings, context: Any) -> str:
    configured = settings.pre_traffic_hook if hook == PRE_TRAFFIC else settings.post_traffic_hook
    return configured or str(getattr(context, "function_name", "") or "")


# --- what each hook tests ---------------------------------------------------------------------
def evaluate_pre_traffic(
    deployment: Deployment,
    checks: dict[str, Any] | None,
    origin: str,
    invoke: Invoke,
    progress: _Progress,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> HookOutcome:
    """Run the pre-traffic checks against the exact target version (no traffic reaches it yet)."""
    spec = deployment.appspec
    outcome = HookOutcome(PRE_TRAFFIC, SUCCEEDED, "", checks_origin=origin)
    outcome.tested = f"{spec.function} version {spec.target_version}"
    to_run, warning = pre_traffic_plan(checks, origin)
    if warning:
        outcome.warnings.append(warning)
    if not to_run:
        outcome.reason = warning
        return outcome
    progress.at(f"running {len(to_run)} pre-traffic check(s) against version {spec.target_version}")
    outcome.checks = run_checks(
        to_run,
        invoke,
        spec.function,
        spec.target_version,
        deadline,
        expected_version=spec.target_version,
        clock=clock,
    )
    judge_checks(outcome, f"version {spec.target_version}")
    if to_run[0].probe and outcome.passed:
        outcome.reason = (
            f"version {spec.target_version} starts (start probe); no pre-traffic checks configured ({origin})"
        )
    return outcome


def evaluate_post_traffic(
    deployment: Deployment,
    checks: dict[str, Any] | None,
    origin: str,
    invoke: Invoke,
    progress: _Progress,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    events: list[dict[str, Any]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> HookOutcome:
    """Run the post-traffic checks through the alias, then compare the new version with the old
    (over the traffic window of `events`, the deployment target's lifecycle events, read if None)."""
    spec = deployment.appspec
    specs = (checks or {}).get(POST_TRAFFIC) or []
    outcome = HookOutcome(POST_TRAFFIC, SUCCEEDED, "", checks_origin=origin)
    outcome.tested = f"{spec.function}:{spec.alias} (version {spec.target_version})"
    if specs:
        progress.at(f"running {len(specs)} post-traffic check(s) through alias {spec.alias}")
        outcome.checks = run_checks(
            [Check.from_spec(s) for s in specs],
            invoke,
            spec.function,
            spec.alias,
            deadline,
            expected_version=spec.target_version,
            clock=clock,
        )
        judge_checks(outcome, f"alias {spec.alias}")
    else:
        outcome.warnings.append(f"no post-traffic checks configured ({origin})")

    if clock() >= deadline:
        outcome.verdict = FAILED
        outcome.reason = _join(outcome.reason, "post-traffic hook ran out of time before the canary analysis")
        return outcome

    try:
        verdict = _canary_analysis(deployment, checks, progress, events, deadline, clock, sleep)
    except MetricsUnreadable as error:
        # A figure CloudWatch could not return is unknown: the canary cannot be judged, so it fails.
        outcome.verdict = FAILED
        outcome.reason = _join(outcome.reason, f"post-traffic canary could not be judged: {error}")
        return outcome
    outcome.canary = verdict.to_record()
    outcome.warnings.extend(verdict.warnings)
    if not verdict.passed:
        outcome.verdict = FAILED
        outcome.reason = _join(outcome.reason, f"post-traffic canary failed: {verdict.reason}")
    elif outcome.passed:
        summary = (
            f"{len(outcome.checks)} post-traffic check(s) passed through alias {spec.alias}"
            if outcome.checks
            else "no post-traffic checks"
        )
        outcome.reason = f"{summary}; canary: {verdict.reason}"
    return outcome


def _canary_analysis(
    deployment: Deployment,
    checks: dict[str, Any] | None,
    progress: _Progress,
    known_events: list[dict[str, Any]] | None,
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> CanaryVerdict:
    """The new version against the old over the deployment's own traffic window (CloudWatch metrics)."""
    # Imported here: only the post-traffic hook judges a canary (and its app.py loads these at init);
    # the pre-traffic hook and the hook failure reporter skip them.
    from rollout.canary import judge_canary, traffic_window
    from rollout.lambda_metrics import read_version_figures

    spec = deployment.appspec
    progress.at("reading the deployment's traffic window")
    events, notes = (known_events, []) if known_events else lifecycle_events(deployment.deployment_id)
    start, end, window_notes = traffic_window(
        events, deployment.start_time or deployment.create_time, datetime.now(UTC)
    )
    progress.at("reading CloudWatch metrics for the canary analysis (once the window's are final)")
    figures = read_version_figures(
        spec.function,
        spec.alias,
        [spec.target_version, spec.current_version],
        start,
        end,
        deadline,
        clock,
        sleep,
    )
    verdict = judge_canary(
        figures[spec.target_version], figures[spec.current_version], _policy(checks), start, end
    )
    verdict.warnings.extend(notes + window_notes)
    return verdict


def _policy(checks: dict[str, Any] | None) -> CanaryPolicy:
    from rollout.canary import CanaryPolicy  # with the canary analysis (see _canary_analysis)

    policy = CanaryPolicy.from_checks(checks)
    if checks and checks.get("strict") is True and not policy.strict:
        return CanaryPolicy(
            policy.max_error_rate, policy.max_p99_duration_ratio, policy.min_invocations, True
        )
    return policy


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second


# --- reading the deployment -------------------------------------------------------------------
def describe_deployment(deployment_id: str) -> Deployment:
    """The deployment's application, group and AppSpec (GetDeployment, then its revision)."""
    info = codedeploy_ops.get_deployment(deployment_id)
    application = info["applicationName"]
    content = appspec_content(application, info.get("revision") or {})
    return Deployment(
        deployment_id=deployment_id,
        application=application,
        group=info.get("deploymentGroupName", ""),
        appspec=parse_appspec(content),
        create_time=info.get("createTime"),
        start_time=info.get("startTime"),
        description=str(info.get("description") or ""),
        rollback_of=str((info.get("rollbackInfo") or {}).get("rollbackTriggeringDeploymentId") or ""),
    )


def appspec_content(application: str, revision: Mapping[str, Any]) -> str:
    """The AppSpec text of a revision: inline content (AppSpecContent or String) or an S3 object."""
    revision_type = revision.get("revisionType")
    if revision_type in ("AppSpecContent", "String"):
        content = codedeploy_ops.inline_appspec(application, dict(revision))
        if not content:
            raise ValueError(f"the deployment's {revision_type} revision has no AppSpec content")
        return content
    if revision_type == "S3":
        location = revision.get("s3Location") or {}
        # A Lambda AppSpec is a few hundred bytes; the checks file's bound keeps an odd object from
        # exhausting the hook's memory (it fails with the reason instead).
        body = s3_ops.read_object(
            location["bucket"], location["key"], location.get("version") or "", limit=MAX_DOCUMENT_BYTES
        )
        return body.decode("utf-8")
    raise ValueError(f"unsupported revision type {revision_type!r} for a Lambda deployment")


def lifecycle_events(deployment_id: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The deployment target's lifecycle events (with their times), and notes if they are unknown."""
    try:
        events = codedeploy_ops.lifecycle_events(deployment_id)
    except Exception as exc:  # noqa: BLE001 - the window has fallbacks; an unreadable target is one of them
        logger.warning("could not read the deployment target", extra={"error": str(exc)})
        return [], [f"could not read the deployment target ({aws.error_code(exc) or type(exc).__name__})"]
    if events is None:
        return [], ["the deployment lists no target; lifecycle times unknown"]
    return events, []


def find_checks(release: Release | None, function: str) -> tuple[dict[str, Any] | None, str]:
    """The checks for this deployment and where they came from.

    Rollout's own releases carry theirs (None when the artifact had no checks file). Otherwise the
    function may name a checks document with its `rollout:checks` tag.
    """
    if release is not None:
        if not release.checks:
            return None, f"release {release.release_id} has no checks"
        origin = f"the checks of release {release.release_id}"
        try:
            return parse_checks(release.checks), origin
        except ChecksError as exc:
            raise ChecksUnavailable(f"the checks stored on {origin} are invalid: {exc}") from exc
    uri = lambda_ops.function_tags(function).get(CHECKS_TAG, "").strip()
    if not uri:
        return None, f"not a Rollout release and {function} has no {CHECKS_TAG} tag"
    bucket, key = parse_s3_uri(uri)
    try:
        body = s3_ops.read_object(bucket, key, limit=MAX_DOCUMENT_BYTES)
    except s3_ops.DocumentTooLarge as exc:
        raise ChecksUnavailable(f"cannot read {uri} (named by the {CHECKS_TAG} tag): {exc}") from exc
    except Exception as exc:  # re-raised as the reason the hook failed
        code = aws.error_code(exc) or type(exc).__name__
        raise ChecksUnavailable(f"cannot read {uri} (named by the {CHECKS_TAG} tag): {code}") from exc
    try:
        checks = parse_checks(body, filename=key.rsplit("/", 1)[-1])
    except ChecksError as exc:
        raise ChecksUnavailable(f"{uri} (named by the {CHECKS_TAG} tag) is invalid: {exc}") from exc
    approval = checks.get("approval")
    if approval:
        # A gate lives on a Rollout release and only Rollout's application's gates are answered
        # (approvals.act): outside Rollout nobody could approve, so the hook must not pass without one.
        raise ChecksUnavailable(
            f"{uri} (named by the {CHECKS_TAG} tag) asks for approval before {approval['before']}, "
            "which only a Rollout release can wait for"
        )
    return checks, f"{uri} ({CHECKS_TAG} tag)"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ChecksUnavailable(f"the {CHECKS_TAG} tag must be an s3://bucket/key URI, got {uri!r}")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ChecksUnavailable(f"the {CHECKS_TAG} tag must be an s3://bucket/key URI, got {uri!r}")
    if not key.endswith(CHECKS_FILENAMES):
        # The hooks' role may read only such keys (template.yaml, ReadChecksDocuments): never artifacts.
        raise ChecksUnavailable(
            f"the {CHECKS_TAG} tag must name a key ending in {', '.join(CHECKS_FILENAMES)}, got {uri!r}"
        )
    return bucket, key


# --- recording and reporting ------------------------------------------------------------------
# What became of a status sent to CodeDeploy (`put_status`).
STATUS_TAKEN, STATUS_ALREADY_SET, EXECUTION_UNKNOWN = "taken", "already set", "unknown"


def report_status(lifecycle: LifecycleEvent, status: str) -> bool:
    """Tell CodeDeploy the verdict. True when CodeDeploy has a status for this execution.

    An execution already completed is fine (a repeated invocation, or the on-failure destination
    after the hook itself reported). Ids CodeDeploy does not know cannot ever be reported. Any other
    error is raised: the invocation then fails and the on-failure destination reports Failed.
    """
    return put_status(lifecycle, status) != EXECUTION_UNKNOWN


def put_status(lifecycle: LifecycleEvent, status: str) -> str:
    """`report_status`, saying whether CodeDeploy took this status (STATUS_TAKEN), already held one
    for the execution (STATUS_ALREADY_SET: whose, it does not say), or does not know the execution."""
    try:
        codedeploy_ops.put_hook_status(lifecycle.deployment_id, lifecycle.execution_id, status)
    except Exception as exc:
        code = aws.error_code(exc)
        if code == "LifecycleEventAlreadyCompletedException":
            logger.info("CodeDeploy already has a status for this hook execution", extra={"status": status})
            return STATUS_ALREADY_SET
        if code in (
            "InvalidLifecycleEventHookExecutionIdException",
            "DeploymentDoesNotExistException",
            "InvalidDeploymentIdException",
        ):
            logger.error(
                "CodeDeploy does not know this hook execution; nothing to report", extra={"code": code}
            )
            return EXECUTION_UNKNOWN
        raise
    logger.info("reported to CodeDeploy", extra={"status": status})
    return STATUS_TAKEN


def _record(
    ledger: Ledger | None,
    release: Release | None,
    lifecycle: LifecycleEvent,
    outcome: HookOutcome,
    reported: bool,
    keep: bool = False,
) -> None:
    """Store the outcome on the release, or with `keep` under the deployment id for the deployment's
    ending to record on it (`Ledger.keep_hook_result`); a ledger failure never stops the report."""
    if ledger is None:
        return
    record = outcome.to_record(lifecycle, reported)
    try:
        if release is None:
            if keep:
                ledger.keep_hook_result(lifecycle.deployment_id, outcome.hook, record)
            return
        ledger.record_hook_result(release.function, release.release_id, outcome.hook, record)
        if not outcome.passed and not reported:
            ledger.update(
                release.function, release.release_id, reason_code=REASON_CODE, reason=outcome.reason
            )
    except Exception:
        logger.exception("could not record the hook result in the ledger")


def _unread(progress: _Progress) -> bool:
    """Whether the work never read its deployment (whose it is, Rollout's or not, is unknown)."""
    with progress.lock:
        return progress.deployment is None


def _release_to_record_on(
    ledger: Ledger | None, lifecycle: LifecycleEvent, outcome: HookOutcome, progress: _Progress
) -> Release | None:
    """Where to record the outcome: the release the work looked up, or for a failure that came first
    (its deployment unreadable, say) the release found by the deployment; never a release of another
    deployment (a copied description must not overwrite that release's own record).

    Finding it only says where to write, never what the verdict is."""
    with progress.lock:
        release, deployment = progress.release, progress.deployment
    if release is None and ledger is not None and not outcome.passed:
        try:
            release = _release_of_deployment(ledger, lifecycle.deployment_id, deployment)
        except Exception:  # the report matters more than the record
            logger.exception("could not look up the release to record the failure on")
    if release is not None and release.deployment_id not in ("", lifecycle.deployment_id):
        return None
    return release


def _release_of_deployment(
    ledger: Ledger, deployment_id: str, deployment: Deployment | None
) -> Release | None:
    """The release of a deployment, without judging it: the one its description names (read by key),
    else, when it could not be read, the by-deployment index (a candidate read again by key; the index
    trails its table on AWS, so a release recorded a moment ago is missing from it), then the release
    whose function's lock names the deployment."""
    if deployment is not None:
        return release_of(ledger, deployment)
    return ledger.by_deployment(deployment_id) or _release_holding_lock(ledger, deployment_id)


def _release_holding_lock(ledger: Ledger, deployment_id: str) -> Release | None:
    """The release whose function's lock names the deployment, read by key: the function is in the
    deployment's target (LambdaFunctionInfo.functionName, "The name of a Lambda function", CodeDeploy API
    Reference, "LambdaFunctionInfo"), and the start records its deployment on the lock and the release in
    one write (`Ledger.start_deployment`)."""
    target = codedeploy_ops.lambda_target(deployment_id) or {}
    function = str((target.get("lambdaFunctionInfo") or {}).get("functionName") or "")
    lock = ledger.get_lock(function) if function else None
    if not lock or lock.get("deployment_id") != deployment_id or not lock.get("release_id"):
        return None
    return ledger.get(function, str(lock["release_id"]))


def _outcome_from_record(hook: str, record: Mapping[str, Any]) -> HookOutcome:
    checks = [
        CheckResult(
            name=str(c.get("name", "")),
            verdict=str(c.get("verdict", FAILED)),
            duration_ms=int(c.get("duration_ms", 0)),
            excerpt=str(c.get("excerpt", "")),
            error=str(c.get("error", "")),
            executed_version=c.get("executed_version"),
        )
        for c in record.get("checks") or []
    ]
    verdict = SUCCEEDED if record.get("verdict") == SUCCEEDED else FAILED
    return HookOutcome(
        hook,
        verdict,
        str(record.get("reason", "")),
        checks=checks,
        canary=record.get("canary"),
        warnings=list(record.get("warnings") or []),
        checks_origin=str(record.get("checks_origin", "")),
        tested=str(record.get("tested", "")),
    )


def _emit_metrics(outcome: HookOutcome) -> None:
    passed = sum(1 for c in outcome.checks if c.passed)
    metrics.add_metric(name="HookChecksPassed", unit=MetricUnit.Count, value=passed)
    metrics.add_metric(name="HookChecksFailed", unit=MetricUnit.Count, value=len(outcome.checks) - passed)
    # 1 for Succeeded, 0 for Failed: the average is the hook's pass rate.
    metrics.add_metric(name="HookVerdict", unit=MetricUnit.Count, value=1 if outcome.passed else 0)


def _remaining_ms(context: Any) -> int:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    try:
        return int(getter()) if getter else 900_000
    except (TypeError, ValueError):
        return 900_000
