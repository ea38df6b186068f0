"""S3 adapter for artifacts: find the uploaded object version and read parts of it on demand.

Listing the bucket's object versions, which only the reconciler does, is `s3_versions`."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, NamedTuple

from rollout import aws

if TYPE_CHECKING:
    from rollout.artifacts import Upload

# HeadObject answers a missing key or version with these (400 for a version id of another key).
_MISSING = {"404", "NoSuchKey", "NoSuchVersion", "NotFound", "400", "InvalidArgument"}
READ_CHUNK = 256 * 1024


class StoredObject(NamedTuple):
    bucket: str
    key: str
    version_id: str
    size: int
    etag: str
    metadata: dict[str, str]

    def meta(self, name: str) -> str:
        # Imported here: only the deployer reads an upload's metadata; the hooks, which read the AppSpec
        # and checks files through this module, skip the artifact rules (rollout.artifacts) at init.
        from rollout.artifacts import decode_metadata

        return decode_metadata(self.metadata.get(name, "")).strip()


def resolve(upload: Upload) -> StoredObject | None:
    """The object the upload refers to: the key as delivered, else its decoded form; None if neither."""
    s3 = aws.client("s3")
    for key in upload.key_candidates():
        params: dict[str, Any] = {"Bucket": upload.bucket, "Key": key}
        if upload.version_id:
            params["VersionId"] = upload.version_id
        try:
            head = s3.head_object(**params)
        except Exception as exc:
            if aws.error_code(exc) in _MISSING:
                continue
            raise
        return StoredObject(
            bucket=upload.bucket,
            key=key,
            version_id=str(head.get("VersionId") or upload.version_id or ""),
            size=int(head.get("ContentLength", 0)),
            etag=str(head.get("ETag", "")).strip('"') or upload.etag,
            metadata={str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()},
        )
    return None


class RangedObjectReader(io.RawIOBase):
    """A seekable, read-only view of one S3 object version that fetches only the ranges read.

    zipfile reads the central directory at the end and then single entries, so a 250 MB artifact
    costs a few small GETs rather than a full download.
    """

    def __init__(self, obj: StoredObject) -> None:
        super().__init__()
        self._obj = obj
        self._position = 0
        self.requests = 0
        self.bytes_fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._obj.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._position >= self._obj.size or len(view) == 0:
            return 0
        end = min(self._position + len(view), self._obj.size) - 1
        params: dict[str, Any] = {
            "Bucket": self._obj.bucket,
            "Key": self._obj.key,
            "Range": f"bytes={self._position}-{end}",
        }
        if self._obj.version_id:
            params["VersionId"] = self._obj.version_id
        body = aws.client("s3").get_object(**params)["Body"]
        try:
            data = body.read()
        finally:
            body.close()
        self.requests += 1
        self.bytes_fetched += len(data)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_object(obj: StoredObject) -> io.BufferedReader:
    return io.BufferedReader(RangedObjectReader(obj), buffer_size=READ_CHUNK)


class DocumentTooLarge(ValueError):
    """An S3 document longer than the caller can read."""


def read_object(bucket: str, key: str, version_id: str = "", *, limit: int) -> bytes:
    """A whole small object (AppSpecs and checks documents, never artifacts), refused past `limit` bytes
    without reading the rest (at most limit + 1 bytes are read, whatever the object's size): a hook must
    fail with the reason, not run out of memory."""
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    body = aws.client("s3").get_object(**params)["Body"]
    try:
        data = bytes(body.read(limit + 1))
    finally:
        body.close()
    if len(data) > limit:
        raise DocumentTooLarge(f"s3://{bucket}/{key} is longer than {limit} bytes")
    return data
