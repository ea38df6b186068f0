"""Cold-start cost of each function: median import-and-init time in fresh processes, against `import boto3`.

Each sample is a new interpreter that imports one handler module (which builds its Logger, Tracer,
Metrics and settings at import, as Lambda's init phase does) and reports the time taken. The ratio to
`import boto3` alone, measured in the same run, cancels out the machine's speed. Target (issue 14):
<= 1.3x for every function. Prints JSON; exits 1 when a function misses the target.

Wall-clock ratios on a shared machine move by about +-0.1 from run to run. `--instructions` counts the CPU
instructions of each import instead (valgrind's cachegrind, `import X` minus a bare interpreter, as a ratio
to `import boto3` counted the same way): the count repeats from run to run, so it can gate where time cannot.
It needs valgrind (`apt-get install valgrind`) and takes about a minute.

`--built .aws-sam/build` times each function as Lambda starts it: its `app` imported from `sam build`'s output
(the function's folder, then the layer's python/), writing no bytecode, against `import boto3` from the
layer. It shows what the build ships: before the layer carried bytecode, every sample compiled every module.

    .venv/bin/python benchmarks/cold_start.py [--runs 15] [--instructions | --built .aws-sam/build]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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


def probe_env(path: list[Path] | None = None) -> dict[str, str]:
    """The probe's environment: the source tree on the path, or `path` (a built function and layer).

    From the source tree, bytecode is written on the first import and read after, so the samples measure
    importing. From a build, nothing is written, as on Lambda (its /var/task and /opt are read-only): what
    the build did not compile is compiled again in every sample."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_", "PYTHONDONTWRITE"))
    }
    env.update(LAMBDA_LIKE_ENV)
    # Lambda puts the function folder and the layer's python/ on sys.path; so does this probe.
    env["PYTHONPATH"] = os.pathsep.join(map(str, path or [ROOT / "layers" / "rollout", ROOT]))
    if path:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def built_paths(built: Path) -> dict[str, list[Path]]:
    """Each built function's sys.path on Lambda (its folder, then the layer's python/), by logical id."""
    layer = built / "RolloutLayer" / "python"
    return {
        folder.name: [folder, layer]
        for folder in sorted(built.iterdir())
        if folder.is_dir() and folder.name != "RolloutLayer" and (folder / "app.py").is_file()
    }


def sample(module: str, path: list[Path] | None = None) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        env=probe_env(path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


CACHEGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")
_INSTRUCTIONS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(module: str | None) -> int:
    """CPU instructions of a fresh interpreter importing `module` (None: importing nothing)."""
    code = f"import {module}" if module else "pass"
    out = subprocess.run(
        [*CACHEGRIND, sys.executable, "-c", code],
        env=probe_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    found = _INSTRUCTIONS.search(out.stderr)
    if found is None:
        raise RuntimeError(f"cachegrind printed no instruction count for {module}: {out.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


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
    baseline, results = against_boto3(samples)
    return {
        "runs": runs,
        "python": sys.version.split()[0],
        "baseline_import_boto3_ms": round(baseline * 1000, 1),
        **results,
    }


def against_boto3(samples: dict[str, list[float]]) -> tuple[float, dict[str, object]]:
    """The median of the "boto3" samples, and each other entry's median and ratio to it, the worst ratio
    and whether it meets the target."""
    baseline = statistics.median(samples["boto3"])
    functions = {
        name: {
            "median_ms": round(statistics.median(s) * 1000, 1),
            "ratio": round(statistics.median(s) / baseline, 2),
        }
        for name, s in samples.items()
        if name != "boto3"
    }
    worst = max((r["ratio"] for r in functions.values()), default=0.0)
    return baseline, {
        "functions": functions,
        "worst_ratio": worst,
        "target_ratio": TARGET_RATIO,
        "meets_target": worst <= TARGET_RATIO,
    }


def measure_built(built: Path, runs: int) -> dict[str, object]:
    """Each function's `app` imported from `sam build`'s output as Lambda imports it (nothing written), and
    `import boto3` from the layer (whose own boto3 shadows the runtime's), in the same run."""
    paths = built_paths(built)
    layer = [built / "RolloutLayer" / "python"]
    samples: dict[str, list[float]] = {name: [] for name in ["boto3", *paths]}
    for _ in range(runs):
        samples["boto3"].append(sample("boto3", layer))
        for name, path in paths.items():
            samples[name].append(sample("app", path))
    baseline, results = against_boto3(samples)
    return {
        "runs": runs,
        "python": sys.version.split()[0],
        "built": str(built),
        "baseline_import_boto3_from_the_layer_ms": round(baseline * 1000, 1),
        **results,
    }


def measure_instructions() -> dict[str, object]:
    modules = function_modules()
    for module in ["boto3", *modules]:
        sample(module)  # bytecode caches written, so the count is of importing, not compiling
    bare = instructions(None)
    baseline = instructions("boto3") - bare
    counts = {m: instructions(m) - bare for m in modules}
    ratios = {m: round(c / baseline, 3) for m, c in counts.items()}
    worst = max(ratios.values(), default=0.0)
    return {
        "counted": "CPU instructions (valgrind cachegrind), import minus a bare interpreter",
        "python": sys.version.split()[0],
        "baseline_import_boto3_instructions": baseline,
        "functions": {m: {"instructions": counts[m], "ratio": ratios[m]} for m in modules},
        "worst_ratio": worst,
        "target_ratio": TARGET_RATIO,
        "meets_target": worst <= TARGET_RATIO,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--instructions", action="store_true", help="count CPU instructions with valgrind instead of timing"
    )
    parser.add_argument(
        "--built",
        type=Path,
        help="time imports from this `sam build` output (e.g. .aws-sam/build) instead of the source tree",
    )
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        print("--instructions needs valgrind on PATH (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    if args.built:
        result = measure_built(args.built, args.runs)
    else:
        result = measure_instructions() if args.instructions else measure(args.runs)
    print(json.dumps(result, indent=2))
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
