"""Rollout's reading of ListDeployments: every page, whatever a page holds."""

from __future__ import annotations

from typing import Any

import pytest

from rollout import aws, codedeploy_ops


class PagedListing:
    """ListDeployments as CodeDeploy may answer it: a filtered page can be empty and still name a next one."""

    def __init__(self, pages: list[list[str]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    def list_deployments(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        index = int(params.get("nextToken") or 0)
        page: dict[str, Any] = {"deployments": self.pages[index]}
        if index + 1 < len(self.pages):
            page["nextToken"] = str(index + 1)
        return page


def test_a_running_deployment_on_a_later_page_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = PagedListing([[], ["d-RUNNING01"]])
    monkeypatch.setattr(aws, "client", lambda service: listing)

    assert codedeploy_ops.active_deployments("rollout", "orders") == ["d-RUNNING01"]
    assert [c.get("nextToken") for c in listing.calls] == [None, "1"]
    assert all(c["includeOnlyStatuses"] == codedeploy_ops.ACTIVE_STATUSES for c in listing.calls)
