"""Cold-start cost of each function: median import-and-init time in fresh processes, against `import boto3`.

Each sample is a new interpreter that imports one handler module (which builds its Logger, Tracer,
Metrics and settings at import, as Lambda's init phase does) and reports the time taken. The ratio to
`import boto3` alone, measured in the same run, cancels out the machine's speed. Target (issue 14):
<= 1.3x for every function. Prints JSON; exits 1 when a function misses the target.

    .venv/bin/python benchmarks/cold_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.3

PROBE = """
import sys, time
start = time.perf_counter()
__import__(sys.argv[1])
print(time.perf_counter() - start)
"""

LAMBDA_LIKE_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_NAME": "benchmark",
    # X-Ray picks its in-Lambda sampler (no sampling-rules client) when this is set, as on Lambda.
    "LAMBDA_TASK_ROOT": "/var/task",
    "POWERTOOLS_SERVICE_NAME": "rollout",
    "POWERTOOLS_METRICS_NAMESPACE": "Rollout",
    "LEDGER_TABLE": "ledger",
    "IDEMPOTENCY_TABLE": "idempotency",
    "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic",
    "ARTIFACT_BUCKET": "artifacts",
    "CODEDEPLOY_APPLICATION": "rollout",
    "SLACK_WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack",
}


def sample(module: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
    env.update(LAMBDA_LIKE_ENV)
    # Lambda puts the function folder and the layer's python/ on sys.path; so does this probe.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "rollout"), str(ROOT)])
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, module], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def function_modules() -> list[str]:
    return sorted(
        f"functions.{p.parent.name}.app"
        for p in (ROOT / "functions").glob("*/app.py")
        if p.parent.name[0] != "_"
    )


def measure(runs: int) -> dict[str, object]:
    modules = function_modules()
    # Warm the bytecode caches once so every sample measures import, not compilation.
    for module in ["boto3", *modules]:
        sample(module)
    samples: dict[str, list[float]] = {m: [] for m in ["boto3", *modules]}
    # Interleave the modules so background noise spreads evenly over all of them.
    for _ in range(runs):
        for module in samples:
            samples[module].append(sample(module))
    baseline = statistics.median(samples["boto3"])
    results = {
        m: {
            "median_ms": round(statistics.median(s) * 1000, 1),
            "ratio": round(statistics.median(s) / baseline, 2),
        }
        for m, s in samples.items()
    }
    worst = max((r["ratio"] for m, r in results.items() if m != "boto3"), default=0.0)
    return {
        "runs": runs,
        "python": sys.version.split()[0],
        "baseline_import_boto3_ms": round(baseline * 1000, 1),
        "functions": {m: r for m, r in results.items() if m != "boto3"},
        "worst_ratio": worst,
        "target_ratio": TARGET_RATIO,
        "meets_target": worst <= TARGET_RATIO,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    result = measure(args.runs)
    print(json.dumps(result, indent=2))
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
