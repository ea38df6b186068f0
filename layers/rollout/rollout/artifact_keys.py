"""What an artifact's S3 key means (pure): `<function-name>/<build>.zip`.

Apart from the zip rules (`artifacts`) because the reconciler's sweep of the bucket reads keys too,
and it has no use for the zip inspection's types at init.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from rollout.errors import Rejected

SUFFIX = ".zip"
# S3 keys are at most 1024 bytes of UTF-8, and the key goes to Lambda's UpdateFunctionCode as S3Key,
# whose botocore model (lambda/2015-03-31) says max 1024: nothing longer is a valid upload.
MAX_KEY_BYTES = 1024
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
NO_FUNCTION = "(none)"  # ledger partition for uploads whose key names no function (not a valid name)


class ArtifactKey(NamedTuple):
    function: str
    build: str  # the rest of the key after `<function>/`


def function_segment(key: str) -> str:
    """The function the key names, or NO_FUNCTION (for the ledger partition of a rejected upload)."""
    head, sep, _ = key.partition("/")
    return head if sep and FUNCTION_NAME.fullmatch(head) else NO_FUNCTION


def parse_key(key: str) -> ArtifactKey:
    """Split `<function-name>/<anything>.zip`; raise Rejected saying what is wrong."""
    try:
        key_bytes = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        # JSON can carry "\ud800"; S3 keys are UTF-8, so no object has this key.
        raise Rejected("BAD_KEY", f"key {key[:100]!r} is not UTF-8 text (a lone surrogate)") from exc
    if key_bytes > MAX_KEY_BYTES:
        raise Rejected(
            "KEY_TOO_LONG",
            f"key {key[:60]!r}... is {key_bytes} bytes of UTF-8; S3 and Lambda take at most {MAX_KEY_BYTES}",
        )
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
