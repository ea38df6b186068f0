"""What each function imports at init (issue 14, cold start): a fresh interpreter imports one handler
with the environment benchmarks/cold_start.py measures under, and reports the modules it loaded and
the dataclasses and enums the rollout package built meanwhile.

Libraries and rollout modules that only a rare path needs are imported where that path runs; what a
function needs on every invocation is loaded at its init. Tracing still patches botocore.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.parent.name for p in (REPO / "functions").glob("*/app.py"))

PROBE = """
import json, sys
__import__(sys.argv[1])
import botocore.client, botocore.endpoint
# X-Ray's botocore patch replaces the client's API call and the endpoint's request preparation with
# wrapt FunctionWrappers (botocore's own decorators leave plain functions).
patched = [
    type(owner.__dict__[name]).__name__ == "FunctionWrapper"
    for owner, name in ((botocore.client.BaseClient, "_make_api_call"), (botocore.endpoint.Endpoint, "prepare_request"))
]
import dataclasses, enum
built = sorted(
    f"{name}.{attr}"
    for name, module in list(sys.modules.items())
    if name.startswith("rollout")
    for attr, value in vars(module).items()
    if isinstance(value, type) and value.__module__ == name
    and (dataclasses.is_dataclass(value) or issubclass(value, enum.Enum))
)
# sys.modules keeps the order in which imports finished: boto3 finishes before the others start.
first = next(m for m in sys.modules if m in ("boto3", "aws_lambda_powertools", "rollout"))
print(json.dumps({"modules": sorted(sys.modules), "botocore_traced": all(patched), "built": built, "first": first}))
"""


def _lambda_like_env() -> dict[str, str]:
    # The benchmark's environment, read from the benchmark itself so the two cannot drift apart.
    spec = importlib.util.spec_from_file_location(
        "cold_start_benchmark", REPO / "benchmarks" / "cold_start.py"
    )
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
    env.update(benchmark.LAMBDA_LIKE_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "layers" / "rollout"), str(REPO)])
    return env


@functools.cache
def _probes() -> dict[str, tuple[frozenset[str], bool, tuple[str, ...], str]]:
    """Every handler probed at once (one fresh interpreter each, run side by side)."""
    env = _lambda_like_env()
    running = {
        function: subprocess.Popen(
            [sys.executable, "-c", PROBE, f"functions.{function}.app"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for function in FUNCTIONS
    }
    probes = {}
    for function, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{function}: {err}"
        report = json.loads(out)
        probes[function] = (
            frozenset(report["modules"]),
            bool(report["botocore_traced"]),
            tuple(report["built"]),
            str(report["first"]),
        )
    return probes


def loaded(function: str) -> tuple[frozenset[str], bool]:
    """The modules importing `function`'s handler loads, and whether botocore calls are traced."""
    modules, traced, _, _ = _probes()[function]
    return modules, traced


def built_types(function: str) -> tuple[str, ...]:
    """The rollout dataclasses and enums importing `function`'s handler built."""
    return _probes()[function][2]


def first_library(function: str) -> str:
    """Which of boto3, Powertools and rollout importing `function`'s handler loaded first."""
    return _probes()[function][3]


def test_every_function_is_probed() -> None:
    assert len(FUNCTIONS) >= 9 and "reconciler" in FUNCTIONS


@pytest.mark.parametrize("function", FUNCTIONS)
def test_tracer_still_patches_botocore(function: str) -> None:
    assert loaded(function)[1], f"{function}: botocore's API calls are not wrapped by X-Ray"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_imports_powertools_event_data_classes(function: str) -> None:
    # The package's __init__ imports some 40 event modules; the events are read as plain dicts.
    assert "aws_lambda_powertools.utilities.data_classes" not in loaded(function)[0]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_slack_sdk_only_in_the_slack_functions(function: str) -> None:
    imported = "slack_sdk" in loaded(function)[0]
    assert imported == (function in {"slack_interactions", "slack_notifier"}), function


def test_the_slack_endpoint_loads_its_signature_verifier_at_init() -> None:
    assert "slack_sdk.signature" in loaded("slack_interactions")[0]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_only_the_deployer_imports_the_start_path_at_init(function: str) -> None:
    # Starting a queued or held release, and a rollback, import the start path when they run.
    modules = loaded(function)[0]
    for module in ("rollout.starter", "rollout.publishing", "rollout.release_gate"):
        assert (module in modules) == (function == "artifact_deployer"), (function, module)
    assert "rollout.rollback" not in modules


@pytest.mark.parametrize("function", FUNCTIONS)
def test_idempotency_only_where_every_event_uses_it(function: str) -> None:
    imported = "aws_lambda_powertools.utilities.idempotency" in loaded(function)[0]
    assert imported == (function in {"artifact_deployer", "deployment_events"}), function


@pytest.mark.parametrize("function", FUNCTIONS)
def test_canary_analysis_only_in_the_post_traffic_hook(function: str) -> None:
    modules = loaded(function)[0]
    for module in ("rollout.canary", "rollout.lambda_metrics"):
        assert (module in modules) == (function == "post_traffic_hook"), (function, module)


@pytest.mark.parametrize(
    "function", ["deployment_events", "deployment_actions", "reconciler", "slack_notifier"]
)
def test_check_runner_only_with_the_hooks(function: str) -> None:
    assert "rollout.check_runner" not in loaded(function)[0]


def test_approval_requests_parts_are_loaded_by_deployment_actions_at_init() -> None:
    modules = loaded("deployment_actions")[0]
    assert {"rollout.identity", "rollout.sts_ops", "rollout.slack_interactions"} <= modules
    for function in ("pre_traffic_hook", "reconciler"):
        assert "rollout.sts_ops" not in loaded(function)[0], function


def test_the_deployer_loads_the_upload_path_and_no_other() -> None:
    # The queue (a start that ended at once), orphan adoption (a retried upload) and the gates' limits
    # (a checks file asking for approval) load where those paths run; the bucket's version listing,
    # the deployment events and deployment_actions' side of approvals belong to other functions.
    modules = loaded("artifact_deployer")[0]
    for module in (
        "rollout.release_queue",
        "rollout.orphans",
        "rollout.gates",
        "rollout.s3_versions",
        "rollout.deployment_events",
        "rollout.approvals",
    ):
        assert module not in modules, module


def test_the_reconciler_loads_neither_the_zip_rules_nor_its_repairs() -> None:
    # The sweep needs a key's meaning, not the zip rules; a lost event is settled, work handed over, an
    # undelivered event replayed and an approval gate swept by modules loaded when there is such work.
    modules = loaded("reconciler")[0]
    assert {"rollout.artifact_keys", "rollout.s3_versions", "rollout.gate_sweep"} <= modules
    for module in (
        "rollout.artifacts",
        "rollout.s3_ops",
        "rollout.redelivery",
        "rollout.deployment_events",
        "rollout.approvals",
        "rollout.gates",
    ):
        assert module not in modules, module


# Building a dataclass or an enum at import is most of what the rollout package adds to a cold start
# (a dataclass compiles its generated methods); immutable records are NamedTuples and reason codes
# plain strings (docs/DESIGN.md). The deployer and the reconciler were the two functions over issue
# 14's target, building 29 and 40 dataclasses and two enums (one of seventy members).
BUILT_AT_MOST = {"artifact_deployer": 6, "reconciler": 14}


@pytest.mark.parametrize("function", sorted(BUILT_AT_MOST))
def test_init_builds_few_dataclasses_and_enums(function: str) -> None:
    built = built_types(function)
    assert len(built) <= BUILT_AT_MOST[function], built


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_that_use_boto3_import_it_before_anything_else(function: str) -> None:
    # Run nested inside other imports, boto3's import hits CPython 3.13's frame-stack chunk churn
    # (gh-142183): the deployer, which loaded it from inside Powertools' Idempotency, spent some 28 ms
    # in mmap/munmap at the benchmark's stack depth.
    if "boto3" in loaded(function)[0]:
        assert first_library(function) == "boto3", function
