"""Artifact rules (pure): which uploads an event carries, what a key means, whether a zip is safe.

Nothing here calls AWS. The zip is inspected through any seekable binary file (the deployer passes a
ranged reader over the S3 object), reading only the central directory and the checks file: an
archive is never extracted, so a zip bomb costs nothing to refuse.
"""

from __future__ import annotations

import itertools
import re
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from typing import IO, Any
from urllib.parse import unquote_plus

from rollout.checks import CHECKS_FILENAMES, MAX_DOCUMENT_BYTES
from rollout.errors import Rejected

SUFFIX = ".zip"
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
NO_FUNCTION = "(none)"  # ledger partition for uploads whose key names no function (not a valid name)

# Lambda's documented limit is 250 MB unzipped (262144000 bytes in its error messages); the 50 MB
# zipped limit applies only to direct uploads, not to code fetched from S3. A zip can hardly be
# larger than what it holds, so the same figure bounds the object.
MAX_UNZIPPED_BYTES = 262_144_000
MAX_ARTIFACT_BYTES = MAX_UNZIPPED_BYTES
MAX_ENTRIES = 100_000
# Deflate reaches about 1000:1 on runs of zeros; real code and data stay far below 100:1. Small
# entries may compress absurdly without harm, so the ratio is only judged above a size floor.
MAX_ENTRY_RATIO = 200
RATIO_FLOOR_BYTES = 1024 * 1024
_LOCAL_HEADER_BYTES = 30
_S_IFMT = 0o170000
_S_IFLNK = 0o120000


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One object upload as an event reports it; `key` exactly as delivered."""

    bucket: str
    key: str
    version_id: str = ""
    size: int | None = None
    etag: str = ""
    source: str = "eventbridge"  # or "s3" (classic notification record)
    event_time: str = ""  # when S3 says the upload happened
    sequencer: str = ""  # S3's ordering hint for events of one bucket

    @property
    def upload_order(self) -> str:
        """A string that sorts uploads in the order S3 saw them: event time, then sequencer.

        S3 compares sequencers by right-padding the shorter with zeros; a fixed width does that.
        Event times have whole seconds on AWS, so within one second the sequencer decides.
        """
        try:
            when = datetime.fromisoformat(self.event_time.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return ""
        stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        # Without a sequencer, count as the newest of its second (arrival decides among those):
        # better to deploy the latest processed build than to supersede a newer one by mistake.
        sequence = f"{self.sequencer.upper():0<32}" if self.sequencer else "F" * 32
        return f"{stamp}|{sequence}"

    def key_candidates(self) -> list[str]:
        """Keys to try against the bucket, most likely first.

        Classic S3 records URL-encode keys (`+` for space). Whether EventBridge does is unconfirmed,
        and a key may itself contain `+` or `%`, so the other reading is tried second.
        """
        decoded = unquote_plus(self.key)
        ordered = [decoded, self.key] if self.source == "s3" else [self.key, decoded]
        return list(dict.fromkeys(ordered))


@dataclass(frozen=True)
class EventProblem:
    """Part of an event that is not an upload this function can act on."""

    where: str
    reason: str
    bucket: str = ""
    key: str = ""


def uploads_from_event(event: Any) -> tuple[list[Upload], list[EventProblem]]:
    """The uploads an EventBridge `Object Created` event or a classic S3 notification carries.

    Never raises: whatever cannot be read comes back as an EventProblem saying why. The raw dict is
    read rather than Powertools' data classes because those always URL-decode the key.
    """
    if not isinstance(event, dict):
        return [], [EventProblem("event", f"expected a JSON object, got {type(event).__name__}")]
    if "Records" in event:
        return _from_records(event["Records"])
    if "detail" in event or "detail-type" in event:
        return _from_eventbridge(event)
    return [], [
        EventProblem("event", "neither an EventBridge event (detail) nor an S3 notification (Records)")
    ]


def _from_eventbridge(event: dict[str, Any]) -> tuple[list[Upload], list[EventProblem]]:
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return [], [EventProblem("detail", "missing or not an object")]
    bucket = _dig(detail, "bucket", "name")
    key = _dig(detail, "object", "key")
    kind = event.get("detail-type")
    if kind is not None and kind != "Object Created":
        where = "detail-type"
        return [], [
            EventProblem(where, f"{kind!r} is not an upload (expected 'Object Created')", bucket, key)
        ]
    missing = [
        name for name, value in (("detail.bucket.name", bucket), ("detail.object.key", key)) if not value
    ]
    if missing:
        return [], [EventProblem(missing[0], "missing or empty", bucket, key)]
    obj = detail.get("object") or {}
    return [
        Upload(
            bucket=bucket,
            key=key,
            version_id=str(obj.get("version-id") or ""),
            size=_int_or_none(obj.get("size")),
            # AWS sends `etag`; some emulators send `eTag`.
            etag=str(obj.get("etag") or obj.get("eTag") or ""),
            source="eventbridge",
            event_time=str(event.get("time") or ""),
            sequencer=str(obj.get("sequencer") or ""),
        )
    ], []


def _from_records(records: Any) -> tuple[list[Upload], list[EventProblem]]:
    if not isinstance(records, list) or not records:
        return [], [EventProblem("Records", "missing, empty or not a list")]
    uploads: list[Upload] = []
    problems: list[EventProblem] = []
    for index, record in enumerate(records):
        where = f"Records[{index}]"
        if not isinstance(record, dict):
            problems.append(EventProblem(where, "not an object"))
            continue
        bucket = _dig(record, "s3", "bucket", "name")
        key = _dig(record, "s3", "object", "key")
        name = str(record.get("eventName") or "")
        if name and not name.startswith("ObjectCreated:"):
            problems.append(EventProblem(f"{where}.eventName", f"{name!r} is not an upload", bucket, key))
            continue
        if not bucket or not key:
            field = "s3.bucket.name" if not bucket else "s3.object.key"
            problems.append(EventProblem(f"{where}.{field}", "missing or empty", bucket, key))
            continue
        obj = record["s3"]["object"]
        uploads.append(
            Upload(
                bucket=bucket,
                key=key,
                version_id=str(obj.get("versionId") or ""),
                size=_int_or_none(obj.get("size")),
                etag=str(obj.get("eTag") or obj.get("etag") or ""),
                source="s3",
                event_time=str(record.get("eventTime") or ""),
                sequencer=str(obj.get("sequencer") or ""),
            )
        )
    return uploads, problems


def _dig(data: Any, *path: str) -> str:
    for part in path:
        if not isinstance(data, dict):
            return ""
        data = data.get(part)
    return data if isinstance(data, str) else ""


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


# --- keys and objects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactKey:
    function: str
    build: str  # the rest of the key after `<function>/`


def function_segment(key: str) -> str:
    """The function the key names, or NO_FUNCTION (for the ledger partition of a rejected upload)."""
    head, sep, _ = key.partition("/")
    return head if sep and FUNCTION_NAME.fullmatch(head) else NO_FUNCTION


def parse_key(key: str) -> ArtifactKey:
    """Split `<function-name>/<anything>.zip`; raise Rejected saying what is wrong."""
    head, sep, rest = key.partition("/")
    if not sep or not head:
        raise Rejected(
            "NO_FUNCTION_SEGMENT",
            f"key {key!r} has no function segment: upload to <function-name>/<build>.zip",
        )
    if not FUNCTION_NAME.fullmatch(head):
        raise Rejected(
            "NO_FUNCTION_SEGMENT",
            f"key {key!r}: first segment {head!r} is not a Lambda function name "
            "(1-64 letters, digits, hyphens or underscores)",
        )
    if not rest.endswith(SUFFIX) or rest.rsplit("/", 1)[-1] == SUFFIX:
        raise Rejected("BAD_SUFFIX", f"key {key!r} must name a {SUFFIX} file (e.g. {head}/build-42{SUFFIX})")
    return ArtifactKey(function=head, build=rest)


def check_object_size(size: int) -> None:
    if size <= 0:
        raise Rejected("EMPTY_OBJECT", "the uploaded object is empty (0 bytes)")
    if size > MAX_ARTIFACT_BYTES:
        raise Rejected(
            "TOO_LARGE",
            f"the uploaded object is {size} bytes; Lambda accepts at most {MAX_ARTIFACT_BYTES} bytes (250 MB)",
        )


def decode_metadata(value: str) -> str:
    """S3 user metadata travels in HTTP headers; clients send non-ASCII text RFC 2047-encoded."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return value


# --- zip inspection -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipReport:
    entries: int
    unzipped_bytes: int
    checks_filename: str | None = None
    checks_document: bytes | None = None


def inspect_zip(archive: IO[bytes]) -> ZipReport:
    """Validate a deployment package without extracting it; raise Rejected on anything unsafe."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            infos = bundle.infolist()
            report = _inspect_entries(infos)
            checks_info = _checks_entry(infos)
            if checks_info is None:
                return report
            if checks_info.file_size > MAX_DOCUMENT_BYTES:
                raise Rejected(
                    "INVALID_CHECKS",
                    f"{checks_info.filename}: (document): is {checks_info.file_size} bytes; "
                    f"at most {MAX_DOCUMENT_BYTES} are allowed",
                )
            with bundle.open(checks_info) as handle:
                document = handle.read(MAX_DOCUMENT_BYTES + 1)
            return ZipReport(report.entries, report.unzipped_bytes, checks_info.filename, document)
    except Rejected:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        ValueError,
        NotImplementedError,
    ) as exc:
        raise Rejected("CORRUPT_ZIP", f"not a valid zip archive: {exc}") from exc


def _inspect_entries(infos: list[zipfile.ZipInfo]) -> ZipReport:
    if not infos:
        raise Rejected("CORRUPT_ZIP", "the zip archive holds no files")
    if len(infos) > MAX_ENTRIES:
        raise Rejected(
            "UNSAFE_ZIP", f"the zip archive holds {len(infos)} entries; at most {MAX_ENTRIES} are allowed"
        )
    names: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        problem = unsafe_path(name)
        if problem:
            raise Rejected("UNSAFE_ZIP", f"entry {name!r}: {problem}")
        if name in names:
            raise Rejected("UNSAFE_ZIP", f"entry {name!r} appears twice (which copy wins is undefined)")
        names.add(name)
        if info.create_system == 3 and (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
            raise Rejected("UNSAFE_ZIP", f"entry {name!r} is a symbolic link")
        if info.flag_bits & 0x1:
            raise Rejected("UNSAFE_ZIP", f"entry {name!r} is encrypted; Lambda cannot read it")
        if info.file_size > RATIO_FLOOR_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > MAX_ENTRY_RATIO:
                raise Rejected(
                    "UNSAFE_ZIP",
                    f"entry {name!r} expands {ratio:.0f} times ({info.compress_size} -> {info.file_size} bytes); "
                    f"more than {MAX_ENTRY_RATIO} times looks like a zip bomb",
                )
        total += info.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise Rejected(
                "TOO_LARGE",
                f"the archive unzips to more than {MAX_UNZIPPED_BYTES} bytes (Lambda's 250 MB unzipped limit)",
            )
    _refuse_overlaps(infos)
    return ZipReport(entries=len(infos), unzipped_bytes=total)


def unsafe_path(name: str) -> str | None:
    """Why an entry name could escape the extraction directory, or None if it cannot."""
    if "\x00" in name:
        return "name contains a NUL byte"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "path climbs out of the archive with '..'"
    return None


def _refuse_overlaps(infos: list[zipfile.ZipInfo]) -> None:
    """Entries sharing compressed bytes are the overlapping-file zip bomb; real archives never do it."""
    ordered = sorted(infos, key=lambda info: info.header_offset)
    for previous, current in itertools.pairwise(ordered):
        encoding = "utf-8" if previous.flag_bits & 0x800 else "cp437"
        name_bytes = len(previous.orig_filename.encode(encoding, "replace"))
        earliest_next = previous.header_offset + _LOCAL_HEADER_BYTES + name_bytes + previous.compress_size
        if current.header_offset < earliest_next:
            raise Rejected(
                "UNSAFE_ZIP",
                f"entries {previous.filename!r} and {current.filename!r} overlap (a zip-bomb construction)",
            )


def _checks_entry(infos: list[zipfile.ZipInfo]) -> zipfile.ZipInfo | None:
    present = [info for info in infos if info.filename in CHECKS_FILENAMES]
    if len(present) > 1:
        listed = " and ".join(info.filename for info in present)
        raise Rejected("INVALID_CHECKS", f"the archive holds {listed}: keep exactly one checks file")
    return present[0] if present else None
