"""hello: the demo target function Rollout releases. Its behaviour comes from build.json, baked in
at build time, so each artifact variant behaves differently under the same code path."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

BUILD = json.loads((Path(__file__).parent / "build.json").read_text())


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    path = (event or {}).get("path", "/")
    variant = BUILD["variant"]
    if path == "/health":
        healthy = variant != "failing-check"
        return _response(200 if healthy else 503, {"status": "ok" if healthy else "degraded", **_about()})
    if variant == "erroring":
        raise RuntimeError(f"hello {BUILD['label']} cannot serve {path}: upstream connection refused")
    if variant == "slow":
        time.sleep(BUILD.get("slow_ms", 400) / 1000)
    return _response(200, {"message": f"hello from {BUILD['label']}", **_about()})


def _about() -> dict[str, Any]:
    return {"build": BUILD["label"], "version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")}


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
