"""`rollout dashboard` over HTTP against the stack provisioned in the sandbox: its JSON, its guards, abort."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.dashboard_world import STACK, DashboardWorld, dashboard_world, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = [sys.executable, "-m", "cli.main", "dashboard", "--port", "0"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardWorld]:
    with dashboard_world(tmp_path_factory.mktemp("artifacts")) as running:
        running.create_function("steady")
        assert running.deploy("steady", "healthy", "v1")["release"]["state"] == "BOOTSTRAPPED"
        assert running.deploy("steady", "healthy", "v2")["release"]["state"] == "SUCCEEDED"
        running.create_function("broken")
        assert running.deploy("broken", "healthy", "v1")["release"]["state"] == "BOOTSTRAPPED"
        assert running.deploy("broken", "failing-check", "v2")["release"]["state"] == "ROLLED_BACK"
        yield running


@pytest.fixture
def here(world: DashboardWorld) -> DashboardWorld:
    world.point_here()
    return world


def call(
    world: DashboardWorld,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    token: bool = True,
) -> tuple[int, dict[str, str], Any]:
    """One request to the dashboard as a script would make it; (status, headers, JSON or text)."""
    sent = {"Host": f"127.0.0.1:{world.dashboard.settings.port}", **(headers or {})}
    if token:
        sent.setdefault("X-Rollout-Token", world.token)
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(world.dashboard.base_url + path, data=data, headers=sent, method=method)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=60) as response:
            status, answer_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        status, answer_headers, raw = err.code, dict(err.headers), err.read()
    text = raw.decode()
    try:
        return status, answer_headers, json.loads(text)
    except ValueError:
        return status, answer_headers, text


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def act(
    world: DashboardWorld, name: str, target: str, fields: dict[str, str] | None = None, **headers: str
) -> tuple[int, Any]:
    sent = {"X-Rollout-CSRF": world.csrf, "Origin": world.dashboard.base_url, **headers}
    status, _, body = call(world, f"/api/actions/{name}", "POST", sent, {"target": target, **(fields or {})})
    return status, body


# --- what the pages read ----------------------------------------------------------------------------
def test_fleet_lists_every_managed_function_and_flags_the_rolled_back_one(here: DashboardWorld) -> None:
    status, _, fleet = call(here, "/api/fleet")
    assert status == 200, fleet
    rows = {row["function"]: row for row in fleet["functions"]}
    assert {"steady", "broken"} <= set(rows)
    assert rows["steady"]["latest"]["state"] == "SUCCEEDED" and rows["steady"]["attention"] == []
    assert rows["steady"]["live_version"] == here.alias_version("steady")
    assert rows["broken"]["latest"]["state"] == "ROLLED_BACK"
    assert any("ROLLED_BACK" in reason and "health" in reason for reason in rows["broken"]["attention"])
    assert fleet["attention_count"] == sum(1 for row in fleet["functions"] if row["attention"])


def test_function_page_reads_the_release_history_newest_first(here: DashboardWorld) -> None:
    status, _, page = call(here, "/api/functions/broken")
    assert status == 200
    assert [r["state"] for r in page["releases"]] == ["ROLLED_BACK", "BOOTSTRAPPED"]
    assert page["releases"][0]["commit"] == "c-v2" and page["releases"][0]["message"] == "failing-check v2"
    missing = call(here, "/api/functions/no-such-function")
    assert missing[0] == 404 and "not found" in missing[2]["error"]["message"]
    first = page["releases"][1]
    bootstrapped = call(here, f"/api/functions/broken/releases/{first['release_id']}")[2]
    assert bootstrapped["deployment"] is None and bootstrapped["traffic"] is None  # no deployment, no chart
    assert [n["kind"] for n in bootstrapped["notifications"]] == ["release.bootstrapped"]
    assert call(here, "/api/functions/broken/releases/0000")[0] == 404


def test_release_page_shows_the_failed_check_the_traffic_and_the_notifications(here: DashboardWorld) -> None:
    latest = call(here, "/api/functions/broken")[2]["releases"][0]
    status, _, page = call(here, f"/api/functions/broken/releases/{latest['release_id']}")
    assert status == 200, page
    pre = next(h for h in page["checks"] if h["hook"] == "pre-traffic")
    failed = [c for c in pre["checks"] if c["verdict"] == "Failed"]
    assert failed and failed[0]["name"] == "health" and "503" in failed[0]["detail"]
    kinds = [n["kind"] for n in page["notifications"]]
    assert kinds == ["deployment.started", "deployment.rolled_back"]
    assert page["deployment"]["status"] in ("Failed", "Stopped")
    assert page["traffic"]["points"][-1][1] == 0.0 and page["traffic"]["done"]
    assert "execution_id" not in json.dumps(page["release"]["hook_results"])


def test_a_successful_canary_reaches_100_percent_with_metrics_for_both_versions(here: DashboardWorld) -> None:
    latest = call(here, "/api/functions/steady")[2]["releases"][0]
    page = call(here, f"/api/functions/steady/releases/{latest['release_id']}")[2]
    shares = [share for _, share in page["traffic"]["points"]]
    assert shares[0] == 0.0 and 10.0 in shares and shares[-1] == 100.0, shares
    assert page["metrics"]["versions"] == {"new": latest["target_version"], "old": latest["current_version"]}
    post = next(h for h in page["checks"] if h["hook"] == "post-traffic")
    assert post["verdict"] == "Succeeded" and post["canary"]["verdict"] == "Succeeded"


# --- the guards -------------------------------------------------------------------------------------
def test_every_request_needs_the_token(here: DashboardWorld) -> None:
    for path in ("/", "/api/fleet", "/static/app.js", "/functions/steady"):
        status, _, body = call(here, path, token=False)
        assert status == 403 and "token is required" in body["error"]["message"], path
    assert call(here, "/api/fleet", headers={"X-Rollout-Token": "guess"})[0] == 403


def test_the_token_in_the_address_becomes_a_strict_cookie_and_leaves_the_address(
    here: DashboardWorld,
) -> None:
    status, headers, _ = call(here, f"/?token={here.token}", token=False)
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    name = f"rollout_dashboard_{here.dashboard.settings.port}"  # one per port: two dashboards do not collide
    assert f"{name}={here.token}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    with_cookie = call(here, "/api/fleet", headers={"Cookie": f"{name}={here.token}"}, token=False)
    assert with_cookie[0] == 200
    assert call(here, "/?token=wrong", token=False)[0] == 403


def test_another_host_name_is_refused(here: DashboardWorld) -> None:
    status, _, body = call(
        here, "/api/fleet", headers={"Host": f"evil.example:{here.dashboard.settings.port}"}
    )
    assert status == 421 and "127.0.0.1" in body["error"]["message"]


def test_actions_refuse_cross_site_requests(here: DashboardWorld) -> None:
    deployment = call(here, "/api/functions/steady")[2]["releases"][0]["deployment_id"]
    no_csrf = call(
        here, "/api/actions/abort", "POST", {"Origin": here.dashboard.base_url}, {"target": deployment}
    )
    assert no_csrf[0] == 403 and "CSRF" in no_csrf[2]["error"]["message"]
    assert act(here, "abort", deployment, Origin="http://evil.example")[0] == 403
    assert act(here, "abort", deployment, **{"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert call(here, "/api/actions/abort")[0] == 405  # never by GET
    # With every guard satisfied the action runs: the finished deployment is the CLI's own conflict.
    status, body = act(here, "abort", deployment)
    assert status == 409 and "already completed" in body["error"]["message"]
    assert act(here, "no-such-action", deployment)[0] == 404


def test_pages_carry_a_strict_content_security_policy(here: DashboardWorld) -> None:
    status, headers, html = call(here, "/")
    assert status == 200 and 'name="rollout-csrf" content="' + here.csrf in html
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "http" not in html.replace("http-equiv", "")  # nothing is fetched from elsewhere


def test_aborting_through_the_dashboard_rolls_back(here: DashboardWorld) -> None:
    here.create_function("abortable", "Canary10Percent30Minutes")
    assert here.deploy("abortable", "healthy", "v1")["release"]["state"] == "BOOTSTRAPPED"
    stable = here.alias_version("abortable")
    upload = here.deploy("abortable", "healthy", "v2", wait=False)
    release_id, deployment_id = here.deployment_of("abortable", upload["key"])
    fleet_row = wait_for(
        lambda: next(
            (
                r
                for r in call(here, "/api/fleet")[2]["functions"]
                if r["function"] == "abortable" and r["in_flight"] and r["in_flight"]["traffic_on_target"] > 0
            ),
            None,
        ),
        60,
        "the canary step on the fleet page",
    )
    assert fleet_row["in_flight"]["deployment_id"] == deployment_id
    assert abs(fleet_row["in_flight"]["traffic_on_target"] - 0.1) < 1e-6
    status, body = act(here, "abort", deployment_id)
    assert status == 200 and body["result"]["deployment_id"] == deployment_id, body
    page = wait_for(
        lambda: (
            (p := call(here, f"/api/functions/abortable/releases/{release_id}")[2])["release"]["state"]
            == "ROLLED_BACK"
            and p
        ),
        60,
        "the release to be rolled back",
    )
    assert page["release"]["reason_code"] == "MANUAL_STOP"
    assert here.alias_version("abortable") == stable
    assert page["traffic"]["points"][-1][1] == 0.0


def test_freezing_and_unfreezing_through_the_dashboard(here: DashboardWorld) -> None:
    here.create_function("icebox")
    assert here.deploy("icebox", "healthy", "v1")["release"]["state"] == "BOOTSTRAPPED"
    status, body = act(here, "freeze", "icebox", {"reason": ""})
    assert status == 400, body  # a freeze says why
    status, body = act(here, "freeze", "icebox", {"reason": "quarter close"})
    assert status == 200, body
    fleet = call(here, "/api/fleet")[2]
    assert [f["scope"] for f in fleet["freezes"]] == ["icebox"]
    assert "quarter close" in fleet["freezes"][0]["text"]
    assert {r["function"]: r["frozen"] for r in fleet["functions"]}["icebox"] is True
    held = here.deploy("icebox", "healthy", "v2", wait=False)
    release = wait_for(
        lambda: next(
            (r for r in here.history("icebox") if r["key"] == held["key"] and r["state"] == "HELD"), None
        ),
        60,
        "the upload to be held",
    )
    status, body = act(here, "unfreeze", "icebox")
    assert status == 200 and release["release_id"] in body["result"]["held"]["started"], body
    assert call(here, "/api/fleet")[2]["freezes"] == []
    assert act(here, "unfreeze", "icebox")[0] == 409  # nothing frozen: refused, as `rollout unfreeze` exits 6


def test_rolling_back_through_the_dashboard_returns_to_the_previous_good_version(
    here: DashboardWorld,
) -> None:
    here.create_function("rewind", "AllAtOnce")
    assert here.deploy("rewind", "healthy", "v1")["release"]["state"] == "BOOTSTRAPPED"
    assert here.deploy("rewind", "healthy", "v2")["release"]["state"] == "SUCCEEDED"
    assert here.alias_version("rewind") == "2"
    # A page still showing v1 live: the person did not see what a rollback would leave. Refused, nothing done.
    status, body = act(here, "rollback", "rewind", {"reason": "v1 misbehaves", "live_version": "1"})
    assert status == 409 and "v2 is live now, not v1" in str(body), body
    assert not [r for r in here.history("rewind") if r["kind"] == "rollback"]
    status, body = act(here, "rollback", "rewind", {"reason": "v2 misbehaves", "live_version": "2"})
    assert status == 200, body
    rollback = body["result"]["release"]
    assert rollback["kind"] == "rollback" and rollback["target_version"] == "1"
    ended = wait_for(
        lambda: next(
            (
                r
                for r in here.history("rewind")
                if r["release_id"] == rollback["release_id"]
                and r["state"] != "DEPLOYING"
                and r["state"] in ("SUCCEEDED", "ROLLED_BACK", "FAILED", "REJECTED")
            ),
            None,
        ),
        90,
        "the rollback to end",
    )
    assert ended["state"] == "SUCCEEDED", ended["reason"]
    assert here.alias_version("rewind") == "1"


def test_only_the_actions_the_cli_has_are_offered(here: DashboardWorld, tmp_path: Path) -> None:
    from cli.dashboard import actions

    session = call(here, "/api/session")[2]
    offered = {a["name"] for a in session["actions"]}
    assert "abort" in offered
    assert offered == set(actions.available())


# --- the command -------------------------------------------------------------------------------------
def read_line(stream: Any, timeout: float) -> str:
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or not line[0]:
        raise AssertionError(f"no output within {timeout}s")
    return line[0]


def _sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _sigint_blocked() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


@pytest.mark.parametrize(
    "inherited",
    [None, _sigint_ignored, _sigint_blocked],
    ids=["from-a-terminal", "sigint-ignored-as-after-&", "sigint-blocked"],
)
def test_the_command_prints_a_tokened_address_on_127_0_0_1_and_stops_on_ctrl_c(
    world: DashboardWorld, inherited: Callable[[], None] | None
) -> None:
    # A shell without job control starts `rollout dashboard &` with SIGINT ignored; Ctrl-C still stops it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [*DASHBOARD, "--stack", STACK, "--endpoint", world.sandbox.endpoint_url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=inherited,
    )
    try:
        lines = [read_line(proc.stdout, 60) for _ in range(2)]
        assert lines[0].startswith(f"Rollout dashboard for stack {STACK} on {world.sandbox.endpoint_url}")
        url = lines[1].split("open ", 1)[1].strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{20,}", url), url
        with pytest.raises(urllib.error.HTTPError) as first:  # 303: the token becomes a cookie
            urllib.request.build_opener(NoRedirect).open(url, timeout=30)
        assert first.value.code == 303 and "SameSite=Strict" in first.value.headers["Set-Cookie"]
        base = url.split("/?", 1)[0]
        token = url.split("token=", 1)[1]
        request = urllib.request.Request(base + "/api/fleet", headers={"X-Rollout-Token": token})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert {"steady", "broken"} <= {row["function"] for row in json.loads(answer.read())["functions"]}
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            # How the process treats SIGINT (blocked, ignored, caught), to say why it did not stop.
            status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            pytest.fail("no exit on Ctrl-C: " + "; ".join(line for line in status if line.startswith("Sig")))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_command_says_when_the_stack_is_missing(world: DashboardWorld) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [*DASHBOARD, "--stack", "no-such-stack", "--endpoint", world.sandbox.endpoint_url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3 and "stack no-such-stack not found" in result.stderr
    assert "token" not in result.stdout


def test_the_demo_s_dashboard_serves_the_demo_s_sandbox_until_told_to_stop(here: DashboardWorld) -> None:
    from cli.backend import Backend
    from cli.dashboard.run import dashboard_beside
    from cli.render import Output

    stop = threading.Event()
    stop.set()  # as if Ctrl-C came as soon as the story ended
    with dashboard_beside(Backend(STACK), Output.create(), until=stop) as url:
        base, token = url.split("/?token=")
        request = urllib.request.Request(base + "/api/fleet", headers={"X-Rollout-Token": token})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert "broken" in {row["function"] for row in json.loads(answer.read())["functions"]}
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base + "/", timeout=5)
