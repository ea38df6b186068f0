"""CPU a cold Lambda worker spends making the control plane's boto3 clients, forked from a zygote that has
parsed the SDK's models (sandbox/lambda_zygote.py) or not. A ratio measured in one run, in CPU time of the
child alone, so it travels between machines. Prints JSON.

    .venv/bin/python benchmarks/worker_sdk_models.py [--forks 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sandbox"))

# The clients the artifact deployer makes on its first upload (rollout/aws.py).
SERVICES = ("dynamodb", "lambda", "codedeploy", "cloudwatch", "s3")


def child_cpu_ms() -> float:
    """CPU milliseconds a forked child spends on a new session, the clients and the ledger's Table."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        import boto3

        started = time.process_time()
        session = boto3.session.Session()
        for service in SERVICES:
            session.client(service)
        session.resource("dynamodb").Table("ledger")
        os.write(write, str((time.process_time() - started) * 1000).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    return float(os.read(read, 64))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=15)
    args = parser.parse_args()
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    import boto3  # noqa: F401 - what the zygote imports before it forks
    import lambda_zygote  # type: ignore[import-not-found,unused-ignore]

    parsing = statistics.median(child_cpu_ms() for _ in range(args.forks))
    lambda_zygote._share_botocore_data()
    shared = statistics.median(child_cpu_ms() for _ in range(args.forks))
    print(
        json.dumps(
            {
                "forks": args.forks,
                "services": list(SERVICES),
                "clients_cpu_ms_parsing_in_the_worker": round(parsing, 1),
                "clients_cpu_ms_with_the_zygotes_models": round(shared, 1),
                "ratio": round(shared / parsing, 2),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
