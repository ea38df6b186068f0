"""The operations shared by the commands, the demo and the dashboard: onboarding, uploading, stopping, status."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from cli import model
from cli.backend import ALARMS_TAG, ALIAS_TAG, CONFIG_TAG, MANAGED_TAG, Backend
from cli.errors import CliError, ExitCode
from cli.render import FunctionStatus
from rollout.actions import unproven_live, went_out
from rollout.ledger import Release, now_iso

# Releases read back, past rejected, unchanged and queued uploads, to the one that last left the alias
# on a version, to tell whether that version went live unproven.
UNPROVEN_DEPTH = 20


@dataclass
class Registration:
    function: str
    function_arn: str
    alias: str
    config: str
    alarms: list[str]
    tags: dict[str, str]
    alias_version: str = ""
    # Why the canary alarms cannot stop a deployment within the config's first traffic step ("" if they can).
    warning: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "function_arn": self.function_arn,
            "alias": self.alias,
            "alias_version": self.alias_version or None,
            "deployment_config": self.config,
            "warning": self.warning or None,
            "alarms": self.alarms,
            "tags": self.tags,
        }


def register_function(
    backend: Backend,
    function: str,
    alias: str = "live",
    config: str = "Canary10Percent5Minutes",
    alarms: list[str] | None = None,
) -> Registration:
    """Tag `function` for Rollout after checking that everything the tags name exists."""
    alias = model.check_alias_name(alias)
    config = model.check_config_name(config)
    alarm_names = model.check_alarm_names(alarms or [])
    fn = backend.get_function(function)
    arn = str(fn["Configuration"]["FunctionArn"])
    if not model.is_builtin_config(config) and backend.deployment_config_exists(config) is False:
        raise CliError(
            f"deployment config {config} does not exist",
            ExitCode.USAGE,
            hint="use a built-in one (" + ", ".join(model.BUILTIN_CONFIGS) + ") or create it first",
        )
    missing = backend.missing_alarms(alarm_names)
    if missing:
        raise CliError(
            f"alarm not found: {', '.join(missing)}",
            ExitCode.NOT_FOUND,
            hint="create the alarm first; a missing alarm would fail every deployment",
        )
    tags = {MANAGED_TAG: "true", ALIAS_TAG: alias, CONFIG_TAG: config}
    remove: list[str] = []
    if alarm_names:
        tags[ALARMS_TAG] = " ".join(alarm_names)
    elif ALARMS_TAG in (fn.get("Tags") or {}):
        remove.append(ALARMS_TAG)  # re-registering without --alarm stops watching the old ones
    backend.tag_function(arn, tags, remove)
    live = backend.get_alias(function, alias)
    return Registration(
        function,
        arn,
        alias,
        config,
        alarm_names,
        tags,
        str(live["FunctionVersion"]) if live else "",
        model.config_warning(function, alias, config),
    )


@dataclass
class Upload:
    function: str
    bucket: str
    key: str
    version_id: str
    size: int
    sha256: str
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id or None,
            "size": self.size,
            "sha256": self.sha256,
            "metadata": self.metadata,
        }


def upload_artifact(
    backend: Backend,
    function: str,
    data: bytes,
    commit: str = "",
    message: str = "",
    author: str = "",
    hotfix: bool = False,
) -> Upload:
    """Put the artifact at FUNCTION/<timestamp>-<sha8>.zip with its metadata; the upload starts the release."""
    bucket = backend.stack.bucket
    key = model.artifact_key(function, data)
    metadata = {
        name: model.metadata_value(value)
        for name, value in (("commit", commit), ("message", message), ("author", author))
        if value
    }
    if hotfix:
        metadata["hotfix"] = "true"  # x-amz-meta-hotfix: AllAtOnce, if the function's tags allow it
    put = backend.upload(bucket, key, data, metadata)
    return Upload(
        function=function,
        bucket=bucket,
        key=key,
        version_id=str(put.get("VersionId") or ""),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        metadata=metadata,
    )


def check_managed(backend: Backend, function: str) -> str | None:
    """Refuse an unmanaged function; returns a warning when Lambda cannot be read (upload-only roles)."""
    try:
        fn = backend.get_function(function)
    except CliError as err:
        if err.code != ExitCode.AWS_ERROR:
            raise
        return f"cannot check {function} ({err.message}); uploading anyway"
    if (fn.get("Tags") or {}).get(MANAGED_TAG) != "true":
        raise CliError(
            f"function {function} is not managed by Rollout (tag {MANAGED_TAG}=true missing)",
            ExitCode.USAGE,
            hint=f"onboard it first: rollout register {function}",
        )
    return None


def abort_deployment(backend: Backend, deployment_id: str) -> dict[str, Any]:
    """StopDeployment with rollback; CONFLICT when the deployment has already completed (`rollout abort`)."""
    info = backend.get_deployment(deployment_id)
    if info.get("status") in model.DEPLOYMENT_DONE:
        raise CliError(
            f"deployment {deployment_id} already completed ({info.get('status')}); nothing to stop",
            ExitCode.CONFLICT,
        )
    unrecorded = _record_abort_request(backend, deployment_id, info)
    try:
        stopped = backend.stop_deployment(deployment_id)
    except CliError as err:
        if "DeploymentAlreadyCompletedException" in err.message:
            raise CliError(
                f"deployment {deployment_id} completed before it could be stopped; nothing to stop",
                ExitCode.CONFLICT,
            ) from err
        raise
    result = {
        "deployment_id": deployment_id,
        "stop_status": stopped.get("status"),
        "status_message": stopped.get("statusMessage", ""),
    }
    return {**result, "warning": unrecorded} if unrecorded else result


def _record_abort_request(backend: Backend, deployment_id: str, info: dict[str, Any]) -> str:
    """Name the caller on the deployment's release before the stop, so its ending (MANUAL_STOP) says who
    asked however soon CodeDeploy's stop event arrives; a warning when that could not be written. Best
    effort: a stop is a safety action, and a record that cannot be written (no ledger access, a
    throttle) must not hold it up."""
    try:
        release = backend.ledger.of_deployment(deployment_id, lambda _id: info)
        if release is not None and not release.is_terminal:
            backend.ledger.update(
                release.function,
                release.release_id,
                abort_requested_by=backend.caller(),
                abort_requested_at=now_iso(),
            )
    except Exception as exc:  # noqa: BLE001 - the stop goes ahead; the operator is told
        return f"could not record who asked to stop {deployment_id}: {exc}"
    return ""


def function_status(backend: Backend, function: str) -> FunctionStatus:
    """One managed function as `rollout status` shows it: latest release, lock, queue, alias."""
    ledger = backend.ledger
    latest = ledger.releases(function, limit=1)
    row = FunctionStatus(
        function=function,
        latest=latest[0] if latest else None,
        lock=ledger.get_lock(function),
        queued=len(ledger.queued(function)),
    )
    try:
        fn = backend.get_function(function)
    except CliError as err:
        if err.code != ExitCode.NOT_FOUND:
            raise
        return row
    row.alias = (fn.get("Tags") or {}).get(ALIAS_TAG, "live")
    alias = backend.get_alias(function, row.alias)
    row.live_version = str(alias["FunctionVersion"]) if alias else ""
    weights = ((alias or {}).get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    row.alias_weights = {str(v): float(w) for v, w in weights.items()}
    if row.live_version and row.latest is not None:
        row.unproven = unproven_live(_back_to_newest_went_out(backend, row.latest), row.live_version)
    return row


def _back_to_newest_went_out(backend: Backend, latest: Release) -> list[Release]:
    """The newest releases, back to the one that last left the alias on a version (its own read only
    when the latest did not: a rejected, unchanged or queued upload moved nothing)."""
    if went_out(latest):
        return [latest]
    return backend.ledger.releases(latest.function, limit=UNPROVEN_DEPTH)


def status_names(backend: Backend) -> list[str]:
    """Every function `rollout status` lists: tagged as managed, or holding a ledger lock."""
    return sorted(
        set(backend.managed_functions())
        | {lock["function"] for lock in backend.ledger.locks() if lock.get("function")}
    )
