"""How the command shows things: rich tables and live panels for people, plain lines and JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cli.errors import CliError
from cli.model import (
    DeploymentSnapshot,
    alias_attention,
    release_why,
    unproven_attention,
    versions_text,
    when_text,
)
from rollout.ledger import Release
from rollout.states import State

STATE_STYLE = {
    "SUCCEEDED": "bold green",
    "BOOTSTRAPPED": "green",
    "UNCHANGED": "dim",
    "ROLLED_BACK": "bold red",
    "FAILED": "bold red",
    "REJECTED": "red",
    "SUPERSEDED": "yellow",
    "QUEUED": "cyan",
    "DEPLOYING": "bold blue",
    "RECEIVED": "dim",
    "Succeeded": "green",
    "Failed": "red",
    "Stopped": "red",
    "InProgress": "blue",
    "Pending": "dim",
    "Skipped": "dim",
    "Ready": "green",
    "Baking": "blue",
}
VERDICT_MARK = {"Succeeded": "✔", "Failed": "✘"}


def make_console(stderr: bool = False) -> Console:
    """A console that is colourful on a terminal and plain (no colour, wide lines) anywhere else."""
    stream = sys.stderr if stderr else sys.stdout
    is_tty = stream.isatty()
    width = None if is_tty else int(os.environ.get("COLUMNS", "160"))
    return Console(
        file=stream,
        width=width,
        no_color=not is_tty or "NO_COLOR" in os.environ,
        highlight=False,
        soft_wrap=not is_tty,
        emoji=False,
    )


@dataclass
class Output:
    """Where a command writes: JSON for scripts, rich for people, plain lines when not on a terminal."""

    console: Console
    errors: Console
    as_json: bool = False

    @classmethod
    def create(cls, as_json: bool = False) -> Output:
        return cls(make_console(), make_console(stderr=True), as_json)

    @property
    def live(self) -> bool:
        """Whether live, redrawn views make sense (a terminal, not JSON)."""
        return self.console.is_terminal and not self.as_json

    def json(self, data: Any) -> None:
        # Straight to the stream: rich would wrap long lines and break the JSON.
        self.console.file.write(json.dumps(data, indent=2, default=str, sort_keys=True) + "\n")
        self.console.file.flush()

    def say(self, *renderables: Any) -> None:
        """Human output; under --json it goes to stderr so stdout stays parseable."""
        (self.errors if self.as_json else self.console).print(*renderables)

    def error(self, err: CliError) -> None:
        self.errors.print(Text.assemble(("error: ", "bold red"), err.message))
        if err.hint:
            self.errors.print(Text.assemble(("hint: ", "yellow"), err.hint))


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


def plain_or_rich_table(title: str | None, plain: bool) -> Table:
    if plain:
        from rich import box

        return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    return Table(title=title, title_justify="left", header_style="bold")


def releases_table(releases: list[Release], title: str | None = None, plain: bool = False) -> Table:
    table = plain_or_rich_table(title, plain)
    for column in (
        "release",
        "state",
        "versions",
        "deployment",
        "config",
        "received (took)",
        "commit",
        "why",
    ):
        table.add_column(column, overflow="fold", no_wrap=column in {"state", "deployment", "release"})
    for rel in releases:
        table.add_row(
            rel.release_id,
            state_text(str(rel.state)),
            versions_text(rel),
            rel.deployment_id or "-",
            rel.deployment_config or "-",
            when_text(rel),
            (rel.commit or "")[:12] or "-",
            release_why(rel),
        )
    return table


@dataclass
class FunctionStatus:
    function: str
    latest: Release | None
    lock: dict[str, Any] | None
    queued: int
    alias: str = ""
    live_version: str = ""
    alias_weights: dict[str, float] = field(default_factory=dict)
    # The release whose version the alias serves although it went live unproven (actions.unproven_live).
    unproven: Release | None = None

    @property
    def attention(self) -> list[str]:
        alias = self.alias or "live"
        return unproven_attention(self.function, alias, self.unproven) + alias_attention(
            self.function, alias, self.alias_weights, self.latest
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "alias": self.alias,
            "live_version": self.live_version,
            "alias_weights": self.alias_weights,
            "latest": self.latest.to_public() if self.latest else None,
            "lock": self.lock,
            "queued": self.queued,
            "live_unproven": self.unproven.release_id if self.unproven else None,
            "attention": self.attention,
        }


def lock_text(lock: dict[str, Any] | None) -> str:
    if not lock:
        return "free"
    deployment = lock.get("deployment_id")
    return f"held by {lock.get('release_id', '?')}" + (f" ({deployment})" if deployment else "")


def status_table(rows: list[FunctionStatus], plain: bool = False) -> Table:
    table = plain_or_rich_table("Managed functions", plain)
    for column in (
        "function",
        "live",
        "latest",
        "state",
        "versions",
        "deployment",
        "received (took)",
        "lock",
        "queued",
        "why",
    ):
        table.add_column(column, overflow="fold", no_wrap=column in {"function", "state", "deployment"})
    for row in rows:
        rel = row.latest
        live = (
            f"{row.alias}→{row.live_version}"
            if row.live_version
            else (f"{row.alias}: none" if row.alias else "-")
        )
        table.add_row(
            row.function,
            live,
            rel.release_id if rel else "no releases yet",
            state_text(str(rel.state)) if rel else Text("-"),
            versions_text(rel) if rel else "-",
            (rel.deployment_id or "-") if rel else "-",
            when_text(rel) if rel else "-",
            lock_text(row.lock),
            str(row.queued),
            release_why(rel) if rel else "",
        )
    return table


def hook_lines(hook_results: dict[str, Any]) -> list[Text]:
    lines: list[Text] = []
    for hook in ("pre_traffic", "post_traffic"):
        result = hook_results.get(hook)
        if not result:
            continue
        verdict = str(result.get("verdict", "?"))
        lines.append(
            Text.assemble(
                (f"{hook.replace('_', '-')} hook: ", "bold"),
                (f"{VERDICT_MARK.get(verdict, '?')} {verdict}", STATE_STYLE.get(verdict, "")),
                f"  {result.get('reason', '')}".rstrip(),
            )
        )
        for check in result.get("checks") or []:
            check_verdict = str(check.get("verdict", "?"))
            line = Text.assemble(
                "    ",
                (VERDICT_MARK.get(check_verdict, "?"), STATE_STYLE.get(check_verdict, "")),
                f" {check.get('name', '?')}",
                (f"  {check.get('duration_ms', '?')} ms", "dim"),
            )
            detail = check.get("error") or check.get("excerpt")
            if detail and check_verdict != "Succeeded":
                line.append(f"  {str(detail)[:200]}", style="dim")
            lines.append(line)
        canary = result.get("canary")
        if canary:
            lines.append(Text(f"    canary: {_canary_text(canary)}", style="dim"))
        for warning in result.get("warnings") or []:
            lines.append(Text(f"    warning: {warning}", style="yellow"))
    return lines


def _canary_text(canary: dict[str, Any]) -> str:
    parts = []
    for key, value in canary.items():
        if isinstance(value, dict | list):
            continue
        parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(parts)


def traffic_bar(snap: DeploymentSnapshot, width: int = 40) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(width=width)
    grid.add_column(no_wrap=True)
    done = snap.status == "Succeeded"
    bar = ProgressBar(
        total=100,
        completed=round(snap.traffic_on_target * 100),
        width=width,
        complete_style="green" if done else "blue",
        finished_style="green",
    )
    label = f"v{snap.target_version or '?'}"
    grid.add_row(
        Text(f"traffic on {label}", style="bold"),
        bar,
        Text(
            f"{snap.traffic_on_target:6.1%}  (v{snap.current_version or '?'}: {1 - snap.traffic_on_target:.0%})"
        ),
    )
    return grid


def lifecycle_table(snap: DeploymentSnapshot) -> Table:
    table = Table.grid(padding=(0, 2))
    for _ in range(3):
        table.add_column(no_wrap=True)
    table.add_column()
    for event in snap.lifecycle:
        table.add_row(
            event.name,
            state_text(event.status),
            Text(
                event.ended[11:19] if event.ended else (event.started[11:19] if event.started else ""), "dim"
            ),
            Text(event.message, style="dim"),
        )
    return table


def snapshot_view(snap: DeploymentSnapshot, extra: list[RenderableType] | None = None) -> Panel:
    """The live picture of a deployment: lifecycle, traffic, hook results, the outcome once it ends."""
    head = Text.assemble(
        (snap.deployment_id, "bold"),
        f"  {snap.function}:{snap.alias}  v{snap.current_version or '?'} → v{snap.target_version or '?'}",
        (f"  {snap.config}", "dim"),
    )
    parts: list[RenderableType] = [head, lifecycle_table(snap), traffic_bar(snap)]
    parts.extend(hook_lines(snap.hook_results))
    if extra:
        parts.extend(extra)
    if snap.done:
        parts.append(Text(snap.outcome_text(), style=STATE_STYLE.get(snap.status, "bold")))
    title_style = STATE_STYLE.get(snap.status, "")
    return Panel(Group(*parts), title=Text(snap.status, style=title_style), title_align="left")


def snapshot_changes(before: DeploymentSnapshot | None, after: DeploymentSnapshot) -> list[str]:
    """Plain lines for what changed between two pictures (for logs and pipes)."""
    lines: list[str] = []
    if before is None:
        lines.append(
            f"{after.deployment_id}: {after.function}:{after.alias} v{after.current_version or '?'} -> "
            f"v{after.target_version or '?'} ({after.config}) {after.status}"
        )
    old_events = {e.name: e.status for e in before.lifecycle} if before else {}
    for event in after.lifecycle:
        if old_events.get(event.name, "Pending") != event.status:
            detail = f" ({event.message})" if event.message else ""
            lines.append(f"  {event.name}: {event.status}{detail}")
    moved = before is not None and round(before.traffic_on_target, 3) != round(after.traffic_on_target, 3)
    if moved or (before is None and after.traffic_on_target):
        lines.append(f"  traffic on v{after.target_version}: {after.traffic_on_target:.0%}")
    old_hooks = before.hook_results if before else {}
    for hook in ("pre_traffic", "post_traffic"):
        if after.hook_results.get(hook) and after.hook_results.get(hook) != old_hooks.get(hook):
            lines.extend(t.plain for t in hook_lines({hook: after.hook_results[hook]}))
    if before is not None and before.status != after.status and not after.done:
        lines.append(f"  status: {after.status}")
    if after.done and (before is None or not before.done):
        lines.append(f"  {after.outcome_text()}")
    return lines


def release_line(rel: Release) -> str:
    parts = [f"{rel.function} {rel.release_id}: {rel.state}"]
    if rel.target_version:
        parts.append(versions_text(rel))
    if rel.deployment_id:
        parts.append(rel.deployment_id)
    why = release_why(rel)
    if why:
        parts.append(f"- {why}")
    if rel.state not in (State.SUCCEEDED, State.BOOTSTRAPPED):
        parts += [f"- warning: {warning}" for warning in rel.warnings]
    return " ".join(parts)


def json_line(data: Any) -> str:
    return json.dumps(data, default=str, sort_keys=True)


def sandbox_panel(described: dict[str, Any]) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("endpoint", described["endpoint_url"])
    grid.add_row("region", str(described["region"]))
    grid.add_row(
        "speed", f"{described['speed']:g}x (one sandbox minute = {60 / float(described['speed']):.2g} s)"
    )
    grid.add_row("stack", described["stack"])
    for name, value in sorted(described["outputs"].items()):
        grid.add_row(Text(f"  {name}", style="dim"), value)
    return Panel(
        Group(grid, Text(""), Text(described["export"], style="bold green")),
        title="Rollout sandbox",
        title_align="left",
    )


@contextmanager
def live_view(out: Output) -> Iterator[Callable[[RenderableType], None]]:
    """A redrawn view on a terminal; elsewhere a no-op (plain callers print their own lines)."""
    if not out.live:
        yield lambda _renderable: None
        return
    with Live(console=out.console, refresh_per_second=8, transient=False) as live:
        yield live.update
