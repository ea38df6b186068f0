"""The sandbox's HTTP server: werkzeug's threaded server, with its request threads kept for the next request.

werkzeug closes every connection after one request ("Connection: close"), and its threaded server starts a
new thread for each connection, so every AWS call the sandbox served started and ended a thread: about a
tenth of a millisecond of the sandbox's CPU per call, more than some calls cost to serve. Here a thread that
has served a connection waits for the next one (for `IDLE_SECONDS`, then ends). Nothing else changes: each
connection still has a thread of its own at once, however many are open (a Lambda function's call back into
the sandbox while its invocation is being served needs one), and each request runs in a fresh context
(`contextvars`), as in a new thread.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer

IDLE_SECONDS = 30.0

Job = tuple[Any, Any]  # (the connection's socket, the client's address)


class ReusedThreadsWSGIServer(ThreadedWSGIServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: list[queue.SimpleQueue[Job | None]] = []  # the inboxes of threads waiting for a request
        self._idle_lock = threading.Lock()
        self._closed = False

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._idle_lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is not None:
            inbox.put((request, client_address))
            return
        thread = threading.Thread(target=self._serve, args=((request, client_address),), daemon=True)
        thread.start()

    def _serve(self, job: Job | None) -> None:
        inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        while job is not None:
            contextvars.Context().run(self.process_request_thread, *job)
            job = self._next(inbox)

    def _next(self, inbox: queue.SimpleQueue[Job | None]) -> Job | None:
        """The next request this thread serves; None: the thread ends."""
        with self._idle_lock:
            if self._closed:
                return None
            self._idle.append(inbox)
        try:
            return inbox.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with self._idle_lock:
                if inbox in self._idle:
                    self._idle.remove(inbox)
                    return None
            return inbox.get()  # handed a request as the wait ran out

    def server_close(self) -> None:
        super().server_close()
        with self._idle_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)
