"""Lambda adapter: read managed functions and aliases, update code, publish versions, create aliases.

Throttling is retried by the client's retry configuration (rollout.aws). ResourceConflictException
(an update or publish while the function's last update is still in progress) is not a throttle, so
it is retried here with a bounded, jittered backoff.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from botocore.exceptions import WaiterError

from rollout import aws
from rollout.deadlines import NO_DEADLINE, Deadline
from rollout.errors import CodeChanged, OutOfTime, Rejected, UpdateFailed
from rollout.targets import AliasRouting, ManagedFunction, managed_function

if TYPE_CHECKING:
    from rollout.check_runner import Invocation

T = TypeVar("T")

CONFLICT_ATTEMPTS = 6
CONFLICT_BASE_DELAY = 1.0
CONFLICT_MAX_DELAY = 8.0
# Lambda usually applies new zip code very quickly (AWS Compute Blog, "Tracking the state of AWS Lambda
# functions": in most cases the function can be modified again right away), so the first look comes after a
# tenth of a second; if it is too early, the second comes at half a second (where the first look used to
# be, so no update is seen later than before), then one every second like botocore's function_updated_v2
# waiter (a large package can take minutes to optimise). Until Lambda reports Successful nothing is
# published: PublishVersion would be refused meanwhile (ResourceConflictException).
UPDATE_FIRST_POLL = 0.1
UPDATE_SECOND_POLL = 0.5
UPDATE_WAIT = {"Delay": 1, "MaxAttempts": 300}

sleep: Callable[[float], None] = time.sleep  # replaced in tests to observe the backoff


class CodeUpdate(NamedTuple):
    code_sha256: str
    revision_id: str


def retry_conflicts(call: Callable[[], T], what: str, deadline: Deadline = NO_DEADLINE) -> T:
    """Run `call`, retrying ResourceConflictException with exponential backoff and jitter; a pause
    that would pass `deadline` is not taken (the conflict is raised instead)."""
    delay = CONFLICT_BASE_DELAY
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        pause = delay / 2 + random.uniform(0, delay / 2)
        try:
            return call()
        except Exception as exc:
            last_attempt = attempt == CONFLICT_ATTEMPTS or pause > deadline.remaining()
            if aws.error_code(exc) != "ResourceConflictException" or last_attempt:
                raise
        sleep(pause)
        delay = min(delay * 2, CONFLICT_MAX_DELAY)
    raise AssertionError(f"unreachable: {what}")


def get_managed_function(name: str, default_config: str) -> ManagedFunction:
    """The function and its rollout tags; Rejected if it is missing, not managed or not a zip function."""
    try:
        resp = aws.client("lambda").get_function(FunctionName=name)
    except Exception as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            raise Rejected(
                "FUNCTION_NOT_FOUND", f"function {name!r} does not exist in this account and region"
            ) from exc
        if aws.error_code(exc) in ("AccessDeniedException", "AccessDenied"):
            # IAM lets the deployer read only functions tagged rollout:managed=true, so on AWS a
            # missing or unmanaged function answers AccessDenied rather than NotFound.
            raise Rejected(
                "FUNCTION_NOT_MANAGED",
                f"function {name!r} is missing or not tagged rollout:managed=true (access denied)",
            ) from exc
        raise
    configuration = resp.get("Configuration", {})
    if configuration.get("PackageType", "Zip") != "Zip":
        raise Rejected(
            "FUNCTION_NOT_ZIP", f"function {name!r} is a container image function; it cannot take a zip"
        )
    managed = managed_function(name, resp.get("Tags") or {}, default_config)
    return dataclasses.replace(
        managed,
        handler=str(configuration.get("Handler") or ""),
        runtime=str(configuration.get("Runtime") or ""),
        has_layers=bool(configuration.get("Layers")),
        environment=dict((configuration.get("Environment") or {}).get("Variables") or {}),
    )


def get_alias(function: str, alias: str) -> AliasRouting | None:
    """Where the alias points now; None if it does not exist."""
    try:
        resp = aws.client("lambda").get_alias(FunctionName=function, Name=alias)
    except Exception as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    weights = (resp.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return AliasRouting(
        version=str(resp["FunctionVersion"]),
        weights={str(k): float(v) for k, v in weights.items()},
        name=alias,
        revision_id=str(resp.get("RevisionId", "")),
    )


def code_sha256(function: str, qualifier: str) -> str:
    resp = aws.client("lambda").get_function_configuration(FunctionName=function, Qualifier=qualifier)
    return str(resp.get("CodeSha256", ""))


def update_code(
    function: str,
    bucket: str,
    key: str,
    object_version: str,
    deadline: Deadline = NO_DEADLINE,
    meanwhile: Callable[[], object] | None = None,
) -> CodeUpdate:
    """Point $LATEST at the exact object version and wait until Lambda has applied it (by `deadline`).

    `meanwhile` runs once Lambda has accepted the update, while it applies it: the time it takes comes off
    the first pause before looking (a read the caller needs anyway costs the start no time of its own)."""
    client = aws.client("lambda")
    params: dict[str, Any] = {"FunctionName": function, "S3Bucket": bucket, "S3Key": key, "Publish": False}
    if object_version:
        params["S3ObjectVersion"] = object_version
    try:
        updated = retry_conflicts(
            lambda: client.update_function_code(**params), "UpdateFunctionCode", deadline
        )
    except Exception as exc:
        if aws.error_code(exc) in ("InvalidParameterValueException", "CodeStorageExceededException"):
            # Lambda's own verdict on the package (e.g. unzipped size, unreadable zip): nothing was applied.
            raise refusal_of_package(exc) from exc
        raise
    waited = 0.0
    if meanwhile is not None:
        began = time.monotonic()
        meanwhile()
        waited = time.monotonic() - began
    configuration = _wait_until_updated(client, function, updated, deadline, waited)
    # Our code's hash comes from our own update: by the time Lambda has applied it, a concurrent upload
    # may have replaced $LATEST, and publishing under its hash would release its code as ours.
    ours = str(updated["CodeSha256"])
    if configuration.get("CodeSha256") != ours:
        raise CodeChanged(f"$LATEST changed to {configuration.get('CodeSha256')} while our update applied")
    return CodeUpdate(code_sha256=ours, revision_id=str(configuration.get("RevisionId") or ""))


# Lambda counts the function's layers with its code: "Deployment package (.zip file archive) size: 250 MB
# (unzipped) ... This quota applies to all the files you upload, including layers and custom runtimes"
# ("Lambda quotas"). So an artifact within Rollout's own limit (artifacts.MAX_UNZIPPED_BYTES, the artifact
# alone) can still be refused: InvalidParameterValueException "Unzipped size must be smaller than <what the
# layers leave> bytes", or in Lambda's other wording "Function code combined with layers exceeds the maximum
# allowed size of 262144000 bytes. The actual size is <n> bytes." (both as quoted in public bug reports).
_TOO_LARGE_WITH_LAYERS = re.compile(
    r"unzipped size must be smaller than (?P<left>\d+) bytes|combined with layers exceeds the maximum",
    re.IGNORECASE,
)


def refusal_of_package(exc: BaseException) -> Rejected:
    """The rejection for UpdateFunctionCode's refusal of the package: TOO_LARGE, the code the artifact check
    uses, when it does not fit beside the function's layers; LAMBDA_REFUSED_CODE otherwise."""
    message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", exc))
    too_large = (
        _TOO_LARGE_WITH_LAYERS.search(message)
        if aws.error_code(exc) == "InvalidParameterValueException"
        else None
    )
    if too_large is None:
        return Rejected("LAMBDA_REFUSED_CODE", f"Lambda refused the package: {message}")
    from rollout.artifacts import MAX_UNZIPPED_BYTES  # only on this refusal

    left = too_large.group("left")
    room = (
        f", and its layers take all but {left} bytes"
        if left is not None and int(left) < MAX_UNZIPPED_BYTES
        else ""
    )
    return Rejected(
        "TOO_LARGE",
        f"Lambda's limit of {MAX_UNZIPPED_BYTES} bytes (250 MB) unzipped counts the function's layers with "
        f"its code{room}: this artifact does not fit (Lambda: {message})",
    )


def _wait_until_updated(
    client: Any, function: str, updated: dict[str, Any], deadline: Deadline, waited: float = 0.0
) -> dict[str, Any]:
    """$LATEST's configuration once Lambda has applied the update, polled with GetFunction (as botocore's
    function_updated_v2 waiter does: GetFunction has its own, higher rate quota than the other control-plane
    calls) at UPDATE_FIRST_POLL and UPDATE_SECOND_POLL, then every UPDATE_WAIT["Delay"] seconds, and no
    more polls than the invocation has seconds left. The last poll's configuration is $LATEST's as Lambda applied it (an
    update Lambda reports applied at once is still read back: another upload may have replaced it since).
    `waited`: seconds already spent since Lambda accepted the update, taken off the first pause."""
    applied = updated.get("LastUpdateStatus", "Successful") == "Successful"
    delay = float(UPDATE_WAIT["Delay"])
    polls = int(min(UPDATE_WAIT["MaxAttempts"], deadline.remaining() // delay))
    configuration: dict[str, Any] = updated
    for poll in range(max(1, polls)):
        if poll or not applied:
            pause = _pause_before(poll, waited, delay)
            if pause:
                sleep(pause)
        configuration = client.get_function(FunctionName=function).get("Configuration") or {}
        status = configuration.get("LastUpdateStatus", "Successful")
        if status == "Successful":
            return configuration
        if status == "Failed":
            break
    if configuration.get("LastUpdateStatus") == "InProgress" and polls < UPDATE_WAIT["MaxAttempts"]:
        raise OutOfTime(
            f"Lambda was still applying the new code after {max(1, polls) * delay:.0f} s, "
            "all the time this invocation had left"
        )
    reason = (
        configuration.get("LastUpdateStatusReason")
        or f"LastUpdateStatus {configuration.get('LastUpdateStatus')}"
    )
    raise UpdateFailed(f"Lambda did not apply the new code: {reason}")


def _pause_before(poll: int, waited: float, delay: float) -> float:
    """Seconds to sleep before look `poll` (from 0) at an update Lambda accepted `waited` seconds ago."""
    if poll == 0:
        return max(0.0, UPDATE_FIRST_POLL - waited)
    if poll == 1:
        return UPDATE_SECOND_POLL - UPDATE_FIRST_POLL
    return delay


def publish_version(
    function: str, update: CodeUpdate, description: str, deadline: Deadline = NO_DEADLINE
) -> str:
    """Publish $LATEST only if it still holds the code we put there (CodeSha256 and RevisionId)."""
    client = aws.client("lambda")

    guard: dict[str, str] = {"CodeSha256": update.code_sha256}
    if update.revision_id:
        guard["RevisionId"] = update.revision_id

    def publish() -> Any:
        return client.publish_version(FunctionName=function, Description=description[:256], **guard)

    try:
        resp = retry_conflicts(publish, "PublishVersion", deadline)
    except Exception as exc:
        if aws.error_code(exc) in ("PreconditionFailedException", "InvalidParameterValueException"):
            raise CodeChanged(str(exc)) from exc
        raise
    return str(resp["Version"])


def create_alias(function: str, alias: str, version: str, description: str) -> bool:
    """Create the alias on `version`; False if it already exists (another release created it first)."""
    client = aws.client("lambda")
    delay = CONFLICT_BASE_DELAY
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            client.create_alias(
                FunctionName=function, Name=alias, FunctionVersion=version, Description=description[:256]
            )
            return True
        except Exception as exc:
            # The same code means "alias exists" or "update in progress": look rather than parse.
            if aws.error_code(exc) != "ResourceConflictException":
                raise
            if get_alias(function, alias) is not None:
                return False
            if attempt == CONFLICT_ATTEMPTS:
                raise
        sleep(delay / 2 + random.uniform(0, delay / 2))
        delay = min(delay * 2, CONFLICT_MAX_DELAY)
    return False


def function_tags(function: str) -> dict[str, str]:
    return dict(aws.client("lambda").get_function(FunctionName=function).get("Tags") or {})


def invoke_once(function: str, qualifier: str, payload: bytes) -> Invocation:
    """Invoke `function:qualifier` once, synchronously, through the client that never retries."""
    from rollout.check_runner import Invocation  # the hooks' check path only

    response = aws.check_invoke_client().invoke(
        FunctionName=function, Qualifier=qualifier, InvocationType="RequestResponse", Payload=payload
    )
    body = response.get("Payload")
    raw = body.read() if body is not None else b""
    return Invocation(
        payload=raw if isinstance(raw, bytes) else str(raw).encode("utf-8"),
        function_error=response.get("FunctionError") or None,
        executed_version=response.get("ExecutedVersion") or None,
    )


def invoke_async(function: str, event: dict[str, Any]) -> None:
    """Hand `event` to `function` as an asynchronous invocation (what EventBridge does with a target).

    Lambda queues it and applies the function's own retries and on-failure destination.
    """
    aws.client("lambda").invoke(
        FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode("utf-8")
    )


def hand_over_now(function: str, event: dict[str, Any]) -> None:
    """`invoke_async` for a caller someone waits on: one attempt with short timeouts, so a throttle
    or an outage is raised at once (standard retries would back off for many seconds)."""
    aws.handover_client().invoke(
        FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode("utf-8")
    )


def invoke_sync(function: str, event: dict[str, Any]) -> tuple[Any, str | None]:
    """Invoke a control-plane function with `event` and wait: (its JSON answer, FunctionError or None).

    Never retried: an action (approve, reject, abort) must not run twice; a second run would be
    refused anyway (a gate is answered once), but its refusal would hide the first run's answer.
    """
    response = aws.check_invoke_client().invoke(
        FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(event).encode("utf-8")
    )
    body = response.get("Payload")
    raw = body.read() if body is not None else b""
    try:
        answer = json.loads(raw or b"null")
    except ValueError:
        answer = None
    return answer, response.get("FunctionError") or None


# --- versions: pre-flight waits and retention --------------------------------------------------------

# published_version_active polls GetFunctionConfiguration every 5 s; SnapStart snapshots take minutes.
ACTIVE_WAIT_DELAY = 5


def wait_version_active(function: str, version: str, deadline: Deadline = NO_DEADLINE) -> None:
    """Wait until `version` is Active (a SnapStart version is Pending while its snapshot is taken;
    shifting traffic to it before then fails invocations), with botocore's published_version_active
    waiter and no more polls than the invocation has time for. OutOfTime if it is still Pending."""
    client = aws.client("lambda")
    polls = int(max(1, deadline.remaining() // ACTIVE_WAIT_DELAY))
    try:
        client.get_waiter("published_version_active").wait(
            FunctionName=function,
            Qualifier=version,
            WaiterConfig={"Delay": ACTIVE_WAIT_DELAY, "MaxAttempts": min(polls, 120)},
        )
    except WaiterError as exc:
        configuration = client.get_function_configuration(FunctionName=function, Qualifier=version)
        if configuration.get("State") == "Pending":
            raise OutOfTime(
                f"version {version} of {function} is still Pending (SnapStart snapshot?)"
            ) from exc
        reason = configuration.get("StateReason") or str(exc)
        raise UpdateFailed(
            f"version {version} of {function} is {configuration.get('State')}: {reason}"
        ) from exc


def version_exists(function: str, version: str) -> bool:
    try:
        aws.client("lambda").get_function_configuration(FunctionName=function, Qualifier=version)
    except Exception as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


def published_versions(function: str) -> list[str]:
    """The function's published version numbers ($LATEST left out)."""
    versions: list[str] = []
    paginator = aws.client("lambda").get_paginator("list_versions_by_function")
    for page in paginator.paginate(FunctionName=function):
        versions.extend(str(v["Version"]) for v in page.get("Versions", []) if v.get("Version") != "$LATEST")
    return versions


def aliases(function: str) -> dict[str, tuple[str, dict[str, float]]]:
    """Every alias of the function: name -> (version, additional version weights)."""
    found: dict[str, tuple[str, dict[str, float]]] = {}
    paginator = aws.client("lambda").get_paginator("list_aliases")
    for page in paginator.paginate(FunctionName=function):
        for alias in page.get("Aliases", []):
            weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            found[str(alias["Name"])] = (
                str(alias["FunctionVersion"]),
                {str(k): float(v) for k, v in weights.items()},
            )
    return found


def versions_in_use(function: str) -> dict[str, str]:
    """Published versions of `function` invoked by qualified ARN outside its aliases, with why: event
    source mappings and provisioned concurrency configurations. Raises when either cannot be listed
    (a refusal included): the caller then deletes nothing.

    Function URLs need no look: a URL takes only an alias or $LATEST (CreateFunctionUrlConfig's
    Qualifier is "The alias name", pattern ((?!^\\d+$)^[0-9a-zA-Z-_]+$), botocore's lambda
    2015-03-31 model). Aliases, weights included, are `aliases`' business.
    """
    found: dict[str, str] = {}
    client = aws.client("lambda")
    # ListEventSourceMappings by function name answers the function's mappings on every qualifier
    # (https://docs.aws.amazon.com/lambda/latest/api/API_ListEventSourceMappings.html); the FunctionArn
    # of each says which.
    for page in client.get_paginator("list_event_source_mappings").paginate(FunctionName=function):
        for mapping in page.get("EventSourceMappings", []):
            version = _version_in(function, str(mapping.get("FunctionArn") or ""))
            if version:
                found.setdefault(version, f"event source mapping {mapping.get('UUID', '?')} invokes it")
    paginator = client.get_paginator("list_provisioned_concurrency_configs")
    for page in paginator.paginate(FunctionName=function):
        for config in page.get("ProvisionedConcurrencyConfigs", []):
            version = _version_in(function, str(config.get("FunctionArn") or ""))
            if version:
                found.setdefault(version, "provisioned concurrency is configured on it")
    return found


def _version_in(function: str, arn: str) -> str:
    """The version number an ARN of `function` is qualified with ('' for none, an alias, $LATEST)."""
    parts = arn.split(":")
    name, qualifier = (parts[6], parts[7]) if len(parts) > 7 else ("", "")
    return qualifier if name == function and qualifier.isdigit() else ""


def delete_version(function: str, version: str) -> None:
    """Delete one published version (never $LATEST, never an unqualified function)."""
    if not version.isdigit():
        raise ValueError(f"refusing to delete {function}:{version}: not a published version")
    aws.client("lambda").delete_function(FunctionName=function, Qualifier=version)


def managed_tags(function: str) -> dict[str, str] | None:
    """The function's tags if it is managed; None if it is not, or is gone (IAM lets Rollout read
    only managed functions, so a refusal means "not managed")."""
    try:
        tags = function_tags(function)
    except Exception as exc:
        if aws.error_code(exc) in ("AccessDeniedException", "AccessDenied", "ResourceNotFoundException"):
            return None
        raise
    return tags if (tags.get("rollout:managed") or "").strip().lower() == "true" else None


def alias_provisioned_concurrency(function: str, alias: str) -> dict[str, Any] | None:
    """The alias's provisioned concurrency (Requested/Allocated/Available, Status); None if it has none
    (or the alias does not exist yet)."""
    try:
        resp = aws.client("lambda").get_provisioned_concurrency_config(FunctionName=function, Qualifier=alias)
    except Exception as exc:
        # Lambda's REST API answers 404 only for what does not exist (ProvisionedConcurrencyConfigNotFound,
        # ResourceNotFound): no configuration. Emulators without the API answer 404 too.
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or aws.error_code(exc) == "ProvisionedConcurrencyConfigNotFoundException":
            return None
        raise
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}
