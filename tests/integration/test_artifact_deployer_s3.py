"""Reading artifacts in S3: exact versions, encoded keys, and ranged reads instead of downloads."""

from __future__ import annotations

import io
import os
import zipfile

from rollout import s3_ops
from rollout.artifacts import Upload, inspect_zip
from tests.support.artifacts_world import ArtifactWorld, build_zip
from tests.support.aws_stack import StackUnderTest


def test_only_the_zip_directory_and_checks_file_are_fetched(stack: StackUnderTest) -> None:
    world = ArtifactWorld(stack)
    payload = os.urandom(4 * 1024 * 1024)  # incompressible: the object really is this big
    body = build_zip({"app.py": "x", "vendor/blob.bin": payload, "rollout.json": '{"pre_traffic": []}'})
    uploaded = world.upload("orders/big.zip", body)
    stored = s3_ops.resolve(Upload(uploaded.bucket, uploaded.key, uploaded.version_id))
    assert stored is not None

    reader = s3_ops.RangedObjectReader(stored)
    with io.BufferedReader(reader, buffer_size=s3_ops.READ_CHUNK) as archive:
        report = inspect_zip(archive)

    assert report.checks_document == b'{"pre_traffic": []}'
    assert report.unzipped_bytes > len(payload)
    assert reader.bytes_fetched < len(body) / 4
    assert reader.requests <= 4


def test_the_event_version_is_read_even_after_a_newer_upload(stack: StackUnderTest) -> None:
    world = ArtifactWorld(stack)
    first = world.upload("orders/build.zip", build_zip({"app.py": "first"}))
    world.upload("orders/build.zip", build_zip({"app.py": "second", "extra.py": "y"}))
    stored = s3_ops.resolve(Upload(first.bucket, first.key, first.version_id))
    assert stored is not None

    with s3_ops.open_object(stored) as archive:
        names = zipfile.ZipFile(archive).namelist()

    assert (stored.version_id, names) == (first.version_id, ["app.py"])


def test_a_missing_object_or_version_resolves_to_nothing(stack: StackUnderTest) -> None:
    world = ArtifactWorld(stack)
    other = world.upload("orders/other.zip", build_zip({"app.py": "x"}))
    assert s3_ops.resolve(Upload(stack.bucket, "orders/never.zip")) is None
    assert s3_ops.resolve(Upload(stack.bucket, "orders/never.zip", other.version_id)) is None


def test_metadata_is_read_back_decoded(stack: StackUnderTest) -> None:
    world = ArtifactWorld(stack)
    uploaded = world.upload(
        "orders/meta.zip",
        build_zip({"app.py": "x"}),
        {"author": "=?UTF-8?B?SsO8cmdlbg==?=", "commit": "abc123"},
    )
    stored = s3_ops.resolve(Upload(uploaded.bucket, uploaded.key, uploaded.version_id))
    assert stored is not None
    assert (stored.meta("author"), stored.meta("commit"), stored.meta("message")) == ("Jürgen", "abc123", "")
