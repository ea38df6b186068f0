"""The dashboard's web server: Flask on 127.0.0.1, a token on every request, actions POST-only behind CSRF checks.

Safety, as Jupyter does it: the server binds to 127.0.0.1 only and prints a URL carrying a random token.
The first visit with `?token=` sets an HttpOnly, SameSite=Strict cookie and drops the token from the
address; every later request must carry that cookie (or the `X-Rollout-Token` header, for scripts).
The Host header must name this server (no DNS rebinding). Actions are POST with a JSON body, the page's
CSRF token in `X-Rollout-CSRF`, and an Origin (when the browser sends one) that is this server's own.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, redirect, request
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response as AnyResponse

from cli.backend import Backend, aws_errors
from cli.dashboard import actions, views
from cli.errors import CliError, ExitCode

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "rollout_dashboard"  # + the port: browsers share cookies between ports of one host
TOKEN_HEADER = "X-Rollout-Token"  # noqa: S105 - the name of a header, not a secret
CSRF_HEADER = "X-Rollout-CSRF"
HTTP_STATUS = {
    ExitCode.USAGE: 400,
    ExitCode.NOT_FOUND: 404,
    ExitCode.CONFLICT: 409,
    ExitCode.AWS_ERROR: 502,
    ExitCode.TIMED_OUT: 504,
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@dataclass
class Settings:
    """What one dashboard run knows: the backend, its secrets, where it listens, how often pages refresh."""

    backend: Backend
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    host: str = "127.0.0.1"
    port: int = 0
    refresh_seconds: float = 2.0
    endpoint: str = "AWS"

    @property
    def cookie(self) -> str:
        return f"{COOKIE}_{self.port}"

    def origins(self) -> set[str]:
        return {f"http://{name}:{self.port}" for name in ("127.0.0.1", "localhost")}

    def hosts(self) -> set[str]:
        return {f"{name}:{self.port}" for name in ("127.0.0.1", "localhost")}


def _same(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def _refuse(status: int, message: str, hint: str = "") -> Response:
    response = jsonify({"error": {"message": message, "hint": hint}})
    response.status_code = status
    return response


def _check_request(settings: Settings) -> AnyResponse | None:
    """None when the request may go on; otherwise the refusal (or the redirect that sets the cookie)."""
    if request.host not in settings.hosts():
        return _refuse(421, f"this dashboard answers as 127.0.0.1:{settings.port} only")
    query_token = request.args.get("token")
    if query_token is not None and request.method == "GET":
        if not _same(query_token, settings.token):
            return _refuse(403, "wrong token", "open the URL `rollout dashboard` printed")
        rest = {k: v for k, v in request.args.items() if k != "token"}
        response = redirect(request.path + (f"?{urlencode(rest)}" if rest else ""), code=303)
        response.set_cookie(settings.cookie, settings.token, httponly=True, samesite="Strict", path="/")
        return response
    if not (
        _same(request.cookies.get(settings.cookie), settings.token)
        or _same(request.headers.get(TOKEN_HEADER), settings.token)
    ):
        return _refuse(
            403, "a token is required", "open the URL `rollout dashboard` printed (it ends ?token=...)"
        )
    if request.method not in ("GET", "HEAD"):
        return _check_action_request(settings)
    return None


def _check_action_request(settings: Settings) -> Response | None:
    """Actions come from this dashboard's own page only: CSRF header, own Origin, JSON body."""
    origin = request.headers.get("Origin")
    if origin is not None and origin not in settings.origins():
        return _refuse(403, f"cross-site request refused (Origin {origin})")
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return _refuse(403, "cross-site request refused")
    if not _same(request.headers.get(CSRF_HEADER), settings.csrf):
        return _refuse(403, "missing or wrong CSRF token", "act from the dashboard's page")
    if not request.is_json:
        return _refuse(415, "actions take a JSON body")
    return None


class ViewCache:
    """The views' answers for a moment, shared by every open tab (so ten tabs cost AWS what one does)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            hit = self._answers.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.seconds:
            return hit[1]
        answer = compute()
        with self._lock:
            self._answers[key] = (time.monotonic(), answer)
        return answer

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()


def _json_api(func: Callable[..., dict[str, Any]], cache: ViewCache | None = None) -> Callable[..., Response]:
    """Run a view (cached for a moment when `cache` is given); a CliError becomes its message with an
    HTTP status that matches its exit code."""

    def handler(**kwargs: Any) -> Response:
        try:
            with aws_errors(f"read {request.path}"):  # the ledger's own calls come through unwrapped
                if cache is None:
                    return jsonify(func(**kwargs))
                return jsonify(cache.get(request.path, lambda: func(**kwargs)))
        except CliError as err:
            return _refuse(HTTP_STATUS.get(err.code, 500), err.message, err.hint)

    handler.__name__ = func.__name__
    return handler


def _page(settings: Settings) -> Response:
    html = (STATIC / "index.html").read_text()
    html = html.replace("{{csrf}}", settings.csrf).replace(
        "{{refresh_ms}}", str(int(settings.refresh_seconds * 1000))
    )
    return Response(html, mimetype="text/html")


def _static(name: str) -> Response:
    path = (STATIC / name).resolve()
    if path.parent != STATIC or not path.is_file() or path.suffix not in STATIC_TYPES:
        return _refuse(404, "not found")
    return Response(path.read_bytes(), mimetype=STATIC_TYPES[path.suffix])


def create_app(settings: Settings, offered: dict[str, actions.Action] | None = None) -> Flask:
    """The dashboard's routes; `offered` defaults to every action the CLI has (actions.available)."""
    app = Flask("rollout_dashboard", static_folder=None)
    backend = settings.backend
    offered = actions.available() if offered is None else offered
    views_cache = ViewCache(settings.refresh_seconds / 2)

    @app.before_request
    def guard() -> AnyResponse | None:
        return _check_request(settings)

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    def session() -> dict[str, Any]:
        return {
            "stack": backend.stack_name,
            "endpoint": settings.endpoint,
            "actions": [a.to_json() for a in offered.values()],
        }

    def act(name: str) -> dict[str, Any]:
        action = offered.get(name)
        if action is None:
            raise CliError(f"no action {name} here", ExitCode.NOT_FOUND)
        body = request.get_json(silent=True) or {}
        result = actions.run(action, backend, str(body.get("target") or ""), body)
        views_cache.clear()  # the next poll shows what the action changed
        return {"action": name, "target": body.get("target"), "result": result}

    for rule in ("/", "/functions/<function>", "/functions/<function>/releases/<release_id>"):
        app.add_url_rule(rule, rule, lambda **_: _page(settings))
    app.add_url_rule("/static/<name>", "static", _static)
    app.add_url_rule("/api/session", "session", _json_api(session))
    app.add_url_rule("/api/fleet", "fleet", _json_api(lambda: views.fleet_view(backend), views_cache))
    app.add_url_rule(
        "/api/functions/<function>",
        "function",
        _json_api(lambda function: views.function_view(backend, function), views_cache),
    )
    app.add_url_rule(
        "/api/functions/<function>/releases/<release_id>",
        "release",
        _json_api(
            lambda function, release_id: views.release_view(backend, function, release_id), views_cache
        ),
    )
    app.add_url_rule("/api/actions/<name>", "act", _json_api(act), methods=["POST"])
    return app


@dataclass
class RunningDashboard:
    settings: Settings
    server: BaseWSGIServer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def url(self) -> str:
        """The address to open: it carries the token, once."""
        return f"{self.base_url}/?token={self.settings.token}"


def bind(settings: Settings) -> RunningDashboard:
    """Listen on 127.0.0.1 (port 0 picks a free one); serve with `serve_forever`."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per poll would bury the address
    try:
        server = make_server(settings.host, settings.port, None, threaded=True)  # type: ignore[arg-type]
    except OSError as exc:
        raise CliError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
            ExitCode.USAGE,
            hint="pass --port 0 to pick a free port",
        ) from exc
    settings.port = server.socket.getsockname()[1]
    server.app = create_app(settings)
    return RunningDashboard(settings, server)


@contextmanager
def serving(settings: Settings) -> Iterator[RunningDashboard]:
    """The dashboard served from a thread until the block ends (tests, `rollout demo --dashboard`)."""
    running = bind(settings)
    thread = threading.Thread(target=running.server.serve_forever, name="rollout-dashboard", daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()
        thread.join(timeout=10)
