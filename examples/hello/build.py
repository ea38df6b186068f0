"""Build artifacts of the demo function `hello` in the variants the demo and the e2e tests release.

Variants
- healthy:        passes its checks and serves traffic.
- failing-check:  its /health answers 503, so the pre-traffic check fails before any traffic moves.
- erroring:       passes its checks but raises on real requests, so the canary alarm fires.
- slow:           passes its checks but answers real requests slowly, so post-traffic analysis objects.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).parent / "src"
VARIANTS = ("healthy", "failing-check", "erroring", "slow")

CHECKS: dict[str, Any] = {
    "pre_traffic": [
        {
            "name": "health",
            "event": {"path": "/health"},
            "expect": {"statusCode": 200},
            "max_duration_ms": 3000,
        }
    ],
    "post_traffic": [
        {"name": "health via alias", "event": {"path": "/health"}, "expect": {"statusCode": 200}}
    ],
    "canary": {"max_error_rate": 0.05, "max_p99_duration_ratio": 3.0, "min_invocations": 10},
}


def artifact_bytes(
    variant: str, label: str, *, slow_ms: int = 400, checks: dict[str, Any] | None = None
) -> bytes:
    """The zip of `hello` in `variant`, labelled `label` (shown in its responses)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        # A fixed timestamp keeps the bytes (and so CodeSha256) stable for the same variant and label.
        for path in sorted(SOURCE.glob("*.py")):
            zf.writestr(zipfile.ZipInfo(path.name, date_time=(2026, 1, 1, 0, 0, 0)), path.read_bytes())
        build = {"variant": variant, "label": label, "slow_ms": slow_ms}
        zf.writestr(zipfile.ZipInfo("build.json", date_time=(2026, 1, 1, 0, 0, 0)), json.dumps(build))
        zf.writestr(
            zipfile.ZipInfo("rollout.json", date_time=(2026, 1, 1, 0, 0, 0)),
            json.dumps(CHECKS if checks is None else checks, indent=2),
        )
    return buffer.getvalue()


def build_artifact(variant: str, label: str, out_dir: Path, **options: Any) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"hello-{label}-{variant}.zip"
    path.write_bytes(artifact_bytes(variant, label, **options))
    return path
