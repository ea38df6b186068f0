"""A checks file stored as `./rollout.json` is the package root's checks file.

Lambda extracts `./rollout.json` to the package root (some packers keep the `./` prefix, e.g.
`zipfile.write(..., arcname="./rollout.json")`). Looked up by its raw entry name it was missed, and the
release went out on the default checks while its author's never ran.
"""

from __future__ import annotations

import io
import json
import zipfile

from rollout import deployer
from rollout.artifacts import inspect_zip

CHECKS = {
    "pre_traffic": [{"name": "health", "event": {"path": "/health"}, "expect": {"statusCode": 200}}],
    "canary": {"strict": True, "min_invocations": 50},
}


def _zip(checks_name: str) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {'statusCode': 200}\n")
        archive.writestr(checks_name, json.dumps(CHECKS))
    buffer.seek(0)
    return buffer


def test_a_root_checks_file_is_read() -> None:
    checks = deployer._checks_of(inspect_zip(_zip("rollout.json")))
    assert [c["name"] for c in checks["pre_traffic"]] == ["health"]


def test_a_checks_file_named_with_a_dot_slash_prefix_is_not_silently_dropped() -> None:
    report = inspect_zip(_zip("./rollout.json"))
    checks = deployer._checks_of(report)
    assert [c["name"] for c in checks["pre_traffic"]] == ["health"], (
        f"./rollout.json extracts to the package root but was ignored (checks_filename="
        f"{report.checks_filename!r}); the release got the defaults: {checks}"
    )
    assert checks["canary"]["strict"] is True
