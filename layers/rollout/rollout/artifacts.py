"""Artifact rules (pure): which uploads an event carries and whether a zip is safe (what a key means
is `artifact_keys`).

Nothing here calls AWS. The zip is inspected through any seekable binary file (the deployer passes a
ranged reader over the S3 object), reading only the central directory and the checks file: an
archive is never extracted, so a zip bomb costs nothing to refuse.
"""

from __future__ import annotations

import bisect
import io
import itertools
import re
import struct
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from email.header import decode_header, make_header
from typing import IO, Any, NamedTuple
from urllib.parse import unquote_plus

from rollout.checks import CHECKS_FILENAMES, MAX_DOCUMENT_BYTES
from rollout.errors import Rejected

# Lambda's documented limit is 250 MB unzipped (262144000 bytes in its error messages); the 50 MB
# zipped limit applies only to direct uploads, not to code fetched from S3. A zip can hardly be
# larger than what it holds, so the same figure bounds the object.
MAX_UNZIPPED_BYTES = 262_144_000
MAX_ARTIFACT_BYTES = MAX_UNZIPPED_BYTES
MAX_ENTRIES = 100_000
# The central directory is read whole, as zipfile does; real ones take 60-200 bytes an entry, so
# MAX_ENTRIES of them fit with room for long paths. Bounds memory and the bytes fetched from S3.
MAX_CENTRAL_DIRECTORY_BYTES = 32 * 1024 * 1024
# Deflate reaches about 1000:1 on runs of zeros; real code and data stay far below 100:1. Small
# entries may compress absurdly without harm, so the ratio is only judged above a size floor.
MAX_ENTRY_RATIO = 200
RATIO_FLOOR_BYTES = 1024 * 1024
_S_IFMT = 0o170000
_S_IFLNK = 0o120000
_S_IFREG = 0o100000
_S_IFDIR = 0o040000


# --- events -------------------------------------------------------------------------------------


class Upload(NamedTuple):
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


class EventProblem(NamedTuple):
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


# --- objects -------------------------------------------------------------------------------------


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
#
# The archive is read by hand rather than with zipfile: zipfile parses the whole central directory
# on open (a million-entry directory before any limit is checked), decompresses bzip2 and LZMA
# (which Lambda does not read) without bounding the output, and truncates names at a NUL byte.
# Layout and field order: PKWARE's APPNOTE.TXT 6.3.10, section 4.3.

# End record: signature, disk, directory's disk, entries on this disk, entries, directory size,
# directory offset, comment length; then the comment.
_END_RECORD = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_MAX_COMMENT = 0xFFFF
# Zip64 locator (just before the end record): signature, record's disk, record offset, disks.
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
# Zip64 end record: signature, size of the rest, made by, needed, disk, directory's disk, entries
# on this disk, entries, directory size, directory offset.
_ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_DIRECTORY_RECORD = struct.Struct("<4s4B4HL2L5H2L")  # as zipfile's structCentralDir
_DIRECTORY_SIGNATURE = b"PK\x01\x02"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # as zipfile's structFileHeader
_LOCAL_SIGNATURE = b"PK\x03\x04"
_LOCAL_HEADER_BYTES = _LOCAL_HEADER.size
_ZIP64_EXTRA = 0x0001
_UNICODE_PATH_EXTRA = 0x7075  # Info-ZIP's second name for an entry, which unzip prefers
_FLAG_ENCRYPTED = 0x0001
_FLAG_STRONG_ENCRYPTION = 0x0040
_FLAG_UTF8 = 0x0800
_INFLATE_CHUNK = 64 * 1024

# Lambda reads stored and deflated entries only (the same two Python's zipfile writes by default).
SUPPORTED_COMPRESSION = {0: "stored", 8: "deflate"}
_COMPRESSION_NAMES = {
    1: "shrink",
    2: "reduce",
    3: "reduce",
    4: "reduce",
    5: "reduce",
    6: "implode",
    9: "deflate64",
    10: "PKWARE DCL implode",
    12: "bzip2",
    14: "LZMA",
    16: "IBM z/OS CMPSC",
    18: "IBM TERSE",
    19: "IBM LZ77",
    20: "zstd (old id)",
    93: "zstd",
    94: "MP3",
    95: "xz",
    96: "JPEG",
    97: "WavPack",
    98: "PPMd",
    99: "AES encryption",
}


class ZipReport(NamedTuple):
    entries: int
    unzipped_bytes: int
    checks_filename: str | None = None
    checks_document: bytes | None = None
    names: tuple[str, ...] = ()  # every entry name, as stored (folders end with '/')


class _Entry(NamedTuple):  # a NamedTuple: a hundred thousand of them build twice as fast as a dataclass
    name: str
    name_bytes: int  # length of the stored name: the local header repeats it
    utf8: bool
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    mode: int  # Unix st_mode from the high half of the external attributes (0 when not recorded)

    @property
    def is_folder(self) -> bool:
        return self.name.endswith("/")


class _Directory(NamedTuple):
    entries: int
    offset: int
    size: int


class _Source:
    """Reads ranges of the archive; what the first read of its tail holds is not fetched again.

    A small package (its directory and checks file within the last 64 KB) costs one read.
    """

    def __init__(self, archive: IO[bytes]) -> None:
        self.archive = archive
        self.size = archive.seek(0, io.SEEK_END)
        self.tail, self.tail_start = b"", self.size  # nothing held until the tail is read
        tail_start = self.size - min(self.size, _END_RECORD.size + _MAX_COMMENT)
        self.tail, self.tail_start = self.read(tail_start, self.size - tail_start), tail_start

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or offset + length > self.size:
            raise _corrupt(f"a structure at byte {offset} runs past the end of the file")
        # The part inside the tail comes from memory, so no byte is fetched twice.
        before_tail = max(0, min(length, self.tail_start - offset))
        held = self.tail[max(0, offset - self.tail_start) : max(0, offset + length - self.tail_start)]
        if not before_tail:
            return held
        self.archive.seek(offset)
        data = self.archive.read(before_tail)  # one read, one copy: a directory can be 32 MiB
        while len(data) < before_tail:
            chunk = self.archive.read(before_tail - len(data))
            if not chunk:
                raise _corrupt(f"the file ends at byte {offset + len(data)}, before its size")
            data += chunk
        return data + held if held else data


def inspect_zip(archive: IO[bytes]) -> ZipReport:
    """Validate a deployment package without extracting it; raise Rejected on anything unsafe.

    Reads the last 64 KB (the end record), then the central directory if the end record's counts
    are within the limits, then the checks file: never more than MAX_CENTRAL_DIRECTORY_BYTES +
    MAX_DOCUMENT_BYTES + about 200 KB, whatever the archive claims.
    """
    try:
        source = _Source(archive)
        directory = _find_directory(source)
        entries = _read_directory(source, directory)
        total = _inspect_entries(entries, directory)
        checks_entry = _checks_entry(entries)
        document = _read_checks(source, checks_entry, directory) if checks_entry else None
    except (struct.error, zlib.error) as exc:
        raise _corrupt(str(exc)) from exc
    return ZipReport(
        entries=len(entries),
        unzipped_bytes=total,
        checks_filename=checks_entry.name if checks_entry else None,
        checks_document=document,
        names=tuple(entry.name for entry in entries),
    )


def _corrupt(why: str) -> Rejected:
    return Rejected("CORRUPT_ZIP", f"not a valid zip archive: {why}")


def _find_directory(source: _Source) -> _Directory:
    """Locate the central directory from the end record (zip64 too); check counts before reading it."""
    end_offset, record = _end_record(source)
    _, disk, directory_disk, entries_here, entries, directory_size, directory_offset, _ = record
    directory_end = end_offset
    zip64 = _zip64_end_record(source, end_offset)
    if zip64 is not None:
        directory_end, (disk, directory_disk, entries_here, entries, directory_size, directory_offset) = zip64
    if disk != 0 or directory_disk != 0 or entries_here != entries:
        raise _corrupt("it spans several disks (a split archive)")
    if entries > MAX_ENTRIES:
        raise Rejected(
            "UNSAFE_ZIP", f"the zip archive holds {entries} entries; at most {MAX_ENTRIES} are allowed"
        )
    if directory_size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise Rejected(
            "UNSAFE_ZIP",
            f"the zip archive's central directory is {directory_size} bytes; "
            f"at most {MAX_CENTRAL_DIRECTORY_BYTES} are allowed",
        )
    if directory_offset + directory_size != directory_end:
        # Data before the archive (a self-extractor) or a directory that is not where it says.
        raise _corrupt("the central directory is not where the end record puts it")
    if directory_size < entries * _DIRECTORY_RECORD.size:
        raise _corrupt(f"a {directory_size}-byte central directory cannot hold {entries} entries")
    return _Directory(entries=entries, offset=directory_offset, size=directory_size)


def _end_record(source: _Source) -> tuple[int, tuple[Any, ...]]:
    """Where the end-of-central-directory record starts, and its fields."""
    tail = source.tail
    if len(tail) < _END_RECORD.size:
        raise _corrupt(f"{source.size} bytes is too short for a zip archive")
    # The record is the last signature whose comment ends exactly at the end of the file; a
    # signature-like run inside the comment or in trailing bytes does not qualify.
    at = tail.rfind(_END_SIGNATURE)
    while at >= 0 and (
        at + _END_RECORD.size > len(tail)
        or at + _END_RECORD.size + _END_RECORD.unpack_from(tail, at)[7] != len(tail)
    ):
        at = tail.rfind(_END_SIGNATURE, 0, at)
    if at < 0:
        raise _corrupt("no end-of-central-directory record (not a zip, or cut short)")
    return source.tail_start + at, _END_RECORD.unpack_from(tail, at)


def _zip64_end_record(source: _Source, end_offset: int) -> tuple[int, tuple[int, ...]] | None:
    """(where the zip64 end record starts, its disk/count/size/offset fields), or None without one."""
    locator_offset = end_offset - _ZIP64_LOCATOR.size
    if locator_offset < 0:
        return None
    locator = source.read(locator_offset, _ZIP64_LOCATOR.size)
    if not locator.startswith(_ZIP64_LOCATOR_SIGNATURE):
        return None
    _, record_disk, record_offset, disks = _ZIP64_LOCATOR.unpack(locator)
    if record_disk != 0 or disks > 1:
        raise _corrupt("it spans several disks (a split archive)")
    if record_offset + _ZIP64_END_RECORD.size > locator_offset:
        raise _corrupt("its zip64 locator points past itself")
    signature, rest, _, _, *fields = _ZIP64_END_RECORD.unpack(
        source.read(record_offset, _ZIP64_END_RECORD.size)
    )
    if signature != _ZIP64_END_SIGNATURE or record_offset + 12 + rest != locator_offset:
        raise _corrupt("its zip64 end record is not where its locator says")
    return record_offset, tuple(fields)


def _read_directory(source: _Source, directory: _Directory) -> list[_Entry]:
    data = source.read(directory.offset, directory.size)
    entries: list[_Entry] = []
    at = 0
    for number in range(1, directory.entries + 1):
        if data[at : at + 4] != _DIRECTORY_SIGNATURE or at + _DIRECTORY_RECORD.size > len(data):
            raise _corrupt(f"central directory record {number} of {directory.entries} is damaged")
        (
            _,
            _,
            _,
            _,
            _,
            flags,
            method,
            _,
            _,
            crc,
            compressed_size,
            size,
            name_length,
            extra_length,
            comment_length,
            disk,
            _,
            external_attr,
            header_offset,
        ) = _DIRECTORY_RECORD.unpack_from(data, at)
        at += _DIRECTORY_RECORD.size
        raw_name = data[at : at + name_length]
        extra = _extra_fields(data[at + name_length : at + name_length + extra_length])
        at += name_length + extra_length + comment_length
        if at > len(data):
            raise _corrupt(f"central directory record {number} runs past the directory")
        name, utf8 = _decode_name(raw_name, flags)
        size, compressed_size, header_offset, disk = _zip64_values(
            name, extra, size, compressed_size, header_offset, disk
        )
        if disk != 0:
            raise _corrupt("it spans several disks (a split archive)")
        _refuse_second_name(name, extra)
        entries.append(
            _Entry(
                name=name,
                name_bytes=name_length,
                utf8=utf8,
                flags=flags,
                method=method,
                crc=crc,
                compressed_size=compressed_size,
                size=size,
                header_offset=header_offset,
                mode=external_attr >> 16,
            )
        )
    if at != len(data):
        raise _corrupt(f"the central directory holds more than the {directory.entries} entries it counts")
    return entries


def _decode_name(raw: bytes, flags: int) -> tuple[str, bool]:
    """The name as it appears once Lambda has extracted it: Linux keeps the bytes, runtimes read UTF-8.

    Without the UTF-8 flag the format says cp437, but most writers store UTF-8 regardless; cp437 is
    only the fallback for bytes that are not UTF-8 (path separators and dots are ASCII in both).
    """
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError as exc:
        if flags & _FLAG_UTF8:
            raise _corrupt(f"entry {raw!r} is flagged UTF-8 but its name is not") from exc
        return raw.decode("cp437"), False


def _extra_fields(extra: bytes) -> dict[int, bytes]:
    """Extra fields by id. A malformed tail (some writers pad with zeros) is ignored, as zip readers do."""
    fields: dict[int, bytes] = {}
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if at + 4 + length > len(extra):
            break
        if kind in fields and kind in (_ZIP64_EXTRA, _UNICODE_PATH_EXTRA):
            raise _corrupt(f"an entry repeats its extra field 0x{kind:04x}")
        fields[kind] = extra[at + 4 : at + 4 + length]
        at += 4 + length
    return fields


def _zip64_values(
    name: str, extra: dict[int, bytes], size: int, compressed_size: int, offset: int, disk: int
) -> tuple[int, int, int, int]:
    """Sizes and offset that did not fit 32 bits come from the zip64 field, in this order (4.5.3)."""
    values = [size, compressed_size, offset, disk]
    wanted = [size == 0xFFFFFFFF, compressed_size == 0xFFFFFFFF, offset == 0xFFFFFFFF, disk == 0xFFFF]
    if not any(wanted):
        return size, compressed_size, offset, disk
    field = extra.get(_ZIP64_EXTRA)
    if field is None:
        raise _corrupt(f"entry {name!r} needs a zip64 extra field and has none")
    at = 0
    for index, width in enumerate((8, 8, 8, 4)):
        if wanted[index]:
            if at + width > len(field):
                raise _corrupt(f"entry {name!r} has a zip64 extra field too short for its values")
            values[index] = int.from_bytes(field[at : at + width], "little")
            at += width
    return values[0], values[1], values[2], values[3]


def _refuse_second_name(name: str, extra: dict[int, bytes]) -> None:
    # Info-ZIP's unzip extracts under this name instead of the header's: `ok.py` could land as `../x`.
    field = extra.get(_UNICODE_PATH_EXTRA)
    if field is None:
        return
    second = field[5:].decode("utf-8", "replace")  # version (1 byte) and CRC-32 of the name (4) first
    if second != name:
        raise Rejected(
            "UNSAFE_ZIP",
            f"entry {name!r} carries a second name {second!r} (Unicode Path extra field); "
            "which one an extractor uses differs",
        )


def _inspect_entries(entries: list[_Entry], directory: _Directory) -> int:
    """Check every entry against the rules; return the total unzipped size."""
    if not entries:
        raise Rejected("EMPTY_ARTIFACT", "the zip archive holds no files")
    total = 0
    files = 0
    for entry in entries:
        name = entry.name
        problem = unsafe_path(name)
        if problem:
            raise Rejected("UNSAFE_ZIP", f"entry {name!r}: {problem}")
        kind = entry.mode & _S_IFMT
        if kind == _S_IFLNK:
            raise Rejected("UNSAFE_ZIP", f"entry {name!r} is a symbolic link")
        if kind and kind not in (_S_IFREG, _S_IFDIR):
            raise Rejected("UNSAFE_ZIP", f"entry {name!r} is a device, FIFO or socket (mode {entry.mode:o})")
        if entry.flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
            raise Rejected("UNSAFE_ZIP", f"entry {name!r} is encrypted; Lambda cannot read it")
        if entry.method not in SUPPORTED_COMPRESSION:
            method = _COMPRESSION_NAMES.get(entry.method, "unknown")
            raise Rejected(
                "UNSUPPORTED_COMPRESSION",
                f"entry {name!r} uses compression method {entry.method} ({method}); "
                "Lambda reads only stored (0) and deflate (8) entries",
            )
        if entry.method == 0 and entry.compressed_size != entry.size:
            # Stored data is its own size: one of the two figures lies, and extractors differ on which.
            raise _corrupt(
                f"stored entry {name!r} declares {entry.size} bytes but holds {entry.compressed_size}"
            )
        if entry.size > RATIO_FLOOR_BYTES:
            ratio = entry.size / max(entry.compressed_size, 1)
            if ratio > MAX_ENTRY_RATIO:
                raise Rejected(
                    "UNSAFE_ZIP",
                    f"entry {name!r} expands {ratio:.0f} times ({entry.compressed_size} -> {entry.size} bytes); "
                    f"more than {MAX_ENTRY_RATIO} times looks like a zip bomb",
                )
        total += entry.size
        if total > MAX_UNZIPPED_BYTES:
            raise Rejected(
                "TOO_LARGE",
                f"the archive unzips to more than {MAX_UNZIPPED_BYTES} bytes (Lambda's 250 MB unzipped limit)",
            )
        files += not entry.is_folder
    if not files:
        raise Rejected(
            "EMPTY_ARTIFACT", f"the zip archive holds no files, only {len(entries)} folder entries"
        )
    _refuse_clashing_paths(entries)
    _refuse_overlaps(entries, directory)
    return total


def _refuse_clashing_paths(entries: list[_Entry]) -> None:
    """Two entries on one path once extracted, or a file where another entry needs a folder.

    Works on the sorted paths rather than a set of every folder path: a 64 KB name of 32k segments
    would otherwise make 32k prefixes of up to 64 KB each, a gigabyte from one entry.
    """
    # Sorted by path alone: the sort is stable, so entries on one path stay in archive order.
    placed = sorted(
        ((_extracted_path(entry.name), entry.name) for entry in entries), key=lambda item: item[0]
    )
    paths = [path for path, _ in placed]
    for (path, name), (next_path, next_name) in itertools.pairwise(placed):
        if path and path == next_path:
            same = "appears twice" if name == next_name else f"lands on the same path as {name!r}"
            raise Rejected("UNSAFE_ZIP", f"entry {next_name!r} {same} (which copy wins is undefined)")
    for path, name in placed:
        if path and not name.endswith("/"):
            # Paths under `path/` sort together, though not always right after `path` (`a-b` < `a/`).
            inside = bisect.bisect_left(paths, path + "/")
            if inside < len(paths) and paths[inside].startswith(path + "/"):
                raise Rejected(
                    "UNSAFE_ZIP",
                    f"entry {name!r} is a file, but {placed[inside][1]!r} needs a folder there",
                )


def _extracted_path(name: str) -> str:
    """`a/./b`, `a//b` and `a/b/` all extract to `a/b`; `./` is the package root ('')."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


_DRIVE_LETTER = re.compile(r"[A-Za-z]:")
_SEPARATOR = re.compile(r"[/\\]")  # Windows extractors split on backslashes too


def unsafe_path(name: str) -> str | None:
    """Why an entry name could escape the extraction directory, or None if it cannot."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "name contains a NUL byte"
    if name.startswith(("/", "\\")) or _DRIVE_LETTER.match(name):
        return "absolute path"
    if ".." in name and ".." in _SEPARATOR.split(name):
        return "path climbs out of the archive with '..'"
    return None


def _refuse_overlaps(entries: list[_Entry], directory: _Directory) -> None:
    """Entries sharing compressed bytes are the overlapping-file zip bomb; real archives never do it."""
    ordered = sorted(entries, key=lambda entry: entry.header_offset)
    for previous, current in itertools.pairwise(ordered):
        if current.header_offset < _earliest_end(previous):
            raise Rejected(
                "UNSAFE_ZIP",
                f"entries {previous.name!r} and {current.name!r} overlap (a zip-bomb construction)",
            )
    if _earliest_end(ordered[-1]) > directory.offset:
        raise Rejected(
            "UNSAFE_ZIP",
            f"entry {ordered[-1].name!r} overlaps the central directory (a zip-bomb construction)",
        )


def _earliest_end(entry: _Entry) -> int:
    """Where an entry's data ends at the earliest: its local header may add extra fields, never fewer bytes."""
    return entry.header_offset + _LOCAL_HEADER_BYTES + entry.name_bytes + entry.compressed_size


def _checks_entry(entries: list[_Entry]) -> _Entry | None:
    # Matched on where Lambda extracts it: `./rollout.json` (as some packers write it) is the root's.
    # A folder of that name holds code, not checks.
    present = [
        entry for entry in entries if not entry.is_folder and _extracted_path(entry.name) in CHECKS_FILENAMES
    ]
    if len(present) > 1:
        listed = " and ".join(entry.name for entry in present)
        raise Rejected("INVALID_CHECKS", f"the archive holds {listed}: keep exactly one checks file")
    if not present:
        # Lambda's file system tells the cases apart, so `Rollout.json` is not the checks file: its owner
        # meant checks that would silently never run.
        for entry in entries:
            path = _extracted_path(entry.name)
            if not entry.is_folder and path.lower() in CHECKS_FILENAMES:
                raise Rejected(
                    "INVALID_CHECKS",
                    f"the archive holds {entry.name!r}, not {path.lower()}: a checks file is named in "
                    "lower case, and this one would be ignored",
                )
    return present[0] if present else None


def _deflate_bound(size: int) -> int:
    """zlib's compressBound(): the most deflate needs for `size` bytes, even incompressible ones."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13


def _read_checks(source: _Source, entry: _Entry, directory: _Directory) -> bytes:
    """The checks file's bytes, never producing more than MAX_DOCUMENT_BYTES whatever its header claims."""
    too_big = f"{entry.name}: (document): is {{}} bytes; at most {MAX_DOCUMENT_BYTES} are allowed"
    if entry.size > MAX_DOCUMENT_BYTES:
        raise Rejected("INVALID_CHECKS", too_big.format(entry.size))
    if entry.method == 8 and entry.compressed_size > _deflate_bound(MAX_DOCUMENT_BYTES):
        raise Rejected("INVALID_CHECKS", too_big.format(f"{entry.compressed_size} compressed"))
    header = source.read(entry.header_offset, _LOCAL_HEADER_BYTES + entry.name_bytes)
    signature, _, _, flags, method, _, _, _, _, _, name_length, extra_length = _LOCAL_HEADER.unpack_from(
        header
    )
    stored_name = entry.name.encode("utf-8" if entry.utf8 else "cp437")
    if (
        signature != _LOCAL_SIGNATURE
        or header[_LOCAL_HEADER_BYTES:] != stored_name
        or name_length != len(stored_name)
    ):
        raise _corrupt(f"the local header of {entry.name!r} does not match its directory entry")
    if method != entry.method or flags & _FLAG_ENCRYPTED:
        raise _corrupt(f"the local header of {entry.name!r} disagrees with its directory entry")
    start = entry.header_offset + _LOCAL_HEADER_BYTES + name_length + extra_length
    if start + entry.compressed_size > directory.offset:
        raise Rejected(
            "UNSAFE_ZIP", f"entry {entry.name!r} overlaps the central directory (a zip-bomb construction)"
        )
    if entry.method == 0:
        document = source.read(start, entry.compressed_size)
    else:
        document = _inflate_at_most(source, start, entry.compressed_size, entry.name)
    if len(document) != entry.size:
        raise _corrupt(f"{entry.name!r} holds {len(document)} bytes but its header says {entry.size}")
    if zlib.crc32(document) != entry.crc:
        raise _corrupt(f"{entry.name!r} fails its CRC-32 check")
    return document


def _inflate_at_most(source: _Source, start: int, compressed_size: int, name: str) -> bytes:
    """Inflate a raw deflate stream in chunks, stopping once more than MAX_DOCUMENT_BYTES come out."""
    limit = MAX_DOCUMENT_BYTES
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    output = bytearray()
    position, end = start, start + compressed_size
    pending = b""
    while not inflater.eof:
        if not pending:
            if position == end:
                raise _corrupt(f"the deflate stream of {name!r} ends early")
            pending = source.read(position, min(end - position, _INFLATE_CHUNK))
            position += len(pending)
        # max_length is at least 1 here (0 would mean no limit): output stays within limit + 1.
        output += inflater.decompress(pending, limit + 1 - len(output))
        if len(output) > limit:
            raise Rejected(
                "INVALID_CHECKS",
                f"{name}: (document): inflates to more than {limit} bytes; at most {limit} are allowed",
            )
        pending = inflater.unconsumed_tail
    if position != end or inflater.unused_data:
        raise _corrupt(f"{name!r} has bytes after the end of its deflate stream")
    return bytes(output)


# --- the handler ----------------------------------------------------------------------------------
#
# Whether the package holds the module the function's Handler names, for the runtimes whose loader
# is known. Rejects only what is sure to fail at init; anything a layer, an environment variable or
# a custom runtime could still provide is reported as not checked (the pre-traffic probe proves the
# version starts).

_PYTHON_RUNTIME = re.compile(r"python\d+(?:\.\d+)*")
_NODE_RUNTIME = re.compile(r"nodejs(\d+)?(?:\.\w+)*")
_TASK_ROOT = "/var/task"  # where Lambda extracts the package (LAMBDA_TASK_ROOT)
_NODE_TYPESCRIPT_FROM = 24  # the Node.js runtime client loads .ts/.mts/.cts from Node 24


def check_handler_present(
    report: ZipReport,
    handler: str,
    runtime: str,
    has_layers: bool,
    environment: Mapping[str, str] | None = None,
) -> str:
    """Say where the handler's module is in the package; raise Rejected("HANDLER_NOT_FOUND") if
    the runtime is sure not to find it. Returns a short note of what was concluded.

    `handler`, `runtime` and whether the function has layers come from its configuration (the
    version being published), `environment` from its environment variables: PYTHONPATH, NODE_PATH
    and AWS_LAMBDA_EXEC_WRAPPER change where a module may come from.
    """
    environment = environment or {}
    if runtime.startswith("provided"):
        return f"not checked: {runtime} is a custom runtime; its bootstrap decides what the handler means"
    python = _PYTHON_RUNTIME.fullmatch(runtime)
    node = _NODE_RUNTIME.fullmatch(runtime)
    if not python and not node:
        return f"not checked: the handler layout of runtime {runtime!r} is not known here (Python and Node.js are)"
    if "AWS_LAMBDA_EXEC_WRAPPER" in environment:
        return "not checked: AWS_LAMBDA_EXEC_WRAPPER runs a wrapper script, which may load the handler its own way"
    if not handler.strip():
        raise Rejected(
            "HANDLER_NOT_FOUND", f"the function has no handler; {runtime} needs <module>.<function>"
        )
    package = _PackageFiles(report.names)
    search: _Search | str
    if python:
        search = _python_search(handler, environment)
    else:
        major = int(node.group(1)) if node and node.group(1) else 0
        search = _node_search(handler, major, environment)
    if isinstance(search, str):
        return search  # a path outside the package: nothing to look for here
    found = search.find(package)
    if found:
        return f"found handler module {found}"
    if has_layers:
        return f"not checked: {search.wanted} is not in the package; the function's layers may provide it"
    if search.outside:
        return f"not checked: {search.wanted} is not in the package; {search.outside} may provide it"
    raise Rejected(
        "HANDLER_NOT_FOUND",
        f"handler {handler!r} ({runtime}): {search.explain()}{package.hint(search)}",
    )


class _PackageFiles:
    """The package's file paths as Lambda extracts them (`./a//b` is `a/b`); folders are implied."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.files = {_extracted_path(name) for name in names if not name.endswith("/")}
        self.files.discard("")

    def hint(self, search: _Search) -> str:
        if self.files and all(name.lower().endswith(".zip") for name in self.files):
            only = sorted(self.files)[0]
            return f"; the archive holds only {only!r}: upload that package itself, not a zip of it"
        if not self.files:
            return "; the archive holds no files"
        nested = sorted(name for name in self.files if name.partition("/")[2] in search.at_root)
        if nested:
            folder = nested[0].partition("/")[0]
            return f"; it has {nested[0]!r}: zip the contents of {folder!r}, not the folder itself"
        return ""


class _Search:
    """Paths that satisfy a runtime's loader, in the order it tries them."""

    def __init__(self, wanted: str, how: str) -> None:
        self.wanted = wanted  # what to call the missing module in a message
        self.how = how  # how the runtime looks for it, for the message
        self.files: list[str] = []  # any of these files
        self.at_root: set[str] = set()  # the files it looks for first, to spot a package zipped in a folder
        self.packages: list[str] = []  # or any of these folders holding one of `package_files`
        self.package_files: tuple[str, ...] = ()
        self.patterns: list[re.Pattern[str]] = []  # or a file matching one of these
        self.outside = ""  # a place outside the package the runtime also searches, if any

    def find(self, package: _PackageFiles) -> str | None:
        for path in self.files:
            if path in package.files:
                return path
        for folder in self.packages:
            for inner in self.package_files:
                if f"{folder}/{inner}".lstrip("/") in package.files:
                    return f"{folder}/{inner}".lstrip("/")
        for pattern in self.patterns:
            matched = min((path for path in package.files if pattern.fullmatch(path)), default=None)
            if matched:
                return matched
        return None

    def explain(self) -> str:
        return f"the archive has no {self.wanted} ({self.how})"


def _python_search(handler: str, environment: Mapping[str, str]) -> _Search:
    """What the Python runtime imports (github.com/aws/aws-lambda-python-runtime-interface-client,
    awslambdaric/bootstrap.py, _get_handler): `modname, fname = handler.rsplit(".", 1)`, then
    importlib.import_module(modname.replace("/", ".")), with /var/task first on sys.path, then the
    layer folders under /opt/python, then the runtime's own libraries.
    """
    module, dot, function = handler.rpartition(".")
    if not dot or not function:
        raise Rejected(
            "HANDLER_NOT_FOUND",
            f"handler {handler!r} is not <module>.<function>: Lambda's Python runtime splits it at the last '.'",
        )
    parts = module.replace("/", ".").split(".")
    if "" in parts:
        raise Rejected(
            "HANDLER_NOT_FOUND",
            f"handler {handler!r}: {module!r} is not an importable module name (an empty part between "
            "dots or slashes, or a leading '/')",
        )
    path = "/".join(parts)
    roots = [""]
    outside = []
    for entry in filter(None, environment.get("PYTHONPATH", "").split(":")):
        inside = _package_relative(entry)
        if inside is None:
            outside.append(entry)
        else:
            roots.append(inside)
    search = _Search(
        f"{path}.py or {path}/__init__.py", "Lambda's Python runtime imports it from the package root"
    )
    for root in roots:
        prefix = f"{root}/" if root else ""
        # A module is a source, bytecode or extension file, or a package's __init__ (importlib's
        # FileFinder); a folder without __init__ is a namespace package, which holds no handler.
        for base in (f"{prefix}{path}", f"{prefix}{path}/__init__"):
            search.files += [f"{base}.py", f"{base}.pyc"]
            search.patterns.append(re.compile(re.escape(base) + r"(?:\.[^./]+)?\.so"))
    search.at_root = {f"{path}.py", f"{path}/__init__.py"}
    if outside:
        search.outside = f"PYTHONPATH ({':'.join(outside)})"
    return search


def _node_search(handler: str, major: int, environment: Mapping[str, str]) -> _Search | str:
    """What the Node.js runtime loads (github.com/aws/aws-lambda-nodejs-runtime-interface-client,
    src/UserFunction.js, load and _tryRequire): refuse '..'; module root = the handler up to its
    basename; module = the basename up to its first '.'; try <root>/<module> with no extension,
    .js, .mjs, .cjs (.ts, .mts, .cts from Node 24), then require.resolve(module, {paths: [appRoot,
    moduleRoot]}): node_modules folders from the module root up, then NODE_PATH.
    """
    if ".." in handler:
        raise Rejected(
            "HANDLER_NOT_FOUND", f"handler {handler!r}: Lambda's Node.js runtime refuses '..' in a handler"
        )
    if handler.startswith("/"):
        inside = _package_relative(handler)
        if inside is None:
            return f"not checked: handler {handler!r} names a path outside the package"
        handler = inside
    base = handler.rstrip("/").rsplit("/", 1)[-1]  # path.basename
    # The module root is the text before the basename's first occurrence; path.resolve drops `.`.
    root = "/".join(part for part in handler[: handler.find(base)].split("/") if part not in ("", "."))
    module, dot, _ = base.partition(".")
    if not dot:
        raise Rejected(
            "HANDLER_NOT_FOUND",
            f"handler {handler!r} is not <file>.<function>: Lambda's Node.js runtime splits the last "
            "path segment at its first '.'",
        )
    target = "/".join(filter(None, [root, module]))
    extensions = ["", ".js", ".mjs", ".cjs"]
    if major >= _NODE_TYPESCRIPT_FROM:
        extensions += [".ts", ".mts", ".cts"]
    search = _Search(
        f"{target}.js, .mjs or .cjs", "Lambda's Node.js runtime loads it from the package, or node_modules"
    )
    # A folder loads through its package.json or index file (require of a directory); so does the
    # module root itself for a handler such as `.handler` (an empty module name).
    search.packages = [target]
    search.package_files = ("package.json", "index.js", "index.node")
    if not module:
        search.wanted = f"{target}/index.js or package.json".lstrip("/")
        return search
    search.files = [target + extension for extension in extensions]
    search.at_root = {f"{target}.js", f"{target}.mjs", f"{target}.cjs"}
    _add_node_modules(search, root, module, environment)
    return search


def _add_node_modules(search: _Search, root: str, module: str, environment: Mapping[str, str]) -> None:
    """require.resolve(module, {paths: [appRoot, moduleRoot]}): node_modules of the module root and
    each folder above it, then the global paths (NODE_PATH)."""
    parts = root.split("/") if root else []
    bases = ["/".join([*parts[:end], "node_modules"]) for end in range(len(parts), -1, -1)]
    node_path = environment.get("NODE_PATH")
    outside = []
    if node_path is None:
        # Lambda's default NODE_PATH lists the layer folders and /var/runtime; printenv on current
        # runtimes also shows /var/task, which is counted so that a doubt never rejects.
        bases.append("")
    else:
        for entry in filter(None, node_path.split(":")):
            inside = _package_relative(entry)
            if inside is None:
                outside.append(entry)
            else:
                bases.append(inside)
    for folder in bases:
        candidate = "/".join(filter(None, [folder, module]))
        search.files += [candidate, f"{candidate}.js", f"{candidate}.node"]
        search.packages.append(candidate)
    if outside:
        search.outside = f"NODE_PATH ({':'.join(outside)})"


def _package_relative(path: str) -> str | None:
    """A search path as a folder of the package ('' for its root), or None if it lies outside."""
    if not path.startswith("/"):
        return path.strip("/")  # relative to the working directory, which is /var/task
    if path.rstrip("/") == _TASK_ROOT:
        return ""
    if path.startswith(_TASK_ROOT + "/"):
        return path[len(_TASK_ROOT) + 1 :].strip("/")
    return None
