"""The artifact deployer's flow: an upload becomes a validated release, then starts (or queues).

    event -> uploads -> (idempotent per bucket/key/version) RECEIVED -> validate -> start_release

Validation reads the zip's rules and checks file and the target function's tags; everything from
the lock onwards (publish, deployment, queue) is `starter.start_release`, shared with the queue.
Every upload that reaches the ledger ends in a recorded state: a rule it breaks makes it REJECTED
with a reason, anything unexpected makes it FAILED with the error, and each outcome is announced.

One object version is one release, however often its event arrives: the ledger's upload item
(`upload_ops`) keeps the first release id and counts attempts, so Lambda's retry of an invocation
that died, a redelivered or replayed event, or the reconciler's resumption carries on the release
the first attempt recorded. An upload whose processing keeps dying ends FAILED after
MAX_ATTEMPTS rather than being retried forever.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from rollout import aws, lambda_ops, s3_ops, steps, upload_ops
from rollout.actions import HOTFIX_METADATA, KIND_HOTFIX, hotfix_config, hotfix_requested
from rollout.artifact_keys import function_segment, parse_key
from rollout.artifacts import (
    EventProblem,
    Upload,
    ZipReport,
    check_handler_present,
    check_object_size,
    inspect_zip,
    uploads_from_event,
)
from rollout.checks import default_checks, parse_checks
from rollout.config import Settings
from rollout.deadlines import NO_DEADLINE, Deadline
from rollout.errors import ChecksError, Rejected
from rollout.ledger import Ledger, Release, new_release_id
from rollout.observability import logger, metrics, tracer
from rollout.starter import start_release
from rollout.states import ReasonCode, State
from rollout.targets import ManagedFunction
from rollout.transitions import ReleaseContext, fail, reject

# EventBridge retries delivery for up to 24 hours; remember uploads for longer than that.
IDEMPOTENCY_SECONDS = 48 * 3600
IDEMPOTENCY_KEY_PREFIX = "artifact-deployer"
# Processing attempts of one upload (the first, and every retry or resumption after one that died
# without an outcome) before it is recorded FAILED: a build that kills the deployer each time
# (out of memory, say) must end somewhere.
MAX_ATTEMPTS = 4
# The version id S3 gives an object stored while the bucket's versioning is off or suspended.
UNVERSIONED = "null"


# --- the handler's entry point -------------------------------------------------------------------


def handle_event(event: Any, settings: Settings, lambda_context: Any = None) -> dict[str, Any]:
    """Process every upload in the event; never raises on malformed input."""
    steps.begin()  # the first upload's timer also counts the event's parsing
    uploads, problems = uploads_from_event(event)
    results: list[dict[str, Any]] = [_malformed(problem) for problem in problems]
    if not uploads and not problems:
        results.append(_malformed(EventProblem("event", "carries no upload")))
    ledger = Ledger(settings.ledger_table)
    persistence = aws.idempotency_store(settings.idempotency_table)
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
    deadline = Deadline.of_invocation(lambda_context)
    for index, upload in enumerate(uploads):
        if index:
            steps.begin()
        results.append(_receive(upload, settings, ledger, process, deadline))
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
        "reason_code": str(ReasonCode.MALFORMED_EVENT),
        "reason": f"{problem.where}: {problem.reason}",
        "bucket": problem.bucket or None,
        "key": problem.key or None,
    }


def _receive(
    upload: Upload, settings: Settings, ledger: Ledger, process: Any, deadline: Deadline
) -> dict[str, Any]:
    # Keys of the previous upload in the same event must not tag this one's log lines.
    logger.remove_keys(["release_id", "function", "target_version", "deployment_id"])
    # Find the stored object first, so that the idempotency key names the object itself whatever
    # encoding the event used for its key.
    lookup_error = ""
    stored = None
    try:
        with steps.step(steps.LOOKUP):
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
            deadline=deadline,
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
    deadline: Deadline = NO_DEADLINE,
) -> dict[str, Any]:
    """Record the upload and carry it to a state; runs once per (bucket, key, version id) at a time."""
    ctx = ReleaseContext.from_settings(settings, ledger, deadline)
    with steps.step(steps.RECORD):
        release, attempt = _record_upload(ledger, upload, upload_event, stored)
    if release.state != State.RECEIVED:
        # An earlier attempt carried it on; the queue, CodeDeploy's events and the reconciler do the rest.
        logger.info("Upload already carried on by an earlier attempt", extra={"state": str(release.state)})
    elif attempt > MAX_ATTEMPTS:
        release = fail(
            ctx,
            release,
            f"processing of this upload stopped {attempt - 1} times before recording an outcome "
            "(the deployer was killed, timed out or ran out of memory); it is not tried again",
            code=ReasonCode.PROCESSING_ABANDONED,
        )
    elif attempt > 1 and (adopted := _adopt_orphan(ctx, release)) is not None:
        release = adopted
    else:
        release = _validate_and_start(ctx, release, upload["key"], stored, lookup_error)
    return {
        "release_id": release.release_id,
        "function": release.function,
        "state": str(release.state),
        "reason_code": release.reason_code or None,
        "reason": release.reason or None,
        "target_version": release.target_version or None,
        "deployment_id": release.deployment_id or None,
    }


def _adopt_orphan(ctx: ReleaseContext, release: Release) -> Release | None:
    """The release on the deployment an earlier attempt created before it died, if any."""
    from rollout.orphans import adopt_orphaned_deployment  # only a retried upload looks

    return adopt_orphaned_deployment(ctx, release)


def _record_upload(
    ledger: Ledger, upload: dict[str, str], upload_event: Upload, stored: s3_ops.StoredObject | None
) -> tuple[Release, int]:
    """RECEIVED: the upload is in the ledger, so whatever happens next ends in a recorded state.

    Returns the release (new, or the one an earlier attempt recorded) and which attempt this is.
    """
    function = function_segment(upload["key"])
    record = upload_ops.record_attempt(
        ledger.table_name,
        function,
        upload["bucket"],
        _storable(upload["key"]),
        upload["version_id"],
        new_release_id(),
    )
    logger.append_keys(release_id=record.release_id, function=function)
    logger.set_correlation_id(record.release_id)
    existing = ledger.get(function, record.release_id) if record.attempts > 1 else None
    if existing is not None:
        logger.warning(
            "Upload seen before: carrying on its release",
            extra={"attempt": record.attempts, "state": str(existing.state)},
        )
        return existing, record.attempts
    release = _new_release(function, record.release_id, upload, upload_event, stored)
    try:
        release = ledger.create(release)
    except Exception as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise
        # Recorded by an attempt that died after the write was applied but before it saw the answer.
        release = ledger.get(function, record.release_id) or release
        return release, record.attempts
    metrics.add_metric(name="ReleasesReceived", unit=MetricUnit.Count, value=1)
    logger.info(
        "Release received",
        extra={"bucket": release.bucket, "key": release.key, "source": upload_event.source},
    )
    return release, record.attempts


def _storable(key: str) -> str:
    """A key with a lone surrogate (JSON allows one) cannot be stored as is; validation rejects it."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _new_release(
    function: str,
    release_id: str,
    upload: dict[str, str],
    upload_event: Upload,
    stored: s3_ops.StoredObject | None,
) -> Release:
    return Release(
        function=function,
        release_id=release_id,
        bucket=upload["bucket"],
        key=_storable(upload["key"]),
        object_version=stored.version_id if stored else upload_event.version_id,
        etag=stored.etag if stored else upload_event.etag,
        size=stored.size if stored else (upload_event.size or 0),
        upload_order=upload_event.upload_order,
        commit=stored.meta("commit") if stored else "",
        message=stored.meta("message") if stored else "",
        author=stored.meta("author") if stored else "",
        # An upload marked x-amz-meta-hotfix: true skips the gradual shift, never the checks.
        kind=KIND_HOTFIX if stored and hotfix_requested(stored.meta(HOTFIX_METADATA)) else "",
    )


def _validate_and_start(
    ctx: ReleaseContext,
    release: Release,
    key: str,
    stored: s3_ops.StoredObject | None,
    lookup_error: str,
) -> Release:
    try:
        with steps.step(steps.VALIDATE):
            release, target = _validate(ctx, release, key, stored, lookup_error)
    except Rejected as rejected:
        return reject(ctx, release, rejected)
    except Exception as exc:  # nothing is lost: the release ends FAILED with the error
        logger.exception("Release failed unexpectedly")
        return fail(ctx, release, f"{type(exc).__name__}: {exc}")
    started = start_release(ctx, release, target)  # the target as validation read it, not read again
    steps.end()
    if started.is_terminal:
        # It held the function's lock until it ended (bootstrapped, unchanged, superseded...):
        # uploads that queued behind it meanwhile start now. Imported here: a release that deploys,
        # the usual ending, leaves the queue to its deployment's end.
        from rollout.release_queue import advance_queue

        advance_queue(release.function, ctx)
    return started


# --- validation ----------------------------------------------------------------------------------


@tracer.capture_method(capture_response=False)
def _validate(
    ctx: ReleaseContext, release: Release, key: str, stored: s3_ops.StoredObject | None, lookup_error: str
) -> tuple[Release, ManagedFunction]:
    """The artifact's rules, its checks file and the target function's tags; Rejected on a broken rule.

    Returns the release as recorded and the target function as read."""
    settings = ctx.settings
    if settings.artifact_bucket and release.bucket != settings.artifact_bucket:
        raise Rejected(
            ReasonCode.WRONG_BUCKET,
            f"bucket {release.bucket!r} is not the artifact bucket {settings.artifact_bucket!r}",
        )
    artifact = parse_key(key)
    if lookup_error:
        raise RuntimeError(f"could not read the uploaded object: {lookup_error}")
    if stored is None:
        version = f" version {release.object_version}" if release.object_version else ""
        raise Rejected(
            ReasonCode.OBJECT_NOT_FOUND,
            f"s3://{release.bucket}/{release.key}{version} no longer exists (deleted after upload?)",
        )
    _require_pinned(stored)
    report = _inspect(stored)
    checks = _checks_of(report)
    target = lambda_ops.get_managed_function(artifact.function, settings.default_deployment_config)
    handler_note = check_handler_present(
        report, target.handler, target.runtime, target.has_layers, target.environment
    )
    logger.info("Handler check", extra={"handler": target.handler, "note": handler_note})
    hotfix = release.kind == KIND_HOTFIX
    tags = lambda_ops.function_tags(artifact.function) if hotfix else {}
    recorded = ctx.ledger.update(
        release.function,
        release.release_id,
        checks=checks,
        alias=target.alias,
        deployment_config=hotfix_config(artifact.function, hotfix, tags) or target.deployment_config,
    )
    return recorded, target


def _require_pinned(stored: s3_ops.StoredObject) -> None:
    """The object has a version of its own, or the bytes validated here are not the bytes published.

    The zip is read in ranges and Lambda fetches it again when the release starts (UpdateFunctionCode's
    S3ObjectVersion); only a version id holds those reads to one upload. An unversioned bucket names no
    version, and a suspended one names "null", which the next upload to the key replaces (S3 user guide,
    "Adding objects to versioning-suspended buckets")."""
    if stored.version_id in ("", UNVERSIONED):
        named = f" (version {stored.version_id!r})" if stored.version_id else ""
        raise Rejected(
            ReasonCode.OBJECT_NOT_VERSIONED,
            f"s3://{stored.bucket}/{stored.key}{named} has no version of its own: the bucket's versioning is "
            "off or suspended, so another upload to this key could replace the bytes validated here before "
            "Lambda fetches them; enable versioning on the bucket and upload again",
        )


def _inspect(stored: s3_ops.StoredObject) -> ZipReport:
    """The zip's safety rules, read through ranged GETs (the central directory and the checks file)."""
    check_object_size(stored.size)
    with s3_ops.open_object(stored) as archive:
        report = inspect_zip(archive)
    logger.info(
        "Artifact valid",
        extra={
            "entries": report.entries,
            "unzipped_bytes": report.unzipped_bytes,
            "checks_file": report.checks_filename,
        },
    )
    return report


def _checks_of(report: ZipReport) -> dict[str, Any]:
    """The zip's checks, or the defaults when it carries none."""
    if not (report.checks_filename and report.checks_document is not None):
        return default_checks()
    try:
        return parse_checks(report.checks_document, report.checks_filename)
    except ChecksError as exc:
        raise Rejected(ReasonCode.INVALID_CHECKS, f"{report.checks_filename}: {exc}") from exc
