"""Checks that a built Lambda layer carries bytecode for every module, so a cold start compiles nothing.

    .venv/bin/python scripts/layer_bytecode.py .aws-sam/build/RolloutLayer

Lambda's /opt is read-only: a module without a valid .pyc next to it is compiled again at every cold start
and the result thrown away. For each `.py` under the folder this looks for `__pycache__/<name>.<tag>.pyc`
of this interpreter (run it with the runtime's Python, 3.13), compiled as a checked-hash pyc of that very
source: valid whatever the files' mtimes after zipping. Prints each problem; exits 1 when there is one.
`make sam-build` runs it on the built layer; tests/unit/test_layer_bytecode.py loads it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

CHECKED_HASH = 0b11  # PEP 552 flags: hash-based, and checked against the source at import


def problems(root: Path) -> list[str]:
    """Why each module under `root` would be compiled at import, one line each (none: all are ready)."""
    found: list[str] = []
    for source in sorted(root.rglob("*.py")):
        cached = Path(importlib.util.cache_from_source(str(source)))
        name = source.relative_to(root).as_posix()
        if not cached.is_file():
            found.append(f"{name}: no {cached.name}")
            continue
        header = cached.read_bytes()[:16]
        if header[:4] != importlib.util.MAGIC_NUMBER:
            found.append(f"{name}: {cached.name} is for another Python version")
        elif int.from_bytes(header[4:8], "little") != CHECKED_HASH:
            found.append(
                f"{name}: {cached.name} is not a checked-hash pyc (an mtime pyc goes stale unzipped)"
            )
        elif header[8:16] != importlib.util.source_hash(source.read_bytes()):
            found.append(f"{name}: {cached.name} was compiled from another source")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    root = Path(argv[0])
    found = problems(root)
    for line in found:
        print(line)
    modules = sum(1 for _ in root.rglob("*.py"))
    print(f"{root}: {modules - len(found)} of {modules} modules carry valid bytecode")
    return 1 if found or modules == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
