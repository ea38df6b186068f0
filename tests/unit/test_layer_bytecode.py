"""The layer ships bytecode for every module, so a cold start on Lambda (read-only /opt) compiles nothing.

Checked three ways: scripts/layer_bytecode.py's check itself; the layer Makefile's `package` step (what
`sam build` runs, minus the dependencies it downloads); and the sandbox's layer zip, which must carry the
same bytecode the real layer carries, no more and no less.
"""

from __future__ import annotations

import importlib.util
import io
import os
import py_compile
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

from sandbox.provision import packaging
from sandbox.provision.template import LocalCode, _swap_local_code, load_template

REPO = Path(__file__).resolve().parents[2]
LAYER = REPO / "layers" / "rollout"
PACKAGE_MODULES = sorted(
    "rollout." + p.relative_to(LAYER / "rollout").with_suffix("").as_posix().replace("/", ".")
    for p in (LAYER / "rollout").rglob("*.py")
    if p.name != "__init__.py"
)

# Imports each named module from the folder in argv[1] and prints every file under that folder that the
# interpreter had to compile from source (a module without valid bytecode), one per line.
PROBE = """
import importlib, importlib.machinery as machinery, sys
root = sys.argv[1]
compiled = []
original = machinery.SourceFileLoader.source_to_code
def counting(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return original(self, data, path, *args, **kwargs)
machinery.SourceFileLoader.source_to_code = counting
sys.path.insert(0, root)
for name in sys.argv[2:]:
    importlib.import_module(name)
print("\\n".join(p for p in compiled if p.startswith(root)))
"""


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layer_bytecode", REPO / "scripts" / "layer_bytecode.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def compiled_at_import(python_dir: Path) -> list[str]:
    """The modules of the rollout package that importing them from `python_dir` compiled from source."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # as on Lambda: nothing is written at import
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(python_dir), *PACKAGE_MODULES],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in out.stdout.splitlines() if line]


def test_the_check_names_each_module_a_cold_start_would_compile(tmp_path: Path) -> None:
    for name in ("fresh", "stamped", "stale", "ready"):
        (tmp_path / f"{name}.py").write_text(f"NAME = {name!r}\n")
    (tmp_path / "fresh.py").touch()
    for name, mode in (
        ("stamped", py_compile.PycInvalidationMode.TIMESTAMP),
        ("stale", py_compile.PycInvalidationMode.CHECKED_HASH),
        ("ready", py_compile.PycInvalidationMode.CHECKED_HASH),
    ):
        py_compile.compile(str(tmp_path / f"{name}.py"), invalidation_mode=mode, doraise=True)
    (tmp_path / "stale.py").write_text("NAME = 'edited after the build'\n")

    found = checker.problems(tmp_path)

    assert [line.split(":")[0] for line in found] == ["fresh.py", "stale.py", "stamped.py"]
    assert "no fresh.cpython" in found[0]
    assert "compiled from another source" in found[1]
    assert "not a checked-hash pyc" in found[2]
    assert checker.main([str(tmp_path)]) == 1


def test_the_layer_makefile_compiles_the_package_so_importing_it_compiles_nothing(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make is not None, "the project's builds need make"
    artifacts = tmp_path / "artifacts"
    subprocess.run(
        [make, "--no-print-directory", "-f", str(LAYER / "Makefile"), "package", f"PYTHON={sys.executable}"],
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    python_dir = artifacts / "python"

    assert checker.problems(python_dir) == []
    assert sorted((python_dir / "rollout").rglob("*.py")), "the package was copied"
    assert compiled_at_import(python_dir) == []


def test_the_sandbox_layer_carries_the_same_bytecode_as_the_built_layer(tmp_path: Path) -> None:
    archive = zipfile.ZipFile(io.BytesIO(packaging.layer_zip(LAYER, compiled=True)))
    archive.extractall(tmp_path)
    python_dir = tmp_path / "python"

    assert checker.problems(python_dir) == []
    assert compiled_at_import(python_dir) == []
    pycs = [name for name in archive.namelist() if name.endswith(".pyc")]
    sources = [name for name in archive.namelist() if name.endswith(".py")]
    assert len(pycs) == len(sources) > 40


def test_without_the_makefile_build_the_sandbox_layer_is_source_only_and_compiles_at_import(
    tmp_path: Path,
) -> None:
    zipfile.ZipFile(io.BytesIO(packaging.layer_zip(LAYER))).extractall(tmp_path)

    compiled = compiled_at_import(tmp_path / "python")

    assert len(compiled) == len(PACKAGE_MODULES) + 1  # every module and the package's __init__


def test_only_the_layer_built_by_its_makefile_is_marked_compiled() -> None:
    local_code = LocalCode(REPO)
    template = load_template(REPO / "template.yaml")
    _swap_local_code(template, local_code)

    def location(uri: str) -> dict[str, str]:  # s3://bucket/key, as the placeholder reads
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        return {"S3Bucket": bucket, "S3Key": key}

    resources = template["Resources"].values()
    functions = [r["Properties"]["CodeUri"] for r in resources if r["Type"] == "AWS::Serverless::Function"]
    assert local_code.is_compiled(location(template["Resources"]["RolloutLayer"]["Properties"]["ContentUri"]))
    assert len(functions) == 9
    assert not any(local_code.is_compiled(location(uri)) for uri in functions)
