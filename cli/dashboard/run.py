"""`rollout dashboard`: bind, print the address with its token, serve until Ctrl-C."""

from __future__ import annotations

import webbrowser

from cli.backend import Backend, endpoint_description
from cli.dashboard.server import Settings, bind
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
    try:
        running.server.serve_forever()
    except KeyboardInterrupt:
        out.errors.print("stopping the dashboard…")
    finally:
        running.server.server_close()
