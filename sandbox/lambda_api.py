"""Lambda's wire API where the sandbox answers or completes moto: Invoke, and the preconditions moto skips
on PublishVersion, UpdateFunctionCode/Configuration, CreateFunction and Create/UpdateAlias."""

from __future__ import annotations

import base64
import io
import json
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sandbox.clock import Clock
from sandbox.protocol import AwsRequest, Response, json_response, service_model
from sandbox.server import AwsError, SandboxApp

if TYPE_CHECKING:
    from sandbox.core import Sandbox
    from sandbox.lambda_runtime import LambdaService


@dataclass
class FunctionState:
    """What the sandbox keeps on each moto function record: its revision and update progress.

    `busy_until` is sandbox time (`Clock.now()`): Lambda applying an update takes sandbox seconds
    (`Sandbox.lambda_update_seconds`), like every other delay the sandbox models.
    """

    revision_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    busy_until: float = 0.0

    def updating(self, clock: Clock) -> bool:
        return clock.now() < self.busy_until

    def changed(self, clock: Clock, seconds: float) -> None:
        self.revision_id = str(uuid.uuid4())
        self.busy_until = clock.now() + seconds


_state_lock = threading.Lock()


def function_state(fn: Any) -> FunctionState:
    with _state_lock:
        state = fn.__dict__.get("_sandbox_state")
        if state is None:
            state = FunctionState()
            fn.__dict__["_sandbox_state"] = state
        return state


# "Function environment variables: 4 KB, for all environment variables associated with the function, in
# aggregate" (Lambda Developer Guide, "Lambda quotas"); Lambda measures the variables as one JSON object and
# quotes it in its refusal ("String measured: {...}").
ENVIRONMENT_LIMIT_BYTES = 4096


def _check_environment_size(environment: Any) -> None:
    variables = (environment or {}).get("Variables") if isinstance(environment, dict) else None
    if not variables:
        return
    measured = json.dumps(variables, separators=(",", ":"))
    if len(measured.encode()) > ENVIRONMENT_LIMIT_BYTES:
        raise AwsError(
            "InvalidParameterValueException",
            "Lambda was unable to configure your environment variables because the environment variables "
            f"you have provided exceeded the 4KB limit. String measured: {measured}",
        )


# Invoke's payload limits: "For synchronous invocations, the maximum payload size is 6 MB. For asynchronous
# invocations, the maximum payload size is 1 MB" (Lambda API reference, Invoke; raised from 256 KB in October
# 2025), MB meaning MiB ("Lambda quotas": "the abbreviation MB (rather than MiB) to refer to 1,024 KB"). Lambda
# refuses a larger request with 413 RequestEntityTooLargeException before it looks for the function.
SYNC_REQUEST_LIMIT_BYTES = 6 * 1024 * 1024
ASYNC_REQUEST_LIMIT_BYTES = 1024 * 1024
# "Invocation payload (request and response): 6 MB each for request and response (synchronous)" ("Lambda
# quotas"). A larger answer reaches the caller as a function error, not as the answer: Lambda measures it
# against 6291556 bytes, the figure its Function.ResponseSizeTooLarge message quotes.
SYNC_RESPONSE_LIMIT_BYTES = 6_291_556


def _check_request_size(payload: bytes, invocation_type: str) -> None:
    if invocation_type == "Event" and len(payload) > ASYNC_REQUEST_LIMIT_BYTES:
        raise AwsError(
            "RequestEntityTooLargeException",
            f"{len(payload)} byte payload is too large for the Event invocation type "
            f"(limit {ASYNC_REQUEST_LIMIT_BYTES} bytes)",
            413,
        )
    if len(payload) > SYNC_REQUEST_LIMIT_BYTES:
        raise AwsError(
            "RequestEntityTooLargeException",
            f"Request must be smaller than {SYNC_REQUEST_LIMIT_BYTES} bytes for the Invoke operation",
            413,
        )


def _response_too_large(payload: bytes) -> bytes | None:
    """The error Lambda answers instead of a synchronous response over its limit; None if it fits."""
    if len(payload) <= SYNC_RESPONSE_LIMIT_BYTES:
        return None
    error = {
        "errorMessage": f"Response payload size ({len(payload)} bytes) exceeded maximum allowed payload "
        f"size ({SYNC_RESPONSE_LIMIT_BYTES} bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    return json.dumps(error).encode()


# "Deployment package (.zip file archive) size: 250 MB (unzipped)", and "This quota applies to all the files
# you upload, including layers and custom runtimes" ("Lambda quotas"). Lambda refuses code whose unzipped size
# with the function's layers is over it with InvalidParameterValueException "Unzipped size must be smaller than
# <what the layers leave> bytes", and layers that no longer fit beside the code with "Layers consume more than
# the available size of 262144000 bytes" (the wording AWS answers, as quoted in public bug reports).
UNZIPPED_LIMIT_BYTES = 262_144_000


def unzipped_size(code: bytes) -> int:
    """The bytes a zip holds once extracted, from its central directory (nothing is decompressed)."""
    try:
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError):
        return 0  # not a zip: moto refuses it on its own terms


def _layers_size(backend: Any, arns: list[str]) -> int:
    """The layers' unzipped bytes; an unknown layer counts nothing (moto refuses it by name)."""
    layers = (backend.layers_versions_by_arn(str(arn)) for arn in arns)
    return sum(_layer_unzipped_size(layer) for layer in layers if layer is not None)


def _layer_unzipped_size(layer: Any) -> int:
    size = layer.__dict__.get("_sandbox_unzipped_size")
    if size is None:  # a layer version's content never changes: measured once
        size = unzipped_size(layer.code_bytes or b"")
        layer.__dict__["_sandbox_unzipped_size"] = size
    return int(size)


def _check_code_fits(code_size: int, layers_size: int) -> None:
    if code_size + layers_size > UNZIPPED_LIMIT_BYTES:
        raise AwsError(
            "InvalidParameterValueException",
            f"Unzipped size must be smaller than {UNZIPPED_LIMIT_BYTES - layers_size} bytes",
        )


def _check_layers_fit(code_size: int, layers_size: int) -> None:
    if code_size + layers_size > UNZIPPED_LIMIT_BYTES:
        raise AwsError(
            "InvalidParameterValueException",
            f"Layers consume more than the available size of {UNZIPPED_LIMIT_BYTES} bytes",
        )


def _function_name(request: AwsRequest) -> str:
    rest = request.path.split("/functions/", 1)[1]
    return unquote(rest.split("/", 1)[0])


def _arn(sandbox: Sandbox, name: str) -> str:
    return f"arn:aws:lambda:{sandbox.region}:{sandbox.account_id}:function:{name}"


class LambdaApi:
    def __init__(self, app: SandboxApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox
        self.lock = threading.RLock()  # serialises control-plane changes, like Lambda's per-function lock

    @property
    def service(self) -> LambdaService:
        return self.sandbox.lambda_service

    def storage(self) -> Any:
        return self.service.backend()._lambdas

    def latest(self, name: str) -> Any:
        from sandbox.lambda_runtime import split_name

        name, _ = split_name(name, None)
        functions = self.storage()._functions
        if name not in functions or functions[name]["latest"] is None:
            raise AwsError(
                "ResourceNotFoundException", f"Function not found: {_arn(self.sandbox, name)}", 404
            )
        return functions[name]["latest"]

    def forward(self, request: AwsRequest, body: dict[str, Any] | None = None) -> Response:
        if body is not None:
            raw = json.dumps(body).encode()
            request._body = raw
            request.environ["wsgi.input"] = io.BytesIO(raw)
            request.environ["CONTENT_LENGTH"] = str(len(raw))
        return self.app.call_moto(request)

    # Invoke

    def invoke(self, request: AwsRequest) -> Response:
        name = _function_name(request)
        qualifier = request.query_value("Qualifier")
        invocation_type = request.header("X-Amz-Invocation-Type") or "RequestResponse"
        payload = request.body
        _check_request_size(payload, invocation_type)
        if invocation_type == "DryRun":
            self.service.resolve(name, qualifier)
            return Response(204, b"", {"x-amzn-RequestId": str(uuid.uuid4())})
        if invocation_type == "Event":
            if payload:
                try:
                    json.loads(payload)
                except ValueError:
                    raise AwsError(
                        "InvalidRequestContentException", "Could not parse request body into json", 400
                    ) from None
            request_id = self.service.invoke_async(name, qualifier, payload)
            return Response(202, b"", {"x-amzn-RequestId": request_id})
        if invocation_type != "RequestResponse":
            raise AwsError("InvalidParameterValueException", f"Unsupported invocation type {invocation_type}")
        outcome = self.service.invoke(name, qualifier, payload, request.header("X-Amz-Client-Context"))
        headers = {
            "Content-Type": "application/json",
            "X-Amz-Executed-Version": outcome.executed_version,
            "x-amzn-RequestId": outcome.request_id,
        }
        answer, function_error = outcome.payload, outcome.function_error
        too_large = _response_too_large(answer)
        if too_large is not None:
            answer, function_error = too_large, "Unhandled"
        if function_error:
            headers["X-Amz-Function-Error"] = function_error
        if (request.header("X-Amz-Log-Type") or "None") == "Tail":
            headers["X-Amz-Log-Result"] = outcome.log_tail
        return Response(200, answer, headers)

    # Control plane preconditions

    def _check_not_updating(self, fn: Any) -> None:
        if function_state(fn).updating(self.sandbox.clock):
            raise AwsError(
                "ResourceConflictException",
                f"The operation cannot be performed at this time. An update is in progress for resource: {_arn(self.sandbox, fn.function_name)}",
                409,
            )

    def _changed(self, fn: Any) -> None:
        """A code or configuration update: a new revision, InProgress while Lambda applies it."""
        function_state(fn).changed(self.sandbox.clock, self.sandbox.lambda_update_seconds)

    def _check_revision(self, current: str, given: str | None, what: str = "GetFunction") -> None:
        if given and given != current:
            raise AwsError(
                "PreconditionFailedException",
                f"The Revision Id provided does not match the latest Revision Id. Call the {what}/GetAlias API to retrieve the latest Revision Id",
                412,
            )

    def create_function(self, request: AwsRequest) -> Response:
        body = request.json()
        runtime = body.get("Runtime")
        if runtime is not None and runtime not in _runtimes():
            raise AwsError(
                "InvalidParameterValueException",
                f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(sorted(_runtimes()))}] or be a valid ARN",
            )
        self._check_role(body.get("Role"))
        _check_environment_size(body.get("Environment"))
        code = body.get("Code") or {}
        if "S3Bucket" in code:
            self._authorize_code_read(
                request, code["S3Bucket"], code.get("S3Key", ""), code.get("S3ObjectVersion")
            )
        self._check_new_code_fits(code, body.get("Layers") or [])
        with self.lock:
            response = self.forward(request)
        if response.status < 300 and "S3Bucket" in code:
            fn = self.latest(body["FunctionName"])
            self._set_code_from_s3(fn, code)
            return json_response(fn.get_configuration(on_create=True), 201)
        return response

    def update_function_code(self, request: AwsRequest) -> Response:
        name = _function_name(request)
        body = request.json()
        with self.lock:
            fn = self.latest(name)
            self._check_not_updating(fn)
            self._check_revision(function_state(fn).revision_id, body.get("RevisionId"))
            if "S3Bucket" in body:
                self._authorize_code_read(
                    request, body["S3Bucket"], body.get("S3Key", ""), body.get("S3ObjectVersion")
                )
            self._check_new_code_fits(body, [layer["Arn"] for layer in fn.layers or []])
            if body.get("DryRun"):
                return json_response(fn.get_configuration())
            publish = bool(body.pop("Publish", False))
            body.pop("RevisionId", None)
            response = self.forward(request, body)
            if response.status >= 300:
                return response
            fn = self.latest(name)
            if "S3Bucket" in body:
                self._set_code_from_s3(fn, body)
            fn.code_or_config_updated = True
            self._changed(fn)
            if publish:
                version = self._publish(fn, "")
                return json_response(version.get_configuration())
            return json_response(fn.get_configuration())

    def update_function_configuration(self, request: AwsRequest) -> Response:
        name = _function_name(request)
        body = request.json()
        self._check_role(body.get("Role"))
        _check_environment_size(body.get("Environment"))
        with self.lock:
            fn = self.latest(name)
            self._check_not_updating(fn)
            self._check_revision(function_state(fn).revision_id, body.pop("RevisionId", None))
            if "Layers" in body:
                _check_layers_fit(
                    unzipped_size(fn.code_bytes or b""), _layers_size(self.service.backend(), body["Layers"])
                )
            response = self.forward(request, body)
            if response.status >= 300:
                return response
            fn = self.latest(name)
            fn.code_or_config_updated = True
            self._changed(fn)
            return json_response(fn.get_configuration())

    def publish_version(self, request: AwsRequest) -> Response:
        name = _function_name(request)
        body = request.json()
        with self.lock:
            fn = self.latest(name)
            self._check_not_updating(fn)
            sha = body.get("CodeSha256")
            if sha and sha != fn.code_sha_256:
                raise AwsError(
                    "InvalidParameterValueException",
                    f"CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({fn.code_sha_256}). Please try again with the CodeSHA256 in $LATEST.",
                )
            self._check_revision(function_state(fn).revision_id, body.get("RevisionId"))
            version = self._publish(fn, body.get("Description") or "")
            return json_response(version.get_configuration(), 201)

    def _publish(self, fn: Any, description: str) -> Any:
        versions_before = len(self.storage()._functions[fn.function_name]["versions"])
        version = self.storage().publish_version(fn.function_name, description)
        if len(self.storage()._functions[fn.function_name]["versions"]) > versions_before:
            self._never_reuse_a_number(version)
            # The copy shares $LATEST's mutable records: give the version its own.
            version.__dict__["_sandbox_state"] = FunctionState()
            version.code = dict(fn.code)
            version.environment_vars = dict(fn.environment_vars or {})
            version.layers = list(fn.layers or [])
        return version

    def _never_reuse_a_number(self, version: Any) -> None:
        """Lambda numbers versions 1, 2, 3... and never reuses the number of a deleted version; moto
        numbers them by count, so after a deletion it would publish a number already used."""
        name = version.function_name
        highest = self.__dict__.setdefault("_highest_version", {})
        others = [int(v.version) for v in self.storage()._functions[name]["versions"] if v is not version]
        used = max([highest.get(name, 0), *others])
        if int(version.version) <= used:
            arns = self.storage()._arns
            arns.pop(version.function_arn, None)
            version.set_version(used + 1)
            arns[version.function_arn] = version
        highest[name] = int(version.version)

    def _check_role(self, role: Any) -> None:
        """Lambda refuses an execution role whose trust policy does not let lambda.amazonaws.com assume it
        ("Lambda execution role": the role's trust policy must name Lambda as principal)."""
        if role and not self.sandbox.iam.service_may_assume(str(role), "lambda.amazonaws.com"):
            raise AwsError(
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
            )

    def _authorize_code_read(
        self, request: AwsRequest, bucket: str, key: str, version_id: str | None
    ) -> None:
        """Lambda fetches code from S3 with the caller's permissions: the caller needs s3:GetObject on the
        object (s3:GetObjectVersion for a pinned S3ObjectVersion), and a refusal comes back as Lambda's
        AccessDeniedException quoting S3's error."""
        if request.principal is None:
            return
        action = "s3:GetObjectVersion" if version_id else "s3:GetObject"
        if not self.sandbox.iam.allowed(request.principal, action, f"arn:aws:s3:::{bucket}/{key}"):
            raise AwsError(
                "AccessDeniedException",
                f"Your access has been denied by S3, please make sure your request credentials have "
                f"permission to GetObject for {bucket}/{key}. S3 Error Code: AccessDenied. "
                "S3 Error Message: Access Denied",
                403,
            )

    def _check_new_code_fits(self, code: dict[str, Any], layer_arns: list[str]) -> None:
        """New code (a ZipFile, or an S3 object, which must exist) fits Lambda's unzipped limit beside the
        function's layers."""
        if "S3Bucket" in code:
            raw = self._s3_code(code["S3Bucket"], code.get("S3Key", ""), code.get("S3ObjectVersion")).value
        elif isinstance(code.get("ZipFile"), str):
            try:
                raw = base64.b64decode(code["ZipFile"])
            except ValueError:
                return  # moto refuses what is not base64
        else:
            return
        _check_code_fits(unzipped_size(raw), _layers_size(self.service.backend(), layer_arns))

    def _s3_code(self, bucket: str, key: str, version_id: str | None) -> Any:
        from moto.s3.exceptions import MissingBucket, MissingKey, MissingVersion
        from moto.s3.models import s3_backends

        s3 = s3_backends[self.sandbox.account_id]["aws"]
        try:
            s3.get_bucket(bucket)
        except MissingBucket:
            raise AwsError(
                "InvalidParameterValueException",
                "Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: The specified bucket does not exist",
            ) from None
        try:
            obj = s3.get_object(bucket, key, version_id=version_id)
        except (MissingKey, MissingVersion):
            obj = None
        except Exception:  # noqa: BLE001 - moto raises assorted errors for bad version ids
            obj = None
        if obj is None:
            code, message = (
                ("NoSuchVersion", "The specified version does not exist.")
                if version_id
                else ("NoSuchKey", "The specified key does not exist.")
            )
            raise AwsError(
                "InvalidParameterValueException",
                f"Error occurred while GetObject. S3 Error Code: {code}. S3 Error Message: {message}",
            )
        return obj

    def _set_code_from_s3(self, fn: Any, code: dict[str, Any]) -> None:
        """moto reads the newest object whatever S3ObjectVersion says: use the version asked for."""
        from moto.awslambda.models import _s3_content

        obj = self._s3_code(code["S3Bucket"], code.get("S3Key", ""), code.get("S3ObjectVersion"))
        fn.code_bytes, fn.code_size, fn.code_sha_256, fn.code_digest = _s3_content(obj)

    # Aliases

    def _validate_routing(self, name: str, primary: str | None, routing: dict[str, Any] | None) -> None:
        weights = (routing or {}).get("AdditionalVersionWeights") or {}
        if len(weights) > 1:
            raise AwsError(
                "InvalidParameterValueException",
                "Number of items in AdditionalVersionWeights cannot be greater than 1",
            )
        for version, weight in weights.items():
            try:
                value = float(weight)
            except (TypeError, ValueError):
                value = -1.0
            if not 0.0 <= value <= 1.0:
                raise AwsError(
                    "ValidationException",
                    f"1 validation error detected: Value '{{{version}={weight}}}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]",
                )
            if not str(version).isdigit():
                raise AwsError(
                    "InvalidParameterValueException",
                    f"Invalid function version {version}. Function version {version} is not a published version.",
                )
            if primary is not None and str(version) == str(primary):
                raise AwsError(
                    "InvalidParameterValueException",
                    f"Invalid function version {version}. Function version {version} is already included in the primary version.",
                )
            if self.storage()._get_version(name, str(version)) is None:
                raise AwsError(
                    "ResourceNotFoundException",
                    f"Function not found: {_arn(self.sandbox, name)}:{version}",
                    404,
                )
        if weights and primary == "$LATEST":
            raise AwsError(
                "InvalidParameterValueException",
                "$LATEST is not supported for an alias pointing to more than 1 version",
            )

    def create_alias(self, request: AwsRequest) -> Response:
        name = _function_name(request)
        body = request.json()
        with self.lock:
            fn = self.latest(name)
            version = str(body.get("FunctionVersion", ""))
            if version != "$LATEST" and self.storage()._get_version(fn.function_name, version) is None:
                raise AwsError(
                    "ResourceNotFoundException",
                    f"Function not found: {_arn(self.sandbox, fn.function_name)}:{version}",
                    404,
                )
            self._validate_routing(fn.function_name, version, body.get("RoutingConfig"))
            return self.forward(request)

    def update_alias(self, request: AwsRequest) -> Response:
        name = _function_name(request)
        alias_name = unquote(request.path.rstrip("/").rsplit("/", 1)[1])
        body = request.json()
        with self.lock:
            fn = self.latest(name)
            aliases = self.storage()._aliases.get(_arn(self.sandbox, fn.function_name), {})
            alias = aliases.get(alias_name)
            if alias is None:
                raise AwsError(
                    "ResourceNotFoundException",
                    f"Alias not found: {_arn(self.sandbox, fn.function_name)}:{alias_name}",
                    404,
                )
            self._check_revision(alias.revision_id, body.get("RevisionId"), "GetFunction")
            primary = str(body.get("FunctionVersion") or alias.function_version)
            if primary != "$LATEST" and self.storage()._get_version(fn.function_name, primary) is None:
                raise AwsError(
                    "ResourceNotFoundException",
                    f"Function not found: {_arn(self.sandbox, fn.function_name)}:{primary}",
                    404,
                )
            routing = body.get("RoutingConfig") if "RoutingConfig" in body else alias.routing_config
            self._validate_routing(fn.function_name, primary, routing)
            body.pop("RevisionId", None)
            response = self.forward(request, body)
            if response.status >= 300:
                return response
            alias.revision_id = str(uuid.uuid4())
            if "RoutingConfig" in body and not (body["RoutingConfig"] or {}).get("AdditionalVersionWeights"):
                alias.routing_config = None
            return json_response(alias.to_json())

    def delete_function(self, request: AwsRequest) -> Response:
        """Lambda refuses to delete a version an alias references ("You can't delete a version that an
        alias references", DeleteFunction's Qualifier in the API reference) with 409
        ResourceConflictException "Unable to delete version because the following aliases reference it:
        [live]" (the wording AWS answers, as quoted in public bug reports). moto deletes it, leaving the
        alias dangling. A version an alias routes a weight to is refused too: the alias needs it as much."""
        name = _function_name(request)
        qualifier = request.query_value("Qualifier")
        with self.lock:
            if qualifier and qualifier != "$LATEST":
                fn = self.latest(name)
                aliases = self.storage()._aliases.get(_arn(self.sandbox, fn.function_name), {})
                referencing = sorted(
                    alias_name
                    for alias_name, alias in aliases.items()
                    if str(alias.function_version) == qualifier
                    or qualifier in ((alias.routing_config or {}).get("AdditionalVersionWeights") or {})
                )
                if referencing:
                    raise AwsError(
                        "ResourceConflictException",
                        "Unable to delete version because the following aliases reference it: "
                        f"[{', '.join(referencing)}]",
                        409,
                    )
            return self.forward(request)

    def list_provisioned_concurrency_configs(self, request: AwsRequest) -> Response:
        """The sandbox models no provisioned concurrency (GetProvisionedConcurrencyConfig answers
        404): a function that exists has none, one that does not is ResourceNotFoundException."""
        self.latest(_function_name(request))
        return json_response({"ProvisionedConcurrencyConfigs": []})

    def list_event_source_mappings(self, request: AwsRequest) -> Response:
        """moto matches FunctionName as a string; Lambda answers an unqualified name with the
        function's mappings on every qualifier, a qualified one with that qualifier's
        (https://docs.aws.amazon.com/lambda/latest/api/API_ListEventSourceMappings.html)."""
        from sandbox.lambda_runtime import split_name

        wanted = request.query_value("FunctionName")
        source = request.query_value("EventSourceArn")
        name, qualifier = split_name(wanted, None) if wanted else ("", None)
        found = []
        for mapping in self.service.backend()._event_source_mappings.values():
            arn_name, arn_qualifier = split_name(str(mapping.function_arn), None)
            if source and mapping.event_source_arn != source:
                continue
            if wanted and (arn_name != name or (qualifier and arn_qualifier != qualifier)):
                continue
            found.append(mapping.get_configuration())
        return json_response({"EventSourceMappings": found})


def _runtimes() -> set[str]:
    model = service_model("lambda")
    if model is None:
        return set()
    return set(model.shape_for("Runtime").enum)


def register_lambda_routes(app: SandboxApp, sandbox: Sandbox) -> LambdaApi:
    api = LambdaApi(app, sandbox)
    app.route("lambda", "Invoke", api.invoke)
    app.route("lambda", "CreateFunction", api.create_function)
    app.route("lambda", "UpdateFunctionCode", api.update_function_code)
    app.route("lambda", "UpdateFunctionConfiguration", api.update_function_configuration)
    app.route("lambda", "PublishVersion", api.publish_version)
    app.route("lambda", "CreateAlias", api.create_alias)
    app.route("lambda", "UpdateAlias", api.update_alias)
    app.route("lambda", "DeleteFunction", api.delete_function)
    app.route("lambda", "ListProvisionedConcurrencyConfigs", api.list_provisioned_concurrency_configs)
    app.route("lambda", "ListEventSourceMappings", api.list_event_source_mappings)
    return api
