"""The environment every test runs in: fake credentials, a fixed region, and no way to reach AWS."""

from __future__ import annotations

import pytest

from rollout import aws
from tests.support.aws_stack import REGION


def offline_environment(monkeypatch: pytest.MonkeyPatch, endpoint_url: str | None = None) -> None:
    """Fake credentials and a fixed region; the endpoint override is `endpoint_url` (a local sandbox) or
    none (moto in-process intercepts AWS's own endpoints). The package's cached clients are forgotten."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    if endpoint_url is None:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # pytest-xdist's workers set COLUMNS=80; the CLI's tables are asserted at its default off a terminal.
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")
    aws.reset_clients()
