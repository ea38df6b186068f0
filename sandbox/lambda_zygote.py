"""Forks Lambda workers from a process that has already imported the runtime's libraries.

Run as a script by the sandbox (never imported by it): `python lambda_zygote.py <socket fd>`. At start it
imports what every function of the sandbox imports from the interpreter's site-packages (boto3, botocore,
Powertools), never a function's code or a layer. For each request on the socket (a JSON line with the
worker's environment, and its request, result and log pipes as SCM_RIGHTS) it forks a child that
replaces its whole environment with the version's, closes everything else and runs lambda_worker.main():
the child's task root, layers, sys.path and os.environ are the version's own, as with a fresh interpreter,
and its cold start costs the function's own imports. Each child's pid goes back on the socket, and its exit
status once it has been reaped ("exit <pid> <returncode>", negative for a signal, as subprocess reports).
The zygote exits when the sandbox does (its socket closes, or its parent changes).
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import sys
import threading
import time
import warnings

# The sandbox's runtime loop, next to this script (the standard library only).
import lambda_worker  # type: ignore[import-not-found,unused-ignore]

# Forking with the reaper's thread alive is safe here: the thread holds no lock the child needs.
warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
# What Lambda's runtime and the project's layer bring, imported once here (modules that read the
# environment at import see Lambda's constant AWS_EXECUTION_ENV, set by the sandbox for the zygote too).
# Not the X-Ray SDK: its recorder picks its context (Lambda's or not) from LAMBDA_TASK_ROOT when imported,
# which only the worker's own environment has (preloaded, a traced method that raised lost its subsegment).
PRELOAD = (
    "boto3",
    "boto3.session",
    "botocore.client",
    "botocore.session",
    "botocore.httpsession",
    "botocore.regions",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.tracing",
)
MAX_FDS = 3
# The AWS services the project's functions call. Every cold worker's boto3 parses the service model, the
# endpoint rules and the SDK's endpoint and retry data of each client it makes: about 60% of the CPU the
# workers spent in a burst of twenty releases (py-spy). Parsed once here, forked children share them.
SERVICES = ("cloudwatch", "codedeploy", "dynamodb", "lambda", "s3", "secretsmanager", "sns", "sqs", "sts")
MODEL_TYPES = ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2", "resources-1")
SDK_DATA = ("endpoints", "partitions", "sdk-default-configuration", "_retry")


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - a missing library is imported (or not) by the function itself
            continue
    try:
        _share_botocore_data()
    except Exception:  # noqa: BLE001 - without it every worker parses its own, as a fresh interpreter does
        return


def _share_botocore_data() -> None:
    """Parse the SDK's data files once, in the zygote, for every child it forks.

    botocore caches what it parses per Loader, and a worker's boto3 session makes a new Loader: each cold
    worker parsed the same JSON again. A file parsed here is returned as is to every Loader (keyed by its
    full path, so a botocore the function carries itself still reads its own). Each child has its own
    copy-on-write memory, so nothing one worker does to a model reaches another, and within one worker
    botocore already hands one parsed model to all the clients of a Loader; the one in-place change it makes
    (merging a service's `*-extras` file) gives the same result when repeated.
    """
    import boto3.session
    from botocore import loaders
    from botocore.exceptions import DataNotFoundError, UnknownServiceError

    parsed: dict[str, object] = {}
    parse = loaders.JSONFileLoader.load_file

    def load_file(self: loaders.JSONFileLoader, file_path: str) -> object:
        found = parsed.get(file_path)
        if found is None:
            found = parse(self, file_path)
            if found is not None:
                parsed[file_path] = found
        return found

    loaders.JSONFileLoader.load_file = load_file
    # Each Loader also lists the services its search path holds (a directory walk over every service's
    # folder, about 10 ms) before it loads its first model of each type: listed once here per search path.
    listed: dict[tuple[object, ...], list[str]] = {}
    list_services = loaders.Loader.list_available_services

    def list_available_services(self: loaders.Loader, type_name: str) -> list[str]:
        key = (tuple(self.search_paths), type_name)
        found = listed.get(key)
        if found is None:
            found = listed[key] = list_services(self, type_name)
        return list(found)

    loaders.Loader.list_available_services = list_available_services
    # A boto3 Session's loader: botocore's search path and boto3's own data (the resource models).
    loader = boto3.session.Session()._loader
    for type_name in ("service-2", "resources-1"):
        loader.list_available_services(type_name)
    for name in SDK_DATA:
        try:
            loader.load_data(name)
        except DataNotFoundError:
            continue
    for service in SERVICES:
        for model_type in MODEL_TYPES:
            try:
                loader.load_service_model(service, model_type)
            except (DataNotFoundError, UnknownServiceError):
                continue


def _receive(sock: socket.socket, buffer: bytearray) -> tuple[dict[str, object], list[int]] | None:
    """One request: its JSON line and the pipes that came with it; None when the sandbox has gone."""
    fds: list[int] = []
    while b"\n" not in buffer:
        data, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(MAX_FDS * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - (len(payload) % received.itemsize)])
                fds.extend(received)
        if not data:
            return None
        buffer.extend(data)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return json.loads(line), fds


def _child(request: dict[str, object], fds: list[int]) -> None:
    """In the forked child: become the version's worker; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        request_r, result_w, log_w = fds
        os.dup2(log_w, 1)
        os.dup2(log_w, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        low, high = sorted((request_r, result_w))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 16)
        environment = request["env"]
        assert isinstance(environment, dict)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in environment.items()})
        _forget_shadowed(environment)
        sys.argv = [str(request["script"]), str(request_r), str(result_w)]
        lambda_worker.main()
        code = 0
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the zygote
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _forget_shadowed(environment: dict[str, object]) -> None:
    """A package the function's code or a layer carries itself is imported from there, as on Lambda: the
    preloaded copy of any top-level package they also hold is forgotten."""
    roots = [str(environment.get("LAMBDA_TASK_ROOT", ""))]
    roots += [p for p in str(environment.get("SANDBOX_LAYER_PATHS", "")).split(os.pathsep) if p]
    carried: set[str] = set()
    for root in roots:
        try:
            names = os.listdir(root)
        except OSError:
            continue
        carried.update(name.removesuffix(".py") for name in names)
    for name in list(sys.modules):
        if name.split(".", 1)[0] in carried and name.split(".", 1)[0] not in sys.stdlib_module_names:
            del sys.modules[name]


def _reaper(sock: socket.socket, lock: threading.Lock, children: threading.Semaphore) -> None:
    """Reap every child and report how it ended."""
    while True:
        children.acquire()  # one per fork: waitpid has a child to wait for
        pid, status = os.waitpid(-1, 0)
        with lock:
            sock.sendall(f"exit {pid} {os.waitstatus_to_exitcode(status)}\n".encode())


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def main() -> None:
    control = int(sys.argv[1])
    _preload()
    sock = socket.socket(fileno=control)
    lock = threading.Lock()
    children = threading.Semaphore(0)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    threading.Thread(target=_reaper, args=(sock, lock, children), daemon=True).start()
    with lock:
        sock.sendall(b"ready\n")
    buffer = bytearray()
    while True:
        received = _receive(sock, buffer)
        if received is None:
            os._exit(0)
        request, fds = received
        sys.stdout.flush()
        sys.stderr.flush()
        with lock:  # no report is half-written in the child's copy of the socket
            pid = os.fork()
            if pid == 0:
                _child(request, fds)
            sock.sendall(f"pid {request['id']} {pid}\n".encode())
        children.release()
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    main()
