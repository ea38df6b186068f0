"""What the command knows without AWS: names, artifact rules, outcomes, and a deployment's picture."""

from __future__ import annotations

import hashlib
import zipfile
from base64 import b64encode
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.errors import CliError, ExitCode
from rollout import canary_alarms, targets
from rollout.actions import went_live_unproven
from rollout.ledger import Release
from rollout.outcomes import failed_hook_reason
from rollout.states import ReasonCode, State

# The tag rules are the control plane's own: the CLI checks names exactly as the deployer will.
BUILTIN_CONFIGS = tuple(sorted(targets.BUILTIN_SHORT_NAMES))
LAMBDA_BUILTIN_PREFIX = f"{targets.BUILTIN_PREFIX}Lambda"
ALIAS_PATTERN = targets.ALIAS_NAME
CONFIG_PATTERN = targets.CONFIG_NAME
MAX_ALARMS = targets.MAX_GROUP_ALARMS

# Releases that count as a success for `deploy --wait`: the new code is live, or it already was.
SUCCESS_STATES = frozenset({State.SUCCEEDED, State.BOOTSTRAPPED, State.UNCHANGED})
DEPLOYMENT_DONE = frozenset({"Succeeded", "Failed", "Stopped"})
LIFECYCLE_ORDER = ("Start", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic", "End")
# S3 user metadata travels in HTTP headers; AWS limits all of it to 2 KB.
METADATA_VALUE_LIMIT = 600


def full_config_name(name: str) -> str:
    """The CodeDeploy config name for a short built-in name; full and custom names stay as given."""
    return targets.deployment_config_name(name)


def is_builtin_config(name: str) -> bool:
    return name in BUILTIN_CONFIGS or name.removeprefix(LAMBDA_BUILTIN_PREFIX) in BUILTIN_CONFIGS


def config_warning(function: str, alias: str, config: str) -> str:
    """The warning a release under a built-in `config` will carry when its canary alarms cannot act
    within the first traffic step (a custom configuration is read when a release starts)."""
    full = targets.deployment_config_name(config)
    if not targets.is_builtin_config(full):
        return ""
    definitions = canary_alarms.alarm_definitions("", canary_alarms.CanaryScope(function, alias, "1"), None)
    first_step = canary_alarms.first_step_seconds(full, None)
    return canary_alarms.step_outruns_alarms(full, first_step, canary_alarms.seconds_to_fire(definitions))


def check_alias_name(alias: str) -> str:
    if not ALIAS_PATTERN.fullmatch(alias):
        raise CliError(
            f"{alias!r} is not a valid alias name",
            ExitCode.USAGE,
            hint="letters, digits, - and _, up to 128 characters, not only digits",
        )
    return alias


def check_config_name(config: str) -> str:
    if config.startswith("CodeDeployDefault.") and not is_builtin_config(config):
        raise CliError(
            f"{config} is not a Lambda deployment config",
            ExitCode.USAGE,
            hint="built-in: " + ", ".join(BUILTIN_CONFIGS),
        )
    if not CONFIG_PATTERN.fullmatch(config):
        raise CliError(f"{config!r} is not a valid deployment config name", ExitCode.USAGE)
    return config


def check_alarm_names(alarms: list[str]) -> list[str]:
    names = list(dict.fromkeys(a.strip() for a in alarms if a.strip()))
    bad = [a for a in names if " " in a]
    if bad:
        # The tag holds the names space separated, so a name with a space could not be read back.
        raise CliError(f"alarm names cannot contain spaces: {', '.join(bad)}", ExitCode.USAGE)
    if len(names) > MAX_ALARMS - 1:
        raise CliError(
            f"{len(names)} alarms given; a deployment group watches at most {MAX_ALARMS}, "
            "and Rollout adds its own per-release alarm",
            ExitCode.USAGE,
        )
    return names


def read_artifact(path: Path) -> bytes:
    """The artifact's bytes, or a USAGE error saying what is wrong with the file."""
    if not path.exists():
        raise CliError(f"{path}: no such file", ExitCode.USAGE)
    if not path.is_file():
        raise CliError(f"{path}: not a file", ExitCode.USAGE)
    data = path.read_bytes()
    if not data:
        raise CliError(f"{path}: the file is empty", ExitCode.USAGE)
    if path.suffix.lower() != ".zip":
        raise CliError(
            f"{path}: an artifact must be a .zip file", ExitCode.USAGE, hint="build it with `zip -r fn.zip .`"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CliError(f"{path}: not a valid zip file ({exc})", ExitCode.USAGE) from exc
    if broken is not None:
        raise CliError(f"{path}: the zip is corrupt (bad CRC in {broken})", ExitCode.USAGE)
    if not names:
        raise CliError(f"{path}: the zip is empty", ExitCode.USAGE)
    return data


def artifact_key(function: str, data: bytes, now: datetime | None = None) -> str:
    """`FUNCTION/<UTC timestamp>-<sha8>.zip`: sorts by upload time, names the exact bytes."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{function}/{stamp}-{hashlib.sha256(data).hexdigest()[:8]}.zip"


def metadata_value(text: str) -> str:
    """A value safe for an x-amz-meta header: ASCII as is, anything else RFC 2047 encoded as S3 does."""
    text = " ".join(text.split())[:METADATA_VALUE_LIMIT]
    if text.isascii():
        return text
    return f"=?UTF-8?B?{b64encode(text.encode()).decode()}?="


def release_exit_code(state: State | str) -> ExitCode:
    return ExitCode.OK if State(state) in SUCCESS_STATES else ExitCode.RELEASE_FAILED


def deployment_exit_code(status: str, release: Release | None = None) -> ExitCode:
    """OK for a deployment CodeDeploy completed, unless its release went live unproven (fail closed)."""
    if release is not None and went_live_unproven(release):
        return ExitCode.RELEASE_FAILED
    return ExitCode.OK if status == "Succeeded" else ExitCode.RELEASE_FAILED


def _unproven_failure(release: Release) -> str:
    return failed_hook_reason(release) or release.reason or "Rollout failed it"


def release_why(release: Release) -> str:
    """One line on why a release is where it is."""
    if went_live_unproven(release):
        return (
            f"v{release.target_version} went live UNPROVEN: CodeDeploy completed its deployment although "
            f"{_unproven_failure(release)}; while it is live, run `rollout rollback {release.function}`"
        )
    # A release that went live needs no excuse: a reason left from its wait in the queue would mislead.
    if release.reason and release.state not in (State.SUCCEEDED, State.BOOTSTRAPPED):
        return release.reason
    if release.reason_code and release.state not in (State.SUCCEEDED, State.BOOTSTRAPPED):
        return release.reason_code
    gate = release.approval or {}
    if release.state == State.DEPLOYING and gate.get("status") == "AWAITING":
        return (
            f"awaiting approval before {gate.get('position')} until {gate.get('deadline_at')}: "
            f"rollout approve {release.deployment_id} (or reject)"
        )
    return {
        State.RECEIVED: "received, being checked",
        State.QUEUED: "waiting for the active deployment to end",
        State.DEPLOYING: "deployment in progress",
        State.SUCCEEDED: "new version live",
        State.BOOTSTRAPPED: "first release: alias created on it",
        State.UNCHANGED: "same code as the live version",
        State.SUPERSEDED: "a newer upload replaced it in the queue",
    }.get(release.state, "")


def unproven_attention(function: str, alias: str, unproven: Release | None) -> list[str]:
    """What to do when the alias serves a version that went live unproven (pure): roll it back."""
    if unproven is None:
        return []
    return [
        f"{function}: v{unproven.target_version} is LIVE on alias {alias} but UNPROVEN: CodeDeploy completed "
        f"deployment {unproven.deployment_id or '?'} (release {unproven.release_id}) although "
        f"{_unproven_failure(unproven)}.",
        f"  Roll it back to the last version that went live properly: rollout rollback {function}",
    ]


def alias_attention(
    function: str, alias: str, weights: dict[str, float], latest: Release | None
) -> list[str]:
    """What an operator must do about the alias, when Rollout cannot repair it itself (pure)."""
    split = ", ".join(f"v{v} {w:.0%}" for v, w in sorted(weights.items()))
    if latest is not None and latest.reason_code == ReasonCode.ROLLBACK_FAILED:
        where = f"it still sends {split} of its traffic elsewhere" if split else "check where it points"
        back = latest.current_version or "<the previous version>"
        return [
            f"{function}: CodeDeploy's rollback of v{latest.target_version or '?'} failed (release "
            f"{latest.release_id}); alias {alias} may be split: {where}.",
            f"  Put all traffic back on v{back}: aws lambda update-alias --function-name {function} "
            f"--name {alias} --function-version {back} --routing-config AdditionalVersionWeights={{}}",
            f"  Then `rollout status {function}` should show no split; queued releases start on the "
            "reconciler's next run.",
        ]
    if split and (latest is None or latest.state != State.DEPLOYING):
        return [
            f"{function}: alias {alias} is split ({split}) but no Rollout deployment is running; "
            f"a deployment started outside Rollout, or one that ended badly, left it so. See "
            f"`rollout history {function}`.",
        ]
    return []


def versions_text(release: Release) -> str:
    current, target = release.current_version, release.target_version
    if current and target:
        return f"{current} → {target}"
    if target:
        return f"→ {target}"
    return "-"


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when_text(release: Release) -> str:
    """When the release arrived, and how long it took once it ended."""
    received = parse_time(release.received_at)
    if received is None:
        return "-"
    text = received.strftime("%Y-%m-%d %H:%M:%SZ")
    completed = parse_time(release.completed_at)
    if completed is not None:
        text += f" ({duration_text((completed - received).total_seconds())})"
    return text


def duration_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class LifecycleEvent:
    name: str
    status: str
    started: str = ""
    ended: str = ""
    message: str = ""


@dataclass
class DeploymentSnapshot:
    """A deployment as the operator sees it at one moment: CodeDeploy, the alias and the ledger together."""

    deployment_id: str
    status: str
    config: str = ""
    application: str = ""
    group: str = ""
    function: str = ""
    alias: str = ""
    current_version: str = ""
    target_version: str = ""
    traffic_on_target: float = 0.0
    lifecycle: list[LifecycleEvent] = field(default_factory=list)
    error_code: str = ""
    error_message: str = ""
    rollback_message: str = ""
    created: str = ""
    completed: str = ""
    release: Release | None = None

    @property
    def done(self) -> bool:
        return self.status in DEPLOYMENT_DONE

    @property
    def hook_results(self) -> dict[str, Any]:
        return self.release.hook_results if self.release else {}

    def outcome_text(self) -> str:
        if self.release is not None and went_live_unproven(self.release):
            return f"{self.status} in CodeDeploy, but {release_why(self.release)}"
        if self.status == "Succeeded":
            return f"Succeeded: version {self.target_version} is live on {self.alias}"
        if self.status in {"Failed", "Stopped"}:
            why = self.error_message or self.error_code or "no reason given"
            if self.release and self.release.reason:
                why = self.release.reason
            back = f", traffic back on version {self.current_version}" if self.current_version else ""
            return f"{self.status}{back}: {why}"
        return self.status

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["release"] = self.release.to_public() if self.release else None
        data["done"] = self.done
        return data


def _iso(value: Any) -> str:
    parsed = parse_time(value) if isinstance(value, str | datetime) else None
    return parsed.isoformat().replace("+00:00", "Z") if parsed else ""


def build_snapshot(
    info: dict[str, Any],
    targets: list[dict[str, Any]],
    alias: dict[str, Any] | None,
    release: Release | None,
) -> DeploymentSnapshot:
    """Combine GetDeployment, the Lambda target, GetAlias and the ledger's release into one picture."""
    snap = DeploymentSnapshot(
        deployment_id=str(info.get("deploymentId", "")),
        status=str(info.get("status", "Unknown")),
        config=str(info.get("deploymentConfigName", "")),
        application=str(info.get("applicationName", "")),
        group=str(info.get("deploymentGroupName", "")),
        created=_iso(info.get("createTime")),
        completed=_iso(info.get("completeTime")),
        release=release,
    )
    error = info.get("errorInformation") or {}
    snap.error_code = str(error.get("code", ""))
    snap.error_message = str(error.get("message", ""))
    snap.rollback_message = str((info.get("rollbackInfo") or {}).get("rollbackMessage", ""))
    target = targets[0] if targets else {}
    fn_info = target.get("lambdaFunctionInfo") or {}
    snap.function = str(fn_info.get("functionName") or (release.function if release else "") or snap.group)
    snap.alias = str(fn_info.get("functionAlias") or (release.alias if release else ""))
    snap.current_version = str(fn_info.get("currentVersion") or (release.current_version if release else ""))
    snap.target_version = str(fn_info.get("targetVersion") or (release.target_version if release else ""))
    events = {e.get("lifecycleEventName"): e for e in target.get("lifecycleEvents", [])}
    names = [n for n in LIFECYCLE_ORDER if n in events] + [n for n in events if n not in LIFECYCLE_ORDER]
    for name in names or LIFECYCLE_ORDER:
        event = events.get(name, {})
        diagnostics = event.get("diagnostics") or {}
        snap.lifecycle.append(
            LifecycleEvent(
                name=str(name),
                status=str(event.get("status", "Pending")),
                started=_iso(event.get("startTime")),
                ended=_iso(event.get("endTime")),
                message=str(diagnostics.get("message") or diagnostics.get("errorCode") or ""),
            )
        )
    snap.traffic_on_target = traffic_on(snap.target_version, alias, fn_info.get("targetVersionWeight"))
    return snap


def traffic_on(target: str, alias: dict[str, Any] | None, reported_weight: Any = None) -> float:
    """The share of the alias's traffic on `target`: the alias is the truth, CodeDeploy's figure a fallback."""
    if alias and target:
        if str(alias.get("FunctionVersion")) == target:
            return 1.0
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return float(weights.get(target, 0.0))
    try:
        return float(reported_weight or 0.0)
    except (TypeError, ValueError):
        return 0.0
