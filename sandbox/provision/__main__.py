"""`python -m sandbox.provision --endpoint-url URL [--template template.yaml] [--stack-name rollout]
[--parameter Name=Value ...]`: provision the stack and print it (outputs first) as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sandbox.provision import ProvisionError, provision_stack


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected Name=Value, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.provision", description=__doc__)
    parser.add_argument(
        "--endpoint-url", required=True, help="the local AWS endpoint, e.g. http://127.0.0.1:4566"
    )
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--stack-name", default="rollout")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--parameter", type=_parameter, action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--full", action="store_true", help="print every resource, not only the outputs")
    args = parser.parse_args(argv)
    try:
        stack = provision_stack(
            args.endpoint_url, args.template, args.stack_name, dict(args.parameter), region=args.region
        )
    except ProvisionError as exc:
        print(f"provisioning failed: {exc}", file=sys.stderr)
        return 1
    print(stack.to_json() if args.full else json.dumps(stack.outputs, indent=2, sort_keys=True))
    for note in stack.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"provisioned {len(stack.resources)} resources in {stack.elapsed_seconds:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
