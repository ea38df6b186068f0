"""The Sandbox: one local AWS endpoint on 127.0.0.1, started and stopped as a unit."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from sandbox.clock import Clock
from sandbox.dynamodb_consistency import DEFAULT_EVENTUAL_READ_LAG_SECONDS, DEFAULT_GSI_LAG_SECONDS
from sandbox.faults import Faults
from sandbox.metrics import MetricIndex

if TYPE_CHECKING:
    # Imported where they are built (in _start), so `sandbox.core` stays light and free of cycles.
    from sandbox.alarms import AlarmEvaluator
    from sandbox.call_log import CallLog
    from sandbox.codedeploy.engine import CodeDeployEngine
    from sandbox.event_delivery import DeliveryTiming, EventDelivery
    from sandbox.iam import Iam
    from sandbox.lambda_runtime import LambdaService
    from sandbox.server import HttpServer, SandboxApp

log = logging.getLogger("sandbox")

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
# Sandbox seconds a function reports LastUpdateStatus InProgress after UpdateFunctionCode or
# UpdateFunctionConfiguration; meanwhile PublishVersion and further updates are refused with
# ResourceConflictException ("Lambda function states", section "Function states during updates", in the
# Lambda developer guide). AWS gives no figure for a zip function outside a VPC: the AWS Compute Blog's
# "Tracking the state of AWS Lambda functions" says that in most cases this is "very fast" and the function
# can be invoked or modified right away, though some updates take longer; botocore's function_updated_v2
# waiter looks once a second. One sandbox second: the waiter's delay, so a waiter at speed 1 still sees
# InProgress, and in sandbox time like every other delay the sandbox adds for AWS (S3 and CodeDeploy
# events reaching EventBridge, Lambda's async retries).
DEFAULT_LAMBDA_UPDATE_SECONDS = 1.0

_Part = TypeVar("_Part")

_active_lock = threading.Lock()
_active: Sandbox | None = None


def active() -> Sandbox | None:
    """The running sandbox in this process (moto's state is process-wide, so there is at most one)."""
    return _active


class Sandbox:
    """`with Sandbox(speed=60) as sb:` then point boto3 at `sb.endpoint_url`.

    `speed` scales sandbox time (see Clock); `worker_idle_seconds` is how long (real seconds) an idle Lambda
    worker lives before it is reaped. `iam` enforces IAM on calls made with the credentials the sandbox
    issues to roles (function code, CodeDeploy); the operator's own credentials are never refused.
    `gsi_lag` is how many real seconds DynamoDB global secondary indexes trail their tables, and
    `eventual_read_lag` how many a table's reads without ConsistentRead do (0: current);
    `lambda_update_seconds` how many sandbox seconds Lambda takes to apply a function's code or configuration
    update (LastUpdateStatus InProgress; DEFAULT_LAMBDA_UPDATE_SECONDS);
    `event_timing` how late, and how often twice, S3 and CodeDeploy events reach EventBridge rules (seeded
    by `fault_seed`). `fork_workers` forks Lambda workers from a process that has imported the runtime's
    libraries (sandbox/lambda_forks.py); off, each worker is a new interpreter.
    """

    def __init__(
        self,
        port: int = 0,
        speed: float = 1.0,
        worker_idle_seconds: float = 60.0,
        fault_seed: int | None = None,
        codedeploy: bool = True,
        iam: bool = True,
        gsi_lag: float | None = None,
        eventual_read_lag: float | None = None,
        event_timing: DeliveryTiming | None = None,
        fork_workers: bool = True,
        lambda_update_seconds: float = DEFAULT_LAMBDA_UPDATE_SECONDS,
    ) -> None:
        self.clock = Clock(speed)
        self.region = REGION
        self.account_id = ACCOUNT_ID
        self.faults = Faults(fault_seed)
        self.metric_index = MetricIndex()
        self.worker_idle_seconds = worker_idle_seconds
        self.fork_workers = fork_workers
        self.lambda_update_seconds = lambda_update_seconds
        self._port = port
        self._want_codedeploy = codedeploy
        self._want_iam = iam
        # Real seconds a global secondary index trails its table (dynamodb_consistency.py); 0: current.
        self.gsi_lag = DEFAULT_GSI_LAG_SECONDS if gsi_lag is None else gsi_lag
        # ... and a table read without ConsistentRead trails its writes.
        self.eventual_read_lag = (
            DEFAULT_EVENTUAL_READ_LAG_SECONDS if eventual_read_lag is None else eventual_read_lag
        )
        self._fault_seed = fault_seed
        self._event_timing = event_timing
        self._workdir: Path | None = None
        self._server: HttpServer | None = None
        self._stop = threading.Event()
        # None until start(); CodeDeploy also when it is off or unavailable, and again after stop().
        self.codedeploy_engine: CodeDeployEngine | None = None
        # Built by start() and kept after stop(), so a stopped sandbox can still be inspected.
        self._app: SandboxApp | None = None
        self._lambda_service: LambdaService | None = None
        self._events: EventDelivery | None = None
        self._alarms: AlarmEvaluator | None = None
        self._iam: Iam | None = None

    @property
    def iam(self) -> Iam:
        return _started(self._iam)

    @property
    def app(self) -> SandboxApp:
        return _started(self._app)

    @property
    def calls(self) -> CallLog:
        """Every AWS call this sandbox served (service, operation, caller role, outcome); kept after stop()."""
        return self.app.calls

    @property
    def lambda_service(self) -> LambdaService:
        return _started(self._lambda_service)

    @property
    def events(self) -> EventDelivery:
        return _started(self._events)

    @property
    def alarms(self) -> AlarmEvaluator:
        return _started(self._alarms)

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("the sandbox is not running")
        return self._workdir

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        global _active
        with _active_lock:
            if _active is not None:
                raise RuntimeError("another Sandbox is already running in this process")
            _active = self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        from sandbox import patches
        from sandbox.alarms import AlarmEvaluator
        from sandbox.cloudwatch_api import register_cloudwatch_routes
        from sandbox.event_delivery import EventDelivery
        from sandbox.function_urls import FunctionUrls
        from sandbox.iam import Iam
        from sandbox.iam import state as iam_state
        from sandbox.lambda_api import register_lambda_routes
        from sandbox.lambda_runtime import LambdaService
        from sandbox.server import HttpServer, SandboxApp
        from sandbox.sts_api import register_sts_routes

        self._workdir = Path(tempfile.mkdtemp(prefix="rollout-sandbox-"))
        reset_moto()
        patches.install()
        for arn in iam_state.PRELOADED_MANAGED_POLICIES:
            iam_state.ensure_aws_managed_policy(iam_state.iam_backend(self.account_id), arn)
        self._iam = Iam(self.account_id, self.region, self._want_iam, self._deployment_group_of)
        self._app = SandboxApp(self.faults, self.clock)
        self._app.iam = self._iam
        self._server = HttpServer(self._app, self._port)
        self._lambda_service = LambdaService(self)
        self._app.caller_of = self._lambda_service.caller_of
        self._events = EventDelivery(self, self._event_timing, self._fault_seed)
        self._alarms = AlarmEvaluator(self)
        register_lambda_routes(self._app, self)
        register_cloudwatch_routes(self._app, self)
        register_sts_routes(self._app, self)
        self._app.function_urls = FunctionUrls(self).serve
        self._server.start()
        self._lambda_service.start()
        self._events.start()
        self._alarms.start()
        if self._want_codedeploy:
            self._start_codedeploy()

    def _start_codedeploy(self) -> None:
        try:
            from sandbox.codedeploy import api, engine
        except ImportError as exc:
            log.warning("CodeDeploy engine unavailable: %s", exc)
            return
        self.codedeploy_engine = engine.CodeDeployEngine(
            clock=self.clock,
            endpoint_url=self.endpoint_url,
            region=self.region,
            account_id=self.account_id,
            role_aws=self._codedeploy_role_port,
        )
        api.bind(self.codedeploy_engine)

    def _codedeploy_role_port(self, role_arn: str, service: Any) -> Any:
        """CodeDeploy's calls to Lambda and CloudWatch for a deployment, made with its group's service role
        ("Create a service role for CodeDeploy"), so the role's policies decide what CodeDeploy may do."""
        from sandbox.codedeploy.aws import BotoAws, RoleAws

        credentials = self.iam.issue(role_arn, "AWSCodeDeploy")
        return RoleAws(BotoAws(self.endpoint_url, self.region, credentials.boto3_arguments()), service)

    def _deployment_group_of(self, deployment_id: str) -> tuple[str, str] | None:
        engine = self.codedeploy_engine
        return engine.deployment_group_of(deployment_id) if engine is not None else None

    def stop(self) -> None:
        global _active
        self._stop.set()
        if self.codedeploy_engine is not None:
            try:
                self.codedeploy_engine.shutdown()
            except Exception:
                log.exception("CodeDeploy engine shutdown failed")
        self.codedeploy_engine = None
        for part in (self._alarms, self._events, self._lambda_service):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    log.exception("stopping %s failed", type(part).__name__)
        if self._server is not None:
            self._server.stop()
            self._server = None
        log_path = os.environ.get("SANDBOX_ACCESS_LOG")
        if log_path and self._iam is not None:
            self._iam.log.append_to(Path(log_path))
        if _active is self:
            reset_moto()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        with _active_lock:
            if _active is self:
                _active = None

    def __repr__(self) -> str:
        where = self.endpoint_url if self._server is not None else "stopped"
        return f"Sandbox({where}, speed={self.clock.speed})"


def _started(part: _Part | None) -> _Part:
    if part is None:
        raise RuntimeError("the sandbox has not been started")
    return part


def reset_moto() -> None:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()
    moto_api_backend.set_config({"lambda": {"use_docker": False}})
