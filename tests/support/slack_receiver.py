"""A local stand-in for a Slack incoming webhook: an HTTP server on 127.0.0.1 that records posts.

Tests script its answers (for example a 429 with Retry-After, then 200) and read what it received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cli.slack_click import post_signed_click


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ReceivedPost:
    path: str
    headers: dict[str, str]
    payload: dict[str, Any]


class SlackReceiver:
    def __init__(self) -> None:
        self.posts: list[ReceivedPost] = []
        self.answers: list[Answer] = []  # consumed in order; afterwards `default` answers
        self.default = Answer()
        self.path = "/services/T000LOCAL/B000LOCAL/localwebhooksecret"
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                with receiver._lock:
                    receiver.posts.append(ReceivedPost(self.path, dict(self.headers), json.loads(raw)))
                    answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                body = answer.body.encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.origin}{self.path.lstrip('/')}"

    @property
    def origin(self) -> str:
        """What the stack's SlackWebhookOrigin names to accept this receiver's URL."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def payloads(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p.payload for p in self.posts]

    # --- Slack's side of the buttons: a click sent to the stack's interactivity endpoint -------------
    RESPONSE_PATH = "/actions/T000LOCAL/1000000001/localresponsesecret"

    def thread_replies(self) -> list[dict[str, Any]]:
        """What the endpoint answered through the clicks' response_url (replies in the thread)."""
        with self._lock:
            return [p.payload for p in self.posts if p.path == self.RESPONSE_PATH]

    def click(
        self,
        endpoint: str,
        signing_secret: str,
        action_id: str,
        deployment_id: str,
        user_id: str,
        user_name: str = "ops",
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> tuple[int, str]:
        """POST a signed block_actions request, as Slack does when someone clicks a button."""
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_name, "team_id": "T000LOCAL"},
            "team": {"id": "T000LOCAL"},
            "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C000LOCAL"},
            "channel": {"id": "C000LOCAL"},
            "message": {"ts": "1700000000.000100", "text": "rollout"},
            "response_url": f"{self.origin}{self.RESPONSE_PATH.lstrip('/')}",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "rollout-actions",
                    "value": deployment_id,
                    "type": "button",
                }
            ],
        }
        return post_signed_click(endpoint, signing_secret, payload, timestamp, signature)


@contextmanager
def slack_receiver() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
