"""Browser tests: the dashboard in the distribution's headless Chromium, driven by Playwright.

They need /usr/bin/chromium (Debian's `chromium` package; `.ci/run` installs it). Without it they are
skipped with a plain message. Nothing here downloads a browser: Playwright is pointed at that binary.
Screenshots go to tests/browser/output/ (ignored by git); with ROLLOUT_DOCS_SCREENSHOTS=1 the ones the
docs show are also written to docs/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.offline_aws import offline_environment

CHROMIUM = Path(os.environ.get("ROLLOUT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(__file__).resolve().parent / "output"
DOCS = ROOT / "docs" / "screenshots"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"browser tests skipped: {CHROMIUM} not found (apt-get install chromium chromium-driver)"
    )
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch, world: Any) -> Iterator[None]:
    """The suite's own (tests/conftest.py), but the endpoint stays the module's sandbox from one test to the
    next: the open page keeps polling the in-process dashboard, and a client it made while the endpoint was
    unset (between two tests) was aimed at AWS itself ("cannot reach https://dynamodb.us-east-1...")."""
    offline_environment(monkeypatch, world.sandbox.endpoint_url)
    yield


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


class Screenshots:
    """Saves a page's picture where the tests' output goes (and, when asked, where the docs look)."""

    def __init__(self) -> None:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        self.for_docs = os.environ.get("ROLLOUT_DOCS_SCREENSHOTS") == "1"

    def save(self, page: Any, name: str, docs: bool = False) -> Path:
        path = OUTPUT / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, f"{path} is suspiciously small"
        if docs and self.for_docs:
            DOCS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS / path.name)
        return path


@pytest.fixture(scope="session")
def screenshots() -> Screenshots:
    return Screenshots()
