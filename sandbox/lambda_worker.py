"""A Lambda execution environment: one process, one function version, one invocation at a time.

Run as a script by the sandbox (never imported by it). Requests arrive as JSON lines on the fd in argv[1],
results leave as JSON lines on the fd in argv[2]; stdout/stderr are the function's log stream.
Only the standard library is imported here, so a cold start costs what the function's own imports cost.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
import traceback
from typing import Any


class LambdaContext:
    """The context object Lambda's Python runtime passes to handlers."""

    def __init__(self, request: dict[str, Any], deadline: float) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn = request["invoked_function_arn"]
        self.aws_request_id = request["request_id"]
        self.identity = None
        self.client_context = request.get("client_context")
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _error(exc: BaseException, error_type: str | None = None, message: str | None = None) -> dict[str, Any]:
    frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    return {
        "errorMessage": message if message is not None else str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": frames,
    }


def _load_handler(spec: str) -> Any:
    module_name, _, function_name = spec.rpartition(".")
    if not module_name:
        raise _RuntimeFailure(
            "Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values to unpack"
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as exc:
        raise _RuntimeFailure(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    handler = getattr(module, function_name, None)
    if handler is None:
        raise _RuntimeFailure(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    return handler


class _RuntimeFailure(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _watch_parent(parent: int) -> None:
    # The sandbox may die without closing our pipe cleanly (kill -9): never outlive it.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def main() -> None:
    request_fd, result_fd = int(sys.argv[1]), int(sys.argv[2])
    _enter_task_root()
    requests = os.fdopen(request_fd, "r", encoding="utf-8")
    results = os.fdopen(result_fd, "w", encoding="utf-8")
    handler, init_error, init_ms = _init()
    first = True
    for line in requests:
        request = json.loads(line)
        request_id = request["request_id"]
        deadline = time.monotonic() + request["timeout_seconds"]
        print(
            f"START RequestId: {request_id} Version: {os.environ['AWS_LAMBDA_FUNCTION_VERSION']}", flush=True
        )
        started = time.monotonic()
        outcome = _invoke(handler, init_error, request, deadline)
        outcome["duration_ms"] = (time.monotonic() - started) * 1000
        if first:
            outcome["init_ms"] = init_ms
            first = False
        sys.stdout.flush()
        sys.stderr.flush()
        print(f"END RequestId: {request_id}", flush=True)
        results.write(json.dumps(outcome) + "\n")
        results.flush()


def _enter_task_root() -> None:
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    layer_paths = [p for p in os.environ.get("SANDBOX_LAYER_PATHS", "").split(os.pathsep) if p]
    # Like Lambda: the function's code first, then the layers (/opt/python), then the runtime's packages.
    script_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [task_root, *layer_paths, *[p for p in sys.path if p and p != script_dir]]
    os.chdir(task_root)


def _init() -> tuple[Any, _RuntimeFailure | None, float]:
    """The handler (or why it could not be loaded) and how long loading took, reported on the first REPORT."""
    handler: Any = None
    init_error: _RuntimeFailure | None = None
    init_started = time.monotonic()
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except _RuntimeFailure as exc:
        init_error = exc
    return handler, init_error, (time.monotonic() - init_started) * 1000


def _invoke(
    handler: Any, init_error: _RuntimeFailure | None, request: dict[str, Any], deadline: float
) -> dict[str, Any]:
    """One invocation's result line: the payload, or the error as Lambda's Python runtime reports it."""
    if init_error is not None:
        return {
            "error": {
                "errorMessage": init_error.message,
                "errorType": init_error.error_type,
                "stackTrace": [],
            }
        }
    try:
        result = handler(request["event"], LambdaContext(request, deadline))
        try:
            return {"payload": json.dumps(result)}
        except (TypeError, ValueError) as exc:
            return {"error": _error(exc, "Runtime.MarshalError", f"Unable to marshal response: {exc}")}
    except Exception as exc:  # noqa: BLE001 - a handler error is the function's result
        outcome = {"error": _error(exc)}
        print(
            f"[ERROR] {type(exc).__name__}: {exc}\nTraceback (most recent call last):\n"
            + "".join(traceback.format_tb(exc.__traceback__)),
            flush=True,
        )
        return outcome


if __name__ == "__main__":
    main()
