"""The fault matrix's figures as the Markdown table in docs/RELIABILITY.md.

    FAULT_MATRIX_REPORT=/tmp/fault-matrix.jsonl \\
        .venv/bin/python -m pytest tests/e2e/test_fault_matrix.py --fault-matrix
    .venv/bin/python scripts/fault_matrix_report.py /tmp/fault-matrix.jsonl

Each line of the report is one cell's figures, written by tests/support/fault_matrix.Cell.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = (
    ("cell", "cell"),
    ("ended", "states"),
    ("faults fired", "faults_fired"),
    ("reconciler runs", "reconciler_runs"),
    ("deployer invocations", "deployer_invocations"),
    ("deployments", "deployments_created"),
    ("sandbox min", "sandbox_minutes"),
    ("real s", "real_seconds"),
)


def cell_text(key: str, value: Any) -> str:
    if key == "states":
        return ", ".join(value)
    if key == "faults_fired":
        return str(sum(value.values())) if value else "-"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(cell_text(key, row.get(key, "")) for _, key in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    rows = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines() if line.strip()]
    print(table(rows))


if __name__ == "__main__":
    main()
