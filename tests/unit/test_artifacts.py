"""Artifact rules: events to uploads, key parsing, object size and zip safety (no AWS)."""

from __future__ import annotations

import io
import struct
import zipfile
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout import artifacts
from rollout.artifacts import (
    NO_FUNCTION,
    Rejected,
    Upload,
    check_object_size,
    decode_metadata,
    function_segment,
    inspect_zip,
    parse_key,
    unsafe_path,
    uploads_from_event,
)
from tests.support.artifacts_world import build_zip, function_zip, symlink_zip


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
        (build_zip({}), "holds no files"),
    ],
    ids=["text", "header-only", "truncated", "no-entries"],
)
def test_corrupt_archives_are_rejected(data: bytes, phrase: str) -> None:
    error = rejected(inspect, data)
    assert error.code == "CORRUPT_ZIP"
    assert phrase in error.reason


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
