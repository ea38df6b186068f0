"""A button click as Slack sends it: a block_actions payload, form-encoded and signed with the app's signing
secret (Slack's v0 scheme, by slack_sdk's own signer). Used by the demo's approver and by the tests; sent only
to the local sandbox."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from cli.errors import CliError, ExitCode

LOCAL_ORIGIN = "http://127.0.0.1:"


def post_signed_click(
    endpoint: str,
    signing_secret: str,
    payload: dict[str, Any],
    timestamp: int | None = None,
    signature: str | None = None,
) -> tuple[int, str]:
    """POST `payload` as Slack would; (HTTP status, body). `signature` replaces the real one (to test refusal)."""
    if not endpoint.startswith(LOCAL_ORIGIN):
        raise CliError(f"clicks go only to the local sandbox, not {endpoint}", ExitCode.USAGE)
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = signature or SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
    request = urllib.request.Request(  # noqa: S310 - checked above: the local sandbox
        endpoint,
        data=body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": str(signed),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local sandbox
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()
