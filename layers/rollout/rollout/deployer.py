"""The artifact deployer's flow: an upload becomes a published version and a CodeDeploy deployment.

    event -> uploads -> (idempotent per bucket/key/version) RECEIVED -> validate -> update code
          -> UNCHANGED | publish -> BOOTSTRAPPED | start_deployment -> DEPLOYING | QUEUED

Every upload that reaches the ledger ends in a recorded state: a rule it breaks makes it REJECTED
with a reason, anything unexpected makes it FAILED with the error, and each outcome is announced.
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from rollout import aws, canary_alarms, codedeploy_ops, lambda_ops, release_queue, s3_ops
from rollout.appspec import build_appspec, revision_for
from rollout.artifacts import (
    EventProblem,
    Rejected,
    Upload,
    check_object_size,
    function_segment,
    inspect_zip,
    parse_key,
    uploads_from_event,
)
from rollout.checks import ChecksError, default_checks, parse_checks
from rollout.config import Settings
from rollout.ledger import Ledger, Release, TransitionRefused, new_release_id
from rollout.notifications import Notifier, build
from rollout.observability import logger, metrics, tracer
from rollout.states import State

# EventBridge retries delivery for up to 24 hours; remember uploads for longer than that.
IDEMPOTENCY_SECONDS = 48 * 3600
IDEMPOTENCY_KEY_PREFIX = "artifact-deployer"
PUBLISH_ATTEMPTS = 3  # update+publish rounds when another upload changes the code in between
# How long an upload waits for others of the same function to publish (the deployer runs 300 s).
PUBLISH_LEASE_WAIT_SECONDS = 180.0


# --- the handler's entry point -------------------------------------------------------------------


def handle_event(event: Any, settings: Settings, lambda_context: Any = None) -> dict[str, Any]:
    """Process every upload in the event; never raises on malformed input."""
    uploads, problems = uploads_from_event(event)
    results: list[dict[str, Any]] = [_malformed(problem) for problem in problems]
    if not uploads and not problems:
        results.append(_malformed(EventProblem("event", "carries no upload")))
    ledger = Ledger(settings.ledger_table)
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=aws.client("dynamodb")
    )
    config = IdempotencyConfig(
        event_key_jmespath="[bucket, key, version_id]",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_SECONDS,
        response_hook=_mark_duplicate,
    )
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    process = idempotent_function(
        data_keyword_argument="upload",
        persistence_store=persistence,
        config=config,
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )(_process_upload)
    for upload in uploads:
        results.append(_receive(upload, settings, ledger, process))
    return {"results": results}


def _malformed(problem: EventProblem) -> dict[str, Any]:
    logger.error(
        "Event is not an upload this function can act on",
        extra={
            "where": problem.where,
            "problem": problem.reason,
            "bucket": problem.bucket,
            "key": problem.key,
        },
    )
    return {
        "state": str(State.REJECTED),
        "reason_code": "MALFORMED_EVENT",
        "reason": f"{problem.where}: {problem.reason}",
        "bucket": problem.bucket or None,
        "key": problem.key or None,
    }


def _receive(upload: Upload, settings: Settings, ledger: Ledger, process: Any) -> dict[str, Any]:
    # Keys of the previous upload in the same event must not tag this one's log lines.
    logger.remove_keys(["release_id", "function", "target_version", "deployment_id"])
    # Find the stored object first, so that the idempotency key names the object itself whatever
    # encoding the event used for its key.
    lookup_error = ""
    stored = None
    try:
        stored = s3_ops.resolve(upload)
    except Exception as exc:  # recorded on the release as FAILED below
        logger.exception(
            "Could not look up the uploaded object", extra={"bucket": upload.bucket, "key": upload.key}
        )
        lookup_error = f"{type(exc).__name__}: {exc}"
    identity = {
        "bucket": upload.bucket,
        "key": stored.key if stored else upload.key,
        "version_id": (stored.version_id if stored else upload.version_id) or "-",
    }
    try:
        result: dict[str, Any] = process(
            upload=identity,
            upload_event=upload,
            stored=stored,
            lookup_error=lookup_error,
            settings=settings,
            ledger=ledger,
        )
    except IdempotencyAlreadyInProgressError:
        logger.warning("The same upload is being processed by another invocation", extra=identity)
        return {**identity, "state": "IN_PROGRESS", "duplicate": True}
    return result


def _mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    """Powertools calls this only when it answers from a stored result: a re-delivered upload."""
    logger.info("Duplicate delivery of an upload already processed", extra={"result": response})
    return {**response, "duplicate": True} if isinstance(response, dict) else response


def _process_upload(
    upload: dict[str, str],
    upload_event: Upload,
    stored: s3_ops.StoredObject | None,
    lookup_error: str,
    settings: Settings,
    ledger: Ledger,
) -> dict[str, Any]:
    """Record the upload and carry it to a state; runs once per (bucket, key, version id)."""
    release = Release(
        function=function_segment(upload["key"]),
        release_id=new_release_id(),
        bucket=upload["bucket"],
        key=upload["key"],
        object_version=stored.version_id if stored else upload_event.version_id,
        etag=stored.etag if stored else upload_event.etag,
        size=stored.size if stored else (upload_event.size or 0),
        upload_order=upload_event.upload_order,
        commit=stored.meta("commit") if stored else "",
        message=stored.meta("message") if stored else "",
        author=stored.meta("author") if stored else "",
    )
    release = ledger.create(release)
    logger.append_keys(release_id=release.release_id, function=release.function)
    logger.set_correlation_id(release.release_id)
    metrics.add_metric(name="ReleasesReceived", unit=MetricUnit.Count, value=1)
    logger.info(
        "Release received",
        extra={"bucket": release.bucket, "key": release.key, "source": upload_event.source},
    )
    try:
        release = _deploy(release, stored, lookup_error, settings, ledger)
    except Rejected as rejected:
        release = _reject(release, rejected, settings, ledger)
    except Exception as exc:  # nothing is lost: the release ends FAILED with the error
        logger.exception("Release failed unexpectedly")
        release = _fail(release, f"{type(exc).__name__}: {exc}", settings, ledger)
    return {
        "release_id": release.release_id,
        "function": release.function,
        "state": str(release.state),
        "reason_code": release.reason_code or None,
        "reason": release.reason or None,
        "target_version": release.target_version or None,
        "deployment_id": release.deployment_id or None,
    }


# --- validation and the code update --------------------------------------------------------------


@tracer.capture_method(capture_response=False)
def _deploy(
    release: Release,
    stored: s3_ops.StoredObject | None,
    lookup_error: str,
    settings: Settings,
    ledger: Ledger,
) -> Release:
    if settings.artifact_bucket and release.bucket != settings.artifact_bucket:
        raise Rejected(
            "WRONG_BUCKET",
            f"bucket {release.bucket!r} is not the artifact bucket {settings.artifact_bucket!r}",
        )
    artifact = parse_key(release.key)
    if lookup_error:
        raise RuntimeError(f"could not read the uploaded object: {lookup_error}")
    if stored is None:
        version = f" version {release.object_version}" if release.object_version else ""
        raise Rejected(
            "OBJECT_NOT_FOUND",
            f"s3://{release.bucket}/{release.key}{version} no longer exists (deleted after upload?)",
        )
    check_object_size(stored.size)
    with s3_ops.open_object(stored) as archive:
        report = inspect_zip(archive)
    if report.checks_filename and report.checks_document is not None:
        try:
            checks = parse_checks(report.checks_document, report.checks_filename)
        except ChecksError as exc:
            raise Rejected("INVALID_CHECKS", f"{report.checks_filename}: {exc}") from exc
    else:
        checks = default_checks()
    target = lambda_ops.get_managed_function(artifact.function, settings.default_deployment_config)
    ledger.update(
        release.function,
        release.release_id,
        checks=checks,
        alias=target.alias,
        deployment_config=target.deployment_config,
    )
    release = dataclasses.replace(
        release, checks=checks, alias=target.alias, deployment_config=target.deployment_config
    )
    logger.info(
        "Artifact valid",
        extra={
            "entries": report.entries,
            "unzipped_bytes": report.unzipped_bytes,
            "checks_file": report.checks_filename,
        },
    )

    # Uploads to one function take turns from update to publish, so that a burst does not keep
    # replacing each other's $LATEST; the CodeSha256 guard on publish stays as the last defence.
    _wait_for_publish_lease(release, ledger)
    try:
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            # Read the alias's code before updating: the comparison must not depend on $LATEST.
            alias = lambda_ops.get_alias(release.function, release.alias)
            live_sha = lambda_ops.code_sha256(release.function, alias.version) if alias else ""
            try:
                update = lambda_ops.update_code(
                    release.function, stored.bucket, stored.key, stored.version_id
                )
                release = dataclasses.replace(release, code_sha256=update.code_sha256)
                if alias and update.code_sha256 == live_sha:
                    return _unchanged(release, alias.version, settings, ledger)
                version = lambda_ops.publish_version(
                    release.function, update, f"rollout release {release.release_id}: {release.key}"
                )
                break
            except lambda_ops.CodeChanged:
                if attempt == PUBLISH_ATTEMPTS:
                    raise
                logger.warning(
                    "Function code changed before publishing; updating again", extra={"attempt": attempt}
                )
    finally:
        ledger.release_publish_lease(release.function, release.release_id)
    if alias and version == alias.version:
        # Lambda returns the latest version instead of publishing when nothing changed.
        return _unchanged(release, alias.version, settings, ledger)
    ledger.update(
        release.function, release.release_id, code_sha256=update.code_sha256, target_version=version
    )
    release = dataclasses.replace(release, target_version=version)
    logger.append_keys(target_version=version)
    if alias is None:
        created = lambda_ops.create_alias(
            release.function, release.alias, version, f"created by rollout release {release.release_id}"
        )
        if created:
            release = ledger.transition(
                release, State.BOOTSTRAPPED, target_version=version, code_sha256=update.code_sha256
            )
            logger.info("First release: alias created", extra={"alias": release.alias})
            _notify("release.bootstrapped", release, settings)
            return release
    return start_deployment(release, ledger, settings)


def _unchanged(release: Release, live_version: str, settings: Settings, ledger: Ledger) -> Release:
    release = ledger.transition(
        release,
        State.UNCHANGED,
        current_version=live_version,
        code_sha256=release.code_sha256,
        reason_code="CODE_UNCHANGED",
        reason=f"alias {release.alias} already serves this code (version {live_version})",
    )
    logger.info("Code unchanged: nothing to deploy", extra={"current_version": live_version})
    _notify("release.unchanged", release, settings)
    return release


def _reject(release: Release, rejected: Rejected, settings: Settings, ledger: Ledger) -> Release:
    logger.warning("Release rejected", extra={"reason_code": rejected.code, "reason": rejected.reason})
    release = ledger.transition(release, State.REJECTED, reason_code=rejected.code, reason=rejected.reason)
    metrics.add_metric(name="ReleasesRejected", unit=MetricUnit.Count, value=1)
    _notify("release.rejected", release, settings)
    return release


def _fail(
    release: Release, reason: str, settings: Settings, ledger: Ledger, code: str = "INTERNAL_ERROR"
) -> Release:
    try:
        release = ledger.transition(release, State.FAILED, reason_code=code, reason=reason[:1000])
    except TransitionRefused as refused:
        # It reached another state before the error (e.g. DEPLOYING): that state stands.
        logger.error(
            "Release not marked failed: it already moved on",
            extra={"state": str(refused.release.state if refused.release else "")},
        )
        return refused.release or release
    _notify("release.failed", release, settings)
    return release


# --- starting (or queueing) a deployment ---------------------------------------------------------


@tracer.capture_method(capture_response=False)
def start_deployment(release: Release, ledger: Ledger, settings: Settings) -> Release:
    """Start the deployment of a published release, or queue it behind the function's active one.

    The release must have target_version, code_sha256, alias and deployment_config set and be
    RECEIVED or QUEUED. Takes the function's lock (re-entrant for the same release), re-reads the
    alias's current version, ensures the deployment group and the release's canary alarms, creates
    the deployment and records DEPLOYING. A RECEIVED release that must wait becomes QUEUED; a
    QUEUED one stays QUEUED untouched. Failures release the lock and end the release FAILED.
    """
    logger.append_keys(release_id=release.release_id, function=release.function)
    if not ledger.acquire_lock(release.function, release.release_id):
        holder = (ledger.get_lock(release.function) or {}).get("release_id", "another release")
        return _queue(release, f"release {holder} holds the function's deployment lock", settings, ledger)
    try:
        managed = lambda_ops.get_managed_function(release.function, settings.default_deployment_config)
        alias = lambda_ops.get_alias(release.function, release.alias)
        if alias is None:
            raise RuntimeError(
                f"alias {release.alias} of {release.function} disappeared before the deployment"
            )
        if alias.version == release.target_version:
            ledger.release_lock(release.function, release.release_id)
            return _already_live(release, settings, ledger)
        newer = ledger.newest_out(release.function)
        if newer is not None and newer.release_id != release.release_id and newer.order > release.order:
            # Uploads can be processed out of order; an older build never goes out over a newer one.
            ledger.release_lock(release.function, release.release_id)
            superseded = release_queue.supersede(release, newer, ledger, settings)
            return superseded or ledger.get(release.function, release.release_id) or release
        active = codedeploy_ops.active_deployments(settings.codedeploy_application, release.function)
        if active:
            ledger.release_lock(release.function, release.release_id)
            return _queue(
                release, f"CodeDeploy deployment {active[0]} is active for this function", settings, ledger
            )
        prefix = settings.canary_alarm_prefix
        scope = canary_alarms.CanaryScope(release.function, release.alias, release.target_version)
        alarms = canary_alarms.put_canary_alarms(prefix, scope, (release.checks or {}).get("canary"))
        config = release.deployment_config or managed.deployment_config
        group = codedeploy_ops.desired_group(
            settings.codedeploy_application,
            release.function,
            config,
            settings.codedeploy_role_arn,
            alarms + managed.alarms,
        )
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
        deployment_id = codedeploy_ops.create_deployment(
            settings.codedeploy_application,
            release.function,
            revision_for(appspec),
            config,
            f"rollout release {release.release_id}: {release.key}",
        )
    except codedeploy_ops.DeploymentLimitExceeded:
        ledger.release_lock(release.function, release.release_id)
        return _queue(release, "CodeDeploy reports an active deployment for this function", settings, ledger)
    except Rejected as rejected:
        ledger.release_lock(release.function, release.release_id)
        return _reject(release, rejected, settings, ledger)
    except Exception as exc:  # the release ends FAILED with the error
        logger.exception("Could not start the deployment")
        ledger.release_lock(release.function, release.release_id)
        return _fail(
            release, f"could not start the deployment: {type(exc).__name__}: {exc}", settings, ledger
        )

    ledger.attach_deployment(release.function, release.release_id, deployment_id)
    logger.append_keys(deployment_id=deployment_id)
    release = ledger.transition(
        release,
        State.DEPLOYING,
        deployment_id=deployment_id,
        current_version=alias.version,
        deployment_config=config,
        alarms=alarms,
        # A release that waited in the queue no longer waits: drop the queue's reason.
        reason_code="",
        reason="",
    )
    metrics.add_metric(name="DeploymentsStarted", unit=MetricUnit.Count, value=1)
    logger.info("Deployment started", extra={"current_version": alias.version, "config": config})
    _notify("deployment.started", release, settings)
    return release


def _queue(release: Release, why: str, settings: Settings, ledger: Ledger) -> Release:
    if release.state == State.QUEUED:
        logger.info("Release stays queued", extra={"why": why})
        return release
    release = ledger.transition(release, State.QUEUED, reason_code="WAITING", reason=why)
    metrics.add_metric(name="ReleasesQueued", unit=MetricUnit.Count, value=1)
    logger.info("Release queued", extra={"why": why})
    _notify("release.queued", release, settings)
    return release


def _wait_for_publish_lease(release: Release, ledger: Ledger) -> None:
    delay = 0.2
    deadline = time.monotonic() + PUBLISH_LEASE_WAIT_SECONDS
    while not ledger.acquire_publish_lease(release.function, release.release_id):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"another upload of {release.function} held $LATEST for over {PUBLISH_LEASE_WAIT_SECONDS:.0f} s"
            )
        time.sleep(delay + random.uniform(0, delay))  # waits on another invocation's DynamoDB item
        delay = min(delay * 2, 3.0)


def _already_live(release: Release, settings: Settings, ledger: Ledger) -> Release:
    # Also for a queued release whose version someone else made live while it waited.
    return _unchanged(release, release.target_version, settings, ledger)


def _notify(kind: str, release: Release, settings: Settings) -> None:
    """Announce an outcome; a failed publish is logged, never allowed to undo the recorded state."""
    if not settings.topic_arn:
        logger.warning("No notification topic configured", extra={"kind": kind})
        return
    try:
        Notifier(settings.topic_arn).publish(build(kind, release, settings.region))
    except Exception:  # the ledger already holds the outcome
        logger.exception("Could not publish the notification", extra={"kind": kind})
