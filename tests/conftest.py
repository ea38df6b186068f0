"""Fixtures shared by the whole suite: fake credentials, moto, the stack's resources."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock
from urllib.parse import unquote

import pytest
from moto import mock_aws
from moto.awslambda.responses import LambdaResponse

from rollout import aws
from sandbox.dynamodb_consistency import lagging_in_process
from tests.support.aws_limits import LimitViolations
from tests.support.aws_stack import StackUnderTest, create_stack, stack_environment
from tests.support.codedeploy_standin import CodeDeployStandIn
from tests.support.offline_aws import offline_environment
from tests.support.paid_once import paid_once


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fault-matrix",
        action="store_true",
        help="also run the whole fault matrix (tests marked fault_matrix; several minutes)",
    )
    for name, what in (
        ("gsi", "a global secondary index trails"),
        ("eventual-read", "a read without ConsistentRead trails"),
    ):
        parser.addoption(
            f"--{name}-lag",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help=f"in-process moto (the `moto` fixture): how many real seconds {what} its table, as in the "
            "sandbox (sandbox/dynamodb_consistency.py); 0, the default: current",
        )


# Longest first: with several xdist workers (`make pytest`, `--dist loadfile`: one file each at a time), the
# files that run a sandbox for a minute or more go out first and the many short unit files fill in at the
# end, instead of one long file starting last while the other workers sit idle. The Makefile passes
# `--no-loadscope-reorder`: xdist would otherwise hand files out by their number of tests, which puts a
# 300-test file of quick calls before every e2e file. Seconds per file, summed over its tests, measured with
# `make pytest PYTEST_ARGS="--junitxml=..."` (docs/BENCHMARKS.md, "The test suite"); a file not listed goes
# after these, by directory.
_MEASURED_SECONDS = {
    "tests/e2e/test_gates.py": 175,
    "tests/e2e/test_actions.py": 127,
    "tests/e2e/test_releases.py": 87,
    "tests/integration/test_sandbox_dynamodb_speed.py": 85,
    "tests/e2e/test_traffic_and_faults.py": 72,
    "tests/integration/test_cli_sandbox.py": 71,
    "tests/e2e/test_fault_matrix.py": 69,
    "tests/integration/test_artifact_deployer.py": 45,
    "tests/integration/test_bad_input_deployer.py": 41,
    "tests/browser/test_dashboard_browser.py": 37,
    "tests/e2e/test_seed_replay.py": 36,
    "tests/integration/test_dashboard_sandbox.py": 28,
    "tests/integration/test_sandbox_lambda.py": 27,
    "tests/integration/test_sandbox_consistency.py": 23,
    "tests/integration/test_sandbox_codedeploy.py": 22,
    "tests/integration/test_hooks.py": 22,
}
_DIRECTORY_ORDER = ("tests/e2e/", "tests/browser/", "tests/integration/", "tests/unit/")


def _longest_first(item: pytest.Item) -> tuple[float, int]:
    path = item.nodeid.split("::", 1)[0]
    directory = next(
        (i for i, prefix in enumerate(_DIRECTORY_ORDER) if path.startswith(prefix)), len(_DIRECTORY_ORDER)
    )
    return -_MEASURED_SECONDS.get(path, 0), directory


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_longest_first)  # stable: within a directory, pytest's order
    if config.getoption("--fault-matrix"):
        return
    skip = pytest.mark.skip(reason="part of the full fault matrix: run with --fault-matrix")
    for item in items:
        if "fault_matrix" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _paid_once() -> Iterator[None]:
    """Service models parsed and moto's SNS signing key made once per process (tests/support/paid_once.py)."""
    with paid_once():
        yield


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test ever reaches AWS: fake credentials, a fixed region, no endpoint override."""
    offline_environment(monkeypatch)
    yield
    aws.reset_clients()


@pytest.fixture(autouse=True)
def aws_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[LimitViolations]:
    """Every call the package's own clients make stays within AWS's documented limits."""
    found = LimitViolations()
    plain_client = aws._cached_client.__wrapped__
    plain_table = aws.table.__wrapped__

    @functools.cache
    def checked_client(service: str, purpose: str = "default") -> Any:
        client = plain_client(service, purpose)
        client.meta.events.register("before-parameter-build", found.check)
        return client

    @functools.cache
    def checked_table(name: str) -> Any:
        table = plain_table(name)
        table.meta.client.meta.events.register("before-parameter-build", found.check)
        return table

    monkeypatch.setattr(aws, "_cached_client", checked_client)
    monkeypatch.setattr(aws, "table", checked_table)
    yield found
    assert not found.found, "calls beyond AWS's limits:\n" + "\n".join(found.found)


def _invoke_saying_which_version_ran(response: LambdaResponse) -> tuple[int, dict[str, str], Any]:
    """moto's Invoke, with the header Lambda sets on every synchronous answer: X-Amz-Executed-Version,
    "the version of the function that executed" (Invoke, botocore's lambda model). Checks accept only
    an answer that names the version they test (rollout.check_runner). moto reads the qualifier from a
    lower-case query parameter that boto3 never sends, so it is read here as boto3 sends it."""
    status, headers, body = _MOTO_INVOKE(response)
    name = unquote(response.path.rsplit("/", 2)[-2])
    qualifier = (response.querystring.get("Qualifier") or [None])[0]
    headers["X-Amz-Executed-Version"] = str(response.backend.get_function(name, qualifier).version)
    return status, headers, body


_MOTO_INVOKE = LambdaResponse.invoke


@pytest.fixture
def moto(request: pytest.FixtureRequest) -> Iterator[None]:
    lags = (request.config.getoption("--gsi-lag"), request.config.getoption("--eventual-read-lag"))
    # moto runs no function code without Docker; its simple Lambda backend answers an invocation with
    # the event it was given. Here that stands for a target that starts: a first release's checks
    # (rollout.first_release) then pass. What a target's code does is the sandbox's to run (tests/e2e).
    with (
        mock_aws(config={"lambda": {"use_docker": False}}),
        mock.patch.object(LambdaResponse, "invoke", _invoke_saying_which_version_ran),
        lagging_in_process(*lags) if any(lags) else contextlib.nullcontext(),
    ):
        aws.reset_clients()
        yield
        aws.reset_clients()


@pytest.fixture
def codedeploy(monkeypatch: pytest.MonkeyPatch) -> CodeDeployStandIn:
    """Route the package's codedeploy client to the stand-in; other services stay on moto."""
    standin = CodeDeployStandIn()
    real_client, real_single_attempt_client = aws.client, aws.single_attempt_client

    def client(service: str) -> Any:
        return standin if service == "codedeploy" else real_client(service)

    def single_attempt_client(service: str) -> Any:
        return standin if service == "codedeploy" else real_single_attempt_client(service)

    monkeypatch.setattr(aws, "client", client)
    monkeypatch.setattr(aws, "single_attempt_client", single_attempt_client)
    return standin


@pytest.fixture
def stack(moto: None, codedeploy: CodeDeployStandIn, monkeypatch: pytest.MonkeyPatch) -> StackUnderTest:
    created = create_stack()
    for key, value in stack_environment(created).items():
        monkeypatch.setenv(key, value)
    codedeploy.create_application(applicationName="rollout-test", computePlatform="Lambda")
    return created


@dataclass
class FakeLambdaContext:
    """What Powertools and the handlers read from a Lambda context."""

    function_name: str = "rollout-test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:rollout-test-function"
    aws_request_id: str = ""
    remaining_ms: int = 60_000

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
