"""`rollout dashboard` without AWS: its guards (token, host, CSRF), its action layer, and the pure views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from flask.testing import FlaskClient

from cli.dashboard import actions, server, views
from cli.dashboard.actions import DEPLOYMENT, FUNCTION, Action
from cli.errors import CliError, ExitCode
from cli.model import DeploymentSnapshot, LifecycleEvent
from cli.render import FunctionStatus
from rollout.ledger import Release
from rollout.states import ReasonCode, State

PORT = 3999
BASE = f"http://127.0.0.1:{PORT}"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
calls_made: list[tuple[Any, str, dict[str, Any]]] = []


def fake_stop(backend: Any, target: str, **fields: Any) -> dict[str, Any]:
    """Stands in for a CLI operation: records the call, or fails as the CLI would."""
    if target == "d-DONE":
        raise CliError(
            f"deployment {target} already completed (Succeeded); nothing to stop", ExitCode.CONFLICT
        )
    calls_made.append((backend, target, fields))
    return {"deployment_id": target, "stop_status": "Pending"}


FAKE_ACTIONS = (
    Action("stop", "Stop", DEPLOYMENT, f"{__name__}:fake_stop", "Stop {target}?", ("reason",), danger=True),
    Action("missing", "Missing", FUNCTION, f"{__name__}:no_such_operation", "?"),
    Action("elsewhere", "Elsewhere", FUNCTION, "cli.no_such_module:operation", "?"),
)


class FakeBackend:
    stack_name = "rollout-test"


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> server.Settings:
    monkeypatch.setattr(views, "fleet_view", lambda backend: {"stack": backend.stack_name, "functions": []})
    calls_made.clear()
    return server.Settings(FakeBackend(), port=PORT)  # type: ignore[arg-type]


@pytest.fixture
def browser(settings: server.Settings) -> FlaskClient:
    """A client that already opened the printed address: it holds the cookie."""
    app = server.create_app(settings, actions.available(FAKE_ACTIONS))
    client = app.test_client()
    answer = client.get(f"/?token={settings.token}", base_url=BASE)
    assert answer.status_code == 303 and answer.headers["Location"] == "/"
    return client


def post(client: FlaskClient, settings: server.Settings, name: str, body: Any = None, **headers: str) -> Any:
    sent = {"X-Rollout-CSRF": settings.csrf, "Origin": BASE, **headers}
    return client.post(
        f"/api/actions/{name}", json=body or {"target": "d-RUNNING"}, headers=sent, base_url=BASE
    )


# --- the guards -------------------------------------------------------------------------------------
def test_nothing_is_served_without_the_token(settings: server.Settings) -> None:
    client = server.create_app(settings).test_client()
    for path in ("/", "/api/fleet", "/static/app.js", "/api/session"):
        answer = client.get(path, base_url=BASE)
        assert answer.status_code == 403, path
        assert "token is required" in answer.get_json()["error"]["message"]
    assert client.get("/?token=not-it", base_url=BASE).status_code == 403
    assert (
        client.get("/api/fleet", headers={"X-Rollout-Token": settings.token}, base_url=BASE).status_code
        == 200
    )


def test_the_token_becomes_a_strict_http_only_cookie(browser: FlaskClient, settings: server.Settings) -> None:
    cookie = browser.get_cookie(f"{server.COOKIE}_{PORT}", domain="127.0.0.1")
    assert cookie is not None and cookie.value == settings.token
    assert cookie.http_only and cookie.same_site == "Strict"
    page = browser.get("/", base_url=BASE)
    assert page.status_code == 200
    assert f'content="{settings.csrf}"' in page.get_data(as_text=True)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert browser.get("/api/fleet", base_url=BASE).get_json() == {"stack": "rollout-test", "functions": []}


def test_other_host_names_are_refused(browser: FlaskClient) -> None:
    # A DNS-rebinding page reaches 127.0.0.1 under its own name: the Host header gives it away.
    answer = browser.get("/api/fleet", base_url=f"http://rebind.example:{PORT}")
    assert answer.status_code == 421


def test_an_action_needs_the_csrf_token_and_this_origin(
    browser: FlaskClient, settings: server.Settings
) -> None:
    assert post(browser, settings, "stop", **{"X-Rollout-CSRF": ""}).status_code == 403
    assert post(browser, settings, "stop", **{"X-Rollout-CSRF": "forged"}).status_code == 403
    assert post(browser, settings, "stop", Origin="http://evil.example").status_code == 403
    assert post(browser, settings, "stop", **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    form = browser.post(
        "/api/actions/stop",
        data={"target": "d-RUNNING"},
        headers={"X-Rollout-CSRF": settings.csrf, "Origin": BASE},
        base_url=BASE,
    )
    assert form.status_code == 415
    assert browser.get("/api/actions/stop", base_url=BASE).status_code == 405
    assert calls_made == []


def test_a_confirmed_action_calls_the_cli_operation(browser: FlaskClient, settings: server.Settings) -> None:
    answer = post(browser, settings, "stop", {"target": "d-RUNNING", "reason": "bad canary", "ignored": "x"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["result"] == {"deployment_id": "d-RUNNING", "stop_status": "Pending"}
    assert calls_made == [(settings.backend, "d-RUNNING", {"reason": "bad canary"})]


def test_the_cli_s_refusal_reaches_the_page_with_a_matching_status(
    browser: FlaskClient, settings: server.Settings
) -> None:
    answer = post(browser, settings, "stop", {"target": "d-DONE"})
    assert answer.status_code == 409
    assert "already completed" in answer.get_json()["error"]["message"]
    assert post(browser, settings, "stop", {"target": ""}).status_code == 400
    assert post(browser, settings, "missing").status_code == 404


# --- the action layer -------------------------------------------------------------------------------
def test_only_actions_whose_cli_function_exists_are_offered(browser: FlaskClient) -> None:
    assert set(actions.available(FAKE_ACTIONS)) == {"stop"}
    offered = browser.get("/api/session", base_url=BASE).get_json()["actions"]
    assert [a["name"] for a in offered] == ["stop"]
    assert offered[0]["fields"] == ["reason"] and "operation" not in offered[0]


def test_abort_is_offered_through_the_cli_s_own_code() -> None:
    from cli import approvals, operations

    offered = actions.available()
    assert offered["abort"].resolve() is operations.abort_deployment
    # Gates are answered with `rollout approve` / `rollout reject`'s code, only while one awaits.
    assert offered["approve"].resolve() is approvals.approve_deployment
    assert offered["reject"].resolve() is approvals.reject_deployment
    assert offered["approve"].scope == offered["reject"].scope == actions.GATE
    for action in actions.ACTIONS:
        assert (action.name in offered) == (action.resolve() is not None)


# --- the pure views ---------------------------------------------------------------------------------
def snapshot(
    status: str, share: float, allow: tuple[str, str, str], completed: str = ""
) -> DeploymentSnapshot:
    state, started, ended = allow
    return DeploymentSnapshot(
        deployment_id="d-1",
        status=status,
        created="2026-11-28T10:00:00Z",
        completed=completed,
        traffic_on_target=share,
        lifecycle=[
            LifecycleEvent("BeforeAllowTraffic", "Succeeded", "2026-11-28T10:00:10Z", "2026-11-28T10:00:20Z"),
            LifecycleEvent("AllowTraffic", state, started, ended),
        ],
    )


CANARY = [(0.0, 10.0), (5.0, 100.0)]


def test_schedule_steps_follow_the_deployment_config() -> None:
    canary = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 5}}
    linear = {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 25, "linearInterval": 2}}
    assert views.schedule_steps(canary) == CANARY
    assert views.schedule_steps(linear) == [(0.0, 25.0), (2.0, 50.0), (4.0, 75.0), (6.0, 100.0)]
    assert views.schedule_steps({"type": "AllAtOnce"}) == [(0.0, 100.0)]
    assert views.schedule_steps(None) == [(0.0, 100.0)]


def test_traffic_during_a_canary_shows_the_step_taken_and_the_one_planned() -> None:
    snap = snapshot("InProgress", 0.1, ("InProgress", "2026-11-28T10:00:20Z", ""))
    traffic = views.traffic_series(snap, CANARY)
    assert traffic["points"] == [["2026-11-28T10:00:00Z", 0.0], ["2026-11-28T10:00:20Z", 10.0]]
    assert traffic["planned"] == [["2026-11-28T10:05:20Z", 100.0]]
    assert traffic["current"] == 10.0 and not traffic["done"]


def test_traffic_of_a_finished_canary_reaches_100() -> None:
    snap = snapshot("Succeeded", 1.0, ("Succeeded", "2026-11-28T10:00:20Z", "2026-11-28T10:05:20Z"))
    snap.completed = "2026-11-28T10:05:40Z"
    traffic = views.traffic_series(snap, CANARY)
    assert [p[1] for p in traffic["points"]] == [0.0, 10.0, 100.0]
    assert traffic["planned"] == [] and traffic["done"]


def test_traffic_of_a_stopped_canary_falls_back_to_0() -> None:
    snap = snapshot(
        "Stopped", 0.0, ("Failed", "2026-11-28T10:00:20Z", "2026-11-28T10:01:00Z"), "2026-11-28T10:01:05Z"
    )
    traffic = views.traffic_series(snap, CANARY)
    assert traffic["points"][-2:] == [["2026-11-28T10:00:20Z", 10.0], ["2026-11-28T10:01:05Z", 0.0]]
    assert traffic["planned"] == []


def test_traffic_before_any_shift_stays_at_0() -> None:
    snap = snapshot("InProgress", 0.0, ("Pending", "", ""))
    assert views.traffic_series(snap, CANARY)["points"] == [["2026-11-28T10:00:00Z", 0.0]]


def release(state: State, **fields: Any) -> Release:
    return Release(function="fn", release_id="r1", state=state, **fields)


def status_row(latest: Release | None, lock: dict[str, Any] | None = None) -> FunctionStatus:
    return FunctionStatus("fn", latest, lock, 0, alias="live", live_version="3")


def test_a_version_live_unproven_needs_attention_for_as_long_as_it_is_live() -> None:
    long_ago = (NOW - timedelta(days=3)).isoformat()
    unproven = release(
        State.FAILED,
        target_version="3",
        deployment_id="d-7",
        completed_at=long_ago,
        reason_code=ReasonCode.UNPROVEN_SUCCESS,
        reason="CodeDeploy completed deployment d-7, so alias live serves version 3, but ...",
        hook_results={"pre_traffic": {"verdict": "Failed", "reason": "pre-traffic hook failed: boom"}},
    )
    row = status_row(unproven)
    row.unproven = unproven
    reasons = views.attention_reasons(row, NOW)
    assert reasons[0].startswith("fn: v3 is LIVE on alias live but UNPROVEN") and "boom" in reasons[0]
    assert "rollout rollback fn" in reasons[1] and len(reasons) == 2  # said once, not also as a failure
    later = release(State.UNCHANGED, completed_at=NOW.isoformat())
    row = status_row(later)
    row.unproven = unproven
    assert views.attention_reasons(row, NOW)[0].startswith("fn: v3 is LIVE on alias live but UNPROVEN")


def test_what_needs_attention() -> None:
    recent = (NOW - timedelta(hours=1)).isoformat()
    old = (NOW - timedelta(days=3)).isoformat()
    failed = release(State.ROLLED_BACK, completed_at=recent, reason="pre-traffic check health failed")
    assert views.attention_reasons(status_row(failed), NOW) == [
        "latest release ROLLED_BACK: pre-traffic check health failed"
    ]
    assert views.attention_reasons(status_row(release(State.ROLLED_BACK, completed_at=old)), NOW) == []
    assert views.attention_reasons(status_row(release(State.SUCCEEDED, completed_at=recent)), NOW) == []
    stuck = release(State.DEPLOYING, deploying_at=(NOW - timedelta(hours=3)).isoformat(), deployment_id="d-9")
    assert (
        "d-9"
        in views.attention_reasons(status_row(stuck, {"release_id": "r1", "deployment_id": "d-9"}), NOW)[0]
    )
    waiting = release(
        State.DEPLOYING,
        deploying_at=NOW.isoformat(),
        deployment_id="d-8",
        approval={"status": "AWAITING", "position": "traffic", "deadline_at": "2026-11-28T11:00:00Z"},
    )
    assert views.attention_reasons(
        status_row(waiting, {"release_id": "r1", "deployment_id": "d-8"}), NOW
    ) == ["deployment d-8 awaits approval before traffic until 2026-11-28T11:00:00Z"]
    answered = release(State.DEPLOYING, deploying_at=NOW.isoformat(), approval={"status": "APPROVED"})
    assert views.attention_reasons(status_row(answered), NOW) == []
    orphan = views.attention_reasons(status_row(None, {"release_id": "r7"}), NOW)
    assert orphan == ["lock held by release r7 without a deployment"]
    starting = {"release_id": "r7", "acquired_at": (NOW - timedelta(seconds=5)).isoformat()}
    assert views.attention_reasons(status_row(None, starting), NOW) == []  # a deployment being created
    left = {"release_id": "r7", "acquired_at": (NOW - timedelta(minutes=20)).isoformat()}
    assert views.attention_reasons(status_row(None, left), NOW) == [
        "lock held by release r7 without a deployment"
    ]


def test_the_notifications_a_release_sent_are_read_off_its_history() -> None:
    rel = release(
        State.ROLLED_BACK,
        current_version="1",
        target_version="2",
        history=[
            {"state": "RECEIVED", "at": "t0"},
            {"state": "DEPLOYING", "at": "t1"},
            {"state": "ROLLED_BACK", "at": "t2", "reason_code": "HOOK_EXECUTION_FAILURE"},
        ],
    )
    sent = views.notifications_sent(rel)
    assert [(n["kind"], n["severity"], n["at"]) for n in sent] == [
        ("deployment.started", "info", "t1"),
        ("deployment.rolled_back", "error", "t2"),
    ]
    assert sent[1]["subject"].startswith("fn: v2 rolled back to v1")


def test_error_rate_is_errors_over_invocations_per_period() -> None:
    t0, t1 = NOW, NOW + timedelta(minutes=1)
    raw = {
        "invocations_0": [(t0, 10.0), (t1, 0.0)],
        "errors_0": [(t0, 2.0)],
        "duration_0": [(t0, 120.5)],
    }
    series = views.rate_series(raw, 0)
    assert series["error_rate"] == [[views.iso(t0), 0.2]]  # a period without calls has no rate
    assert series["p99_ms"] == [[views.iso(t0), 120.5]]
    assert series["invocations"] == [[views.iso(t0), 10.0], [views.iso(t1), 0.0]]


def test_open_tabs_share_one_reading_and_an_action_makes_the_next_one_fresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings: list[int] = []

    def fleet(backend: Any) -> dict[str, Any]:
        readings.append(1)
        return {"stack": backend.stack_name, "functions": [], "reading": len(readings)}

    monkeypatch.setattr(views, "fleet_view", fleet)
    settings = server.Settings(FakeBackend(), port=PORT, refresh_seconds=600)  # type: ignore[arg-type]
    client = server.create_app(settings, actions.available(FAKE_ACTIONS)).test_client()
    token = {"X-Rollout-Token": settings.token}
    first = client.get("/api/fleet", headers=token, base_url=BASE).get_json()
    second = client.get("/api/fleet", headers=token, base_url=BASE).get_json()
    assert first == second and len(readings) == 1
    assert post(client, settings, "stop", **token).status_code == 200
    assert client.get("/api/fleet", headers=token, base_url=BASE).get_json()["reading"] == 2


def test_an_unreachable_endpoint_is_a_json_error_the_page_can_show(
    browser: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(backend: Any) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:4566")

    monkeypatch.setattr(views, "fleet_view", unreachable)
    answer = browser.get("/api/fleet", base_url=BASE)
    assert answer.status_code == 502
    assert answer.get_json()["error"]["message"] == "read /api/fleet: cannot reach http://127.0.0.1:4566"
