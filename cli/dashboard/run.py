"""`rollout dashboard`: bind, print the address with its token, serve until Ctrl-C."""

from __future__ import annotations

import signal
import threading
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager

from cli.backend import Backend, endpoint_description
from cli.dashboard.server import Settings, bind, serving
from cli.render import Output


def run_dashboard(
    backend: Backend, out: Output, port: int = 3100, open_browser: bool = False, refresh: float = 2.0
) -> None:
    """Serve the dashboard on 127.0.0.1 until interrupted; the URL printed carries the access token."""
    _ = backend.stack  # a missing stack or an unreachable endpoint fails here, before anything listens
    running = bind(Settings(backend, port=port, refresh_seconds=refresh, endpoint=endpoint_description()))
    out.say(f"Rollout dashboard for stack {backend.stack_name} on {running.settings.endpoint}")
    out.say(f"  open {running.url}")
    out.say("  (the token in this address is required; keep it to yourself) Ctrl-C stops it.")
    if open_browser:
        webbrowser.open(running.url)
    _stop_on_ctrl_c()
    try:
        running.server.serve_forever()
    except KeyboardInterrupt:
        out.errors.print("stopping the dashboard…")
    finally:
        running.server.server_close()


@contextmanager
def dashboard_beside(
    backend: Backend,
    out: Output,
    open_browser: bool = False,
    port: int = 0,
    until: threading.Event | None = None,
) -> Iterator[str]:
    """The dashboard on the demo's sandbox while the story runs; after it, up until Ctrl-C (or `until`)."""
    with serving(Settings(backend, port=port, endpoint=endpoint_description())) as running:
        out.errors.print(f"dashboard: {running.url}")
        if open_browser:
            webbrowser.open(running.url)
        yield running.url
        out.errors.print(f"the story is over; the dashboard stays up at {running.url} until Ctrl-C")
        _stop_on_ctrl_c()
        try:
            (until or threading.Event()).wait()
        except KeyboardInterrupt:
            out.errors.print("stopping the dashboard…")


def _stop_on_ctrl_c() -> None:
    """Ctrl-C raises KeyboardInterrupt however the command was started, as `rollout sandbox up` stops on
    it: a process inherits an ignored or blocked SIGINT from its parent (a shell without job control
    ignores it in what it starts with `&`), and Python then installs no handler of its own."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
