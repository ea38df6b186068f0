"""A release as the notification tests announce it: no AWS, just the record."""

from __future__ import annotations

from typing import Any

from rollout.ledger import Release
from rollout.states import State


def rolled_back_release(**fields: Any) -> Release:
    """`orders` rolled back from v4 to v3 after a canary deployment, with `fields` set on it."""
    release = Release(
        function="orders",
        release_id="01h0000000000abcdef",
        state=State.ROLLED_BACK,
        bucket="artifacts",
        key="orders/build-42.zip",
        alias="live",
        deployment_config="CodeDeployDefault.LambdaCanary10Percent5Minutes",
        current_version="3",
        target_version="4",
        deployment_id="d-ABCDEFGHI",
        commit="0123456789abcdef0123",
        author="alice",
        message="Fix checkout totals",
        received_at="2025-01-01T10:00:00.000Z",
        deploying_at="2025-01-01T10:00:20.000Z",
        completed_at="2025-01-01T10:06:32.000Z",
        updated_at="2025-01-01T10:06:32.000Z",
    )
    for key, value in fields.items():
        setattr(release, key, value)
    return release
