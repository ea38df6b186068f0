"""The Lambda runtime: published code runs in warm worker processes, one pool per function version.

Behaviour only; the Invoke wire format is in lambda_api.py. Function metadata (code, handler, environment,
aliases, event-invoke configs) is read from moto's Lambda backend.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sandbox import metrics
from sandbox.iam import Principal
from sandbox.lambda_forks import ForkedProcess, Zygote, zygote_environment
from sandbox.server import AwsError

if TYPE_CHECKING:
    from sandbox.core import Sandbox

log = logging.getLogger("sandbox.lambda")

WORKER_SCRIPT = Path(__file__).with_name("lambda_worker.py")
LOG_TAIL_BYTES = 4096
MAX_CONCURRENCY = 1000
# Lambda retries a failed asynchronous invocation after about one minute, then after two more.
ASYNC_RETRY_DELAYS = (60.0, 120.0)
# Throttled (429) and service (5xx) failures are not function errors: Lambda puts the event back on
# its queue and tries again, backing off from one second to five minutes, until the event is too old.
# They do not use up MaximumRetryAttempts.
REQUEUE_FIRST_DELAY = 1.0
REQUEUE_MAX_DELAY = 300.0
REQUEUED_CODES = frozenset({"TooManyRequestsException", "ServiceException"})
# Each worker's SDK calls carry `app/<WORKER_APP_ID_PREFIX><token>` in their User-Agent (botocore
# adds AWS_SDK_UA_APP_ID there), so the sandbox can tell which worker made a call.
WORKER_APP_ID_PREFIX = "sandbox-worker-"


@dataclass(frozen=True)
class VersionSpec:
    """Everything that decides how a version's environment is built; a change means a new pool."""

    function_name: str
    version: str
    function_arn: str
    handler: str
    code_sha256: str
    timeout: float
    memory_mb: int
    environment: tuple[tuple[str, str], ...]
    layers: tuple[str, ...]
    role: str = ""  # the execution role: its credentials are the environment's


@dataclass
class Outcome:
    """What one invocation produced."""

    request_id: str
    executed_version: str
    payload: bytes
    function_error: str | None
    log_tail: str
    duration_ms: float
    cold_start: bool
    error_type: str | None = None


@dataclass
class AsyncEvent:
    """One Event invocation across its attempts."""

    name: str
    qualifier: str | None
    payload: bytes
    request_id: str
    function: Any
    config: dict[str, Any]
    enqueued: float
    attempts: int = 0
    requeues: int = 0  # throttled or service-failed tries, which do not count as attempts


@dataclass
class Worker:
    process: subprocess.Popen[bytes] | ForkedProcess
    requests: TextIO
    results_fd: int
    spec: VersionSpec
    token: str = ""  # what its SDK calls carry in their User-Agent (see WORKER_APP_ID_PREFIX)
    last_used: float = field(default_factory=time.monotonic)
    log_lines: list[str] = field(default_factory=list)
    log_cond: threading.Condition = field(default_factory=threading.Condition)
    buffer: bytes = b""
    invocations: int = 0
    timed_out: bool = False
    closed: bool = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("worker %s did not exit", self.process.pid)
        with self.log_cond:
            if self.closed:
                return  # an fd number closed twice could belong to someone else by now
            self.closed = True
        with contextlib.suppress(OSError):
            self.requests.close()
        with contextlib.suppress(OSError):
            os.close(self.results_fd)

    def read_result(self, timeout: float) -> dict[str, Any] | None:
        """One result line; None on timeout (self.timed_out set) or when the process died."""
        self.timed_out = False
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.timed_out = True
                return None
            ready, _, _ = select.select([self.results_fd], [], [], remaining)
            if not ready:
                self.timed_out = True
                return None
            chunk = os.read(self.results_fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        result: dict[str, Any] = json.loads(line)
        return result

    def wait_for_log(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.log_cond:
            while not any(line.startswith(marker) for line in self.log_lines[-50:]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.log_cond.wait(remaining)

    def take_logs(self) -> list[str]:
        with self.log_cond:
            lines, self.log_lines = self.log_lines, []
        return lines


class VersionPool:
    """Warm workers for one function version."""

    def __init__(self, service: LambdaService, spec: VersionSpec) -> None:
        self.service = service
        self.spec = spec
        self.idle: list[Worker] = []
        self.busy: set[int] = set()
        self.lock = threading.Lock()

    def acquire(self) -> tuple[Worker, bool]:
        with self.lock:
            while self.idle:
                worker = self.idle.pop()
                if worker.alive():
                    self.busy.add(id(worker))
                    return worker, False
                worker.kill()
        worker = self.service.spawn(self.spec)
        with self.lock:
            self.busy.add(id(worker))
        return worker, True

    def release(self, worker: Worker) -> None:
        with self.lock:
            self.busy.discard(id(worker))
            if worker.alive():
                worker.last_used = time.monotonic()
                self.idle.append(worker)

    def discard(self, worker: Worker) -> None:
        with self.lock:
            self.busy.discard(id(worker))
        worker.kill()

    def reap(self, idle_seconds: float) -> int:
        now = time.monotonic()
        with self.lock:
            stale = [w for w in self.idle if now - w.last_used >= idle_seconds or not w.alive()]
            self.idle = [w for w in self.idle if w not in stale]
        for worker in stale:
            worker.kill()
        return len(stale)

    def close(self) -> None:
        with self.lock:
            workers, self.idle = self.idle, []
        for worker in workers:
            worker.kill()


class LambdaService:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.clock = sandbox.clock
        self.pools: dict[tuple[str, str], VersionPool] = {}
        self._pools_lock = threading.Lock()
        self._inflight: dict[str, int] = {}
        self._inflight_lock = threading.Lock()
        self._live_workers: dict[int, Worker] = {}
        self._workers_by_token: dict[str, Worker] = {}
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="sandbox-lambda-reaper", daemon=True)
        self._async = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sandbox-async")
        self._timers: list[threading.Timer] = []
        self._timers_lock = threading.Lock()
        self._random = random.Random()
        self.cold_starts = 0
        self.invocations = 0  # invocations a worker ran (each attempt of an async event counts)
        # Workers are forked from a zygote that has imported the runtime's libraries (lambda_forks.py);
        # off: each worker is a new interpreter.
        self.fork_workers = sandbox.fork_workers
        self._zygote: Zygote | None = None
        self._zygote_lock = threading.Lock()

    # Lifecycle

    def start(self) -> None:
        self._reaper.start()

    def stop(self) -> None:
        self._stop.set()
        with self._timers_lock:
            for timer in self._timers:
                timer.cancel()
        self._async.shutdown(wait=False, cancel_futures=True)
        with self._pools_lock:
            pools = list(self.pools.values())
            self.pools.clear()
        for pool in pools:
            pool.close()
        for worker in list(self._live_workers.values()):
            worker.kill()
        self._live_workers.clear()
        with self._zygote_lock:
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.stop()
        if self._reaper.is_alive():
            self._reaper.join(timeout=5)

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in list(self._live_workers.values()) if w.alive()]

    def _reap_loop(self) -> None:
        while not self._stop.wait(min(1.0, max(0.05, self.sandbox.worker_idle_seconds / 4))):
            with self._pools_lock:
                pools = list(self.pools.values())
            for pool in pools:
                pool.reap(self.sandbox.worker_idle_seconds)
            for pid, worker in list(self._live_workers.items()):
                if not worker.alive():
                    self._live_workers.pop(pid, None)
                    self._workers_by_token.pop(worker.token, None)

    # Resolution against moto's metadata

    def backend(self) -> Any:
        from moto.awslambda.utils import get_backend

        # With Docker off, moto keeps functions in its "simple" Lambda backend; get_backend picks it.
        return get_backend(self.sandbox.account_id, self.sandbox.region)

    def resolve(self, name_or_arn: str, qualifier: str | None) -> tuple[Any, str | None, str]:
        """(version model, alias name or None, executed version) for an Invoke target."""
        name, qualifier = split_name(name_or_arn, qualifier)
        storage = self.backend()._lambdas
        arn = f"arn:aws:lambda:{self.sandbox.region}:{self.sandbox.account_id}:function:{name}"
        if name not in storage._functions:
            raise AwsError(
                "ResourceNotFoundException",
                f"Function not found: {arn}" + (f":{qualifier}" if qualifier else ""),
                404,
            )
        alias_name: str | None = None
        version = qualifier or "$LATEST"
        if qualifier and qualifier != "$LATEST" and not qualifier.isdigit():
            aliases = storage._aliases.get(arn, {})
            alias = aliases.get(qualifier)
            if alias is None:
                raise AwsError("ResourceNotFoundException", f"Function not found: {arn}:{qualifier}", 404)
            alias_name = qualifier
            version = self.pick_alias_version(alias)
        if version == "$LATEST":
            fn = storage._functions[name]["latest"]
        else:
            fn = storage._get_version(name, version)
        if fn is None:
            raise AwsError("ResourceNotFoundException", f"Function not found: {arn}:{qualifier}", 404)
        return fn, alias_name, version

    def pick_alias_version(self, alias: Any) -> str:
        routing = alias.routing_config or {}
        weights = routing.get("AdditionalVersionWeights") or {}
        roll = self._random.random()
        for version, weight in weights.items():
            if roll < float(weight):
                return str(version)
            roll -= float(weight)
        return str(alias.function_version)

    def spec_for(self, fn: Any, version: str) -> VersionSpec:
        return VersionSpec(
            function_name=fn.function_name,
            version=version,
            function_arn=f"arn:aws:lambda:{self.sandbox.region}:{self.sandbox.account_id}:function:{fn.function_name}",
            handler=fn.handler or "",
            code_sha256=fn.code_sha_256 or "",
            timeout=float(fn.timeout or 3),
            memory_mb=int(fn.memory_size or 128),
            environment=tuple(sorted((str(k), str(v)) for k, v in (fn.environment_vars or {}).items())),
            layers=tuple(layer["Arn"] for layer in (fn.layers or [])),
            role=str(fn.role or ""),
        )

    # Workers

    def pool_for(self, fn: Any, version: str) -> VersionPool:
        spec = self.spec_for(fn, version)
        key = (spec.function_name, version)
        with self._pools_lock:
            pool = self.pools.get(key)
            if pool is not None and pool.spec != spec:
                # $LATEST changed (code or configuration): the old environments are gone.
                pool.close()
                pool = None
            if pool is None:
                self._unpack_code(fn, spec)
                pool = VersionPool(self, spec)
                self.pools[key] = pool
        return pool

    def _code_dir(self, spec: VersionSpec) -> Path:
        return (
            self.sandbox.workdir
            / "code"
            / spec.function_name
            / f"{spec.version.strip('$')}-{spec.code_sha256[:16] or 'empty'}"
        )

    def _unpack_code(self, fn: Any, spec: VersionSpec) -> None:
        target = self._code_dir(spec)
        if target.exists():
            return
        code = getattr(fn, "code_bytes", b"") or b""
        if not code:
            raise AwsError(
                "InvalidParameterValueException", f"Function {spec.function_name} has no code to run"
            )
        _extract_zip(code, target)
        for layer_arn in spec.layers:
            self._unpack_layer(layer_arn)

    def _layer_dir(self, layer_arn: str) -> Path:
        return self.sandbox.workdir / "layers" / hashlib.sha256(layer_arn.encode()).hexdigest()[:16]

    def _unpack_layer(self, layer_arn: str) -> None:
        target = self._layer_dir(layer_arn)
        if target.exists():
            return
        layer = self.backend().layers_versions_by_arn(layer_arn)
        if layer is None or not getattr(layer, "code_bytes", b""):
            raise AwsError("InvalidParameterValueException", f"Layer version {layer_arn} has no content")
        _extract_zip(layer.code_bytes, target)

    def caller_of(self, request: Any) -> tuple[str, Callable[[], None]] | None:
        """For SandboxApp: the function whose worker sent `request`, and how to kill that worker."""
        worker = self.worker_calling(request.header("User-Agent") or "")
        if worker is None:
            return None
        return worker.spec.function_name, worker.process.kill

    def worker_calling(self, user_agent: str) -> Worker | None:
        """The live worker whose SDK sent a request with this User-Agent, if a worker sent it."""
        marker = f"app/{WORKER_APP_ID_PREFIX}"
        if marker not in user_agent:
            return None
        token = user_agent.split(marker, 1)[1].split(" ", 1)[0]
        worker = self._workers_by_token.get(token)
        return worker if worker is not None and worker.alive() else None

    def spawn(self, spec: VersionSpec) -> Worker:
        token = uuid.uuid4().hex[:16]
        env = {**self._worker_env(spec), "AWS_SDK_UA_APP_ID": WORKER_APP_ID_PREFIX + token}
        request_r, request_w = os.pipe()
        result_r, result_w = os.pipe()
        try:
            process = self._start_process(env, request_r, result_w)
        except BaseException:
            os.close(request_w)
            os.close(result_r)
            raise
        finally:
            os.close(request_r)
            os.close(result_w)
        worker = Worker(
            process=process,
            requests=os.fdopen(request_w, "w", encoding="utf-8"),
            results_fd=result_r,
            spec=spec,
            token=token,
        )
        self._workers_by_token[token] = worker
        threading.Thread(
            target=_pump_logs, args=(worker,), name=f"sandbox-log-{process.pid}", daemon=True
        ).start()
        self._live_workers[process.pid] = worker
        self.cold_starts += 1
        return worker

    def _start_process(
        self, env: dict[str, str], request_r: int, result_w: int
    ) -> subprocess.Popen[bytes] | ForkedProcess:
        """The worker's process: forked from the zygote, or a new interpreter when forking is off."""
        zygote = self._zygote_for(env) if self.fork_workers else None
        if zygote is not None:
            log_r, log_w = os.pipe()
            try:
                forked = zygote.spawn(str(WORKER_SCRIPT), env, (request_r, result_w, log_w))
            except BaseException:
                os.close(log_r)
                raise
            finally:
                os.close(log_w)
            forked.stdout = os.fdopen(log_r, "rb")
            return forked
        return subprocess.Popen(  # noqa: S603 - our own worker script under the sandbox's interpreter
            [sys.executable, str(WORKER_SCRIPT), str(request_r), str(result_w)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            pass_fds=(request_r, result_w),
            close_fds=True,
        )

    def _zygote_for(self, env: dict[str, str]) -> Zygote | None:
        """The running zygote, started (again) when needed; None once the sandbox stops."""
        with self._zygote_lock:
            if self._stop.is_set():
                return None
            if self._zygote is None or not self._zygote.alive():
                self._zygote = Zygote(zygote_environment(env))
            return self._zygote

    def _worker_env(self, spec: VersionSpec) -> dict[str, str]:
        """The execution environment Lambda gives a function, pointed at the sandbox endpoint."""
        stream = f"{self.clock.now_datetime():%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "HOME": os.environ.get("HOME", str(self.sandbox.workdir)),
            "NO_PROXY": "127.0.0.1,localhost",
            **dict(spec.environment),
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(self._code_dir(spec)),
            "SANDBOX_LAYER_PATHS": os.pathsep.join(self._layer_paths(spec)),
            "AWS_ENDPOINT_URL": self.sandbox.endpoint_url,
            "AWS_REGION": self.sandbox.region,
            "AWS_DEFAULT_REGION": self.sandbox.region,
            # The execution role's temporary credentials, in a session named after the function.
            **self.sandbox.iam.issue(spec.role, spec.function_name).environment(),
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def _layer_paths(self, spec: VersionSpec) -> list[str]:
        """Where each layer's Python code sits once unpacked (python/ and its site-packages, as on Lambda)."""
        site = f"python{sys.version_info.major}.{sys.version_info.minor}"
        paths: list[str] = []
        for arn in spec.layers:
            base = self._layer_dir(arn) / "python"
            paths += [str(base), str(base / "lib" / site / "site-packages")]
        return paths

    # Invocation

    def invoke(
        self, name_or_arn: str, qualifier: str | None, payload: bytes, client_context: str | None = None
    ) -> Outcome:
        """A synchronous invocation (RequestResponse)."""
        name, qualifier = split_name(name_or_arn, qualifier)
        fn, alias_name, version = self.resolve(name, qualifier)
        return self._run(fn, alias_name, version, qualifier, payload, client_context)

    def _run(
        self,
        fn: Any,
        alias_name: str | None,
        version: str,
        qualifier: str | None,
        payload: bytes,
        client_context: str | None,
        request_id: str | None = None,
    ) -> Outcome:
        name = fn.function_name
        resource = f"{name}:{qualifier}" if qualifier else name
        executed_version = version if alias_name else None
        if not self._take_slot(fn):
            metrics.record_lambda(self.sandbox, name, resource, executed_version, throttled=True)
            raise AwsError("TooManyRequestsException", "Rate Exceeded.", 429)
        try:
            event = _parse_event(payload)
            outcome = self._execute(
                fn, version, qualifier, event, client_context, request_id or str(uuid.uuid4())
            )
        finally:
            self._free_slot(name)
        metrics.record_lambda(
            self.sandbox,
            name,
            resource,
            executed_version,
            error=outcome.function_error is not None,
            duration_ms=outcome.duration_ms,
        )
        return outcome

    def _take_slot(self, fn: Any) -> bool:
        """One of the function's concurrent executions (reserved concurrency, else the account's), if free."""
        name = fn.function_name
        limit = fn.reserved_concurrency if fn.reserved_concurrency is not None else MAX_CONCURRENCY
        with self._inflight_lock:
            if self._inflight.get(name, 0) >= int(limit):
                return False
            self._inflight[name] = self._inflight.get(name, 0) + 1
            return True

    def _free_slot(self, name: str) -> None:
        with self._inflight_lock:
            self._inflight[name] -= 1

    def _execute(
        self,
        fn: Any,
        version: str,
        qualifier: str | None,
        event: Any,
        client_context: str | None,
        request_id: str,
    ) -> Outcome:
        pool = self.pool_for(fn, version)
        worker, cold = pool.acquire()
        with self._inflight_lock:
            self.invocations += 1
        request = _worker_request(pool.spec, qualifier, event, client_context, request_id)
        started = time.monotonic()
        result = self._exchange(worker, request)
        elapsed_ms = (time.monotonic() - started) * 1000
        if result is None:
            return self._worker_lost(pool, worker, request_id, elapsed_ms, cold)
        return self._worker_answered(pool, worker, result, request_id, elapsed_ms, cold)

    def _exchange(self, worker: Worker, request: dict[str, Any]) -> dict[str, Any] | None:
        """Send the worker one request and read its result; None if it timed out or died."""
        killer = self._arm_injected_kill(worker)
        try:
            worker.requests.write(json.dumps(request) + "\n")
            worker.requests.flush()
            return worker.read_result(worker.spec.timeout)
        except (BrokenPipeError, OSError):
            return None
        finally:
            if killer is not None:
                killer.cancel()

    def _arm_injected_kill(self, worker: Worker) -> threading.Timer | None:
        """A test asked for this invocation's worker to die part-way through: kill it on a timer."""
        kill_after = self.sandbox.faults.worker_kill(worker.spec.function_name, worker.spec.version)
        if kill_after is None:
            return None
        killer = threading.Timer(kill_after, worker.process.kill)
        killer.daemon = True
        killer.start()
        return killer

    def _worker_lost(
        self, pool: VersionPool, worker: Worker, request_id: str, elapsed_ms: float, cold: bool
    ) -> Outcome:
        """No result: the worker timed out or exited. It is discarded and the invocation fails, as in Lambda."""
        spec = worker.spec
        timed_out = worker.timed_out
        pool.discard(worker)  # kills and reaps it, so its exit status is known below
        lines = worker.take_logs()
        if timed_out:
            error, line = _timeout_error(request_id, spec.timeout, self.clock.now_datetime())
        else:
            error, line = _exit_error(request_id, worker.process.returncode)
        lines.append(line)
        lines.append(f"END RequestId: {request_id}\n")
        lines.append(_report(request_id, elapsed_ms, spec.memory_mb, None))
        self._write_logs(worker, lines)
        payload = json.dumps(error).encode()
        return Outcome(
            request_id, spec.version, payload, "Unhandled", _tail(lines), elapsed_ms, cold, error["errorType"]
        )

    def _worker_answered(
        self,
        pool: VersionPool,
        worker: Worker,
        result: dict[str, Any],
        request_id: str,
        elapsed_ms: float,
        cold: bool,
    ) -> Outcome:
        """The handler returned or raised: the worker goes back to the pool; its logs end with REPORT."""
        spec = worker.spec
        pool.release(worker)
        worker.wait_for_log(f"END RequestId: {request_id}", 1.0)
        lines = worker.take_logs()
        duration = float(result.get("duration_ms", elapsed_ms))
        rss_mb = _max_rss_mb(worker.process.pid)
        lines.append(_report(request_id, duration, spec.memory_mb, result.get("init_ms"), rss_mb))
        self._write_logs(worker, lines)
        worker.invocations += 1
        if "error" in result:
            error = result["error"]
            error["requestId"] = request_id
            payload = json.dumps(error).encode()
            return Outcome(
                request_id,
                spec.version,
                payload,
                "Unhandled",
                _tail(lines),
                duration,
                cold,
                error.get("errorType"),
            )
        payload = str(result["payload"]).encode()
        return Outcome(request_id, spec.version, payload, None, _tail(lines), duration, cold)

    def role_principal(self, spec: VersionSpec) -> Principal:
        return Principal(self.sandbox.account_id, role_arn=spec.role, session_name=spec.function_name)

    def _logs_allowed(self, spec: VersionSpec, group: str, stream: str) -> bool:
        """Lambda sends a function's logs with its execution role: without logs:CreateLogStream and
        logs:PutLogEvents on the stream they are lost ("Sending Lambda function logs to CloudWatch Logs":
        the execution role needs these permissions)."""
        arn = f"arn:aws:logs:{self.sandbox.region}:{self.sandbox.account_id}:log-group:{group}:log-stream:{stream}"
        principal = self.role_principal(spec)
        iam = self.sandbox.iam
        return all(
            iam.allowed(principal, action, arn) for action in ("logs:CreateLogStream", "logs:PutLogEvents")
        )

    def _write_logs(self, worker: Worker, lines: list[str]) -> None:
        """Send the invocation's log lines to CloudWatch Logs (moto), as Lambda does."""
        try:
            from moto.logs.models import logs_backends

            logs = logs_backends[self.sandbox.account_id][self.sandbox.region]
            group = f"/aws/lambda/{worker.spec.function_name}"
            stream = f"{self.clock.now_datetime():%Y/%m/%d}/[{worker.spec.version}]{worker.process.pid}"
            if not self._logs_allowed(worker.spec, group, stream):
                log.info("logs of %s dropped: its role may not write them", worker.spec.function_name)
                return
            logs.ensure_log_group(group)
            if stream not in logs.groups[group].streams:
                logs.create_log_stream(group, stream)
            now_ms = int(self.clock.now() * 1000)
            events = [{"timestamp": now_ms, "message": line.rstrip("\n")} for line in lines if line.strip()]
            if events:
                logs.put_log_events(group, stream, events)
        except Exception:
            log.debug("writing Lambda logs failed", exc_info=True)

    # Asynchronous invocation (InvocationType=Event and event sources)

    def invoke_async(self, name_or_arn: str, qualifier: str | None, payload: bytes) -> str:
        """Queue an Event invocation; returns the request id. Retries and destinations follow the function's
        event-invoke config; the request id stays the same across retries, as in Lambda."""
        fn, _alias, _version = self.resolve(name_or_arn, qualifier)  # validates the target now, like Lambda
        name, qualifier = split_name(name_or_arn, qualifier)
        event = AsyncEvent(
            name, qualifier, payload, str(uuid.uuid4()), fn, event_invoke_config(fn), self.clock.now()
        )
        self._submit_async(event)
        return event.request_id

    def _submit_async(self, event: AsyncEvent) -> None:
        if self._stop.is_set():
            return
        try:
            self._async.submit(self._async_attempt, event)
        except RuntimeError:
            log.debug("async pool closed; event for %s not run", event.name)

    def _async_attempt(self, event: AsyncEvent) -> None:
        if self._stop.is_set():
            return
        event.attempts += 1
        try:
            target, alias_name, version = self.resolve(event.name, event.qualifier)
            outcome = self._run(
                target, alias_name, version, event.qualifier, event.payload, None, event.request_id
            )
        except AwsError as exc:
            if exc.code in REQUEUED_CODES:
                event.attempts -= 1
                self._requeue(event, exc)
                return
            outcome = _service_failure(event, exc.code, exc.message)
        except Exception as exc:
            log.exception("async invocation of %s failed", event.name)
            outcome = _service_failure(event, "ServiceException", str(exc))
        if outcome.function_error is None:
            self._send_to_destination(event, outcome, "Success")
            return
        max_retries = int(event.config.get("MaximumRetryAttempts", 2))
        if event.attempts > max_retries:
            self._send_to_destination(event, outcome, "RetriesExhausted")
            return
        delay = ASYNC_RETRY_DELAYS[min(event.attempts - 1, len(ASYNC_RETRY_DELAYS) - 1)]
        max_age = float(event.config.get("MaximumEventAgeInSeconds", 21600))
        if self.clock.now() + delay - event.enqueued > max_age:
            self._send_to_destination(event, outcome, "EventAgeExceeded")
            return
        self._submit_later(event, delay)

    def _requeue(self, event: AsyncEvent, exc: AwsError) -> None:
        event.requeues += 1
        delay = min(REQUEUE_FIRST_DELAY * 2 ** (event.requeues - 1), REQUEUE_MAX_DELAY)
        max_age = float(event.config.get("MaximumEventAgeInSeconds", 21600))
        if self.clock.now() + delay - event.enqueued > max_age:
            self._send_to_destination(
                event, _service_failure(event, exc.code, exc.message), "EventAgeExceeded"
            )
            return
        self._submit_later(event, delay)

    def _submit_later(self, event: AsyncEvent, delay: float) -> None:
        # Wait on a timer, not in a pool thread: a slow retry schedule must not starve other events.
        timer = threading.Timer(self.clock.real_seconds(delay), self._submit_async, (event,))
        timer.daemon = True
        with self._timers_lock:
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
        timer.start()

    def _send_to_destination(self, event: AsyncEvent, outcome: Outcome, condition: str) -> None:
        name, qualifier, payload, request_id = event.name, event.qualifier, event.payload, event.request_id
        retries = max(event.attempts - 1, 0)
        destinations = event.config.get("DestinationConfig") or {}
        success = outcome.function_error is None
        destination = (destinations.get("OnSuccess" if success else "OnFailure") or {}).get("Destination")
        if not destination:
            if not success:
                log.info(
                    "async invocation %s of %s failed after %d retries; no on-failure destination",
                    request_id,
                    name,
                    retries,
                )
            return
        function_arn = f"arn:aws:lambda:{self.sandbox.region}:{self.sandbox.account_id}:function:{name}:{qualifier or '$LATEST'}"
        try:
            request_payload: Any = json.loads(payload) if payload else {}
        except ValueError:
            request_payload = payload.decode("utf-8", "replace")
        try:
            response_payload: Any = json.loads(outcome.payload) if outcome.payload else None
        except ValueError:
            response_payload = outcome.payload.decode("utf-8", "replace")
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": self.clock.now_datetime().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "requestContext": {
                "requestId": request_id,
                "functionArn": function_arn,
                "condition": condition,
                "approximateInvokeCount": retries + 1,
            },
            "requestPayload": request_payload,
            "responseContext": {"statusCode": 200, "executedVersion": outcome.executed_version},
            "responsePayload": response_payload,
        }
        if not success:
            record["responseContext"]["functionError"] = outcome.function_error
        if not self._destination_allowed(event, destination):
            log.warning(
                "%s: destination %s refused: the execution role may not send to it", name, destination
            )
            return
        self.sandbox.events.deliver_to_arn(destination, record, source=f"lambda:{name}")

    def _destination_allowed(self, event: AsyncEvent, destination: str) -> bool:
        """Lambda sends to a destination with the function's execution role ("Capturing records of Lambda
        asynchronous invocations": the role needs permission to the destination's API)."""
        service = destination.split(":")[2] if destination.count(":") >= 5 else ""
        action = {
            "sqs": "sqs:SendMessage",
            "sns": "sns:Publish",
            "lambda": "lambda:InvokeFunction",
            "events": "events:PutEvents",
        }.get(service)
        if action is None:
            return True
        spec = self.spec_for(event.function, "$LATEST")
        return self.sandbox.iam.allowed(self.role_principal(spec), action, destination)


def _service_failure(event: AsyncEvent, code: str, message: str) -> Outcome:
    body = json.dumps({"errorType": code, "errorMessage": message}).encode()
    return Outcome(event.request_id, event.qualifier or "$LATEST", body, "Unhandled", "", 0.0, False, code)


def split_name(name_or_arn: str, qualifier: str | None) -> tuple[str, str | None]:
    """Function name and qualifier from a name, partial ARN or full ARN plus an optional Qualifier."""
    parts = name_or_arn.split(":")
    if name_or_arn.startswith("arn:"):
        name = parts[6] if len(parts) > 6 else name_or_arn
        in_arn = parts[7] if len(parts) > 7 else None
    elif len(parts) >= 3 and parts[1] == "function":  # 123456789012:function:name[:qualifier]
        name = parts[2]
        in_arn = parts[3] if len(parts) > 3 else None
    else:
        name = parts[0]
        in_arn = parts[1] if len(parts) > 1 else None
    if in_arn and qualifier and in_arn != qualifier:
        raise AwsError(
            "InvalidParameterValueException",
            "The derived qualifier from the function name does not match the specified qualifier.",
        )
    return name, in_arn or qualifier


def event_invoke_config(fn: Any) -> dict[str, Any]:
    configs = getattr(fn, "event_invoke_config", None) or []
    return dict(configs[0].config) if configs else {}


def _extract_zip(data: bytes, target: Path) -> None:
    partial = target.with_name(target.name + f".{uuid.uuid4().hex}.tmp")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(partial)
    except zipfile.BadZipFile as exc:
        raise AwsError("InvalidParameterValueException", f"Could not unzip uploaded file: {exc}") from exc
    try:
        partial.rename(target)
    except OSError:
        # Another thread unpacked the same code first.
        import shutil

        shutil.rmtree(partial, ignore_errors=True)


def _pump_logs(worker: Worker) -> None:
    stream = worker.process.stdout
    if stream is None:
        return
    for raw in iter(stream.readline, b""):
        with worker.log_cond:
            worker.log_lines.append(raw.decode("utf-8", "replace"))
            worker.log_cond.notify_all()
    stream.close()


def _parse_event(payload: bytes) -> Any:
    try:
        return json.loads(payload) if payload else {}
    except ValueError:
        raise AwsError(
            "InvalidRequestContentException",
            "Could not parse request body into json: payload is not valid JSON",
            400,
        ) from None


def _worker_request(
    spec: VersionSpec, qualifier: str | None, event: Any, client_context: str | None, request_id: str
) -> dict[str, Any]:
    """The line lambda_worker.py reads for one invocation."""
    return {
        "request_id": request_id,
        "event": event,
        "timeout_seconds": spec.timeout,
        "invoked_function_arn": spec.function_arn + (f":{qualifier}" if qualifier else ""),
        "client_context": client_context,
    }


def _timeout_error(request_id: str, timeout: float, now: datetime) -> tuple[dict[str, str], str]:
    """The error payload and log line of an invocation that ran out of time."""
    error = {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds",
    }
    line = f"{now:%Y-%m-%dT%H:%M:%S.%fZ} {request_id} Task timed out after {timeout:.2f} seconds\n"
    return error, line


def _exit_error(request_id: str, returncode: int | None) -> tuple[dict[str, str], str]:
    """The error payload and log line of an invocation whose worker process exited."""
    reason = (
        f"signal: {signal.Signals(-returncode).name.lower().removeprefix('sig')}"
        if returncode and returncode < 0
        else f"exit status {returncode}"
    )
    message = f"RequestId: {request_id} Error: Runtime exited with error: {reason}"
    return {"errorType": "Runtime.ExitError", "errorMessage": message}, message + "\n"


def _report(
    request_id: str, duration_ms: float, memory_mb: int, init_ms: float | None, max_used_mb: int | None = None
) -> str:
    billed = max(1, int(-(-duration_ms // 1)))
    line = f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed} ms\tMemory Size: {memory_mb} MB"
    if max_used_mb is not None:
        line += f"\tMax Memory Used: {max_used_mb} MB"
    if init_ms is not None:
        line += f"\tInit Duration: {init_ms:.2f} ms"
    return line + "\n"


def _max_rss_mb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def _tail(lines: list[str]) -> str:
    text = "".join(lines).encode()
    return base64.b64encode(text[-LOG_TAIL_BYTES:]).decode()


OutcomeCallback = Callable[[Outcome], None]
