"""The dashboard as a person uses it, in a real headless Chromium against the sandbox: what they see, what they click."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from examples.hello.traffic import TrafficGenerator
from tests.browser.conftest import Screenshots
from tests.support.dashboard_world import DashboardWorld, dashboard_world
from tests.support.e2e_world import E2E_CHECKS

pytestmark = pytest.mark.e2e
WAIT_MS = 90_000
expect.set_options(timeout=WAIT_MS)  # every wait is on a condition, bounded by this


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardWorld]:
    with dashboard_world(tmp_path_factory.mktemp("artifacts"), refresh_seconds=0.3) as running:
        running.create_function("checkout")
        assert running.deploy("checkout", "healthy", "v1")["release"]["state"] == "BOOTSTRAPPED"
        assert running.deploy("checkout", "healthy", "v2")["release"]["state"] == "SUCCEEDED"
        running.create_function("payments")
        assert running.deploy("payments", "healthy", "v1")["release"]["state"] == "BOOTSTRAPPED"
        assert running.deploy("payments", "failing-check", "v2")["release"]["state"] == "ROLLED_BACK"
        yield running


@pytest.fixture
def page(world: DashboardWorld, browser: Any) -> Iterator[Page]:
    world.point_here()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    elsewhere: list[str] = []
    opened.on(
        "request", lambda r: None if r.url.startswith(world.dashboard.base_url) else elsewhere.append(r.url)
    )
    # The address `rollout dashboard` prints: its token becomes a cookie and leaves the address bar.
    opened.goto(world.dashboard.url)
    expect(opened).to_have_url(world.dashboard.base_url + "/")
    try:
        yield opened
        assert elsewhere == [], f"the page fetched from elsewhere: {elsewhere}"
    finally:
        context.close()


def row(page: Page, function: str) -> Any:
    return page.locator(f'#fleet-table tr[data-function="{function}"]')


def test_without_the_token_the_browser_gets_nothing(world: DashboardWorld, browser: Any) -> None:
    world.point_here()
    world.point_here()
    context = browser.new_context()
    try:
        bare = context.new_page()
        response = bare.goto(world.dashboard.base_url + "/")
        assert response is not None and response.status == 403
        expect(bare.locator("body")).to_contain_text("token is required")
    finally:
        context.close()


def test_fleet_lists_the_functions_and_flags_the_failed_one(page: Page, screenshots: Screenshots) -> None:
    expect(page.locator("h1")).to_have_text("Fleet of rollout-dash")
    expect(row(page, "checkout")).to_contain_text("SUCCEEDED")
    expect(row(page, "checkout")).not_to_contain_text("needs attention")
    failed = row(page, "payments")
    expect(failed).to_contain_text("ROLLED_BACK")
    expect(failed).to_contain_text("needs attention")
    expect(failed).to_contain_text("pre-traffic check 'health' failed")
    expect(page.locator("#attention-count")).to_have_text("1")
    screenshots.save(page, "fleet", docs=True)

    # Keyboard only: the filter button, then the search box.
    page.locator("#attention-filter").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#attention-filter")).to_have_attribute("aria-pressed", "true")
    expect(row(page, "checkout")).to_have_count(0)
    expect(row(page, "payments")).to_have_count(1)
    page.keyboard.press("Space")
    expect(row(page, "checkout")).to_have_count(1)
    page.locator("#search").focus()
    page.keyboard.type("check")
    expect(row(page, "payments")).to_have_count(0)
    expect(row(page, "checkout")).to_have_count(1)
    page.keyboard.press("Tab")  # focus moves on to the next control, the filter button
    expect(page.locator("#attention-filter")).to_be_focused()


def test_a_narrow_window_shows_each_function_as_a_card(
    world: DashboardWorld, browser: Any, screenshots: Screenshots
) -> None:
    world.point_here()
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(WAIT_MS)
    try:
        narrow = context.new_page()
        narrow.goto(world.dashboard.url)
        card = narrow.locator('#fleet-table tr[data-function="payments"]')
        expect(card).to_contain_text("needs attention")
        width = narrow.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways in a narrow window ({width}px)"
        screenshots.save(narrow, "fleet-narrow")
    finally:
        context.close()


def test_the_failed_release_shows_its_failed_check(page: Page, screenshots: Screenshots) -> None:
    row(page, "payments").get_by_role("link", name="payments").click()
    expect(page.locator("h1")).to_have_text("payments")
    releases = page.locator("#releases-table tbody tr")
    expect(releases).to_have_count(2)
    expect(releases.first).to_contain_text("ROLLED_BACK")
    screenshots.save(page, "function")
    releases.first.get_by_role("link").click()
    failed = page.locator('#checks .check[data-check="health"]')
    expect(failed).to_have_attribute("data-verdict", "Failed")
    expect(failed.locator("pre.excerpt")).to_contain_text("503")
    expect(page.locator("#release-state")).to_contain_text("ROLLED_BACK")
    expect(page.locator("#notifications")).to_contain_text("deployment.rolled_back")
    expect(page.locator('#lifecycle tr[data-event="BeforeAllowTraffic"]')).to_contain_text("Failed")
    expect(page.locator("#traffic-now")).to_have_text("0%")
    screenshots.save(page, "release-failed", docs=True)
    # The numbers behind the traffic chart, by keyboard: the last step is back to 0% or never left it.
    summary = page.locator("#traffic-chart details.data summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#traffic-chart details.data tbody tr").last).to_contain_text("0%")


def test_during_a_canary_the_traffic_chart_moves_from_0_to_100(
    world: DashboardWorld, page: Page, screenshots: Screenshots
) -> None:
    world.create_function("search", "Canary10Percent15Minutes")
    assert world.deploy("search", "healthy", "v1")["release"]["state"] == "BOOTSTRAPPED"
    with TrafficGenerator(world.client("lambda"), "search", rate=10.0, max_seconds=180):
        upload = world.deploy("search", "healthy", "v2", wait=False)
        release_id, _ = world.deployment_of("search", upload["key"])
        page.goto(f"{world.dashboard.base_url}/functions/search/releases/{release_id}")
        now = page.locator("#traffic-now")
        expect(page.locator("#release-state")).to_contain_text("DEPLOYING")
        expect(now).to_have_text("10%")
        expect(page.locator("#traffic-chart path.planned")).to_have_count(1)
        expect(page.locator('button[data-action="abort"]')).to_be_visible()
        # The canary's own calls show up beside the old version's, from the ExecutedVersion metrics.
        expect(page.locator("#p99-chart .legend")).to_contain_text("new v2")
        expect(page.locator("#error-chart .legend")).to_contain_text("old v1")
        expect(now).to_have_text("10%")
        screenshots.save(page, "release-canary", docs=True)
        # No reload: the page follows the deployment to its end by itself.
        expect(now).to_have_text("100%")
        expect(page.locator("#release-state")).to_contain_text("SUCCEEDED")
    expect(page.locator('button[data-action="abort"]')).to_have_count(0)
    expect(page.locator("#canary")).to_have_attribute("data-verdict", "Succeeded")
    expect(page.locator("#p99-chart svg")).to_be_visible()
    screenshots.save(page, "release-succeeded")


def test_aborting_from_the_page_rolls_back(
    world: DashboardWorld, page: Page, screenshots: Screenshots
) -> None:
    world.create_function("ledgerd", "Canary10Percent30Minutes")
    assert world.deploy("ledgerd", "healthy", "v1")["release"]["state"] == "BOOTSTRAPPED"
    stable = world.alias_version("ledgerd")
    upload = world.deploy("ledgerd", "healthy", "v2", wait=False)
    release_id, deployment_id = world.deployment_of("ledgerd", upload["key"])
    in_flight = row(page, "ledgerd")  # the fleet page, still open, follows it
    expect(in_flight).to_contain_text(deployment_id)
    expect(in_flight).to_contain_text("10% on v2")
    expect(in_flight.locator('.bar[role="img"]')).to_have_attribute("aria-label", "10% on v2")
    screenshots.save(page, "fleet-canary")
    page.goto(f"{world.dashboard.base_url}/functions/ledgerd/releases/{release_id}")
    expect(page.locator("#traffic-now")).to_have_text("10%")

    page.locator('button[data-action="abort"]').click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Stop deployment {deployment_id}")
    page.keyboard.press("Escape")  # changing one's mind does nothing
    expect(dialog).to_be_hidden()
    expect(page.locator("#release-state")).to_contain_text("DEPLOYING")

    page.locator('button[data-action="abort"]').click()
    screenshots.save(page, "abort-confirm")
    dialog.get_by_role("button", name="Abort").click()
    expect(page.locator("#toast")).to_contain_text(
        re.compile(f"Abort {deployment_id}: (Pending|InProgress|Succeeded)")
    )
    expect(page.locator("#release-state")).to_contain_text("ROLLED_BACK")
    expect(page.locator("#release-state")).to_contain_text("stopped on request")
    expect(page.locator("#reason-code")).to_have_text("MANUAL_STOP")
    expect(page.locator("#traffic-now")).to_have_text("0%")
    assert world.alias_version("ledgerd") == stable
    screenshots.save(page, "release-aborted")


def test_approving_a_gate_from_the_page_lets_the_deployment_complete(
    world: DashboardWorld, page: Page, screenshots: Screenshots
) -> None:
    world.create_function("invoicing", "AllAtOnce")
    assert world.deploy("invoicing", "healthy", "v1")["release"]["state"] == "BOOTSTRAPPED"
    gated = {**E2E_CHECKS, "approval": {"before": "traffic", "timeout_minutes": 30}}
    upload = world.deploy("invoicing", "healthy", "v2", wait=False, checks=gated)
    release_id, deployment_id = world.deployment_of("invoicing", upload["key"])
    page.goto(f"{world.dashboard.base_url}/functions/invoicing/releases/{release_id}")
    # The buttons appear once the pre-traffic checks passed and the gate opened; no traffic moved yet.
    approve = page.locator('button[data-action="approve"]')
    expect(approve).to_be_visible()
    expect(page.locator('button[data-action="reject"]')).to_be_visible()
    expect(page.locator("#traffic-now")).to_have_text("0%")
    assert world.alias_version("invoicing") == "1"

    approve.click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_contain_text(f"Approve the gate of deployment {deployment_id}")
    dialog.locator("#field-comment").fill("looked at the canary plan")
    screenshots.save(page, "approve-confirm")
    dialog.get_by_role("button", name="Approve").click()
    expect(page.locator("#release-state")).to_contain_text("SUCCEEDED")
    expect(approve).to_have_count(0)
    assert world.alias_version("invoicing") == "2"
    gate = next(r for r in world.history("invoicing") if r["release_id"] == release_id)["approval"]
    assert gate["status"] == "APPROVED" and gate["comment"] == "looked at the canary plan"
    assert "execution_id" not in gate


def test_rolling_back_from_a_function_page_sends_the_live_version_the_page_showed(
    world: DashboardWorld, page: Page
) -> None:
    # The server refuses a rollback whose page showed another live version (test_dashboard_sandbox); here
    # the page's part: it sends what it showed. The answer is the server's refusal, so nothing changes.
    sent: list[dict[str, Any]] = []

    def refuse(route: Any) -> None:
        sent.append(route.request.post_data_json)
        message = "checkout: v3 is live now, not v2 as the page showed; nothing was rolled back"
        route.fulfill(status=409, json={"error": {"message": message}})

    page.route("**/api/actions/rollback", refuse)
    page.goto(f"{world.dashboard.base_url}/functions/checkout")
    page.locator('button[data-action="rollback"]').click()
    dialog = page.locator("dialog#confirm")
    dialog.locator("#field-reason").fill("v2 misbehaves")
    dialog.get_by_role("button", name="Roll back").click()
    expect(page.locator("#toast")).to_contain_text("v3 is live now, not v2 as the page showed")
    assert sent == [{"target": "checkout", "live_version": "2", "reason": "v2 misbehaves"}]
    assert world.alias_version("checkout") == "2"
