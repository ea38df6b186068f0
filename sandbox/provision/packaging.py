"""Zip archives of local code folders, laid out as Lambda expects them.

A function zip holds the folder's contents at its root (`app.py` next to `__init__.py`).

A layer zip puts the folder's contents under `python/` (Lambda adds `/opt/python` to `sys.path`),
unless the folder already has a `python/` directory. For layers/rollout this gives
`python/rollout/...`. Third-party requirements are not installed into the zip: in the sandbox they come
from the sandbox's own Python, the way Lambda's runtime provides boto3 without packaging it.
`sam build` is what vendors them for a real deployment.

A layer built by its Makefile (layers/rollout/Makefile, `BuildMethod: makefile`) carries a checked-hash
.pyc of every module, compiled by the interpreter the sandbox's workers run, as that Makefile compiles
them with Lambda's: workers never write bytecode (PYTHONDONTWRITEBYTECODE, as /opt is read-only on
Lambda), so a zip without it makes each cold start compile every module again, and one with it spares
exactly what the real layer spares.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import py_compile
import tempfile
import zipfile
from pathlib import Path

_SKIPPED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".aws-sam", ".git"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
# Files that describe how to build the code rather than being part of it.
_BUILD_FILES = frozenset({"requirements.txt", "Makefile"})
# A fixed timestamp keeps the zip, and so the function's CodeSha256, stable between runs.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _files(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part in _SKIPPED_DIRS for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIPPED_SUFFIXES) and path.name not in _BUILD_FILES:
            found.append(path)
    return found


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def function_zip(folder: Path) -> bytes:
    return _zip([(path.relative_to(folder).as_posix(), path.read_bytes()) for path in _files(folder)])


def layer_zip(folder: Path, *, compiled: bool = False) -> bytes:
    prefix = "" if (folder / "python").is_dir() else "python/"
    entries: list[tuple[str, bytes]] = []
    for path in _files(folder):
        name, data = prefix + path.relative_to(folder).as_posix(), path.read_bytes()
        entries.append((name, data))
        if compiled and name.endswith(".py"):
            entries.append((importlib.util.cache_from_source(name), _bytecode(name, data)))
    return _zip(entries)


@functools.cache
def _bytecode(name: str, source: bytes) -> bytes:
    """A checked-hash pyc of `source` (what `compileall --invalidation-mode checked-hash` writes)."""
    with tempfile.TemporaryDirectory(prefix="rollout-pyc-") as scratch:
        source_path, pyc_path = Path(scratch) / "module.py", Path(scratch) / "module.pyc"
        source_path.write_bytes(source)
        py_compile.compile(
            str(source_path),
            cfile=str(pyc_path),
            dfile=name,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
        return pyc_path.read_bytes()


def inline_zip(source: str, runtime: str | None) -> bytes:
    """The zip CloudFormation builds for `Code.ZipFile`: the source as index.py (index.js for Node)."""
    name = "index.js" if runtime and runtime.startswith("nodejs") else "index.py"
    return _zip([(name, source.encode())])
