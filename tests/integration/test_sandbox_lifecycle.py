"""The sandbox's life cycle: starting, printing its endpoint, stopping with nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox import Sandbox
from tests.support.sandbox_support import client, create_function, invoke_json, unique, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_stop_leaves_no_worker_processes():
    with Sandbox(speed=60) as running:
        names = [unique("w") for _ in range(3)]
        for name in names:
            create_function(
                running, name, "import os\ndef handler(event, context):\n    return os.getpid()\n"
            )
        pids = [invoke_json(running, name)[1] for name in names]
        assert all(_alive(pid) for pid in pids)
        workdir = running.workdir
    assert not any(_alive(pid) for pid in pids)
    assert not workdir.exists()
    with pytest.raises(RuntimeError):
        _ = running.endpoint_url


def test_python_m_sandbox_prints_the_endpoint_and_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--speed", "60"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("AWS_ENDPOINT_URL=http://127.0.0.1:")
        endpoint = line.strip().split("=", 1)[1]

        class Endpoint:
            endpoint_url = endpoint
            region = "us-east-1"

        assert client(Endpoint, "sqs").list_queues().get("QueueUrls", []) == []
        name = unique("child")
        create_function(Endpoint, name, "import os\ndef handler(event, context):\n    return os.getpid()\n")
        _, worker_pid = invoke_json(Endpoint, name)
        assert _alive(worker_pid)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        wait_for(lambda: process.poll() is not None, 10, what="sandbox exit")
        assert process.returncode == 0
        assert time.monotonic() - started < 10
        assert not _alive(worker_pid)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
