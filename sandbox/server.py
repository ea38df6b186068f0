"""The one HTTP endpoint: sandbox handlers first, moto's WSGI app for everything else."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

from sandbox.call_log import OPERATOR, CallLog
from sandbox.clock import Clock
from sandbox.faults import CallKill, Faults
from sandbox.protocol import (
    AwsRequest,
    Response,
    access_denied,
    dumps,
    error_response,
    identify,
    invalid_token,
    json_response,
)

if TYPE_CHECKING:
    from sandbox.iam import Iam

log = logging.getLogger("sandbox")

Handler = Callable[[AwsRequest], Response | None]

CODEDEPLOY_TARGET_PREFIX = "CodeDeploy_20141006."


class AwsError(Exception):
    """An AWS error a handler returns to the client in the request's protocol."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class SandboxApp:
    """WSGI app: fault injection, then routes owned by the sandbox, then moto."""

    def __init__(self, faults: Faults, clock: Clock | None = None) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.faults = faults
        self.clock = clock
        self.moto_app = DomainDispatcherApplication(create_backend_app)
        _remember_backends(self.moto_app)
        self.routes: dict[tuple[str, str], Handler] = {}
        # Set by the Lambda runtime: the function a request's sender runs, and how to kill that
        # sender (for Faults.kill_on_call); None for requests that no Lambda worker made.
        self.caller_of: Callable[[AwsRequest], tuple[str, Callable[[], None]] | None] | None = None
        self.iam: Iam | None = None  # set by the Sandbox; None: nobody is authorised
        # Set by the Sandbox: serves Lambda function URLs (sandbox/function_urls.py).
        self.function_urls: Callable[[dict[str, Any]], Response] | None = None
        self.calls = CallLog()  # every AWS call served (not the /_sandbox/ endpoints)

    def route(self, service: str, operation: str, handler: Handler) -> None:
        self.routes[(service, operation)] = handler

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if str(environ.get("PATH_INFO", "")).startswith("/_sandbox/"):
            return self._send(self._control(environ), start_response)
        if str(environ.get("PATH_INFO", "")).startswith("/_lambda-url/") and self.function_urls is not None:
            return self._send(self._function_url(environ), start_response)
        started = time.thread_time()  # the request is served on this thread, start to answer
        request = identify(environ)
        start_response = self._recording(request, start_response, started)
        doomed = self._caller_to_kill(request)
        if doomed is not None and not doomed[0].after_call:
            doomed[1]()  # the caller dies before its call is served: the call never happens
            return self._send(
                error_response(request.protocol, request.service, "ServiceUnavailable", "caller killed", 503),
                start_response,
            )
        answer = self._answer(request, environ, start_response)
        if doomed is not None:
            # The call is done; the caller dies before it reads the answer, so it never learns.
            doomed[1]()
        return answer

    def _function_url(self, environ: dict[str, Any]) -> Response:
        assert self.function_urls is not None
        try:
            return self.function_urls(environ)
        except Exception:  # noqa: BLE001 - a sandbox bug answers as Lambda's own failure would
            log.error("function URL request failed:\n%s", traceback.format_exc())
            return Response(
                500, b'{"Message": "Internal Server Error"}', {"Content-Type": "application/json"}
            )

    def _recording(
        self, request: AwsRequest, start_response: Callable[..., Any], started: float
    ) -> Callable[..., Any]:
        """start_response that also records the call in `self.calls` once its status is known, with the
        CPU its thread spent serving it (`started`: the thread's CPU clock when the request came in)."""

        def record(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = int(status.split(" ", 1)[0])
            error = next((str(v) for k, v in headers if k.lower() == "x-amzn-errortype"), "")
            principal = request.principal
            self.calls.record(
                request.service or "unknown",
                request.operation or request.method,
                principal.role_name if principal is not None and principal.role_arn else OPERATOR,
                str(principal.session_name or "") if principal is not None else "",
                code,
                error.split(":", 1)[0],
                cpu_ms=(time.thread_time() - started) * 1000,
            )
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return record

    def _caller_to_kill(self, request: AwsRequest) -> tuple[CallKill, Callable[[], None]] | None:
        """The Faults.kill_on_call rule that applies to this request's sender, and how to kill it."""
        caller = self.caller_of(request) if self.caller_of is not None else None
        if caller is None:
            return None
        function_name, kill = caller
        rule = self.faults.call_kill(function_name, request.service, request.operation)
        return (rule, kill) if rule is not None else None

    def _answer(
        self, request: AwsRequest, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        try:
            refused = self._authorize(request) or self._validate(request)
            if refused is not None:
                return self._send(refused, start_response)
            fault = self.faults.call_fault(request.service, request.operation, request.path)
        except AwsError as exc:
            return self._send(self._aws_error(request, exc), start_response)
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must reach the client as an AWS error
            return self._send(self._sandbox_error(request, exc), start_response)
        if fault is None:
            fault = self.faults.call_fault(
                request.service, request.operation, request.path, after_serving=True
            )
            if fault is None:
                return self._serve(request, environ, start_response)
            # Served in full (the service did it); the caller hears the error instead of the answer.
            self._discard(self._serve(request, environ, _unheard))
        return self._send(
            error_response(request.protocol, request.service, fault.error_code, fault.message, fault.status),
            start_response,
        )

    @staticmethod
    def _discard(answer: Iterable[bytes]) -> None:
        for _ in answer:
            pass
        close = getattr(answer, "close", None)
        if close is not None:
            close()

    @staticmethod
    def _aws_error(request: AwsRequest, exc: AwsError) -> Response:
        return error_response(request.protocol, request.service, exc.code, exc.message, exc.status)

    def _sandbox_error(self, request: AwsRequest, exc: Exception) -> Response:
        log.error(
            "sandbox handler failed for %s %s:\n%s",
            request.service,
            request.operation,
            traceback.format_exc(),
        )
        return error_response(
            request.protocol, request.service, "InternalFailure", f"sandbox error: {exc}", 500
        )

    def _serve(
        self, request: AwsRequest, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """The service's own answer: the sandbox's handlers, else moto."""
        try:
            if request.service == "codedeploy":
                return self._send(self._codedeploy(request), start_response)
            handler = self.routes.get((request.service or "", request.operation or ""))
            if handler is not None:
                response = handler(request)
                if response is not None:
                    return self._send(response, start_response)
            if self._hides_missing_objects(request):
                return self._send(self._missing_object_or_denied(request), start_response)
        except AwsError as exc:
            return self._send(self._aws_error(request, exc), start_response)
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must reach the client as an AWS error
            return self._send(self._sandbox_error(request, exc), start_response)
        try:
            return self.moto_app(environ, start_response)
        except AwsError as exc:
            # Raised by sandbox behaviour running inside moto (metric math, alarm reads): the service's
            # 4xx in the request's protocol, never werkzeug's HTML 500.
            return self._send(self._aws_error(request, exc), start_response)

    def _authorize(self, request: AwsRequest) -> Response | None:
        """Who signed the request, and the refusal AWS would answer if IAM does not allow it."""
        from sandbox import wire_params
        from sandbox.iam import InvalidToken
        from sandbox.iam.credentials import CredentialStore

        iam = self.iam
        if iam is None or request.service is None:
            return None
        key = CredentialStore.from_headers(
            str(request.environ.get("HTTP_AUTHORIZATION", "")), request.query_value("X-Amz-Credential")
        )
        token = request.header("X-Amz-Security-Token") or request.query_value("X-Amz-Security-Token")
        try:
            request.principal = iam.principal_for(key, token)
        except InvalidToken:
            return invalid_token(request)
        if request.principal is None or not iam.enforce or request.operation is None:
            return None
        checks = iam.checks(request.service, request.operation, wire_params.parameters(request))
        if checks is None:
            return error_response(
                request.protocol,
                request.service,
                "NotImplemented",
                f"the sandbox does not know how IAM authorises {request.service}:{request.operation}; "
                "add it to sandbox/iam/actions.py",
                501,
            )
        denial = iam.authorize(request.principal, checks)
        if denial is None:
            return None
        return access_denied(request, denial.message(quote_resource=request.service == "s3"))

    def _validate(self, request: AwsRequest) -> Response | None:
        """The service's own answer to a request botocore let through but the service model forbids."""
        from sandbox import validation, wire_params

        if request.service == "s3" and request.operation in (
            "PutObject",
            "CreateMultipartUpload",
            "CopyObject",
        ):
            headers = {
                key[5:].replace("_", "-"): str(value)
                for key, value in request.environ.items()
                if key.startswith("HTTP_X_AMZ_META_")
            }
            key = str(wire_params.parameters(request).get("Key", ""))
            if len(key.encode()) > validation.S3_KEY_LIMIT:
                return error_response(request.protocol, "s3", "KeyTooLongError", "Your key is too long", 400)
            if validation.s3_metadata_size(headers) > validation.S3_METADATA_LIMIT:
                return error_response(
                    request.protocol,
                    "s3",
                    "MetadataTooLarge",
                    "Your metadata headers exceed the maximum allowed metadata size.",
                    400,
                )
            return None
        if request.service not in validation.VALIDATED or request.protocol not in ("json", "rest-json"):
            return None
        operation = wire_params.operation_model(request)
        if operation is None or operation.input_shape is None:
            return None
        problems = validation.violations(
            operation.input_shape, wire_params.parameters(request), service=request.service
        )
        if not problems:
            return None
        return error_response(
            request.protocol, request.service, "ValidationException", validation.message(problems), 400
        )

    def _hides_missing_objects(self, request: AwsRequest) -> bool:
        return (
            request.principal is not None
            and self.iam is not None
            and self.iam.enforce
            and request.service == "s3"
            and request.operation in ("GetObject", "HeadObject")
        )

    def _missing_object_or_denied(self, request: AwsRequest) -> Response:
        """S3 answers a missing key with 404 only to callers allowed s3:ListBucket on the bucket, and with
        403 AccessDenied to others (GetObject: "If the object that you request doesn't exist, the error
        that Amazon S3 returns depends on whether you also have the s3:ListBucket permission")."""
        from sandbox import wire_params

        response = self.call_moto(request)
        if response.status != 404 or b"NoSuchVersion" in response.body:
            return response
        assert self.iam is not None
        bucket = wire_params.parameters(request).get("Bucket", "")
        if self.iam.allowed(request.principal, "s3:ListBucket", f"arn:aws:s3:::{bucket}"):
            return response
        return access_denied(request, "Access Denied")

    def call_moto(self, request: AwsRequest) -> Response:
        """Run the request through moto and capture its response (for handlers that complete moto)."""
        _ = request.body  # make sure the body is buffered so moto can read it
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = dict(headers)
            return lambda data: None

        chunks = self.moto_app(request.environ, start_response)
        body = b"".join(chunks)
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        request.environ["wsgi.input"].seek(0)
        return Response(captured["status"], body, captured["headers"])

    def _control(self, environ: dict[str, Any]) -> Response:
        """The sandbox's own API for a sandbox in another process: health and fault injection.

        GET /_sandbox/health; GET /_sandbox/calls?since=<seq> (the calls served from sequence number
        <seq> on, and `next`, the number to ask from next time); POST /_sandbox/faults/{fail, kill-worker, kill-on-call, drop-event,
        duplicate-event, dead-letter-event, clear} with the keyword arguments of the Faults method of
        the same name as a JSON body (`fail` with `"after_serving": true` serves the call first).
        """
        path = str(environ.get("PATH_INFO", ""))
        if path == "/_sandbox/health":
            return json_response(
                {
                    "status": "ok",
                    "speed": self.clock.speed if self.clock else None,
                    "now": self.clock.now() if self.clock else None,
                }
            )
        if path == "/_sandbox/calls":
            since = parse_qs(str(environ.get("QUERY_STRING", ""))).get("since", ["0"])[0]
            mark = int(since) if since.isdigit() else 0
            return json_response(
                {"next": self.calls.mark(), "calls": [c.as_json() for c in self.calls.since(mark)]}
            )
        actions: dict[str, Callable[..., Any]] = {
            "/_sandbox/faults/fail": self.faults.fail,
            "/_sandbox/faults/kill-worker": self.faults.kill_worker,
            "/_sandbox/faults/kill-on-call": self.faults.kill_on_call,
            "/_sandbox/faults/drop-event": self.faults.drop_event,
            "/_sandbox/faults/duplicate-event": self.faults.duplicate_event,
            "/_sandbox/faults/dead-letter-event": self.faults.dead_letter_event,
            "/_sandbox/faults/clear": self.faults.clear,
        }
        action = actions.get(path)
        if action is None or environ.get("REQUEST_METHOD") != "POST":
            return json_response({"message": f"no such sandbox endpoint: {path}"}, 404)
        from sandbox.protocol import read_body

        try:
            arguments = json.loads(read_body(environ) or b"{}")
            action(**arguments)
        except (TypeError, ValueError) as exc:
            return json_response({"message": f"bad fault request: {exc}"}, 400)
        return json_response({"status": "ok"})

    def _codedeploy(self, request: AwsRequest) -> Response:
        operation = request.operation or ""
        try:
            from sandbox.codedeploy import api
        except ImportError as exc:
            return error_response(
                "json",
                "codedeploy",
                "ServiceUnavailableException",
                f"CodeDeploy is not available in this sandbox: {exc}",
                503,
            )
        try:
            body = request.json()
        except ValueError:
            return error_response(
                "json", "codedeploy", "SerializationException", "Request body is not valid JSON", 400
            )
        role = (
            body.get("serviceRoleArn")
            if operation in ("CreateDeploymentGroup", "UpdateDeploymentGroup")
            else None
        )
        if (
            role
            and self.iam is not None
            and not self.iam.service_may_assume(str(role), "codedeploy.amazonaws.com")
        ):
            # CodeDeploy checks that it may assume the service role when the group is configured.
            return error_response(
                "json",
                "codedeploy",
                "InvalidRoleException",
                f"AWS CodeDeploy does not have the permissions required to assume the role {role}.",
                400,
            )
        try:
            result = api.dispatch(operation, body)
        except api.CodeDeployError as exc:
            return Response(
                400,
                json.dumps({"__type": exc.code, "message": exc.message}).encode(),
                {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": exc.code},
            )
        return Response(200, dumps(result), {"Content-Type": "application/x-amz-json-1.1"})

    @staticmethod
    def _send(response: Response, start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = dict(response.headers)
        declared = next((k for k in headers if k.lower() == "content-length"), None)
        # A HEAD answer declares the length of the body it does not carry: keep what moto declared.
        if declared is None or response.body:
            headers.pop(declared or "", None)
            headers["Content-Length"] = str(len(response.body))
        reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}.get(response.status, "Error")
        start_response(f"{response.status} {reason}", list(headers.items()))
        return [response.body]


def _unheard(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    """start_response for an answer nobody hears (Faults.fail with after_serving)."""
    return lambda data: None


def _remember_backends(app: Any) -> None:
    """moto finds a request's backend by matching its host against every backend's URL patterns, under one
    lock that every request takes (DomainDispatcherApplication.get_application): a few hundred regular
    expressions per call, serialising the sandbox under load. The answer depends on the host alone, so each
    host is matched once."""
    find = app.get_backend_for_host
    known: dict[str | None, Any] = {}

    def get_backend_for_host(host: str | None) -> Any:
        if host not in known:
            known[host] = find(host)
        return known[host]

    app.get_backend_for_host = get_backend_for_host


def _quiet_handler(clock: Clock | None = None) -> type[WSGIRequestHandler]:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class Quiet(MotoRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            log.debug("%s %s %s", self.command, self.path, code)

        def date_time_string(self, timestamp: float | None = None) -> str:
            # The Date header is the service's clock (S3 answers with it, and callers compare it with
            # LastModified): the sandbox's, like every time it reports.
            if timestamp is None and clock is not None:
                timestamp = clock.now()
            return super().date_time_string(timestamp)

    return Quiet


class HttpServer:
    """A threaded werkzeug server on 127.0.0.1 running in a background thread (sandbox/request_threads.py)."""

    def __init__(self, app: SandboxApp, port: int = 0) -> None:
        from sandbox import http_headers
        from sandbox.request_threads import ReusedThreadsWSGIServer

        http_headers.install()
        _QuietHandler = _quiet_handler(app.clock)
        self._server: BaseWSGIServer = ReusedThreadsWSGIServer("127.0.0.1", port, app, _QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
