"""The layer that `sam build` makes carries exactly the runtime pins the tests run with."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("-")}


def test_layer_requirements_match_runtime_requirements() -> None:
    assert _pins(ROOT / "layers/rollout/requirements.txt") == _pins(ROOT / "requirements/runtime.txt")


def test_every_runtime_pin_is_in_the_lock() -> None:
    lock = {line.lower().replace("_", "-") for line in _pins(ROOT / "requirements/dev.lock")}
    for pin in _pins(ROOT / "requirements/runtime.txt"):
        name = pin.split("[")[0].split("==")[0].lower().replace("_", "-")
        version = pin.split("==")[1]
        assert f"{name}=={version}" in lock, f"{pin} is not what the tests run with"
