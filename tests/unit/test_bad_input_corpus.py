"""The bad-input corpus: malformed uploads, each refused with its reason code and a reason naming
the rule or field, or accepted as a documented no-op; never any other exception.

Every case goes through what the deployer does before touching AWS (deployer._deploy): the key,
the object size, the zip, the checks document, the handler. Archives are read through a counting
reader, so each case also proves how little of a hostile archive is read.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import struct
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollout import artifacts, checks
from rollout.artifact_keys import parse_key
from rollout.artifacts import (
    Rejected,
    ZipReport,
    check_handler_present,
    check_object_size,
    inspect_zip,
)
from rollout.checks import ChecksError, parse_checks
from tests.support.artifacts_world import build_zip
from tests.unit.corpus.zips import (
    CountingReader,
    Entry,
    Layout,
    craft_zip,
    deflate,
    deflated,
    stored,
    unicode_path_extra,
)

APP = "def handler(event, context):\n    return {'ok': True}\n"
KEY = "orders/build-42.zip"
# What one inspection may read at most, whatever the archive claims (see inspect_zip).
READ_BOUND = artifacts.MAX_CENTRAL_DIRECTORY_BYTES + checks.MAX_DOCUMENT_BYTES + 200 * 1024


@dataclass(frozen=True)
class Upload:
    body: Callable[[], bytes]
    key: str = KEY
    handler: str = "app.handler"
    runtime: str = "python3.13"


@dataclass
class Outcome:
    note: str = ""
    report: ZipReport | None = None
    build: str = ""
    archive: CountingReader | None = field(default=None, repr=False)


def release(upload: Upload, outcome: Outcome) -> None:
    """The deployer's checks, in its order; raises Rejected as it would."""
    outcome.build = parse_key(upload.key).build
    body = upload.body()
    check_object_size(len(body))
    outcome.archive = CountingReader(body)
    report = outcome.report = inspect_zip(outcome.archive)
    if report.checks_filename and report.checks_document is not None:
        try:
            parse_checks(report.checks_document, report.checks_filename)
        except ChecksError as exc:  # as deployer._deploy words it
            raise Rejected("INVALID_CHECKS", f"{report.checks_filename}: {exc}") from exc
    outcome.note = check_handler_present(report, upload.handler, upload.runtime, False)


@dataclass(frozen=True)
class Case:
    id: str
    upload: Upload
    code: str | None  # None: a documented no-op, accepted
    phrase: str  # in the reason; for a no-op, a name the package or key keeps as it is
    why: str = ""  # for a no-op: why it is harmless


def refused(id: str, body: Callable[[], bytes], code: str, phrase: str, **upload: str) -> Case:
    return Case(id, Upload(body, **upload), code, phrase)


def no_op(id: str, body: Callable[[], bytes], kept: str, why: str, **upload: str) -> Case:
    return Case(id, Upload(body, **upload), None, kept, why)


def with_app(*entries: Entry, layout: Layout | None = None) -> Callable[[], bytes]:
    return lambda: craft_zip([stored("app.py", APP), *entries], layout)


def files(contents: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> Callable[[], bytes]:
    return lambda: build_zip({"app.py": APP, **contents}, compression=compression)


def patched(build: Callable[[], bytes], change: Callable[[bytearray], None]) -> Callable[[], bytes]:
    def patched_build() -> bytes:
        data = bytearray(build())
        change(data)
        return bytes(data)

    return patched_build


def end_record_at(data: bytearray) -> int:
    return data.rindex(b"PK\x05\x06")


def checks_file(document: bytes | str, name: str = "rollout.json") -> Callable[[], bytes]:
    return files({name: document})


# --- zip bombs ------------------------------------------------------------------------------------

BOMBS = [
    refused(
        "ratio-bomb-8MiB-of-zeros",
        files({"zeros.bin": b"\0" * (8 * 1024 * 1024)}),
        "UNSAFE_ZIP",
        "'zeros.bin' expands 1",
    ),
    refused(
        "ratio-bomb-declared-1GB",
        with_app(Entry("big.bin", b"\0" * 100, method=8, size=10**9)),
        "UNSAFE_ZIP",
        "'big.bin' expands 10000000 times",
    ),
    refused(
        "total-size-bomb-6x50MB",
        with_app(*[Entry(f"part{n}.bin", b"\0" * 250_000, method=8, size=50_000_000) for n in range(6)]),
        "TOO_LARGE",
        "Lambda's 250 MB unzipped limit",
    ),
    refused(
        "entry-count-bomb-zip64-claims-4-billion",
        with_app(layout=Layout(entries=2**32 - 1, zip64=True)),
        "UNSAFE_ZIP",
        "holds 4294967295 entries; at most 100000",
    ),
    refused(
        "entry-count-one-over",
        with_app(layout=Layout(entries=artifacts.MAX_ENTRIES + 1, zip64=True)),
        "UNSAFE_ZIP",
        f"holds {artifacts.MAX_ENTRIES + 1} entries",
    ),
    refused(
        "directory-size-bomb-2GiB",
        with_app(layout=Layout(directory_size=2**31, zip64=True)),
        "UNSAFE_ZIP",
        "central directory is 2147483648 bytes",
    ),
    refused(
        "overlapping-entries-bomb",
        with_app(*[stored(f"copy{n}.txt", "a" * 50, header_offset=0) for n in range(20)]),
        "UNSAFE_ZIP",
        "overlap (a zip-bomb construction)",
    ),
    refused(
        "entry-overlapping-the-directory",
        with_app(stored("short.bin", "0123456789", size=10_000, compressed_size=10_000)),
        "UNSAFE_ZIP",
        "'short.bin' overlaps the central directory",
    ),
    refused(
        "zip-inside-a-zip",
        lambda: build_zip({"function.zip": build_zip({"app.py": APP})}),
        "HANDLER_NOT_FOUND",
        "holds only 'function.zip': upload that package itself",
    ),
    refused(
        "zip-inside-a-zip-inside-a-zip",
        lambda: build_zip({"layer.zip": build_zip({"function.zip": build_zip({"app.py": APP})})}),
        "HANDLER_NOT_FOUND",
        "holds only 'layer.zip'",
    ),
    refused(
        "checks-file-inflating-past-its-header",
        with_app(Entry("rollout.json", deflate(b"{}" + b" " * (8 * 1024 * 1024)), method=8, size=19, crc=0)),
        "INVALID_CHECKS",
        f"rollout.json: (document): inflates to more than {checks.MAX_DOCUMENT_BYTES} bytes",
    ),
    refused(
        "checks-file-declared-over-the-limit",
        # 10 KB of (never inflated) data keeps the ratio under 200, so the size rule is the one met.
        with_app(Entry("rollout.json", b"\0" * 10_000, method=8, size=checks.MAX_DOCUMENT_BYTES + 1)),
        "INVALID_CHECKS",
        f"rollout.json: (document): is {checks.MAX_DOCUMENT_BYTES + 1} bytes",
    ),
    refused(
        "checks-file-compressed-beyond-any-valid-document",
        with_app(Entry("rollout.json", b"\0" * (2 * checks.MAX_DOCUMENT_BYTES), method=8, size=100)),
        "INVALID_CHECKS",
        "compressed bytes; at most",
    ),
]

# --- compression methods: Lambda reads stored (0) and deflate (8) only -------------------------------


def written_by_zipfile(compression: int, name: str, content: bytes) -> Callable[[], bytes]:
    def build() -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            bundle.writestr("app.py", APP)
            bundle.writestr(name, content, compress_type=compression)
        return buffer.getvalue()

    return build


METHODS = [
    refused(
        "method-12-bzip2-checks-file-60MiB-bomb",
        with_app(Entry("rollout.json", bz2.compress(b"\0" * (60 * 1024 * 1024)), method=12, size=2)),
        "UNSUPPORTED_COMPRESSION",
        "entry 'rollout.json' uses compression method 12 (bzip2)",
    ),
    refused(
        "method-12-bzip2-written-by-zipfile",
        written_by_zipfile(zipfile.ZIP_BZIP2, "lib/data.txt", b"data " * 100),
        "UNSUPPORTED_COMPRESSION",
        "entry 'lib/data.txt' uses compression method 12 (bzip2)",
    ),
    refused(
        "method-14-lzma-written-by-zipfile",
        written_by_zipfile(zipfile.ZIP_LZMA, "lib/data.txt", b"data " * 100),
        "UNSUPPORTED_COMPRESSION",
        "entry 'lib/data.txt' uses compression method 14 (LZMA)",
    ),
    refused(
        "method-95-xz",
        with_app(Entry("lib/data.txt", lzma.compress(b"data " * 100), method=95, size=500)),
        "UNSUPPORTED_COMPRESSION",
        "compression method 95 (xz)",
    ),
] + [
    refused(
        f"method-{method}-{label.split(' ')[0].lower()}",
        # The payload is never decompressed: the method alone refuses the entry.
        with_app(Entry("lib/data.bin", b"\x28\xb5\x2f\xfd" + bytes(60), method=method, size=64)),
        "UNSUPPORTED_COMPRESSION",
        f"entry 'lib/data.bin' uses compression method {method} ({label})",
    )
    for method, label in [
        (1, "shrink"),
        (2, "reduce"),
        (3, "reduce"),
        (4, "reduce"),
        (5, "reduce"),
        (6, "implode"),
        (7, "unknown"),
        (9, "deflate64"),
        (10, "PKWARE DCL implode"),
        (11, "unknown"),
        (16, "IBM z/OS CMPSC"),
        (18, "IBM TERSE"),
        (19, "IBM LZ77"),
        (20, "zstd (old id)"),
        (93, "zstd"),
        (94, "MP3"),
        (96, "JPEG"),
        (97, "WavPack"),
        (98, "PPMd"),
        (99, "AES encryption"),
        (255, "unknown"),
        (65535, "unknown"),
    ]
]

# --- names that could escape the package --------------------------------------------------------


def named(name: str | bytes, flags: int | None = None) -> Callable[[], bytes]:
    return with_app(stored(name, "x = 1", flags=flags))


TRAVERSAL = [
    refused("dotdot-slash", named("../evil.py"), "UNSAFE_ZIP", "'..'"),
    refused("dotdot-deep", named("lib/../../evil.py"), "UNSAFE_ZIP", "'..'"),
    refused("dotdot-backslash", named("..\\evil.py"), "UNSAFE_ZIP", "'..'"),
    refused("dotdot-deep-backslash", named("lib\\..\\..\\evil.py"), "UNSAFE_ZIP", "'..'"),
    refused("dotdot-mixed-separators", named("lib/..\\..\\evil.py"), "UNSAFE_ZIP", "'..'"),
    refused("dotdot-bare", named(".."), "UNSAFE_ZIP", "'..'"),
    refused("dotdot-folder", named("../"), "UNSAFE_ZIP", "'..'"),
    refused("dotdot-last", named("lib/.."), "UNSAFE_ZIP", "'..'"),
    refused("absolute-slash", named("/etc/cron.d/evil"), "UNSAFE_ZIP", "absolute path"),
    refused("absolute-unc-slashes", named("//server/share/evil.py"), "UNSAFE_ZIP", "absolute path"),
    refused("absolute-unc-backslashes", named("\\\\server\\share\\evil.py"), "UNSAFE_ZIP", "absolute path"),
    refused("absolute-drive-backslash", named("C:\\Windows\\evil.py"), "UNSAFE_ZIP", "absolute path"),
    refused("absolute-drive-slash", named("c:/evil.py"), "UNSAFE_ZIP", "absolute path"),
    refused("drive-relative", named("C:evil.py"), "UNSAFE_ZIP", "absolute path"),
    # zipfile truncated names at NUL: `app.py\0.txt` was inspected as `app.py`.
    refused("nul-byte-in-name", named("evil.py\x00.txt"), "UNSAFE_ZIP", "NUL byte"),
    refused("empty-name", named(""), "UNSAFE_ZIP", "empty name"),
    refused(
        "unicode-path-field-renaming-to-dotdot",
        with_app(stored("ok.py", "x = 1", extra=unicode_path_extra("../evil.py", b"ok.py"))),
        "UNSAFE_ZIP",
        "carries a second name '../evil.py'",
    ),
    no_op(
        "url-encoded-dotdot-slash",
        named("%2e%2e%2fevil.py"),
        "%2e%2e%2fevil.py",
        "zip names are not URLs: nothing decodes %2f, the file is named as written",
    ),
    no_op(
        "url-encoded-dotdot-folder",
        named("%2e%2e/evil.py"),
        "%2e%2e/evil.py",
        "a folder literally named %2e%2e",
    ),
    no_op(
        "one-dot-leader-lookalike",
        named("\u2024\u2024/evil.py"),
        "\u2024\u2024/evil.py",
        "U+2024 is not '.'; Linux (Lambda) does not fold look-alikes",
    ),
    no_op(
        "fullwidth-dot-lookalike",
        named("\uff0e\uff0e/evil.py"),
        "\uff0e\uff0e/evil.py",
        "U+FF0E is not '.'; only Windows best-fit code pages map it to '.'",
    ),
    no_op(
        "division-slash-lookalike",
        named("..\u2215evil.py"),
        "..\u2215evil.py",
        "U+2215 is not a separator: one file named '..\u2215evil.py' in the package root",
    ),
    no_op("three-dots", named("lib/.../x.py"), "lib/.../x.py", "'...' is an ordinary folder name"),
    no_op("dot-segment", named("./lib/x.py"), "./lib/x.py", "'.' stays where it is: lib/x.py"),
    no_op(
        "case-variants",
        with_app(stored("App.py", "x = 2")),
        "App.py",
        "Lambda's file system is case-sensitive: App.py and app.py are two files",
    ),
]

# --- links, special files, duplicates, encryption ----------------------------------------------------

LINKS_AND_DUPLICATES = [
    refused(
        "symlink-unix",
        with_app(stored("link.py", "/etc/passwd", external_attr=0o120777 << 16)),
        "UNSAFE_ZIP",
        "'link.py' is a symbolic link",
    ),
    refused(
        "symlink-mode-from-a-dos-host",
        with_app(stored("link.py", "/etc/passwd", create_system=0, external_attr=0o120777 << 16)),
        "UNSAFE_ZIP",
        "'link.py' is a symbolic link",
    ),
    refused(
        "fifo",
        with_app(stored("pipe", external_attr=0o010644 << 16)),
        "UNSAFE_ZIP",
        "'pipe' is a device, FIFO or socket",
    ),
    refused(
        "character-device",
        with_app(stored("null", external_attr=0o020666 << 16)),
        "UNSAFE_ZIP",
        "'null' is a device, FIFO or socket",
    ),
    refused(
        "duplicate-name",
        with_app(stored("lib.py", "a = 1"), stored("lib.py", "a = 2")),
        "UNSAFE_ZIP",
        "'lib.py' appears twice",
    ),
    refused(
        "duplicate-of-the-handler",
        with_app(stored("app.py", "raise SystemExit")),
        "UNSAFE_ZIP",
        "'app.py' appears twice",
    ),
    refused(
        "duplicate-through-dot-segment",
        with_app(stored("lib/x.py"), stored("lib/./x.py")),
        "UNSAFE_ZIP",
        "'lib/./x.py' lands on the same path as 'lib/x.py'",
    ),
    refused(
        "duplicate-through-double-slash",
        with_app(stored("lib/x.py"), stored("lib//x.py")),
        "UNSAFE_ZIP",
        "'lib//x.py' lands on the same path as 'lib/x.py'",
    ),
    refused(
        "file-then-folder-of-the-same-name",
        with_app(stored("lib", "x"), stored("lib/x.py")),
        "UNSAFE_ZIP",
        "'lib' is a file, but 'lib/x.py' needs a folder there",
    ),
    refused(
        "folder-then-file-of-the-same-name",
        with_app(stored("lib/x.py"), stored("lib", "x")),
        "UNSAFE_ZIP",
        "'lib' is a file, but 'lib/x.py' needs a folder there",
    ),
    refused(
        "file-where-a-listed-folder-is",
        with_app(stored("lib/"), stored("lib", "x")),
        "UNSAFE_ZIP",
        "'lib' lands on the same path as 'lib/'",
    ),
    refused(
        "folder-listed-twice",
        with_app(stored("lib/"), stored("lib/")),
        "UNSAFE_ZIP",
        "'lib/' appears twice",
    ),
    refused(
        "file-under-a-file-deep-in-the-tree",
        with_app(stored("a/b/c"), stored("a-b.py"), stored("a.py"), stored("a/b/c/d/e.py")),
        "UNSAFE_ZIP",
        "'a/b/c' is a file, but 'a/b/c/d/e.py' needs a folder there",
    ),
    refused(
        "two-checks-files",
        files({"rollout.json": "{}", "rollout.yml": "{}"}),
        "INVALID_CHECKS",
        "rollout.json and rollout.yml: keep exactly one checks file",
    ),
    refused(
        "encrypted-zipcrypto",
        with_app(Entry("secret.py", b"\x13" * 40, method=8, flags=0x1)),
        "UNSAFE_ZIP",
        "'secret.py' is encrypted",
    ),
    refused(
        "encrypted-strong",
        with_app(Entry("secret.py", b"\x13" * 40, method=8, flags=0x41)),
        "UNSAFE_ZIP",
        "'secret.py' is encrypted",
    ),
    refused(
        "encrypted-aes",
        with_app(Entry("secret.py", b"\x13" * 40, method=99, flags=0x1)),
        "UNSAFE_ZIP",
        "'secret.py' is encrypted",
    ),
]

# --- not zips, truncated, structurally broken ------------------------------------------------------


def good() -> bytes:
    return build_zip({"app.py": APP, "rollout.json": '{"pre_traffic": [{"name": "smoke"}]}'})


def tar_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("app.py")
        info.size = len(APP)
        archive.addfile(info, io.BytesIO(APP.encode()))
    return buffer.getvalue()


def set_comment_length(data: bytearray) -> None:
    struct.pack_into("<H", data, end_record_at(data) + 20, 100)


def point_locator_elsewhere(data: bytearray) -> None:
    struct.pack_into("<Q", data, data.rindex(b"PK\x06\x07") + 8, 0)


def break_first_directory_record(data: bytearray) -> None:
    data[data.index(b"PK\x01\x02") + 3] = 0x09


def corrupt_checks_stream(data: bytearray) -> None:
    start = data.index(b"rollout.json") + len("rollout.json")
    data[start : start + 8] = b"\xff" * 8


BROKEN = [
    refused("empty-object", lambda: b"", "EMPTY_OBJECT", "empty (0 bytes)"),
    refused("too-short", lambda: b"PK\x05\x06" + bytes(10), "CORRUPT_ZIP", "too short for a zip archive"),
    refused(
        "plain-text", lambda: b"this is not a zip archive\n" * 4, "CORRUPT_ZIP", "no end-of-central-directory"
    ),
    refused("gzip", lambda: gzip.compress(APP.encode()), "CORRUPT_ZIP", "no end-of-central-directory"),
    refused("tar", tar_bytes, "CORRUPT_ZIP", "no end-of-central-directory"),
    refused("png", lambda: b"\x89PNG\r\n\x1a\n" + bytes(64), "CORRUPT_ZIP", "no end-of-central-directory"),
    refused(
        "local-header-only", lambda: b"PK\x03\x04" + bytes(100), "CORRUPT_ZIP", "no end-of-central-directory"
    ),
    refused(
        "truncated-to-half", lambda: good()[: len(good()) // 2], "CORRUPT_ZIP", "not a valid zip archive"
    ),
    refused("truncated-by-one-byte", lambda: good()[:-1], "CORRUPT_ZIP", "no end-of-central-directory"),
    refused("empty-zip", lambda: build_zip({}), "EMPTY_ARTIFACT", "holds no files"),
    refused(
        "folders-only",
        lambda: build_zip({"src/": "", "src/lib/": ""}),
        "EMPTY_ARTIFACT",
        "holds no files, only 2 folder entries",
    ),
    refused(
        "data-before-the-archive",
        with_app(layout=Layout(prefix=b"MZ" + bytes(510))),
        "CORRUPT_ZIP",
        "not where the end record puts it",
    ),
    refused(
        "data-after-the-archive",
        with_app(layout=Layout(trailing=b"\0" * 64)),
        "CORRUPT_ZIP",
        "no end-of-central-directory",
    ),
    refused(
        "comment-length-past-the-end",
        patched(with_app(), set_comment_length),
        "CORRUPT_ZIP",
        "no end-of-central-directory",
    ),
    refused("split-archive", with_app(layout=Layout(disk=1)), "CORRUPT_ZIP", "spans several disks"),
    refused(
        "damaged-directory-record",
        patched(with_app(stored("lib.py")), break_first_directory_record),
        "CORRUPT_ZIP",
        "central directory record 1 of 2 is damaged",
    ),
    refused(
        "directory-holds-more-than-counted",
        with_app(stored("lib.py"), layout=Layout(entries=1)),
        "CORRUPT_ZIP",
        "holds more than the 1 entries it counts",
    ),
    refused(
        "directory-counts-more-than-it-can-hold",
        with_app(stored("lib.py"), layout=Layout(entries=3)),
        "CORRUPT_ZIP",
        "cannot hold 3 entries",
    ),
    refused(
        "zip64-sizes-without-zip64-field",
        with_app(Entry("big.bin", b"", size=0xFFFFFFFF, compressed_size=0xFFFFFFFF)),
        "CORRUPT_ZIP",
        "'big.bin' needs a zip64 extra field",
    ),
    refused(
        "zip64-locator-pointing-elsewhere",
        patched(with_app(layout=Layout(zip64=True)), point_locator_elsewhere),
        "CORRUPT_ZIP",
        "zip64 end record is not where its locator says",
    ),
    refused(
        "utf8-flag-on-a-name-that-is-not",
        named(b"\xff\xfe.py", flags=0x800),
        "CORRUPT_ZIP",
        "is flagged UTF-8 but its name is not",
    ),
    refused(
        "stored-entry-with-two-sizes",
        with_app(stored("lib.py", "x = 1", size=5000)),
        "CORRUPT_ZIP",
        "stored entry 'lib.py' declares 5000 bytes but holds 5",
    ),
    refused(
        "checks-local-name-differs",
        with_app(deflated("rollout.json", "{}", local_name=b"rollout.jsoN")),
        "CORRUPT_ZIP",
        "local header of 'rollout.json' does not match",
    ),
    refused(
        "checks-local-method-differs",
        with_app(deflated("rollout.json", "{}", local_method=0)),
        "CORRUPT_ZIP",
        "local header of 'rollout.json' disagrees",
    ),
    refused(
        "checks-crc-wrong", with_app(deflated("rollout.json", "{}", crc=1)), "CORRUPT_ZIP", "fails its CRC-32"
    ),
    refused(
        "checks-deflate-cut-short",
        with_app(Entry("rollout.json", deflate(b'{"pre_traffic": []}' * 50)[:10], method=8, size=950)),
        "CORRUPT_ZIP",
        "deflate stream of 'rollout.json' ends early",
    ),
    refused(
        "checks-bytes-after-the-deflate-stream",
        with_app(Entry("rollout.json", deflate(b"{}") + b"junk", method=8, size=2)),
        "CORRUPT_ZIP",
        "bytes after the end of its deflate stream",
    ),
    refused(
        "checks-deflate-garbage",
        patched(
            lambda: craft_zip(
                [stored("app.py", APP), deflated("rollout.json", json.dumps(list(range(300))))]
            ),
            corrupt_checks_stream,
        ),
        "CORRUPT_ZIP",
        "not a valid zip archive: Error -3",
    ),
]

# --- checks documents --------------------------------------------------------------------------------


def alias_bomb() -> bytes:
    lines = ["pre_traffic:", "- name: bomb", "  event:", f"    l0: &l0 [{','.join(['lol'] * 9)}]"]
    lines += [f"    l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 7)]
    return ("\n".join(lines) + "\n").encode()


def document(data: object) -> bytes:
    return json.dumps(data).encode()


CHECKS_DOCUMENTS = [
    refused(
        "yaml-alias-bomb",
        lambda: build_zip({"app.py": APP, "rollout.yaml": alias_bomb()}),
        "INVALID_CHECKS",
        "rollout.yaml: (document): uses a YAML anchor or alias at line 4",
    ),
    refused(
        "yaml-anchor",
        checks_file("canary: &c {strict: true}\n", "rollout.yaml"),
        "INVALID_CHECKS",
        "rollout.yaml: (document): uses a YAML anchor or alias",
    ),
    refused(
        "yaml-merge-key",
        checks_file("base: &b {name: a}\npre_traffic:\n  - <<: *b\n", "rollout.yml"),
        "INVALID_CHECKS",
        "rollout.yml: (document): uses a YAML anchor or alias",
    ),
    refused(
        "yaml-python-object-tag",
        checks_file("pre_traffic: !!python/object/apply:os.system ['id']\n", "rollout.yaml"),
        "INVALID_CHECKS",
        "uses the YAML tag !!python/object/apply:os.system",
    ),
    refused(
        "yaml-explicit-int-tag-on-nothing",
        checks_file('canary: {min_invocations: !!int ""}\n', "rollout.yaml"),
        "INVALID_CHECKS",
        "uses the YAML tag !!int at line 1",
    ),
    refused(
        "yaml-two-documents",
        checks_file("canary: {}\n---\ncanary: {}\n", "rollout.yaml"),
        "INVALID_CHECKS",
        "rollout.yaml: (document): is not valid YAML",
    ),
    refused(
        "yaml-impossible-date",
        checks_file("pre_traffic:\n  - {name: a, event: {day: 2026-02-30}}\n", "rollout.yaml"),
        "INVALID_CHECKS",
        "day is out of range for month",
    ),
    refused(
        "yaml-deep-nesting",
        checks_file("[" * 50_000 + "]" * 50_000, "rollout.yaml"),
        "INVALID_CHECKS",
        "rollout.yaml: (document): ",
    ),
    refused(
        "json-deep-nesting",
        checks_file(b"[" * 100_000 + b"]" * 100_000),
        "INVALID_CHECKS",
        f"rollout.json: (document): nests lists and mappings more than {checks.MAX_NESTING_DEPTH} levels",
    ),
    refused(
        "json-deep-event",
        checks_file(document({"pre_traffic": [{"name": "a", "event": json.loads("[" * 30 + "]" * 30)}]})),
        "INVALID_CHECKS",
        "rollout.json: pre_traffic[0].event[0]",
    ),
    refused(
        "json-too-many-values",
        checks_file(document({"pre_traffic": [{"name": "a", "event": [0] * 60_000}]})),
        "INVALID_CHECKS",
        f"pre_traffic[0].event: has more than {checks.MAX_DOCUMENT_NODES} values and keys",
    ),
    refused(
        "json-too-many-checks",
        checks_file(document({"pre_traffic": [{"name": f"c{n}"} for n in range(51)]})),
        "INVALID_CHECKS",
        "rollout.json: pre_traffic: has 51 checks; at most 50",
    ),
    refused(
        "json-huge-event",
        checks_file(document({"pre_traffic": [{"name": "a", "event": {"blob": "x" * 300_000}}]})),
        "INVALID_CHECKS",
        "pre_traffic[0].event: is 300012 bytes as JSON",
    ),
    refused(
        "json-5000-digit-integer",
        checks_file(b'{"canary": {"min_invocations": ' + b"9" * 5000 + b"}}"),
        "INVALID_CHECKS",
        "Exceeds the limit (4300 digits)",
    ),
    refused(
        "json-number-dynamodb-cannot-store",
        checks_file(b'{"pre_traffic": [{"name": "a", "expect": {"n": 1e300}}]}'),
        "INVALID_CHECKS",
        "pre_traffic[0].expect.n: is 1e+300; numbers must be below 1e38",
    ),
    refused(
        "json-nan",
        checks_file(b'{"pre_traffic": [{"name": "a", "event": NaN}]}'),
        "INVALID_CHECKS",
        "pre_traffic[0].event: must be plain JSON data, got nan",
    ),
    refused(
        "json-lone-surrogate",
        checks_file(b'{"pre_traffic": [{"name": "\\udc00"}]}'),
        "INVALID_CHECKS",
        "pre_traffic[0].name: holds a lone surrogate",
    ),
    refused(
        "json-repeated-key",
        checks_file(b'{"pre_traffic": [{"name": "a"}], "pre_traffic": []}'),
        "INVALID_CHECKS",
        "(document): repeats the key 'pre_traffic'",
    ),
    refused("json-not-utf8", checks_file(b'{"canary": "\xff"}'), "INVALID_CHECKS", "is not UTF-8 text"),
    refused("json-utf16", checks_file("{}".encode("utf-16")), "INVALID_CHECKS", "is not UTF-8 text"),
    refused("json-top-level-list", checks_file(b"[]"), "INVALID_CHECKS", "(document): must be a mapping"),
    refused("json-empty-file", checks_file(b""), "INVALID_CHECKS", "rollout.json: (document): is empty"),
    refused(
        "yaml-empty-file",
        checks_file(b"", "rollout.yaml"),
        "INVALID_CHECKS",
        "rollout.yaml: (document): is empty",
    ),
    no_op(
        "checks-file-below-the-root",
        files({"lib/rollout.json": b"{"}),
        "lib/rollout.json",
        "only the root rollout.json is a checks file; this one is code",
    ),
    refused(
        "checks-file-named-in-another-case",
        files({"Rollout.json": b'{"pre_traffic": [{"name": "health"}]}'}),
        "INVALID_CHECKS",
        "the archive holds 'Rollout.json', not rollout.json",
    ),
    refused(
        "checks-file-named-in-upper-case-yaml",
        files({"ROLLOUT.YAML": b"pre_traffic: []\n"}),
        "INVALID_CHECKS",
        "the archive holds 'ROLLOUT.YAML', not rollout.yaml",
    ),
    no_op(
        "checks-name-as-a-folder",
        files({"rollout.json/": b"", "rollout.json/x": b"{"}),
        "rollout.json/x",
        "a folder named rollout.json holds code, not checks",
    ),
]

# --- handlers ----------------------------------------------------------------------------------------

HANDLERS = [
    refused(
        "handler-module-missing",
        lambda: build_zip({"main.py": APP}),
        "HANDLER_NOT_FOUND",
        "handler 'app.handler' (python3.13): the archive has no app.py or app/__init__.py",
    ),
    refused(
        "handler-in-a-wrapping-folder",
        lambda: build_zip({"build/app.py": APP, "build/lib/x.py": ""}),
        "HANDLER_NOT_FOUND",
        "it has 'build/app.py': zip the contents of 'build'",
    ),
    refused(
        "handler-package-without-init",
        lambda: build_zip({"app/handlers.py": APP}),
        "HANDLER_NOT_FOUND",
        "no app.py or app/__init__.py",
    ),
    refused(
        "handler-only-as-bytecode-cache",
        lambda: build_zip({"__pycache__/app.cpython-313.pyc": b"\0"}),
        "HANDLER_NOT_FOUND",
        "no app.py",
    ),
    refused(
        "node-typescript-before-node-24",
        lambda: build_zip({"index.ts": "export const handler = async () => 1;"}),
        "HANDLER_NOT_FOUND",
        "handler 'index.handler' (nodejs22.x): the archive has no index.js, .mjs or .cjs",
        handler="index.handler",
        runtime="nodejs22.x",
    ),
    refused(
        "node-handler-climbing-out",
        lambda: build_zip({"index.js": "exports.handler = async () => 1;"}),
        "HANDLER_NOT_FOUND",
        "refuses '..' in a handler",
        handler="../index.handler",
        runtime="nodejs20.x",
    ),
]

# --- keys --------------------------------------------------------------------------------------------

KEYS = [
    refused("key-without-function", good, "NO_FUNCTION_SEGMENT", "no function segment", key="build.zip"),
    refused(
        "key-dotdot-function",
        good,
        "NO_FUNCTION_SEGMENT",
        "'..' is not a Lambda function name",
        key="../x.zip",
    ),
    refused(
        "key-url-encoded-dotdot",
        good,
        "NO_FUNCTION_SEGMENT",
        "'%2e%2e' is not a Lambda function name",
        key="%2e%2e/x.zip",
    ),
    refused("key-tarball", good, "BAD_SUFFIX", "must name a .zip file", key="orders/build.tar.gz"),
    refused("key-only-suffix", good, "BAD_SUFFIX", "must name a .zip file", key="orders/.zip"),
    refused(
        "key-one-byte-too-long",
        good,
        "KEY_TOO_LONG",
        "is 1025 bytes of UTF-8; S3 and Lambda take at most 1024",
        key="orders/" + "k" * (1025 - len("orders/.zip")) + ".zip",
    ),
    refused(
        "key-4KiB-of-emoji",
        good,
        "KEY_TOO_LONG",
        "is 4011 bytes of UTF-8",
        key="orders/" + "\U0001f4a3" * 1000 + ".zip",
    ),
    refused("key-lone-surrogate", good, "BAD_KEY", "lone surrogate", key="orders/\udc80.zip"),
    no_op(
        "key-dotdot-after-the-function",
        good,
        "../../etc/x.zip",
        "S3 keys are not paths: the function is 'orders', the rest only names the build",
        key="orders/../../etc/x.zip",
    ),
    no_op(
        "key-with-control-characters",
        good,
        "a\tb\nc.zip",
        "S3 allows any UTF-8 in keys; reasons quote the key with repr()",
        key="orders/a\tb\nc.zip",
    ),
]

CORPUS = BOMBS + METHODS + TRAVERSAL + LINKS_AND_DUPLICATES + BROKEN + CHECKS_DOCUMENTS + HANDLERS + KEYS


def test_the_corpus_is_large_and_every_case_is_named_once() -> None:
    assert len(CORPUS) >= 60
    assert len({case.id for case in CORPUS}) == len(CORPUS)
    assert all(case.why for case in CORPUS if case.code is None)


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_bad_input_is_rejected_with_its_reason_or_is_a_documented_no_op(case: Case) -> None:
    outcome = Outcome()
    if case.code is None:
        release(case.upload, outcome)  # a no-op: accepted, deployable, the odd name kept as it is
        assert outcome.note == "found handler module app.py"
        assert outcome.report is not None
        assert case.phrase in (*outcome.report.names, outcome.build, outcome.report.checks_filename)
    else:
        with pytest.raises(Rejected) as caught:  # any other exception fails the test
            release(case.upload, outcome)
        assert caught.value.code == case.code, caught.value
        assert case.phrase in caught.value.reason, caught.value
    if outcome.archive is not None:
        # Nothing is read twice, and a hostile archive cannot make the deployer read more.
        assert outcome.archive.bytes_read <= min(len(outcome.archive.getvalue()), READ_BOUND)


# --- generated input: nothing but Rejected or ChecksError ------------------------------------------

SEED = build_zip({"app.py": APP, "lib/": "", "rollout.json": '{"pre_traffic": [{"name": "smoke"}]}'})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_a_damaged_archive_is_rejected_or_read_never_an_error(changes: list[tuple[int, int]]) -> None:
    data = bytearray(SEED)
    for at, value in changes:
        data[at] = value
    try:
        report = inspect_zip(io.BytesIO(bytes(data)))
        if report.checks_document is not None and report.checks_filename:
            parse_checks(report.checks_document, report.checks_filename)
    except (Rejected, ChecksError):
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_rejected_never_an_error(data: bytes) -> None:
    with pytest.raises(Rejected):
        inspect_zip(io.BytesIO(data))


YAML_PIECES = [
    "pre_traffic:", "canary:", "\n", "  ", "- ", "name: ", "event: ", "{", "}", "[", "]", ",", ": ",
    "? ", "&a ", "*a", "!!int ", "!!timestamp ", "!local ", "<<: ", "2026-02-30", "1e999", ".nan",
    "0x1F", "1:30", "'q'", '"\\ud800"', "|\n  x\n", "---\n", "~", "yes", "9" * 40,
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=16), st.sampled_from(["rollout.yaml", "rollout.json"]))
def test_any_checks_text_is_parsed_or_a_checks_error(pieces: list[str], filename: str) -> None:
    try:
        parse_checks("".join(pieces).encode(), filename)
    except ChecksError as error:
        assert error.field and error.why
