"""S3 adapter for the reconciler's sweep of the artifact bucket: its object versions, a page at a time.

Apart from `s3_ops` (which reads one upload), so that the functions reading uploads do not build these
types at init."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

from rollout import aws


class ObjectVersion(NamedTuple):
    key: str
    version_id: str
    last_modified: datetime
    size: int
    etag: str


class VersionsPage(NamedTuple):
    """One ListObjectVersions answer: versions (delete markers left out) in S3's order, where the
    next page starts ('' markers when this was the last), and S3's own clock at answer time."""

    versions: list[ObjectVersion]
    next_key_marker: str
    next_version_marker: str
    server_time: datetime | None

    @property
    def last(self) -> bool:
        return not self.next_key_marker


def list_versions_page(
    bucket: str, key_marker: str = "", version_marker: str = "", max_keys: int = 1000
) -> VersionsPage:
    """Up to `max_keys` object versions after the markers (needs s3:ListBucketVersions).

    S3 lists keys in UTF-8 binary order and each key's versions newest first, never by time
    (botocore's s3 model, ListObjectVersions); MaxKeys is at most 1000.
    """
    params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": max_keys}
    if key_marker:
        params["KeyMarker"] = key_marker
        if version_marker:
            params["VersionIdMarker"] = version_marker
    resp = aws.client("s3").list_object_versions(**params)
    versions = [
        ObjectVersion(
            key=str(v["Key"]),
            version_id=str(v.get("VersionId") or ""),
            last_modified=v["LastModified"],
            size=int(v.get("Size", 0)),
            etag=str(v.get("ETag", "")).strip('"'),
        )
        for v in resp.get("Versions", [])
    ]
    truncated = bool(resp.get("IsTruncated"))
    return VersionsPage(
        versions=versions,
        next_key_marker=str(resp.get("NextKeyMarker") or "") if truncated else "",
        next_version_marker=str(resp.get("NextVersionIdMarker") or "") if truncated else "",
        server_time=_server_time(resp),
    )


def _server_time(resp: dict[str, Any]) -> datetime | None:
    """S3's clock, from the response's Date header (RFC 7231), so ages compare S3 time with S3 time."""
    stamp = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(stamp) if stamp else None
    except (TypeError, ValueError):
        return None
