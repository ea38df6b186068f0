"""`rollout rollback`, `rollout freeze` and `rollout unfreeze`: a release manager's actions.

The command acts as the control plane does, in this process and with the caller's credentials:
the control plane's settings are the artifact deployer's environment (read from Lambda), releases
start through `starter.start_release`, and the caller's AWS identity (STS GetCallerIdentity) is
recorded as who asked.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from cli import model, render
from cli.backend import ALIAS_TAG, Backend, aws_errors, configure_environment
from cli.errors import CliError, ExitCode
from cli.follow import Waiter, follow_release
from cli.render import Output
from rollout.actions import Freeze, RefusedAction, parse_until, reason_text
from rollout.artifact_keys import FUNCTION_NAME
from rollout.config import Settings
from rollout.errors import Rejected
from rollout.held_releases import HeldReport, release_held
from rollout.ledger import FREEZE_ALL, Release, now_iso
from rollout.notifications import build_action
from rollout.observability import logger
from rollout.rollback import RollbackRequest, request_rollback
from rollout.states import State
from rollout.transitions import ReleaseContext

DEFAULT_STACK = "rollout-dev"
StackOpt = Annotated[
    str, typer.Option("--stack", envvar="ROLLOUT_STACK", help="CloudFormation stack of the control plane.")
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint", envvar="AWS_ENDPOINT_URL", help="AWS endpoint URL (the sandbox's), or AWS itself."
    ),
]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region (default: your AWS config).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0.05, help="Seconds between polls.", hidden=True)
]

# Rejected codes that name something missing (exit 3); every other one is bad input (exit 2).
NOT_FOUND_CODES = frozenset({"FUNCTION_NOT_FOUND", "VERSION_NOT_FOUND"})


class _Stderr:
    """Whatever sys.stderr is when a line is written (tests swap it between commands)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _quiet_control_plane_logs() -> None:
    """The control plane logs JSON lines to stdout for CloudWatch; here stdout is the command's own."""
    for handler in logging.getLogger(logger.name).handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler.stream, _Stderr):
            handler.setStream(_Stderr())
    logger.setLevel(logging.ERROR)


def control_plane(backend: Backend) -> ReleaseContext:
    """The context the control plane's functions run with, built from the artifact deployer's settings."""
    _quiet_control_plane_logs()
    deployer = backend.stack.require("ArtifactDeployerName")
    with aws_errors(f"read the control plane's settings ({deployer})"):
        configuration = backend.client("lambda").get_function_configuration(FunctionName=deployer)
    env = dict((configuration.get("Environment") or {}).get("Variables") or {})
    env["AWS_REGION"] = backend.region
    return ReleaseContext.from_settings(Settings.from_mapping(env))


def caller(backend: Backend) -> str:
    """The caller's AWS identity (an ARN), recorded as who asked."""
    return backend.caller()


def _action_error(exc: Exception) -> CliError:
    if isinstance(exc, RefusedAction):
        return CliError(str(exc), ExitCode.CONFLICT)
    assert isinstance(exc, Rejected)
    code = ExitCode.NOT_FOUND if exc.code in NOT_FOUND_CODES else ExitCode.USAGE
    return CliError(exc.reason, code)


# --- rollback --------------------------------------------------------------------------------------
def connect(stack: str, endpoint: str | None, region: str | None) -> Backend:
    configure_environment(endpoint, region)
    return Backend(stack)


def install(app: typer.Typer, exits_cleanly: Callable[[Any], Any]) -> None:
    """Add the commands to `rollout` (cli.main calls this with its error handling)."""
    for command in (rollback, freeze, unfreeze):
        app.command()(exits_cleanly(command))


def rollback(
    function: Annotated[str, typer.Argument(help="The managed function to roll back.")],
    to: Annotated[
        str, typer.Option("--to", help="Version to return to (default: the previous good one).")
    ] = "",
    reason: Annotated[str, typer.Option(help="Why (recorded and announced).")] = "",
    wait: Annotated[bool, typer.Option("--wait", help="Follow the rollback to its end.")] = False,
    skip_checks: Annotated[
        bool, typer.Option("--skip-checks", help="Skip the version's pre-traffic checks (start probe only).")
    ] = False,
    abort_current: Annotated[
        bool, typer.Option("--abort-current", help="Stop a running deployment of the function first.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds --wait follows before giving up.")] = 3600.0,
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
    interval: IntervalOpt = 1.0,
) -> None:
    """Return the alias to the previous good version (or --to) through an AllAtOnce deployment."""
    out = Output.create(as_json)
    reason = _reason(reason)  # bad input is refused before any AWS call
    backend = connect(stack, endpoint, region)
    backend.get_function(function)  # NOT_FOUND for a function that does not exist
    request = RollbackRequest(function, caller(backend), reason, to, skip_checks, abort_current)
    result = _request_rollback(backend, request)
    release = result.release
    for deployment in result.stopped:
        out.say(Text(f"stopped deployment {deployment} (CodeDeploy rolls it back first)", style="yellow"))
    out.say(render.release_line(release))
    data: dict[str, Any] = {"release": release.to_public(), "stopped": result.stopped}
    code = ExitCode.OK
    if wait:
        release = _follow(backend, out, release, Waiter(timeout, interval))
        data["release"] = release.to_public()
        code = model.release_exit_code(release.state)
        data["succeeded"] = code == ExitCode.OK
        out.say(Text(f"{release.state}: {model.release_why(release)}", style="bold"))
    elif release.is_terminal:
        code = model.release_exit_code(release.state)
    if as_json:
        out.json(data)
    raise typer.Exit(int(code))


def _request_rollback(backend: Backend, request: RollbackRequest) -> Any:
    try:
        with aws_errors(f"roll back {request.function}"):
            return request_rollback(control_plane(backend), request)
    except (RefusedAction, Rejected) as exc:
        raise _action_error(exc) from None


def _reason(text: str) -> str:
    try:
        return reason_text(text)
    except Rejected as exc:
        raise CliError(exc.reason, ExitCode.USAGE) from None


def rollback_function(
    backend: Backend, function: str, reason: str = "", live_version: str = ""
) -> dict[str, Any]:
    """`rollout rollback FUNCTION --reason TEXT`, as the dashboard calls it. `live_version` is the version
    the page showed live: when another is live now, nothing is rolled back (the person chose on a page
    that no longer says what would be rolled back)."""
    fn = backend.get_function(function)  # NOT_FOUND for a function that does not exist
    if live_version:
        alias_name = (fn.get("Tags") or {}).get(ALIAS_TAG, "live")
        alias = backend.get_alias(function, alias_name)
        now_live = str(alias["FunctionVersion"]) if alias else ""
        if now_live != live_version:
            raise CliError(
                f"{function}: v{now_live or '(none)'} is live now, not v{live_version} as the page showed; "
                "nothing was rolled back: look again, then roll back if you still mean to",
                ExitCode.CONFLICT,
            )
    result = _request_rollback(backend, RollbackRequest(function, caller(backend), reason, "", False, False))
    release = result.release
    return {
        "release": release.to_public(),
        "stopped": result.stopped,
        "status_message": f"release {release.release_id} {release.state} (to v{release.target_version})",
    }


def _follow(backend: Backend, out: Output, release: Release, waiter: Waiter) -> Release:
    printed: dict[str, Any] = {"state": release.state}

    def on_update(progress: Any) -> None:
        rel = progress.release
        if rel is not None and rel.state != printed["state"]:
            printed["state"] = rel.state
            out.say(render.release_line(rel))

    progress = follow_release(
        backend,
        release.function,
        lambda: backend.ledger.get(release.function, release.release_id),
        waiter,
        on_update,
    )
    assert progress.release is not None
    return progress.release


# --- freeze / unfreeze -----------------------------------------------------------------------------
def _scopes(functions: list[str] | None, all_functions: bool) -> list[str]:
    if all_functions and functions:
        raise CliError("name functions or pass --all, not both", ExitCode.USAGE)
    if not all_functions and not functions:
        raise CliError("name at least one function, or pass --all", ExitCode.USAGE)
    return [FREEZE_ALL] if all_functions else _named(functions or [])


def _named(functions: list[str]) -> list[str]:
    """Named functions as freeze scopes. FREEZE_ALL is the scope of every function in the ledger, so a
    function of that name would freeze, or unfreeze and start the held uploads of, every function."""
    if FREEZE_ALL in functions:
        raise CliError(
            f"{FREEZE_ALL} is the freeze of every function, and a function of that name cannot be frozen "
            "or unfrozen by name: use --all for every function",
            ExitCode.USAGE,
        )
    return list(dict.fromkeys(functions))


def _function_name(backend: Backend, scope: str) -> str:
    """The function's own name for `scope` as Lambda resolves it (a name, `name:qualifier` or an ARN):
    releases are held by that name, so a freeze recorded under another spelling would hold nothing."""
    if scope == FREEZE_ALL or FUNCTION_NAME.fullmatch(scope):
        return scope
    return _existing_function_name(backend, scope)


def _existing_function_name(backend: Backend, scope: str) -> str:
    """The function's own name, read from Lambda: NOT_FOUND for a function that does not exist."""
    name = str(backend.get_function(scope)["Configuration"]["FunctionName"])
    return _named([name])[0]


def freeze(
    functions: Annotated[list[str] | None, typer.Argument(help="Functions to freeze.")] = None,
    all_functions: Annotated[bool, typer.Option("--all", help="Freeze every managed function.")] = False,
    reason: Annotated[str, typer.Option(help="Why (recorded, shown by `rollout status`).")] = "",
    until: Annotated[str, typer.Option(help="When it ends by itself: ISO 8601 time, or 90m, 2h, 1d.")] = "",
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hold every upload of the functions (or --all): recorded, not deployed, until unfreeze."""
    out = Output.create(as_json)
    scopes = _scopes(functions, all_functions)
    if not reason.strip():
        raise CliError("a freeze needs a --reason", ExitCode.USAGE)
    now = datetime.now(UTC)
    try:
        ends = parse_until(until, now) if until else ""
    except Rejected as exc:
        raise CliError(exc.reason, ExitCode.USAGE) from None
    frozen = freeze_scopes(connect(stack, endpoint, region), scopes, reason, ends)
    for item in frozen:
        out.say(Text.assemble(("❄ ", "cyan"), item.describe()))
    if as_json:
        out.json({"freezes": [item.to_record() for item in frozen]})


def freeze_scopes(backend: Backend, scopes: list[str], reason: str, ends: str) -> list[Freeze]:
    """Record and announce a freeze of each scope (a function, or every function)."""
    reason = _reason(reason)  # bounded before anything is read or written
    # One GetFunction a function: it proves the function exists and gives its own name.
    scopes = list(
        dict.fromkeys(
            scope if scope == FREEZE_ALL else _existing_function_name(backend, scope) for scope in scopes
        )
    )
    by = caller(backend)
    ctx = control_plane(backend)
    frozen = [Freeze(scope, reason, by, now_iso(), ends) for scope in scopes]
    with aws_errors("record the freeze"):
        for item in frozen:
            ctx.ledger.put_freeze(item.scope, item.to_record())
            _announce(ctx, "freeze.started", item, item.describe())
    return frozen


def freeze_functions(backend: Backend, function: str, reason: str = "") -> dict[str, Any]:
    """`rollout freeze FUNCTION --reason TEXT`, as the dashboard calls it."""
    if not reason.strip():
        raise CliError("a freeze needs a reason", ExitCode.USAGE)
    frozen = freeze_scopes(backend, _named([function]), reason, "")
    return {"freezes": [item.to_record() for item in frozen], "status_message": frozen[0].describe()}


def unfreeze(
    functions: Annotated[list[str] | None, typer.Argument(help="Functions to unfreeze.")] = None,
    all_functions: Annotated[bool, typer.Option("--all", help="End every freeze.")] = False,
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """End the freezes; the newest held upload of each function starts, older ones are superseded."""
    out = Output.create(as_json)
    scopes = _scopes(functions, all_functions)
    ended, report = unfreeze_scopes(connect(stack, endpoint, region), scopes, all_functions)
    if not ended:
        out.errors.print("no freeze to end for " + ", ".join(scopes))
    for scope in ended:
        out.say(f"unfrozen: {'every function' if scope == FREEZE_ALL else scope}")
    for release_id in report.started:
        out.say(f"  started held release {release_id}")
    for release_id in report.still_held:
        out.say(f"  still held: {release_id} (another freeze or a pre-flight rule holds it)")
    if as_json:
        out.json({"unfrozen": ended, "held": report.as_dict()})
    raise typer.Exit(int(ExitCode.OK if ended else ExitCode.CONFLICT))


def unfreeze_scopes(backend: Backend, scopes: list[str], all_functions: bool) -> tuple[list[str], HeldReport]:
    """End the freezes of `scopes`; start the newest held upload of each function they held."""
    scopes = list(dict.fromkeys(_function_name(backend, scope) for scope in scopes))
    ctx = control_plane(backend)
    by = caller(backend)
    with aws_errors("end the freeze"):
        if all_functions:
            scopes = [str(record.get("scope")) for record in ctx.ledger.freezes()] or scopes
        named = [scope for scope in scopes if scope != FREEZE_ALL]
        everywhere = FREEZE_ALL in scopes
        # What the freezes hold before they end: a release the reconciler starts (it looks every run)
        # before this call reaches it is still reported, where it went.
        seen = _held_by_function(ctx, named, everywhere)
        ended = []
        for scope in scopes:
            record = ctx.ledger.delete_freeze(scope)
            if record is not None:
                ended.append(scope)
                item = Freeze.from_record(record)
                whom = "every function" if scope == FREEZE_ALL else scope
                _announce(ctx, "freeze.ended", item, f"{whom} unfrozen by {by}", ended_by=by)
        # Named functions are read by key (consistent); --all finds them through the open-releases
        # index, which may lag a moment: the reconciler starts whatever it missed.
        wanted = sorted(
            set(named)
            | set(seen)
            | ({r.function for r in ctx.ledger.open_releases(State.HELD)} if everywhere else set())
        )
        report = HeldReport()
        for function in wanted:
            report.merge(release_held(ctx, function, seen.get(function, {}).values()))
    return ended, report


def _held_by_function(
    ctx: ReleaseContext, named: list[str], everywhere: bool
) -> dict[str, dict[str, Release]]:
    """The held releases of `named` (consistent reads), and with `everywhere` those the open-releases
    index lists, by function and release id."""
    held = [release for function in named for release in ctx.ledger.queued(function, State.HELD)]
    if everywhere:
        held += ctx.ledger.open_releases(State.HELD)
    found: dict[str, dict[str, Release]] = {}
    for release in held:
        found.setdefault(release.function, {})[release.release_id] = release
    return found


def unfreeze_functions(backend: Backend, function: str) -> dict[str, Any]:
    """`rollout unfreeze FUNCTION`, as the dashboard calls it; nothing frozen is refused (exit 6)."""
    ended, report = unfreeze_scopes(backend, _named([function]), False)
    if not ended:
        raise CliError(f"{function} is not frozen", ExitCode.CONFLICT)
    started = ", ".join(report.started)
    return {
        "unfrozen": ended,
        "held": report.as_dict(),
        "status_message": f"{function} unfrozen" + (f"; started {started}" if started else ""),
    }


def _announce(ctx: ReleaseContext, kind: str, item: Freeze, title: str, **extra: str) -> None:
    function = "*" if item.scope == FREEZE_ALL else item.scope
    fields = {"freeze": item.to_record(), "requested_by": extra.get("ended_by") or item.by or None}
    ctx.notifier.announce_action(build_action(kind, function, title, **fields))


def freezes_of(backend: Backend) -> list[Freeze]:
    """Every freeze in force now (for `rollout status`)."""
    now = datetime.now(UTC)
    with aws_errors("read the freezes"):
        records = backend.ledger.freezes()
    return [f for f in (Freeze.from_record(r) for r in records) if f.active(now)]
