"""What the dashboard's pages show, as JSON: read through the CLI's own backend and model, never beside them.

Each `*_view` function takes a `Backend` and returns a dict the front end renders; the pure helpers
(`attention_reasons`, `traffic_series`, `notifications_sent`, `metric_series`) hold the decisions so that
they are tested without AWS.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cli import model
from cli.actions import freezes_of
from cli.backend import Backend
from cli.errors import CliError, ExitCode
from cli.follow import deployment_snapshot
from cli.model import DeploymentSnapshot, parse_time, release_why, versions_text
from cli.operations import function_status, status_names
from cli.render import FunctionStatus
from rollout import lambda_metrics, notifications
from rollout.ledger import Release
from rollout.states import State, notification_kind

# A release that ended badly this recently still needs someone to look at it.
RECENT_FAILURE = timedelta(hours=24)
# A deployment still running after this long is probably stuck (the longest built-in shift is 30 minutes).
STUCK_AFTER = timedelta(hours=2)
BAD_ENDINGS = frozenset({State.ROLLED_BACK, State.FAILED, State.REJECTED})
METRIC_PERIOD = 60
# A Lambda invocation (the deployer's) lasts at most 15 minutes.
LOCK_GRACE = timedelta(minutes=15)


def clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else ""


def release_json(release: Release) -> dict[str, Any]:
    """The ledger's release as the CLI's --json shows it, with the same one-line why, minus hook secrets."""
    data = release.to_public()
    data["hook_results"] = notifications.public_hook_results(release.hook_results)
    data["why"] = release_why(release)
    data["versions"] = versions_text(release)
    data["when"] = model.when_text(release)
    return data


# --- fleet -------------------------------------------------------------------------------------------
def attention_reasons(row: FunctionStatus, now: datetime, in_flight: Release | None = None) -> list[str]:
    """Why a function needs a person now (pure): a version live unproven (for as long as it is live), a
    bad recent ending, a gate awaiting an answer, a stuck deployment, an odd lock."""
    reasons = list(row.attention)
    latest = row.latest
    said = row.unproven is not None and latest is not None and latest.release_id == row.unproven.release_id
    if latest is not None and latest.state in BAD_ENDINGS and not said:
        ended = parse_time(latest.completed_at or latest.updated_at)
        if ended is None or now - ended <= RECENT_FAILURE:
            reasons.append(f"latest release {latest.state}: {clip(release_why(latest))}")
    deploying = in_flight if in_flight is not None else latest
    if deploying is not None and deploying.state == State.DEPLOYING:
        gate = deploying.approval or {}
        if gate.get("status") == "AWAITING":
            reasons.append(
                f"deployment {deploying.deployment_id} awaits approval before {gate.get('position', '?')}"
                + (f" until {gate['deadline_at']}" if gate.get("deadline_at") else "")
            )
        started = parse_time(deploying.deploying_at)
        if started is not None and now - started > STUCK_AFTER:
            reasons.append(
                f"deployment {deploying.deployment_id} has been running since {iso(started)}: stuck?"
            )
    if row.lock and not row.lock.get("deployment_id"):
        # A deployer holds the lock for a moment before its deployment exists; longer than an invocation is odd.
        acquired = parse_time(str(row.lock.get("acquired_at") or ""))
        if acquired is None or now - acquired > LOCK_GRACE:
            reasons.append(f"lock held by release {row.lock.get('release_id', '?')} without a deployment")
    return reasons


def in_flight_json(row: FunctionStatus, release: Release | None) -> dict[str, Any] | None:
    """The deployment holding the function's lock, with the alias's share on its new version."""
    if not row.lock or not row.lock.get("deployment_id"):
        return None
    target = release.target_version if release else ""
    if target and target == row.live_version:
        share = 1.0
    else:
        share = row.alias_weights.get(target, 0.0) if target else 0.0
    return {
        "deployment_id": row.lock["deployment_id"],
        "release_id": row.lock.get("release_id", ""),
        "current_version": release.current_version if release else "",
        "target_version": target,
        "traffic_on_target": share,
    }


def fleet_row(backend: Backend, name: str, now: datetime) -> dict[str, Any]:
    row = function_status(backend, name)
    holder = None
    if row.lock and row.lock.get("release_id"):
        holder = backend.ledger.get(name, str(row.lock["release_id"]))
    reasons = attention_reasons(row, now, holder)
    return {
        "function": name,
        "alias": row.alias,
        "live_version": row.live_version,
        "alias_weights": row.alias_weights,
        "latest": release_json(row.latest) if row.latest else None,
        "lock": row.lock,
        "queued": row.queued,
        "in_flight": in_flight_json(row, holder),
        "live_unproven": row.unproven.release_id if row.unproven else None,
        "attention": reasons,
    }


def fleet_view(backend: Backend, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    rows = [fleet_row(backend, name, now) for name in status_names(backend)]
    freezes = freezes_of(backend)
    for row in rows:
        row["frozen"] = any(f.covers(row["function"]) for f in freezes)
    return {
        "stack": backend.stack_name,
        "functions": rows,
        "attention_count": sum(1 for r in rows if r["attention"]),
        "freezes": [f.to_record() | {"text": f.describe()} for f in freezes],
    }


# --- one function ------------------------------------------------------------------------------------
def function_view(backend: Backend, function: str, limit: int = 50) -> dict[str, Any]:
    releases = backend.ledger.releases(function, limit=limit)
    if not releases:
        backend.get_function(function)  # NOT_FOUND for a function that does not exist
    row = function_status(backend, function)
    return {
        "function": function,
        "alias": row.alias,
        "live_version": row.live_version,
        "alias_weights": row.alias_weights,
        "lock": row.lock,
        "queued": row.queued,
        "live_unproven": row.unproven.release_id if row.unproven else None,
        "attention": attention_reasons(row, datetime.now(UTC)),
        "releases": [release_json(r) for r in releases],
    }


# --- one release -------------------------------------------------------------------------------------
def notifications_sent(release: Release) -> list[dict[str, Any]]:
    """The notifications the release's transitions announced, read off its history (pure)."""
    sent = []
    for before, entry in zip(release.history, release.history[1:], strict=False):
        try:
            kind = notification_kind(
                State(str(before.get("state"))),
                State(str(entry.get("state"))),
                str(entry.get("reason_code") or ""),
            )
        except ValueError:
            continue
        if kind:
            built = notifications.build(kind, release, region="")
            sent.append(
                {"kind": kind, "severity": built.severity, "subject": built.subject, "at": entry["at"]}
            )
    return sent


def schedule_steps(routing: dict[str, Any] | None) -> list[tuple[float, float]]:
    """(minutes after AllowTraffic starts, percent on the new version) for a traffic routing config."""
    routing = routing or {}
    kind = routing.get("type", "AllAtOnce")
    if kind == "TimeBasedCanary":
        canary = routing.get("timeBasedCanary") or {}
        return [
            (0.0, float(canary.get("canaryPercentage", 10))),
            (float(canary.get("canaryInterval", 0)), 100.0),
        ]
    if kind == "TimeBasedLinear":
        linear = routing.get("timeBasedLinear") or {}
        step, every = (
            float(linear.get("linearPercentage", 10)) or 100.0,
            float(linear.get("linearInterval", 1)),
        )
        steps, pct, n = [], 0.0, 0
        while pct < 100.0:
            pct = min(100.0, pct + step)
            steps.append((n * every, pct))
            n += 1
        return steps
    return [(0.0, 100.0)]


def _allow_traffic(snap: DeploymentSnapshot) -> tuple[str, datetime | None, datetime | None]:
    event = next((e for e in snap.lifecycle if e.name == "AllowTraffic"), None)
    if event is None:
        return "Pending", None, None
    return event.status, parse_time(event.started), parse_time(event.ended)


def traffic_series(snap: DeploymentSnapshot, steps: list[tuple[float, float]]) -> dict[str, Any]:
    """The alias's share on the new version over time (pure): the config's steps CodeDeploy has taken,
    anchored on AllowTraffic's times; steps still to come are `planned`; a stop or failure ends at 0."""
    created = parse_time(snap.created)
    status, start, end = _allow_traffic(snap)
    current = round(snap.traffic_on_target * 100, 1)
    points: list[list[Any]] = [[iso(created), 0.0]] if created else []
    planned: list[list[Any]] = []
    if start is not None:
        for offset, pct in steps:
            at = start + timedelta(minutes=offset)
            reached = at <= end if end is not None else (pct <= current + 1e-6 and not snap.done)
            (points if reached else planned).append([iso(at), pct])
        if status == "Succeeded" and end is not None and (not points or points[-1][1] != 100.0):
            points.append([iso(end), 100.0])
    if snap.done:
        planned = []
        if snap.status != "Succeeded" and points and points[-1][1] > 0:
            back_at = parse_time(snap.completed) or end or start
            points.append([iso(back_at), 0.0])
    return {"points": points, "planned": planned, "current": current, "done": snap.done}


def metric_window(snap: DeploymentSnapshot, steps: list[tuple[float, float]]) -> tuple[datetime, datetime]:
    """From a little before the deployment to a little after it ended (or after its shift would end)."""
    created = parse_time(snap.created) or datetime.now(UTC)
    completed = parse_time(snap.completed)
    shift = timedelta(minutes=max((offset for offset, _ in steps), default=0.0))
    end = completed or max(created + shift + timedelta(minutes=10), datetime.now(UTC))
    return created - timedelta(minutes=2), end + timedelta(minutes=2)


def rate_series(raw: dict[str, list[tuple[datetime, float]]], index: int) -> dict[str, list[list[Any]]]:
    """Per period: error rate (errors / invocations, where there were any) and p99 duration (pure)."""
    invocations = dict(raw.get(f"invocations_{index}", []))
    errors = dict(raw.get(f"errors_{index}", []))
    rates = [
        [iso(at), round(errors.get(at, 0.0) / count, 6)]
        for at, count in sorted(invocations.items())
        if count > 0
    ]
    p99 = [[iso(at), round(value, 3)] for at, value in raw.get(f"duration_{index}", [])]
    calls = [[iso(at), count] for at, count in sorted(invocations.items())]
    return {"error_rate": rates, "p99_ms": p99, "invocations": calls}


def metric_series(
    backend: Backend, snap: DeploymentSnapshot, steps: list[tuple[float, float]]
) -> dict[str, Any]:
    """The new and the old version's error rate and p99 duration through the alias, from the same
    `ExecutedVersion` metrics the post-traffic hook judges (rollout.lambda_metrics' queries)."""
    versions = [v for v in (snap.target_version, snap.current_version) if v]
    if not (snap.function and snap.alias and versions):
        return {"versions": {}, "series": {}}
    start, end = metric_window(snap, steps)
    start = start.replace(second=0, microsecond=0)
    queries = lambda_metrics.metric_queries(snap.function, snap.alias, versions, METRIC_PERIOD)
    raw = backend.metric_data(queries, start, end)
    names = dict(zip(("new", "old"), versions, strict=False))
    return {
        "versions": names,
        "window": {"start": iso(start), "end": iso(end)},
        "series": {role: rate_series(raw, index) for index, role in enumerate(names)},
    }


def checks_json(hook_results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each hook's verdict, its checks (with the excerpt or error) and the canary verdict."""
    hooks = []
    for hook in ("pre_traffic", "post_traffic"):
        result = hook_results.get(hook)
        if not isinstance(result, dict):
            continue
        hooks.append(
            {
                "hook": hook.replace("_", "-"),
                "verdict": result.get("verdict", ""),
                "reason": result.get("reason", ""),
                "checks": [
                    {
                        "name": c.get("name", "?"),
                        "verdict": c.get("verdict", ""),
                        "duration_ms": c.get("duration_ms"),
                        "detail": str(c.get("error") or c.get("excerpt") or "")[:2000],
                    }
                    for c in result.get("checks") or []
                ],
                "canary": result.get("canary"),
                "warnings": list(result.get("warnings") or []),
            }
        )
    return hooks


def release_view(backend: Backend, function: str, release_id: str) -> dict[str, Any]:
    release = backend.ledger.get(function, release_id)
    if release is None:
        raise CliError(f"release {release_id} of {function} not found", ExitCode.NOT_FOUND)
    data: dict[str, Any] = {
        "release": release_json(release),
        "checks": checks_json(release.hook_results),
        "notifications": notifications_sent(release),
        "deployment": None,
        "traffic": None,
        "metrics": None,
    }
    if release.deployment_id:
        snap = deployment_snapshot(backend, release.deployment_id, with_ledger=False)
        snap.release = release
        config = backend.get_deployment_config(snap.config) if snap.config else None
        steps = schedule_steps((config or {}).get("trafficRoutingConfig"))
        data["deployment"] = snap.to_json() | {"release": None, "outcome": snap.outcome_text()}
        data["traffic"] = traffic_series(snap, steps)
        data["metrics"] = metric_series(backend, snap, steps)
    return data
