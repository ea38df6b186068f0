"""Lambda workers forked from the zygote (lambda_zygote.py) instead of started as new interpreters.

A new interpreter imports boto3 and Powertools again for every cold start (a quarter of a second of CPU
each; a burst of fifty releases starts a few hundred workers). The zygote imports them once and forks a
worker per cold start; each worker still gets its version's own environment, code and layers. To the
runtime a ForkedProcess looks like the subprocess.Popen it replaces (pid, poll, kill, wait, returncode,
stdout). The zygote starts with the first worker and stops with the sandbox.
"""

from __future__ import annotations

import array
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("sandbox.lambda")

ZYGOTE_SCRIPT = Path(__file__).with_name("lambda_zygote.py")
READY_SECONDS = 60.0  # the zygote's imports, on a loaded machine
# A live zygote answers every fork it is asked for, and one that dies wakes every waiter at once (_read):
# this only bounds a hung zygote. 10 s was too short when the machine ran at a load of 14 on two cores.
FORK_SECONDS = 60.0


class ForkedProcess:
    """A worker the zygote forked: the parts of subprocess.Popen the runtime uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdout: IO[bytes] | None = None
        self._ended = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
        return self.returncode

    def ended(self, returncode: int) -> None:
        self.returncode = returncode
        self._ended.set()


class Zygote:
    def __init__(self, environment: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[threading.Event, list[ForkedProcess]]] = {}
        self._processes: dict[int, ForkedProcess] = {}
        self._ready = threading.Event()
        self._gone = False
        self.process = subprocess.Popen(  # noqa: S603 - our own script under the sandbox's interpreter
            [sys.executable, str(ZYGOTE_SCRIPT), str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=environment,
            pass_fds=(theirs.fileno(),),
            close_fds=True,
        )
        theirs.close()
        threading.Thread(target=self._read, name="sandbox-zygote", daemon=True).start()
        if not self._ready.wait(READY_SECONDS) or self._gone:
            self.stop()
            raise RuntimeError("the Lambda zygote did not start")

    def alive(self) -> bool:
        return not self._gone and self.process.poll() is None

    def spawn(self, script: str, environment: dict[str, str], fds: tuple[int, int, int]) -> ForkedProcess:
        """Fork a worker running `script` with `environment` and (request, result, log) pipe ends."""
        request_id = next(self._ids)
        arrived = threading.Event()
        answer: list[ForkedProcess] = []
        with self._lock:
            self._pending[request_id] = (arrived, answer)
        line = json.dumps({"id": request_id, "script": script, "env": environment}).encode() + b"\n"
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        with self._send_lock:
            self._sock.sendmsg([line], rights)
        if not arrived.wait(FORK_SECONDS) or not answer:
            with self._lock:
                self._pending.pop(request_id, None)
            raise RuntimeError("the Lambda zygote did not fork a worker")
        return answer[0]

    def _read(self) -> None:
        stream = self._sock.makefile("rb")
        for raw in stream:
            words = raw.decode().split()
            if words == ["ready"]:
                self._ready.set()
            elif len(words) == 3 and words[0] == "pid":
                self._forked(int(words[1]), int(words[2]))
            elif len(words) == 3 and words[0] == "exit":
                with self._lock:
                    process = self._processes.pop(int(words[1]), None)
                if process is not None:
                    process.ended(int(words[2]))
        self._gone = True
        self._ready.set()
        with self._lock:
            orphans, self._processes = list(self._processes.values()), {}
            pending, self._pending = list(self._pending.values()), {}
        for process in orphans:
            # Without the zygote they notice their parent changed and exit (lambda_worker._watch_parent).
            process.kill()
            process.ended(-signal.SIGKILL)
        for arrived, _ in pending:
            arrived.set()

    def _forked(self, request_id: int, pid: int) -> None:
        process = ForkedProcess(pid)
        with self._lock:
            self._processes[pid] = process
            waiting = self._pending.pop(request_id, None)
        if waiting is not None:
            waiting[1].append(process)
            waiting[0].set()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("the Lambda zygote %s did not exit", self.process.pid)


def zygote_environment(base: dict[str, Any]) -> dict[str, str]:
    """What the zygote runs with: the constants every worker's environment shares, no credentials."""
    keep = ("PATH", "LANG", "TZ", "HOME", "AWS_EXECUTION_ENV", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")
    return {key: str(base[key]) for key in keep if key in base}
