"""The sandbox's HTTP server (sandbox/request_threads.py) serves each connection on a thread of its own at
once, however many are open, and keeps finished threads for the next connections."""

from __future__ import annotations

import contextvars
import threading
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sandbox import request_threads
from sandbox.request_threads import ReusedThreadsWSGIServer
from tests.support.sandbox_support import wait_for

App = Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]
LEFT_BEHIND: contextvars.ContextVar[str] = contextvars.ContextVar("left_behind", default="")


@pytest.fixture
def serve() -> Iterator[Callable[[App], str]]:
    servers: list[tuple[ReusedThreadsWSGIServer, threading.Thread]] = []

    def start(app: App) -> str:
        server = ReusedThreadsWSGIServer("127.0.0.1", 0, app)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()


def test_every_open_connection_is_served_at_once(serve) -> None:
    """Forty requests that each wait until all forty are being served: a bounded pool would never answer."""
    everyone = threading.Barrier(40, timeout=10)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        everyone.wait()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"served"]

    url = serve(app)
    with ThreadPoolExecutor(40) as pool:
        assert list(pool.map(lambda _: get(url), range(40))) == ["served"] * 40


def test_a_thread_that_served_a_connection_serves_the_next_in_a_fresh_context(serve) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        before = LEFT_BEHIND.get()
        LEFT_BEHIND.set("set by an earlier request")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{threading.get_ident()} {before!r}".encode()]

    url = serve(app)
    answers = [get(url).split(" ", 1) for _ in range(30)]
    assert {before for _, before in answers} == {"''"}  # nothing carried over from the request before
    assert len({thread for thread, _ in answers}) < 5  # one after another: the same thread or two


def test_idle_threads_end_when_the_server_closes_or_waits_too_long(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [threading.current_thread().name.encode()]

    monkeypatch.setattr(request_threads, "IDLE_SECONDS", 0.2)
    url = serve(app)
    first = get(url)
    wait_for(lambda: first not in {t.name for t in threading.enumerate()}, 5, what="the idle thread to end")
    second = get(url)
    assert second != first  # a new thread, as the first one ended
    closing = ReusedThreadsWSGIServer("127.0.0.1", 0, app)
    closing_thread = threading.Thread(target=closing.serve_forever, daemon=True)
    closing_thread.start()
    monkeypatch.setattr(request_threads, "IDLE_SECONDS", 60.0)
    served = get(f"http://127.0.0.1:{closing.server_address[1]}")
    closing.shutdown()
    closing.server_close()
    wait_for(
        lambda: served not in {t.name for t in threading.enumerate()}, 5, what="the server's threads to end"
    )
