"""The demo function behaves as each variant promises, run straight from its artifact."""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from examples.hello.build import VARIANTS, artifact_bytes, build_artifact


def _load(tmp_path: Path, variant: str) -> ModuleType:
    folder = tmp_path / variant
    with zipfile.ZipFile(build_artifact(variant, "v9", tmp_path)) as zf:
        zf.extractall(folder)
    spec = importlib.util.spec_from_file_location(f"hello_{variant.replace('-', '_')}", folder / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_same_variant_and_label_build_identical_bytes() -> None:
    assert artifact_bytes("healthy", "v2") == artifact_bytes("healthy", "v2")
    assert artifact_bytes("healthy", "v2") != artifact_bytes("healthy", "v3")


def test_every_artifact_carries_its_checks() -> None:
    for variant in VARIANTS:
        with zipfile.ZipFile(__import__("io").BytesIO(artifact_bytes(variant, "v1"))) as zf:
            checks = json.loads(zf.read("rollout.json"))
        assert [c["name"] for c in checks["pre_traffic"]] == ["health"]


def test_healthy_serves_health_and_traffic(tmp_path: Path) -> None:
    app = _load(tmp_path, "healthy")
    assert app.lambda_handler({"path": "/health"}, None)["statusCode"] == 200
    body = json.loads(app.lambda_handler({"path": "/"}, None)["body"])
    assert body["message"] == "hello from v9"


def test_failing_check_variant_fails_health(tmp_path: Path) -> None:
    app = _load(tmp_path, "failing-check")
    assert app.lambda_handler({"path": "/health"}, None)["statusCode"] == 503


def test_erroring_variant_passes_health_but_raises_on_traffic(tmp_path: Path) -> None:
    app = _load(tmp_path, "erroring")
    assert app.lambda_handler({"path": "/health"}, None)["statusCode"] == 200
    with pytest.raises(RuntimeError, match="upstream connection refused"):
        app.lambda_handler({"path": "/"}, None)


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        artifact_bytes("flaky", "v1")
