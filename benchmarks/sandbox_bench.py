"""Sandbox figures: start time, warm invocations per second, memory of the process tree with a dozen
versions warm and after idle reaping. Prints one JSON document.

    .venv/bin/python benchmarks/sandbox_bench.py [--invocations 500] [--versions 12]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
IDLE_SECONDS = 3.0

HANDLER = """
import json

def handler(event, context):
    return {"version": context.function_version, "n": event.get("n")}
"""


def zip_source(tag: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER + f"\nTAG = {tag!r}\n")
    return buffer.getvalue()


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        child = int(entry.name)
        children.setdefault(int(fields["PPid"].strip()), []).append(child)
        rss[child] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return round(total / 1024, 1)


def descendants(pid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(
                    next(
                        line
                        for line in (entry / "status").read_text().splitlines()
                        if line.startswith("PPid:")
                    ).split()[1]
                )
            except (OSError, StopIteration):
                continue
            count += ppid == pid
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invocations", type=int, default=500)
    parser.add_argument("--versions", type=int, default=12)
    args = parser.parse_args()

    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            "0",
            "--speed",
            "60",
            "--worker-idle-seconds",
            str(IDLE_SECONDS),
            "--no-iam",  # the benchmark's role has no trust or permission policies; it measures the runtime
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    endpoint = process.stdout.readline().strip().split("=", 1)[1]
    start_seconds = time.monotonic() - started
    results: dict[str, Any] = {
        "start_seconds": round(start_seconds, 2),
        "idle_rss_mib": tree_rss_mib(process.pid),
    }
    try:
        session = boto3.session.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        config = Config(retries={"total_max_attempts": 1}, max_pool_connections=20)
        lam = session.client("lambda", endpoint_url=endpoint, config=config)
        iam = session.client("iam", endpoint_url=endpoint)
        role = iam.create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam.create_function(
            FunctionName="bench",
            Runtime="python3.13",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": zip_source("0")},
        )
        versions = [lam.publish_version(FunctionName="bench")["Version"]]
        for i in range(1, args.versions):
            lam.update_function_code(FunctionName="bench", ZipFile=zip_source(str(i)))
            lam.get_waiter("function_updated_v2").wait(FunctionName="bench", WaiterConfig={"Delay": 1})
            versions.append(lam.publish_version(FunctionName="bench")["Version"])

        cold = time.monotonic()
        lam.invoke(FunctionName="bench", Qualifier=versions[0], Payload=b"{}")
        results["cold_invoke_ms"] = round((time.monotonic() - cold) * 1000, 1)
        warm_times = []
        for _ in range(20):
            t = time.monotonic()
            lam.invoke(FunctionName="bench", Qualifier=versions[0], Payload=b"{}")
            warm_times.append((time.monotonic() - t) * 1000)
        results["warm_invoke_ms_median"] = round(sorted(warm_times)[len(warm_times) // 2], 2)

        t = time.monotonic()
        for n in range(args.invocations):
            lam.invoke(FunctionName="bench", Qualifier=versions[0], Payload=json.dumps({"n": n}).encode())
        results["warm_invocations_per_second_1_client"] = round(args.invocations / (time.monotonic() - t), 1)

        def worker(count: int) -> None:
            client = session.client("lambda", endpoint_url=endpoint, config=config)
            for n in range(count):
                client.invoke(
                    FunctionName="bench", Qualifier=versions[0], Payload=json.dumps({"n": n}).encode()
                )

        threads = [threading.Thread(target=worker, args=(args.invocations // 4,)) for _ in range(4)]
        t = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results["warm_invocations_per_second_4_clients"] = round(
            (args.invocations // 4 * 4) / (time.monotonic() - t), 1
        )

        for version in versions:
            lam.invoke(FunctionName="bench", Qualifier=version, Payload=b"{}")
        results["workers_with_versions_warm"] = descendants(process.pid)
        results[f"rss_mib_{args.versions}_versions_warm"] = tree_rss_mib(process.pid)

        deadline = time.monotonic() + IDLE_SECONDS + 10
        while descendants(process.pid) > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        results["workers_after_idle_reaping"] = descendants(process.pid)
        results["rss_mib_after_idle_reaping"] = tree_rss_mib(process.pid)
        results["worker_idle_seconds"] = IDLE_SECONDS
    finally:
        t = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        results["stop_seconds"] = round(time.monotonic() - t, 2)
    results["cpu_count"] = os.cpu_count()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
