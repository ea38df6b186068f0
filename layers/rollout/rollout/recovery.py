"""What the reconciler recovers besides deployments, by handing work back to the function that
should have done it (`Deliver`, an asynchronous invoke), so it runs that function's own path:

    uploads nobody recorded     (S3's `Object Created` event lost)   -> the artifact deployer
    releases stuck RECEIVED     (their deployer died mid-release)    -> the artifact deployer
    undelivered events          (EventBridge or Lambda gave up)      -> the function they were for

The deployer is idempotent on (bucket, key, version) and keeps one release per object version
(`upload_ops`), so a handed-over upload whose event turns up after all is a duplicate, and a
resumed release carries on where it stopped.

Bounds, per run: SWEEP_PAGES listings of SWEEP_PAGE object versions, HANDOVER_LIMIT handed-over
uploads, DEAD_LETTER_BATCHES receives of ten undelivered events. S3 lists keys in UTF-8 order,
not by time, so the bucket is swept a few pages a run from a bookmark; a full sweep takes
ceil(versions / (SWEEP_PAGES * SWEEP_PAGE)) runs, and a lost upload is found by the end of the
first sweep that starts at least LOST_AFTER after its upload. Only versions last modified in the
sweep's window (from CHECK_OVERLAP before the previous sweep started) are looked up in the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from rollout import s3_versions, sqs_ops, upload_ops
from rollout.artifact_keys import SUFFIX, function_segment
from rollout.ledger import Release
from rollout.observability import logger
from rollout.states import ReasonCode, State
from rollout.transitions import ReleaseContext, fail

if TYPE_CHECKING:
    from rollout.redelivery import Functions

# rollout.redelivery (the events handed over) is imported where work is handed over: most runs find
# nothing to hand over, and it builds its types at import.

Item = TypeVar("Item")
Deliver = Callable[[str, dict[str, Any]], None]

SWEEP_PAGE = 1000  # ListObjectVersions' MaxKeys limit
SWEEP_PAGES = 3
HANDOVER_LIMIT = 25
# S3 puts an upload's event on EventBridge within seconds; one older than this without a record
# lost it (or is still being retried: handing it over is harmless, the event then finds it done).
LOST_AFTER = timedelta(minutes=2)
# Every sweep looks again at versions last modified up to a day before the previous sweep began:
# a multipart upload is stamped when it began, not when it completed, so one that took up to a day
# is still seen. It stays under the deployer's idempotency window (48 h), so versions uploaded
# before the ledger kept upload items are answered from that record, never recorded twice.
CHECK_OVERLAP = timedelta(hours=24)
# A RECEIVED release whose last attempt began this long ago is handed to the deployer again; the
# deployer's idempotency refuses while the attempt's invocation could still be alive.
RESUME_AFTER = timedelta(minutes=1)
# No Lambda invocation outlives 15 minutes: a last attempt older than that has nobody behind it.
LONGEST_INVOCATION = timedelta(minutes=15)
# A release still RECEIVED this long after it arrived, with nobody working on it, is given up.
ABANDON_AFTER = timedelta(hours=1)
DEAD_LETTER_BATCHES = 5
# Longer than a reconciler run (240 s): a run never reads a message twice. Messages kept for people
# are made visible again when the run ends.
DEAD_LETTER_VISIBILITY_SECONDS = 300
# Replays of one undelivered event before it is left in the queue for a person.
MAX_REPLAYS = 3


class Each(Protocol):
    """The reconciler's per-item loop: a failing item is counted and skipped, never the rest."""

    def __call__(
        self, step: str, items: Iterable[Item], name: Callable[[Item], str], act: Callable[[Item], None]
    ) -> None: ...


@dataclass
class RecoveryReport:
    """The work one run handed back or gave up: uploads, releases and undelivered events."""

    uploads_handed_over: list[str] = field(default_factory=list)  # "bucket/key@version"
    releases_resumed: list[str] = field(default_factory=list)
    releases_abandoned: list[str] = field(default_factory=list)
    events_replayed: list[str] = field(default_factory=list)
    events_discarded: list[str] = field(default_factory=list)
    events_kept: list[dict[str, str]] = field(default_factory=list)  # message id and why

    def as_dict(self) -> dict[str, Any]:
        return {
            "uploads_handed_over": self.uploads_handed_over,
            "releases_resumed": self.releases_resumed,
            "releases_abandoned": self.releases_abandoned,
            "events_replayed": self.events_replayed,
            "events_discarded": self.events_discarded,
            "events_kept": self.events_kept,
        }

    @property
    def repaired(self) -> int:
        return (
            len(self.uploads_handed_over)
            + len(self.releases_resumed)
            + len(self.releases_abandoned)
            + len(self.events_replayed)
        )


@dataclass
class Recovery:
    """One reconciler run's recovery work."""

    ctx: ReleaseContext
    deliver: Deliver
    each: Each
    now: datetime
    report: RecoveryReport = field(default_factory=RecoveryReport)

    @property
    def deployer(self) -> str:
        """The artifact deployer, to which uploads and stalled releases are handed ('' when unset)."""
        return self.ctx.settings.artifact_deployer_function

    @property
    def functions(self) -> Functions:
        from rollout.redelivery import Functions

        settings = self.ctx.settings
        return Functions(
            settings.artifact_deployer_function,
            settings.deployment_events_function,
            settings.reconciler_function,
            settings.deployment_actions_function,
        )


# --- releases whose deployer died ----------------------------------------------------------------


def resume_stalled_releases(recovery: Recovery) -> None:
    """RECEIVED releases nobody is carrying on: hand them to the deployer again, or give them up."""
    if not recovery.deployer:
        return
    stalled = recovery.ctx.ledger.open_releases(State.RECEIVED)
    recovery.each("resume release", stalled, _release_name, lambda release: _resume(recovery, release))


def _resume(recovery: Recovery, release: Release) -> None:
    version = release.object_version or "-"
    table = recovery.ctx.settings.ledger_table
    record = upload_ops.get_upload(table, release.function, release.bucket, release.key, version)
    if record is None:
        # Recorded before the ledger kept upload items: link it first, or the deployer would start
        # a second release for the same object version.
        upload_ops.link_release(
            table, release.function, release.bucket, release.key, version, release.release_id
        )
    last_attempt = _parse(record.last_attempt_at if record else "") or _parse(release.received_at)
    if last_attempt is not None and recovery.now - last_attempt < RESUME_AFTER:
        return  # its attempt may well be running
    nobody_behind = last_attempt is None or recovery.now - last_attempt > LONGEST_INVOCATION
    arrived = _parse(release.received_at)
    if nobody_behind and (arrived is None or recovery.now - arrived > ABANDON_AFTER):
        attempts = record.attempts if record else 0
        fail(
            recovery.ctx,
            release,
            f"still RECEIVED {_age(recovery.now, arrived)} after it arrived, with no processing attempt "
            f"for {_age(recovery.now, last_attempt)} ({attempts} attempts): the reconciler gave it up",
            code=ReasonCode.PROCESSING_ABANDONED,
        )
        recovery.report.releases_abandoned.append(release.release_id)
        return
    from rollout.redelivery import upload_event

    event = upload_event(
        release.bucket,
        release.key,
        release.object_version,
        arrived or recovery.now,
        release.size,
        release.etag,
        recovery.ctx.settings.region,
    )
    recovery.deliver(recovery.deployer, event)
    recovery.report.releases_resumed.append(release.release_id)
    logger.warning("handed a stalled release back to the deployer", extra={"release_id": release.release_id})


# --- uploads nobody recorded ---------------------------------------------------------------------


def recover_lost_uploads(recovery: Recovery) -> None:
    """Sweep the artifact bucket's object versions from the bookmark; hand over those nobody recorded."""
    settings = recovery.ctx.settings
    bucket = settings.artifact_bucket
    if not bucket or not recovery.deployer:
        return
    bookmark = upload_ops.get_sweep(settings.ledger_table, bucket)
    for _ in range(SWEEP_PAGES):
        page = s3_versions.list_versions_page(
            bucket, bookmark.key_marker, bookmark.version_marker, SWEEP_PAGE
        )
        s3_now = page.server_time or recovery.now
        if not bookmark.key_marker:
            _start_sweep(bookmark, s3_now)
        window_start = _parse(bookmark.checked_before) or s3_now - CHECK_OVERLAP
        lost = [
            v
            for v in page.versions
            if v.key.endswith(SUFFIX) and window_start <= v.last_modified <= s3_now - LOST_AFTER
        ]
        recovery.each("recover upload", lost, _version_name, lambda v: _recover(recovery, bookmark, v))
        if len(recovery.report.uploads_handed_over) >= HANDOVER_LIMIT:
            break  # this page again next run: the bookmark stays where the page began
        if page.last:
            _finish_sweep(bookmark)
            break
        bookmark.key_marker, bookmark.version_marker = page.next_key_marker, page.next_version_marker
    upload_ops.save_sweep(settings.ledger_table, bucket, bookmark)


def _start_sweep(bookmark: upload_ops.SweepBookmark, s3_now: datetime) -> None:
    bookmark.sweep_started_at = _iso(s3_now)
    bookmark.oldest_handed_over = ""
    if not bookmark.checked_before:
        # The first sweep ever: what is older than the overlap was either recorded by the deployer or
        # uploaded before this stack kept upload items; neither is new work.
        bookmark.checked_before = _iso(s3_now - CHECK_OVERLAP)


def _finish_sweep(bookmark: upload_ops.SweepBookmark) -> None:
    started = _parse(bookmark.sweep_started_at) or datetime.now(UTC)
    candidates = [started - CHECK_OVERLAP]
    handed = _parse(bookmark.oldest_handed_over)
    if handed is not None:
        candidates.append(handed)  # seen again next sweep: recorded by then, or handed over again
    bookmark.checked_before = _iso(min(candidates))
    bookmark.key_marker = bookmark.version_marker = bookmark.oldest_handed_over = ""


def _recover(
    recovery: Recovery, bookmark: upload_ops.SweepBookmark, version: s3_versions.ObjectVersion
) -> None:
    if len(recovery.report.uploads_handed_over) >= HANDOVER_LIMIT:
        return
    settings = recovery.ctx.settings
    function = function_segment(version.key)
    recorded = upload_ops.get_upload(
        settings.ledger_table, function, settings.artifact_bucket, version.key, version.version_id or "-"
    )
    if recorded is not None:
        return
    from rollout.redelivery import upload_event

    event = upload_event(
        settings.artifact_bucket,
        version.key,
        version.version_id,
        version.last_modified,
        version.size,
        version.etag,
        settings.region,
    )
    recovery.deliver(recovery.deployer, event)
    recovery.report.uploads_handed_over.append(_version_name(version))
    oldest = _parse(bookmark.oldest_handed_over)
    if oldest is None or version.last_modified < oldest:
        bookmark.oldest_handed_over = _iso(version.last_modified)
    logger.warning("upload nobody recorded handed to the deployer", extra={"upload": _version_name(version)})


# --- undelivered events --------------------------------------------------------------------------


def replay_undelivered(recovery: Recovery) -> None:
    """Each message of the undelivered-events queue goes back to its function, or stays for a person."""
    queue_url = recovery.ctx.settings.undelivered_events_queue_url
    if not queue_url:
        return
    kept: list[sqs_ops.QueuedMessage] = []
    try:
        for _ in range(DEAD_LETTER_BATCHES):
            messages = sqs_ops.receive(queue_url, DEAD_LETTER_VISIBILITY_SECONDS)
            recovery.each(
                "replay event", messages, _message_name, lambda m: _replay(recovery, queue_url, m, kept)
            )
            if len(messages) < sqs_ops.RECEIVE_LIMIT:
                break
    finally:
        # Hidden while the run read the other messages; visible again now, so the queue's alarm
        # (ApproximateNumberOfMessagesVisible) keeps telling people until someone deals with them.
        recovery.each(
            "show kept event",
            kept,
            _message_name,
            lambda m: sqs_ops.make_visible(queue_url, m.receipt_handle),
        )


def _replay(
    recovery: Recovery, queue_url: str, message: sqs_ops.QueuedMessage, kept: list[sqs_ops.QueuedMessage]
) -> None:
    from rollout.redelivery import Discard, Keep, Redelivery, from_dead_letter

    verdict = from_dead_letter(message.body, message.attributes, recovery.functions)
    if isinstance(verdict, Redelivery) and verdict.event_id:
        replays = upload_ops.count_replay(recovery.ctx.settings.ledger_table, verdict.event_id)
        if replays > MAX_REPLAYS:
            verdict = Keep(f"replayed {MAX_REPLAYS} times already and undelivered again")
    if isinstance(verdict, Keep):
        kept.append(message)
        recovery.report.events_kept.append({"message_id": message.message_id, "why": verdict.why})
        logger.warning("undelivered event kept for an operator", extra={"why": verdict.why})
        return
    if isinstance(verdict, Redelivery):
        recovery.deliver(verdict.function, verdict.event)
        recovery.report.events_replayed.append(f"{verdict.function}:{verdict.event_id or message.message_id}")
    elif isinstance(verdict, Discard):
        recovery.report.events_discarded.append(message.message_id)
    sqs_ops.delete(queue_url, message.receipt_handle)


# --- names and times ---------------------------------------------------------------------------


def _release_name(release: Release) -> str:
    return f"{release.function}/{release.release_id}"


def _version_name(version: s3_versions.ObjectVersion) -> str:
    return f"{version.key}@{version.version_id or '-'}"


def _message_name(message: sqs_ops.QueuedMessage) -> str:
    return message.message_id


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(stamp: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "an unknown time"
    minutes = int((now - then).total_seconds() // 60)
    return f"{minutes} min"
