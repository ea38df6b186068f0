"""The rollout package's architecture rules, checked with scripts/architecture.py's analysis.

The first tests hold the real package to the rules; the rest run the same rule checks on small
packages written to tmp_path, so that a rule cannot pass because the analysis saw nothing.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# Adapters: the only modules that may make or use boto3 clients (aws.py makes them for the others).
CLIENT_MODULES = frozenset(
    {
        "aws.py",
        "lambda_ops.py",
        "codedeploy_ops.py",
        "s3_ops.py",
        "s3_versions.py",
        "canary_alarms.py",
        "lambda_metrics.py",
        "ledger.py",
        "notifications.py",
        "upload_ops.py",
        "sqs_ops.py",
        "sts_ops.py",
    }
)
SNS_PUBLISHER = "notifications.py"
MAX_FUNCTION_LINES = 60
MAX_HANDLER_CODE_LINES = 30

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "layers" / "rollout" / "rollout"
HANDLERS = sorted((REPO / "functions").glob("*/app.py"))


def _load_architecture() -> ModuleType:
    # scripts/ is not a package; load the report by its path so the test and the report share code.
    spec = importlib.util.spec_from_file_location("architecture_report", REPO / "scripts" / "architecture.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


architecture = _load_architecture()


# --- the rules, as offender lists (empty when the rule holds) -------------------------------------------


def cycle_offenders(report: Any) -> list[str]:
    return [" <-> ".join(cycle) for cycle in report.cycles]


def long_function_offenders(report: Any, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    return [f"{fn.location} {fn.qualname}: {fn.length} lines" for fn in report.functions if fn.length > limit]


def client_offenders(report: Any) -> list[str]:
    return [f"{site.location} {site.call}" for site in report.client_calls if site.path not in CLIENT_MODULES]


def sns_offenders(report: Any) -> list[str]:
    return [f"{site.location} {site.call}" for site in report.sns_publish_calls if site.path != SNS_PUBLISHER]


def _listing(offenders: list[str]) -> str:
    return "\n  " + "\n  ".join(offenders)


# --- the real package ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report() -> Any:
    return architecture.analyse(PACKAGE)


def test_the_analysis_sees_the_package(report: Any) -> None:
    assert len(report.modules) > 10
    assert report.functions
    assert any(report.imports.values()), "no import between the package's modules was found"
    assert "aws.py" in report.client_modules, "aws.py makes the clients; the analysis must see it"
    assert HANDLERS, "no functions/*/app.py found"


def test_no_import_cycles(report: Any) -> None:
    offenders = cycle_offenders(report)
    assert not offenders, f"import cycles:{_listing(offenders)}"


def test_no_function_is_longer_than_the_limit(report: Any) -> None:
    offenders = long_function_offenders(report)
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:{_listing(offenders)}"


def test_boto3_clients_are_used_only_in_the_adapters(report: Any) -> None:
    offenders = client_offenders(report)
    assert not offenders, f"boto3 clients outside {sorted(CLIENT_MODULES)}:{_listing(offenders)}"


def test_sns_is_published_from_notifications_only(report: Any) -> None:
    publishers = report.sns_publisher_modules
    assert publishers == [SNS_PUBLISHER], (
        f"SNS is published from {publishers}, expected {SNS_PUBLISHER} alone:{_listing(sns_offenders(report))}"
    )


def test_handlers_stay_thin() -> None:
    sizes = {
        path.relative_to(REPO).as_posix(): architecture.code_lines(path.read_text()) for path in HANDLERS
    }
    offenders = [
        f"{path}: {lines} lines of code" for path, lines in sizes.items() if lines > MAX_HANDLER_CODE_LINES
    ]
    assert not offenders, f"handlers over {MAX_HANDLER_CODE_LINES} lines of code:{_listing(offenders)}"


# --- the analysis on synthetic packages ------------------------------------------------------------------


def write_package(tmp_path: Path, modules: dict[str, str]) -> Path:
    """A package named rollout under tmp_path, one file per entry; returns its folder."""
    root = tmp_path / "rollout"
    for relative, source in {"__init__.py": "", **modules}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def function_of(length: int, name: str = "f", indent: str = "") -> str:
    """Source of a decorated function `length` lines long from its `def` line to its last line."""
    body = [f"{indent}    x = {n}" for n in range(length - 2)]
    return "\n".join([f"{indent}@decorator", f"{indent}def {name}():", *body, f"{indent}    return x", ""])


def test_a_cycle_through_every_import_form_is_found(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "a.py": "from rollout import b\n",
            "b.py": "def later():\n    import rollout.c\n",
            "c.py": "from rollout.a import thing\n",
            "d.py": "from rollout import a\n",
            "e.py": "from rollout import f\n",
            "f.py": "from rollout import e\n",
        },
    )
    report = architecture.analyse(root)
    assert report.imports["a.py"] == ["b.py"]
    assert report.imports["b.py"] == ["c.py"]
    assert report.imports["c.py"] == ["a.py"]
    assert report.imports["d.py"] == ["a.py"]
    assert report.cycles == [["a.py", "b.py", "c.py"], ["e.py", "f.py"]]
    assert cycle_offenders(report) == ["a.py <-> b.py <-> c.py", "e.py <-> f.py"]


def test_relative_and_subpackage_imports_are_edges_and_a_self_import_is_a_cycle(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "a.py": "from . import b\nfrom .sub import inner\nfrom rollout.a import itself\n",
            "b.py": "import rollout\n",
            "sub/__init__.py": "",
            "sub/inner.py": "from .. import b\nfrom rollout.sub import NAME\n",
        },
    )
    report = architecture.analyse(root)
    assert report.imports["a.py"] == ["a.py", "b.py", "sub/inner.py"]
    assert report.imports["b.py"] == ["__init__.py"]
    assert report.imports["sub/inner.py"] == ["b.py", "sub/__init__.py"]
    assert report.cycles == [["a.py"]]


def test_type_checking_imports_are_not_edges(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "a.py": """
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from rollout import b
                else:
                    from rollout import c
            """,
            "b.py": """
                import typing

                if typing.TYPE_CHECKING:
                    from rollout.a import A
            """,
            "c.py": "",
        },
    )
    report = architecture.analyse(root)
    assert report.imports == {"__init__.py": [], "a.py": ["c.py"], "b.py": [], "c.py": []}
    assert cycle_offenders(report) == []


def test_a_61_line_function_is_flagged_and_a_60_line_one_is_not(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "long.py": function_of(61, "too_long"),
            "fits.py": "class Box:\n" + function_of(60, "fits", indent="    "),
        },
    )
    report = architecture.analyse(root)
    lengths = {fn.qualname: (fn.location, fn.length) for fn in report.functions}
    assert lengths == {"too_long": ("long.py:2", 61), "Box.fits": ("fits.py:3", 60)}
    assert long_function_offenders(report) == ["long.py:2 too_long: 61 lines"]


def test_clients_outside_the_adapters_are_flagged_however_they_are_imported(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "aws.py": "import boto3\n\ndef client(service):\n    return boto3.client(service)\n",
            "lambda_ops.py": "from rollout import aws\n\naws.client('lambda')\n",
            "deployer.py": "from rollout import aws\n\ndef go():\n    return aws.client('codedeploy')\n",
            "hooks.py": "from rollout.aws import table as ledger_table\n\nledger_table('ledger')\n",
            "check_runner.py": "from . import aws\n\naws.check_invoke_client()\n",
            "reports.py": "import boto3 as b\n\nb.resource('s3')\n",
            "outcomes.py": "from rollout import aws\n\naws.error_code(ValueError())\n",
        },
    )
    report = architecture.analyse(root)
    assert report.client_modules == [
        "aws.py",
        "check_runner.py",
        "deployer.py",
        "hooks.py",
        "lambda_ops.py",
        "reports.py",
    ]
    assert client_offenders(report) == [
        "check_runner.py:3 aws.check_invoke_client()",
        "deployer.py:4 aws.client('codedeploy')",
        "hooks.py:3 ledger_table(…)",
        "reports.py:3 b.resource('s3')",
    ]


def test_any_publish_call_or_sns_client_makes_an_sns_publisher(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "notifications.py": "from rollout import aws\n\naws.client('sns').publish(TopicArn='t')\n",
            "deployer.py": "import boto3\n\nsns = boto3.client(service_name='sns')\n",
            "reconcile.py": "def tell(notifier):\n    notifier.publish('m')\n",
            "ledger.py": "def put(table):\n    table.put_item(Item={})\n",
        },
    )
    report = architecture.analyse(root)
    assert report.sns_publisher_modules == ["deployer.py", "notifications.py", "reconcile.py"]
    assert sns_offenders(report) == [
        "deployer.py:3 boto3.client('sns')",
        "reconcile.py:2 notifier.publish(…)",
    ]


def test_code_lines_leave_out_docstrings_comments_and_blank_lines() -> None:
    source = textwrap.dedent(
        '''
        """Module docstring
        on two lines."""

        # a comment
        import os


        def handler(event):
            """Docstring."""
            return {  # trailing comment
                "home": os.environ.get("HOME"),
            }
        '''
    )
    assert architecture.code_lines(source) == 5
