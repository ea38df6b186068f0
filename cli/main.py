"""`rollout`: the operator command. The same commands work against AWS and against the local sandbox."""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from cli import model, render
from cli.backend import Backend, configure_environment
from cli.errors import CliError, ExitCode
from cli.follow import Progress, Waiter, find_release, follow_deployment, follow_release
from cli.model import DeploymentSnapshot
from cli.operations import (
    Upload,
    abort_deployment,
    check_managed,
    function_status,
    register_function,
    status_names,
    upload_artifact,
)
from cli.render import Output, live_view
from rollout.ledger import Release

DEFAULT_STACK = "rollout-dev"
TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"

app = typer.Typer(
    name="rollout",
    help="Operate Rollout: onboard Lambda functions, release artifacts, watch and stop deployments.\n\n"
    "Talks to AWS (profile/region as usual) or to the local sandbox (--endpoint or AWS_ENDPOINT_URL).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sandbox_app = typer.Typer(
    help="The local sandbox: AWS on 127.0.0.1 with the stack provisioned.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")

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

F = TypeVar("F", bound=Callable[..., Any])


def exits_cleanly(func: F) -> F:
    """Turn CliError into its message and exit code, Ctrl-C into 130; --json callers get an error object."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = Output.create(as_json=bool(kwargs.get("as_json")))
        try:
            return func(*args, **kwargs)
        except CliError as err:
            out.error(err)
            if out.as_json:
                out.json({"error": {"message": err.message, "hint": err.hint, "exit_code": int(err.code)}})
            raise typer.Exit(int(err.code)) from None
        except KeyboardInterrupt:
            out.errors.print("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None

    return wrapper  # type: ignore[return-value]


def connect(stack: str, endpoint: str | None, region: str | None) -> Backend:
    configure_environment(endpoint, region)
    return Backend(stack)


# --- register --------------------------------------------------------------------------------------
@app.command()
@exits_cleanly
def register(
    function: Annotated[str, typer.Argument(help="Name of the Lambda function to onboard.")],
    alias: Annotated[str, typer.Option(help="Alias that carries the traffic.")] = "live",
    config: Annotated[
        str, typer.Option(help="CodeDeploy config: short (Canary10Percent5Minutes), full or custom name.")
    ] = "Canary10Percent5Minutes",
    alarm: Annotated[
        list[str] | None, typer.Option("--alarm", help="Extra CloudWatch alarm to watch (repeat).")
    ] = None,
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Onboard a function: tag it for Rollout. Its first release creates the alias if it has none."""
    out = Output.create(as_json)
    backend = connect(stack, endpoint, region)
    reg = register_function(backend, function, alias, config, alarm or [])
    upload_to = _upload_location(backend, function)
    if as_json:
        out.json({**reg.to_json(), "upload_to": upload_to or None})
        return
    out.say(Text.assemble(("✔ ", "green"), (function, "bold"), " is managed by Rollout"))
    now_on = (
        f"(now on version {reg.alias_version})"
        if reg.alias_version
        else "(none yet: the first release creates it)"
    )
    out.say(f"  alias   {reg.alias}  {now_on}")
    out.say(f"  config  {reg.config}")
    if reg.warning:
        out.say(Text.assemble(("  warning ", "yellow"), reg.warning))
    out.say(
        f"  alarms  {' '.join(reg.alarms) if reg.alarms else 'none besides the per-release canary alarms'}"
    )
    if upload_to:
        out.say(f"  release it with: rollout deploy {function} build.zip   (uploads to {upload_to})")


def _upload_location(backend: Backend, function: str) -> str:
    try:
        return f"s3://{backend.stack.bucket}/{function}/"
    except CliError:
        return ""


# --- deploy ----------------------------------------------------------------------------------------
@app.command()
@exits_cleanly
def deploy(
    function: Annotated[str, typer.Argument(help="The managed function to release.")],
    artifact: Annotated[Path, typer.Argument(help="The build artifact (.zip).")],
    commit: Annotated[str, typer.Option(help="Commit id recorded with the release.")] = "",
    message: Annotated[str, typer.Option(help="What changed (shown in notifications).")] = "",
    author: Annotated[str, typer.Option(help="Who released it.")] = "",
    hotfix: Annotated[
        bool, typer.Option("--hotfix", help="Skip the gradual shift (AllAtOnce); the checks still run.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the release to its end; fail unless it succeeds.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds --wait follows before giving up.")] = 3600.0,
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
    interval: IntervalOpt = 1.0,
) -> None:
    """Upload an artifact to the artifact bucket: Rollout releases it. With --wait, follow it to the end."""
    out = Output.create(as_json)
    data = model.read_artifact(artifact)
    backend = connect(stack, endpoint, region)
    warning = check_managed(backend, function)
    if warning:
        out.errors.print(f"warning: {warning}")
    upload = upload_artifact(backend, function, data, commit, message, author, hotfix=hotfix)
    result = upload.to_json()
    out.say(Text.assemble(("uploaded ", "green"), f"s3://{upload.bucket}/{upload.key}"))
    out.say(f"  version {upload.version_id or '(bucket not versioned: the release cannot pin these bytes)'}")
    if not wait:
        if as_json:
            out.json(result)
        else:
            out.say(f"  follow it with: rollout status {function}")
        return
    waiter = Waiter(timeout, interval)
    progress = _follow_upload(backend, out, upload, waiter)
    release = progress.release
    assert release is not None  # follow_release returns only once the release is terminal
    code = model.release_exit_code(release.state)
    result["release"] = release.to_public()
    result["succeeded"] = code == ExitCode.OK
    if as_json:
        out.json(result)
    else:
        style = "bold green" if code == ExitCode.OK else "bold red"
        out.say(Text(f"{release.state}: {model.release_why(release)}", style=style))
    raise typer.Exit(int(code))


def _follow_upload(backend: Backend, out: Output, upload: Upload, waiter: Waiter) -> Progress:
    printed: dict[str, Any] = {"state": None, "snapshot": None}

    def plain(progress: Progress) -> None:
        rel = progress.release
        if rel is not None and rel.state != printed["state"]:
            printed["state"] = rel.state
            out.say(render.release_line(rel))
        if progress.snapshot is not None:
            for line in render.snapshot_changes(printed["snapshot"], progress.snapshot):
                out.say(line)
            printed["snapshot"] = progress.snapshot

    with live_view(out) as update:

        def on_update(progress: Progress) -> None:
            if not out.live:
                plain(progress)
                return
            parts: list[RenderableType] = []
            rel = progress.release
            parts.append(
                Text(render.release_line(rel))
                if rel
                else Text(f"waiting for {upload.key} to reach the ledger…")
            )
            if progress.snapshot is not None:
                parts.append(render.snapshot_view(progress.snapshot))
            update(Group(*parts))

        def locate() -> Release | None:
            return find_release(backend, upload.function, upload.bucket, upload.key, upload.version_id)

        return follow_release(backend, upload.function, locate, waiter, on_update)


# --- watch -----------------------------------------------------------------------------------------
@app.command()
@exits_cleanly
def watch(
    deployment_id: Annotated[str, typer.Argument(help="CodeDeploy deployment id (d-XXXXXXXXX).")],
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to follow before giving up.")] = 3600.0,
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
    interval: IntervalOpt = 1.0,
) -> None:
    """Follow a deployment live: lifecycle events, traffic on the new version, hook results, outcome."""
    out = Output.create(as_json)
    backend = connect(stack, endpoint, region)
    last: dict[str, DeploymentSnapshot | None] = {"snap": None}
    with live_view(out) as update:

        def on_update(snap: DeploymentSnapshot) -> None:
            if out.live:
                update(render.snapshot_view(snap))
            else:
                for line in render.snapshot_changes(last["snap"], snap):
                    out.say(line)
            last["snap"] = snap

        snap = follow_deployment(backend, deployment_id, Waiter(timeout, interval), on_update)
    if as_json:
        out.json(snap.to_json())
    raise typer.Exit(int(model.deployment_exit_code(snap.status, snap.release)))


# --- status / history ------------------------------------------------------------------------------
@app.command()
@exits_cleanly
def status(
    function: Annotated[
        str | None, typer.Argument(help="One function (default: every managed function).")
    ] = None,
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Each managed function's latest release, live version and lock (or one function in detail)."""
    out = Output.create(as_json)
    backend = connect(stack, endpoint, region)
    ledger = backend.ledger
    if function:
        recent = ledger.releases(function, limit=5)
        if not recent:
            backend.get_function(function)  # NOT_FOUND for a function that does not exist at all
        names = [function]
    else:
        recent = []
        names = status_names(backend)
    rows = [function_status(backend, name) for name in names]
    freezes = freezes_of(backend)
    if as_json:
        data: dict[str, Any] = {
            "stack": stack,
            "functions": [row.to_json() for row in rows],
            "freezes": [f.to_record() for f in freezes],
        }
        if function:
            data["recent"] = [rel.to_public() for rel in recent]
        out.json(data)
        return
    if not rows:
        out.say(f"no managed functions in stack {stack} (onboard one with `rollout register FUNCTION`)")
        return
    plain = not out.console.is_terminal
    out.say(render.status_table(rows, plain=plain))
    for line in (line for row in rows for line in row.attention):
        out.say(Text(line, style="bold red"))
    for item in freezes:
        out.say(Text(f"❄ {item.describe()}", style="bold cyan"))
    if function and recent:
        out.say(render.releases_table(recent, title=f"Recent releases of {function}", plain=plain))


@app.command()
@exits_cleanly
def history(
    function: Annotated[str, typer.Argument(help="The function whose releases to list.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many releases, newest first.")] = 20,
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A function's releases, newest first: state, versions, deployment, config, when, why."""
    out = Output.create(as_json)
    backend = connect(stack, endpoint, region)
    releases: list[Release] = backend.ledger.releases(function, limit=limit)
    if not releases:
        backend.get_function(function)  # NOT_FOUND for a function that does not exist
    if as_json:
        out.json({"function": function, "releases": [rel.to_public() for rel in releases]})
        return
    if not releases:
        out.say(f"{function} has no releases yet")
        return
    out.say(
        render.releases_table(releases, title=f"Releases of {function}", plain=not out.console.is_terminal)
    )
    for line in function_status(backend, function).attention:  # what the alias needs now, as status says
        out.say(Text(line, style="bold red"))


# --- abort -----------------------------------------------------------------------------------------
@app.command()
@exits_cleanly
def abort(
    deployment_id: Annotated[str, typer.Argument(help="CodeDeploy deployment id (d-XXXXXXXXX).")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the deployment until it has stopped.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds --wait follows before giving up.")] = 600.0,
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
    interval: IntervalOpt = 1.0,
) -> None:
    """Stop a deployment and roll traffic back to the previous version."""
    out = Output.create(as_json)
    backend = connect(stack, endpoint, region)
    result = abort_deployment(backend, deployment_id)
    out.say(
        Text.assemble(
            ("stop requested ", "yellow"),
            f"{deployment_id}: {result['stop_status']} {result['status_message']}",
        )
    )
    if result.get("warning"):
        out.say(Text(result["warning"], style="yellow"))
    code = ExitCode.OK
    if wait:
        snap = follow_deployment(backend, deployment_id, Waiter(timeout, interval), lambda _s: None)
        result["final"] = snap.to_json()
        out.say(snap.outcome_text())
        # Stopping means it must not have gone live after all.
        code = ExitCode.CONFLICT if snap.status == "Succeeded" else ExitCode.OK
    if as_json:
        out.json(result)
    raise typer.Exit(int(code))


# --- dashboard -------------------------------------------------------------------------------------
@app.command()
@exits_cleanly
def dashboard(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0 picks a free one).")
    ] = 3100,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in the web browser.")] = False,
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    refresh: Annotated[float, typer.Option(min=0.2, help="Seconds between page updates.", hidden=True)] = 2.0,
) -> None:
    """A local web view: the fleet, each function's releases, each release's traffic, errors and checks."""
    from cli.dashboard.run import run_dashboard

    run_dashboard(connect(stack, endpoint, region), Output.create(), port, open_browser, refresh)


# --- approve / reject -------------------------------------------------------------------------------
@app.command()
@exits_cleanly
def approve(
    deployment_id: Annotated[str, typer.Argument(help="CodeDeploy deployment id (d-XXXXXXXXX).")],
    comment: Annotated[str, typer.Option("--comment", help="Recorded and announced with the approval.")] = "",
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a deployment waiting at its approval gate (traffic moves, or the deployment completes)."""
    _answer_gate("approve", deployment_id, comment, stack, endpoint, region, as_json)


@app.command()
@exits_cleanly
def reject(
    deployment_id: Annotated[str, typer.Argument(help="CodeDeploy deployment id (d-XXXXXXXXX).")],
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded and announced.")],
    stack: StackOpt = DEFAULT_STACK,
    endpoint: EndpointOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a deployment waiting at its approval gate: it fails and rolls back."""
    if not reason.strip():
        raise CliError("--reason must say why", ExitCode.USAGE)
    _answer_gate("reject", deployment_id, reason, stack, endpoint, region, as_json)


def _answer_gate(
    action: str,
    deployment_id: str,
    text: str,
    stack: str,
    endpoint: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    from cli.approvals import answer_gate, summary

    out = Output.create(as_json)
    answer = answer_gate(connect(stack, endpoint, region), action, deployment_id, text)
    if as_json:
        out.json(answer)
    else:
        out.say(Text(summary(action, answer), style="green" if action == "approve" else "yellow"))


# --- sandbox up ------------------------------------------------------------------------------------
@sandbox_app.command("up")
@exits_cleanly
def sandbox_up(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0 picks a free one).")
    ] = 4566,
    speed: Annotated[
        float, typer.Option(min=0.1, help="Sandbox time per real time (60: a minute a second).")
    ] = 60.0,
    stack: StackOpt = DEFAULT_STACK,
    template: Annotated[Path, typer.Option(help="The control-plane template.")] = TEMPLATE,
    as_json: JsonOpt = False,
) -> None:
    """Start the local sandbox with the stack provisioned; stop it with Ctrl-C."""
    out = Output.create(as_json)
    if not template.is_file():
        raise CliError(f"{template}: template not found", ExitCode.USAGE)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    from cli.sandbox_run import running_sandbox

    with running_sandbox(port=port, speed=speed, stack_name=stack, template=template) as running:
        if as_json:
            # One line, so a script can read the first line of the stream.
            out.console.file.write(render.json_line(running.describe()) + "\n")
            out.console.file.flush()
        else:
            out.say(render.sandbox_panel(running.describe()))
            out.say("Ctrl-C stops it.")
        stop.wait()
        out.errors.print("stopping the sandbox…")


# --- demo ------------------------------------------------------------------------------------------
@app.command()
@exits_cleanly
def demo(
    speed: Annotated[float, typer.Option(min=1, help="Sandbox time per real time.")] = 30.0,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Sandbox port (0 picks a free one).")] = 0,
    as_json: JsonOpt = False,
    with_dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard", help="Watch it in `rollout dashboard` (opened in the browser; Ctrl-C ends)."
        ),
    ] = False,
) -> None:
    """The whole story in the local sandbox: bootstrap, canary, failing check, alarm, burst; a summary."""
    from cli.dashboard.run import dashboard_beside
    from cli.demo import run_demo

    out = Output.create(as_json)
    beside = functools.partial(dashboard_beside, out=out, open_browser=True) if with_dashboard else None
    summary = run_demo(out, speed=speed, port=port, template=TEMPLATE, beside=beside)
    raise typer.Exit(int(ExitCode.OK if summary.all_expected else ExitCode.RELEASE_FAILED))


# rollback, freeze, unfreeze (cli/actions.py), with this module's error handling.
from cli.actions import freezes_of, install  # noqa: E402 - they need exits_cleanly, defined above

install(app, exits_cleanly)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
