"""Artifact rules: events to uploads, key parsing, object size and zip safety (no AWS)."""

from __future__ import annotations

import bz2
import functools
import io
import random
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout import artifact_keys, artifacts
from rollout.artifact_keys import NO_FUNCTION, function_segment, parse_key
from rollout.artifacts import (
    Rejected,
    Upload,
    check_handler_present,
    check_object_size,
    decode_metadata,
    inspect_zip,
    unsafe_path,
    uploads_from_event,
)
from rollout.checks import MAX_DOCUMENT_BYTES
from tests.support.artifacts_world import build_zip, function_zip, symlink_zip
from tests.unit.corpus.zips import CountingReader, Entry, Layout, craft_zip, deflated, stored


def rejected(call: object, *args: object) -> Rejected:
    with pytest.raises(Rejected) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "function", "build"),
    [
        ("orders/build-42.zip", "orders", "build-42.zip"),
        ("orders/2026/03/14/build 7 (hotfix).zip", "orders", "2026/03/14/build 7 (hotfix).zip"),
        ("my_fn-2/a+b%20c.zip", "my_fn-2", "a+b%20c.zip"),
    ],
)
def test_keys_name_the_function_in_the_first_segment(key: str, function: str, build: str) -> None:
    parsed = parse_key(key)
    assert (parsed.function, parsed.build) == (function, build)
    assert function_segment(key) == function


@pytest.mark.parametrize(
    ("key", "code", "phrase"),
    [
        ("build-42.zip", "NO_FUNCTION_SEGMENT", "no function segment"),
        ("/build-42.zip", "NO_FUNCTION_SEGMENT", "no function segment"),
        ("my fn/build.zip", "NO_FUNCTION_SEGMENT", "'my fn' is not a Lambda function name"),
        (f"{'x' * 65}/build.zip", "NO_FUNCTION_SEGMENT", "not a Lambda function name"),
        ("orders/build-42.tar.gz", "BAD_SUFFIX", "must name a .zip file"),
        ("orders/build-42.ZIP", "BAD_SUFFIX", ".zip"),
        ("orders/.zip", "BAD_SUFFIX", ".zip"),
        ("orders/", "BAD_SUFFIX", ".zip"),
    ],
)
def test_bad_keys_are_rejected_saying_what_is_wrong(key: str, code: str, phrase: str) -> None:
    error = rejected(parse_key, key)
    assert error.code == code
    assert phrase in error.reason
    assert repr(key) in error.reason


def test_a_key_without_a_valid_function_goes_to_the_no_function_partition() -> None:
    assert function_segment("build.zip") == NO_FUNCTION
    assert function_segment("my fn/build.zip") == NO_FUNCTION


def test_classic_records_try_the_decoded_key_first_and_eventbridge_the_key_as_given() -> None:
    classic = Upload(bucket="b", key="orders/build+7%2B1.zip", source="s3")
    assert classic.key_candidates() == ["orders/build 7+1.zip", "orders/build+7%2B1.zip"]
    bridged = Upload(bucket="b", key="orders/a+b.zip", source="eventbridge")
    assert bridged.key_candidates() == ["orders/a+b.zip", "orders/a b.zip"]
    assert Upload(bucket="b", key="orders/plain.zip").key_candidates() == ["orders/plain.zip"]


@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40))
def test_any_key_survives_the_classic_encoding(name: str) -> None:
    key = f"orders/{name}.zip"
    upload = Upload(bucket="b", key=quote_plus(key, safe="/"), source="s3")
    assert upload.key_candidates()[0] == key
    assert key in Upload(bucket="b", key=key).key_candidates()


# --- events -------------------------------------------------------------------------------------


def test_eventbridge_object_created_becomes_one_upload() -> None:
    event = {
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {
            "bucket": {"name": "artifacts"},
            "object": {"key": "orders/b.zip", "size": 10, "etag": "e", "version-id": "v1"},
        },
    }
    assert uploads_from_event(event) == (
        [Upload("artifacts", "orders/b.zip", "v1", 10, "e", "eventbridge")],
        [],
    )


def test_emulator_spelling_of_etag_is_accepted() -> None:
    event = {"detail": {"bucket": {"name": "a"}, "object": {"key": "o/b.zip", "eTag": "x"}}}
    (upload,), _ = uploads_from_event(event)
    assert (upload.etag, upload.version_id, upload.size) == ("x", "", None)


def test_classic_records_become_uploads_and_bad_records_become_problems() -> None:
    good = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "a"}, "object": {"key": "o/b+c.zip", "versionId": "v"}},
    }
    removed = {
        "eventName": "ObjectRemoved:Delete",
        "s3": {"bucket": {"name": "a"}, "object": {"key": "o/x.zip"}},
    }
    no_bucket = {"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "o/y.zip"}}}

    uploads, problems = uploads_from_event({"Records": [good, removed, no_bucket, "junk"]})

    assert uploads == [Upload("a", "o/b+c.zip", "v", None, "", "s3")]
    assert [p.where for p in problems] == [
        "Records[1].eventName",
        "Records[2].s3.bucket.name",
        "Records[3]",
    ]
    assert problems[0].key == "o/x.zip"


@pytest.mark.parametrize(
    ("event", "where"),
    [
        (None, "event"),
        ("text", "event"),
        ({}, "event"),
        ({"detail": "x"}, "detail"),
        ({"detail": {"bucket": {"name": "a"}, "object": {}}}, "detail.object.key"),
        ({"detail": {"bucket": {}, "object": {"key": "k"}}}, "detail.bucket.name"),
        ({"detail-type": "Object Deleted", "detail": {}}, "detail-type"),
        ({"Records": []}, "Records"),
    ],
)
def test_malformed_events_are_problems_never_exceptions(event: object, where: str) -> None:
    uploads, problems = uploads_from_event(event)
    assert uploads == []
    assert [p.where for p in problems] == [where]
    assert problems[0].reason


def test_metadata_in_rfc2047_is_decoded() -> None:
    assert decode_metadata("=?UTF-8?B?SsO8cmdlbg==?=") == "Jürgen"
    assert decode_metadata("plain text") == "plain text"
    assert decode_metadata("=?bogus") == "=?bogus"


# --- object size --------------------------------------------------------------------------------


def test_object_size_limits() -> None:
    assert rejected(check_object_size, 0).code == "EMPTY_OBJECT"
    too_big = rejected(check_object_size, artifacts.MAX_ARTIFACT_BYTES + 1)
    assert too_big.code == "TOO_LARGE"
    assert "262144000" in too_big.reason
    check_object_size(artifacts.MAX_ARTIFACT_BYTES)
    check_object_size(1)


# --- zips ---------------------------------------------------------------------------------------


def inspect(data: bytes) -> artifacts.ZipReport:
    return inspect_zip(io.BytesIO(data))


def test_a_normal_package_passes_with_its_checks_file() -> None:
    report = inspect(function_zip("1", checks={"pre_traffic": []}))
    assert (report.entries, report.checks_filename) == (2, "rollout.json")
    assert report.checks_document == b'{"pre_traffic": []}'
    assert report.unzipped_bytes > 0


def test_a_checks_file_below_the_root_is_only_code() -> None:
    report = inspect(build_zip({"app.py": "x", "lib/rollout.json": "{"}))
    assert report.checks_filename is None


def test_two_checks_files_are_ambiguous() -> None:
    error = rejected(inspect, build_zip({"rollout.json": "{}", "rollout.yaml": "{}"}))
    assert error.code == "INVALID_CHECKS"
    assert "rollout.json and rollout.yaml" in error.reason


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"not a zip at all", "not a valid zip"),
        (b"PK\x03\x04" + b"\x00" * 100, "not a valid zip"),
        (build_zip({"a.py": "x"})[:-30], "not a valid zip"),
    ],
    ids=["text", "header-only", "truncated"],
)
def test_corrupt_archives_are_rejected(data: bytes, phrase: str) -> None:
    error = rejected(inspect, data)
    assert error.code == "CORRUPT_ZIP"
    assert phrase in error.reason


@pytest.mark.parametrize(
    ("files", "phrase"),
    [({}, "holds no files"), ({"lib/": "", "lib/deep/": ""}, "holds no files, only 2 folder entries")],
    ids=["no-entries", "folders-only"],
)
def test_an_archive_without_files_is_empty_whatever_the_runtime(files: dict[str, str], phrase: str) -> None:
    error = rejected(inspect, build_zip(dict(files)))
    assert (error.code, phrase in error.reason) == ("EMPTY_ARTIFACT", True)


def test_a_corrupted_checks_file_is_caught_by_its_checksum() -> None:
    data = bytearray(build_zip({"rollout.json": '{"pre_traffic": []}'}, compression=zipfile.ZIP_STORED))
    at = data.index(b'{"pre_traffic"')
    data[at + 2] ^= 0xFF
    assert rejected(inspect, bytes(data)).code == "CORRUPT_ZIP"


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("../app.py", "'..'"),
        ("lib/../../app.py", "'..'"),
        ("lib\\..\\..\\app.py", "'..'"),
        ("/var/task/app.py", "absolute path"),
        ("\\windows\\app.py", "absolute path"),
        ("C:/app.py", "absolute path"),
    ],
)
def test_entries_that_escape_the_directory_are_unsafe(name: str, phrase: str) -> None:
    error = rejected(inspect, build_zip({"ok.py": "x", name: "x"}))
    assert error.code == "UNSAFE_ZIP"
    assert phrase in error.reason
    assert unsafe_path(name)


def test_dotted_names_that_stay_inside_are_fine() -> None:
    assert unsafe_path("lib/..hidden/x.py") is None
    assert unsafe_path("a..b.py") is None
    inspect(build_zip({"a..b.py": "x", "dir/": ""}))


def test_symbolic_links_are_unsafe() -> None:
    error = rejected(inspect, symlink_zip())
    assert (error.code, "symbolic link" in error.reason) == ("UNSAFE_ZIP", True)


def test_a_compression_ratio_bomb_is_refused_without_extracting_it() -> None:
    bomb = build_zip({"app.py": "x", "zeros.bin": b"\0" * (8 * 1024 * 1024)})
    assert len(bomb) < 64 * 1024
    error = rejected(inspect, bomb)
    assert error.code == "UNSAFE_ZIP"
    assert "'zeros.bin' expands" in error.reason


def test_small_entries_may_compress_well() -> None:
    inspect(build_zip({"blank.txt": b"\0" * 100_000}))


def test_total_unzipped_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "MAX_UNZIPPED_BYTES", 1000)
    error = rejected(
        inspect, build_zip({f"part{i}.txt": "y" * 400 for i in range(3)}, compression=zipfile.ZIP_STORED)
    )
    assert error.code == "TOO_LARGE"


def test_entries_sharing_bytes_are_the_overlap_bomb() -> None:
    data = bytearray(build_zip({"a.txt": "a" * 50, "b.txt": "b" * 50}, compression=zipfile.ZIP_STORED))
    # Point the second central-directory entry at the first entry's local header.
    second = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)
    struct.pack_into("<I", data, second + 42, 0)
    error = rejected(inspect, bytes(data))
    assert error.code == "UNSAFE_ZIP"
    assert "overlap" in error.reason


def test_duplicate_entries_are_unsafe() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("app.py", "one")
        with pytest.warns(UserWarning):
            bundle.writestr("app.py", "two")
    assert "appears twice" in rejected(inspect, buffer.getvalue()).reason


def test_an_oversized_checks_file_is_refused_before_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "MAX_DOCUMENT_BYTES", 10)
    error = rejected(inspect, build_zip({"rollout.json": '{"pre_traffic": []}'}))
    assert error.code == "INVALID_CHECKS"
    assert "rollout.json" in error.reason


def test_upload_order_follows_event_time_then_sequencer() -> None:
    from rollout.artifacts import Upload

    def order(time: str, sequencer: str = "") -> str:
        return Upload("b", "f/x.zip", event_time=time, sequencer=sequencer).upload_order

    # EventBridge sends whole seconds, classic records milliseconds: both compare on one scale.
    assert order("2026-03-01T12:00:05Z", "A1") < order("2026-03-01T12:00:05.500Z", "A0")
    # Within a second the sequencer decides, compared right-padded as S3 documents.
    assert order("2026-03-01T12:00:05Z", "0062E99A88DC4074") < order(
        "2026-03-01T12:00:05Z", "0062E99A88DC40750"
    )
    # No sequencer: the newest of its second, so a build is never superseded on a guess.
    assert order("2026-03-01T12:00:05Z", "FFFF") < order("2026-03-01T12:00:05Z")
    assert order("not a time", "A1") == ""


# --- fail closed: compression, bounded reads, counts before parsing -----------------------------


@functools.cache
def bzip2_bomb() -> bytes:
    """60 MiB of zeros in bzip2, a method zipfile decompresses without bounding its output."""
    return bz2.compress(b"\0" * (60 * 1024 * 1024))


def test_a_checks_file_in_another_compression_method_is_refused_without_decompressing() -> None:
    bomb = bzip2_bomb()
    data = craft_zip([stored("app.py", "x = 1"), Entry("rollout.json", bomb, method=12, size=19, crc=0)])
    assert len(data) < 400
    tracemalloc.start()
    try:
        error = rejected(inspect, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "UNSUPPORTED_COMPRESSION"
    assert error.reason == (
        "entry 'rollout.json' uses compression method 12 (bzip2); "
        "Lambda reads only stored (0) and deflate (8) entries"
    )
    assert peak < 1024 * 1024


@pytest.mark.parametrize(("method", "label"), [(9, "deflate64"), (14, "LZMA"), (93, "zstd"), (77, "unknown")])
def test_any_entry_in_a_method_lambda_cannot_read_is_refused(method: int, label: str) -> None:
    data = craft_zip([stored("app.py", "x = 1"), Entry("lib/data.bin", b"\x01" * 10, method=method, size=10)])
    error = rejected(inspect, data)
    assert error.code == "UNSUPPORTED_COMPRESSION"
    assert f"entry 'lib/data.bin' uses compression method {method} ({label})" in error.reason


def test_a_checks_file_that_inflates_past_its_header_is_cut_off_at_the_limit() -> None:
    # The header says 19 bytes; the deflate stream holds 8 MiB of spaces.
    lying = deflated("rollout.json", b"{}" + b" " * (8 * 1024 * 1024))
    lying.size = 19
    archive = CountingReader(craft_zip([stored("app.py", "x = 1"), lying]))
    tracemalloc.start()
    try:
        error = rejected(inspect_zip, archive)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "INVALID_CHECKS"
    assert error.reason == (
        f"rollout.json: (document): inflates to more than {MAX_DOCUMENT_BYTES} bytes; "
        f"at most {MAX_DOCUMENT_BYTES} are allowed"
    )
    assert peak < 4 * MAX_DOCUMENT_BYTES  # not the 8 MiB the stream holds


@pytest.mark.parametrize("claimed", [artifacts.MAX_ENTRIES + 1, 2**40])
def test_the_entry_count_is_checked_before_the_directory_is_read(claimed: int) -> None:
    # A real directory of 3000 entries (beyond the first read of the tail) under a zip64 end record
    # claiming more entries than allowed (the classic record counts 16 bits: 65535 at most).
    entries = [stored(f"f{n:05}.txt") for n in range(3000)]
    archive = CountingReader(craft_zip(entries, Layout(entries=claimed, zip64=True)))
    error = rejected(inspect_zip, archive)
    assert (error.code, error.reason) == (
        "UNSAFE_ZIP",
        f"the zip archive holds {claimed} entries; at most {artifacts.MAX_ENTRIES} are allowed",
    )
    assert archive.bytes_read <= 65_557 + 56  # the tail and the zip64 end record
    assert archive.bytes_read < len(archive.getvalue())


@functools.cache
def zip_with_entries(count: int) -> bytes:
    return craft_zip([stored(f"{n:06}") for n in range(count)])


def test_entry_count_limit() -> None:
    archive = CountingReader(zip_with_entries(artifacts.MAX_ENTRIES))
    report = inspect_zip(archive)
    assert report.entries == len(report.names) == artifacts.MAX_ENTRIES
    assert archive.bytes_read < len(archive.getvalue())  # the directory, not the entries' data
    error = rejected(inspect, zip_with_entries(artifacts.MAX_ENTRIES + 1))
    assert f"holds {artifacts.MAX_ENTRIES + 1} entries" in error.reason


def directory_of(size: int) -> bytes:
    """An archive whose central directory is exactly `size` bytes, padded with extra fields."""
    records = -(-size // 60_000)
    per_record = [size // records] * records
    per_record[-1] += size - sum(per_record)
    entries = []
    for n, record_size in enumerate(per_record):
        name = f"f{n:05}"
        body = record_size - 46 - len(name) - 4
        entries.append(stored(name, extra=struct.pack("<HH", 0xCAFE, body) + b"\0" * body))
    return craft_zip(entries)


def test_central_directory_size_limit() -> None:
    limit = artifacts.MAX_CENTRAL_DIRECTORY_BYTES
    at_limit = CountingReader(directory_of(limit))
    assert inspect_zip(at_limit).entries > 1
    # The directory straddles the first read of the tail: no byte of it is fetched twice.
    assert limit <= at_limit.bytes_read <= len(at_limit.getvalue())
    archive = CountingReader(directory_of(limit + 1))
    error = rejected(inspect_zip, archive)
    assert (error.code, f"central directory is {limit + 1} bytes" in error.reason) == ("UNSAFE_ZIP", True)
    assert archive.bytes_read <= 65_557


def claimed_sizes(*sizes: tuple[int, int]) -> bytes:
    """Deflated entries declaring (size, compressed size); their data is never inflated."""
    return craft_zip(
        [stored("app.py", "x = 1")]
        + [
            Entry(f"blob{n}.bin", b"\0" * packed, method=8, size=size)
            for n, (size, packed) in enumerate(sizes)
        ]
    )


def test_entry_ratio_limit() -> None:
    size = 2 * artifacts.RATIO_FLOOR_BYTES
    packed = size // artifacts.MAX_ENTRY_RATIO
    assert inspect(claimed_sizes((packed * artifacts.MAX_ENTRY_RATIO, packed))).unzipped_bytes > size - 200
    error = rejected(inspect, claimed_sizes((packed * artifacts.MAX_ENTRY_RATIO + 1, packed)))
    assert (error.code, "'blob0.bin' expands 200 times" in error.reason) == ("UNSAFE_ZIP", True)


def test_ratio_floor_limit() -> None:
    floor = artifacts.RATIO_FLOOR_BYTES
    inspect(claimed_sizes((floor, 1)))  # a million times, but small enough not to matter
    assert rejected(inspect, claimed_sizes((floor + 1, 1))).code == "UNSAFE_ZIP"


def test_unzipped_size_limit() -> None:
    limit = artifacts.MAX_UNZIPPED_BYTES
    packed = limit // artifacts.MAX_ENTRY_RATIO
    report = inspect(claimed_sizes((limit - 5, packed)))  # app.py holds the other 5 bytes
    assert report.unzipped_bytes == limit
    error = rejected(inspect, claimed_sizes((limit - 5, packed), (1, 1)))
    assert (error.code, str(limit) in error.reason) == ("TOO_LARGE", True)


@pytest.mark.parametrize("compress", [stored, deflated], ids=["stored", "deflated"])
def test_checks_file_size_limit_inside_the_archive(compress: Callable[..., Entry]) -> None:
    body = b'{"pre_traffic": [], "padding": "'
    # Hex of random bytes: compresses 2:1, well within the ratio rule at this size.
    padding = random.Random(7).randbytes(MAX_DOCUMENT_BYTES).hex().encode()
    at_limit = body + padding[: MAX_DOCUMENT_BYTES - len(body) - 2] + b'"}'
    assert len(at_limit) == MAX_DOCUMENT_BYTES
    report = inspect(craft_zip([stored("app.py", "x = 1"), compress("rollout.json", at_limit)]))
    assert report.checks_document == at_limit
    error = rejected(
        inspect, craft_zip([stored("app.py", "x = 1"), compress("rollout.json", at_limit + b" ")])
    )
    assert (error.code, f"is {MAX_DOCUMENT_BYTES + 1} bytes" in error.reason) == ("INVALID_CHECKS", True)


@pytest.mark.parametrize(
    ("flags", "method"), [(0x1, 8), (0x1 | 0x40, 8), (0x1, 99)], ids=["zipcrypto", "strong", "aes"]
)
def test_encrypted_entries_are_refused(flags: int, method: int) -> None:
    data = craft_zip(
        [stored("app.py", "x = 1"), Entry("secret.py", b"\x07" * 40, method=method, flags=flags)]
    )
    error = rejected(inspect, data)
    assert (error.code, error.reason) == (
        "UNSAFE_ZIP",
        "entry 'secret.py' is encrypted; Lambda cannot read it",
    )


def test_deep_names_cost_memory_in_proportion_to_their_length() -> None:
    # 32k-segment names: a set of every folder prefix would hold a gigabyte of strings per name.
    deep = "a/" * 32_000
    data = craft_zip([stored("app.py", "x = 1")] + [stored(f"{deep}{n}.py") for n in range(8)])
    tracemalloc.start()
    try:
        report = inspect(data)
        check_handler_present(report, "missing.handler", "nodejs22.x", True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.entries == 9
    assert peak < 8 * len(data)


def test_zip64_archives_are_read() -> None:
    report = inspect(
        craft_zip([stored("app.py", "x = 1"), deflated("rollout.json", "{}")], Layout(zip64=True))
    )
    assert (report.names, report.checks_document) == (("app.py", "rollout.json"), b"{}")


def test_a_small_archive_costs_one_read() -> None:
    archive = CountingReader(function_zip("1", checks={"pre_traffic": []}))
    assert inspect_zip(archive).checks_document == b'{"pre_traffic": []}'
    assert (archive.reads, archive.bytes_read) == (1, len(archive.getvalue()))


def test_the_report_lists_every_entry_name() -> None:
    report = inspect(build_zip({"app.py": "x", "lib/": "", "lib/util.py": "y"}))
    assert report.names == ("app.py", "lib/", "lib/util.py")


# --- key length -----------------------------------------------------------------------------------


def test_key_length_limit_counts_utf8_bytes() -> None:
    prefix, suffix = "orders/", ".zip"
    fill = artifact_keys.MAX_KEY_BYTES - len(prefix) - len(suffix)
    at_limit = prefix + "é" * (fill // 2) + "x" * (fill % 2) + suffix  # é is two bytes
    assert len(at_limit.encode()) == artifact_keys.MAX_KEY_BYTES
    assert parse_key(at_limit).function == "orders"
    over = at_limit[: -len(suffix)] + "x" + suffix
    error = rejected(parse_key, over)
    assert error.code == "KEY_TOO_LONG"
    assert f"is {artifact_keys.MAX_KEY_BYTES + 1} bytes of UTF-8" in error.reason


def test_a_key_that_is_not_text_is_rejected() -> None:
    error = rejected(parse_key, "orders/\ud800.zip")
    assert (error.code, "lone surrogate" in error.reason) == ("BAD_KEY", True)


# --- the handler ----------------------------------------------------------------------------------


def package(*names: str) -> artifacts.ZipReport:
    """A report as inspect_zip makes it, for the names given."""
    return inspect(build_zip({name: "" if name.endswith("/") else "x" for name in names}))


def handler_missing(report: artifacts.ZipReport, handler: str, runtime: str, **kwargs: Any) -> str:
    with pytest.raises(Rejected) as caught:
        check_handler_present(report, handler, runtime, kwargs.pop("has_layers", False), **kwargs)
    assert caught.value.code == "HANDLER_NOT_FOUND"
    return caught.value.reason


@pytest.mark.parametrize(
    ("names", "handler", "found"),
    [
        (["app.py"], "app.handler", "app.py"),
        (["app/__init__.py", "app/util.py"], "app.handler", "app/__init__.py"),
        (["pkg/sub/mod.py"], "pkg.sub.mod.fn", "pkg/sub/mod.py"),  # namespace packages above
        (["pkg/sub/mod/__init__.py"], "pkg.sub.mod.fn", "pkg/sub/mod/__init__.py"),
        (["src/app.py"], "src/app.handler", "src/app.py"),  # the runtime turns '/' into '.'
        (["src/app/v2.py"], "src/app.v2.handler", "src/app/v2.py"),
        (["app.pyc"], "app.handler", "app.pyc"),  # sourceless bytecode
        (["fast.cpython-313-x86_64-linux-gnu.so"], "fast.handler", "fast.cpython-313-x86_64-linux-gnu.so"),
        (["fast.abi3.so"], "fast.handler", "fast.abi3.so"),
    ],
)
def test_python_handlers_are_found_where_the_runtime_imports_them(
    names: list[str], handler: str, found: str
) -> None:
    assert (
        check_handler_present(package(*names), handler, "python3.13", False)
        == f"found handler module {found}"
    )


@pytest.mark.parametrize(
    ("names", "handler", "phrase"),
    [
        (["main.py"], "app.handler", "no app.py or app/__init__.py"),
        (["app/util.py"], "app.handler", "no app.py"),  # a namespace package has no handler
        (["__pycache__/app.cpython-313.pyc"], "app.handler", "no app.py"),
        (["pkg/sub.py"], "pkg.sub.mod.fn", "no pkg/sub/mod.py or pkg/sub/mod/__init__.py"),
        (
            ["build/app.py", "build/lib.py"],
            "app.handler",
            "it has 'build/app.py': zip the contents of 'build'",
        ),
        (["function.zip"], "app.handler", "holds only 'function.zip': upload that package itself"),
        (["lib/", "lib/deep/"], "app.handler", "the archive holds no files"),
    ],
    ids=[
        "other-module",
        "namespace",
        "pycache-only",
        "dotted",
        "zipped-folder",
        "zip-in-zip",
        "folders-only",
    ],
)
def test_a_python_package_without_the_handler_module_is_rejected(
    names: list[str], handler: str, phrase: str
) -> None:
    report = (
        package(*names) if names != ["lib/", "lib/deep/"] else artifacts.ZipReport(2, 0, names=tuple(names))
    )
    reason = handler_missing(report, handler, "python3.12")
    assert reason.startswith(f"handler {handler!r} (python3.12): the archive has no ")
    assert phrase in reason


@pytest.mark.parametrize(
    ("handler", "phrase"),
    [
        ("app", "is not <module>.<function>"),
        ("app.", "is not <module>.<function>"),
        ("/var/task/app.handler", "not an importable module name"),
        ("app..handler", "not an importable module name"),
        ("", "has no handler"),
    ],
)
def test_python_handlers_the_runtime_cannot_parse_are_rejected(handler: str, phrase: str) -> None:
    assert phrase in handler_missing(package("app.py"), handler, "python3.13")


@pytest.mark.parametrize(
    ("names", "handler", "runtime", "found"),
    [
        (["index.js"], "index.handler", "nodejs20.x", "index.js"),
        (["index.mjs"], "index.handler", "nodejs22.x", "index.mjs"),
        (["index.cjs"], "index.handler", "nodejs22.x", "index.cjs"),
        (["index"], "index.handler", "nodejs22.x", "index"),  # extensionless files load as CommonJS
        (["src/handlers/api.mjs"], "src/handlers/api.main", "nodejs22.x", "src/handlers/api.mjs"),
        (["index.js"], "index.handlers.orders.create", "nodejs22.x", "index.js"),  # a nested export
        (["./src/app.js"], "./src/app.handler", "nodejs22.x", "src/app.js"),
        (["src/app.js"], "/var/task/src/app.handler", "nodejs22.x", "src/app.js"),
        (["api/package.json", "api/main.js"], "api.handler", "nodejs22.x", "api/package.json"),
        (["node_modules/shared/index.js"], "shared.handler", "nodejs22.x", "node_modules/shared/index.js"),
        (["src/node_modules/shared.js"], "src/shared.handler", "nodejs22.x", "src/node_modules/shared.js"),
        (["index.ts"], "index.handler", "nodejs24.x", "index.ts"),
        (["index.js"], ".handler", "nodejs20.x", "index.js"),  # require() of the package root
    ],
)
def test_node_handlers_are_found_where_the_runtime_loads_them(
    names: list[str], handler: str, runtime: str, found: str
) -> None:
    assert check_handler_present(package(*names), handler, runtime, False) == f"found handler module {found}"


@pytest.mark.parametrize(
    ("names", "handler", "runtime", "phrase"),
    [
        (["app.js"], "index.handler", "nodejs22.x", "the archive has no index.js, .mjs or .cjs"),
        (["index.ts"], "index.handler", "nodejs22.x", "no index.js"),  # TypeScript from Node 24 only
        (["index.json"], "index.handler", "nodejs22.x", "no index.js"),  # JSON exports no function
        (
            ["dist/index.js"],
            "index.handler",
            "nodejs22.x",
            "it has 'dist/index.js': zip the contents of 'dist'",
        ),
        (["lambda.zip"], "index.handler", "nodejs22.x", "holds only 'lambda.zip'"),
        (["index.js"], "../index.handler", "nodejs22.x", "refuses '..' in a handler"),
        (["index.js"], "index", "nodejs22.x", "is not <file>.<function>"),
        (["app.js"], ".handler", "nodejs22.x", "no index.js or package.json"),  # the root as a folder
    ],
)
def test_a_node_package_without_the_handler_module_is_rejected(
    names: list[str], handler: str, runtime: str, phrase: str
) -> None:
    assert phrase in handler_missing(package(*names), handler, runtime)


def test_no_handler_module_is_not_checked_further_when_a_layer_may_provide_it() -> None:
    report = package("lib/util.py")
    note = check_handler_present(report, "app.handler", "python3.13", True)
    assert (
        note
        == "not checked: app.py or app/__init__.py is not in the package; the function's layers may provide it"
    )
    # What the package does hold is still reported as found.
    assert (
        check_handler_present(package("app.py"), "app.handler", "python3.13", True)
        == "found handler module app.py"
    )


@pytest.mark.parametrize(
    ("names", "runtime", "handler", "environment", "note"),
    [
        (
            ["src/app.py"],
            "python3.13",
            "app.handler",
            {"PYTHONPATH": "/var/task/src"},
            "found handler module src/app.py",
        ),
        (
            ["src/app.py"],
            "python3.13",
            "app.handler",
            {"PYTHONPATH": "src"},
            "found handler module src/app.py",
        ),
        (
            ["x.py"],
            "python3.13",
            "app.handler",
            {"PYTHONPATH": "/opt/lib"},
            "PYTHONPATH (/opt/lib) may provide it",
        ),
        (["x.js"], "nodejs22.x", "app.handler", {"NODE_PATH": "/opt/x"}, "NODE_PATH (/opt/x) may provide it"),
        (["x.js"], "nodejs22.x", "/opt/app.handler", {}, "names a path outside the package"),
        (["x.py"], "python3.13", "app.handler", {"AWS_LAMBDA_EXEC_WRAPPER": "/opt/w"}, "wrapper script"),
        (["bootstrap"], "provided.al2023", "anything", {}, "provided.al2023 is a custom runtime"),
        (["app.jar"], "java21", "com.example.Handler::handle", {}, "runtime 'java21' is not known"),
    ],
)
def test_what_a_static_check_cannot_know_is_reported_not_rejected(
    names: list[str], runtime: str, handler: str, environment: dict[str, str], note: str
) -> None:
    assert note in check_handler_present(package(*names), handler, runtime, False, environment)
