"""Run the local sandbox with the control-plane stack provisioned, for `sandbox up` and the demo."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.backend import configure_environment
from cli.errors import CliError, ExitCode


@dataclass
class RunningSandbox:
    sandbox: Any
    stack_name: str
    outputs: dict[str, str]

    @property
    def endpoint_url(self) -> str:
        return str(self.sandbox.endpoint_url)

    def describe(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.sandbox.region,
            "speed": self.sandbox.clock.speed,
            "stack": self.stack_name,
            "outputs": self.outputs,
            "export": f"export AWS_ENDPOINT_URL={self.endpoint_url}",
        }


@contextmanager
def running_sandbox(
    port: int,
    speed: float,
    stack_name: str,
    template: Path,
    parameters: Callable[[str], dict[str, str]] | None = None,
) -> Iterator[RunningSandbox]:
    """Start the sandbox, provision `template` as `stack_name`, yield, then stop everything.

    `parameters(endpoint_url)` runs before provisioning (to create, say, a secret the stack refers to)
    and returns the stack parameters. This process's boto3 clients point at the sandbox meanwhile.
    """
    try:
        from sandbox.core import Sandbox
        from sandbox.provision import ProvisionError, provision_stack
    except ImportError as exc:  # a checkout without the sandbox
        raise CliError(f"the local sandbox is not available: {exc}", ExitCode.AWS_ERROR) from exc
    try:
        sb = Sandbox(port=port, speed=speed)
        sb.start()
    except OSError as exc:
        raise CliError(
            f"cannot start the sandbox on port {port}: {exc.strerror or exc}",
            ExitCode.USAGE,
            hint="another sandbox may be running; pass --port 0 to pick a free port",
        ) from exc
    try:
        configure_environment(sb.endpoint_url, sb.region)
        given = parameters(sb.endpoint_url) if parameters else {}
        try:
            stack = provision_stack(sb.endpoint_url, template, stack_name, parameters=given, region=sb.region)
        except ProvisionError as exc:
            raise CliError(f"provisioning {template.name} failed: {exc}", ExitCode.AWS_ERROR) from exc
        yield RunningSandbox(sb, stack_name, dict(stack.outputs))
    finally:
        sb.stop()
