"""`python -m sandbox [--port N] [--speed S]`: run the local AWS endpoint until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from sandbox.core import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Run the local AWS sandbox.")
    parser.add_argument("--port", type=int, default=4566, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="sandbox time per real time (60: a minute a second)"
    )
    parser.add_argument(
        "--worker-idle-seconds", type=float, default=60.0, help="reap Lambda workers idle this long"
    )
    parser.add_argument(
        "--no-iam",
        action="store_true",
        help="do not enforce IAM on calls made with role credentials (function code, CodeDeploy)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Sandbox(
        port=args.port, speed=args.speed, worker_idle_seconds=args.worker_idle_seconds, iam=not args.no_iam
    ) as sb:
        print(f"AWS_ENDPOINT_URL={sb.endpoint_url}", flush=True)
        print(f"region={sb.region} account={sb.account_id} speed={sb.clock.speed}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
