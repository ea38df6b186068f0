"""The artifact deployer's flow: an upload becomes a published version and a CodeDeploy deployment."""

from __future__ import annotations

from rollout.config import Settings
from rollout.ledger import Ledger, Release


def start_deployment(release: Release, ledger: Ledger, settings: Settings) -> Release:
    """Start (or queue) a release whose target version is published; see the module docs."""
    raise NotImplementedError("start_deployment is being written")
