"""Fixtures of the conformance suite: a fresh `mlops emulator serve` per test, on loopback only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The tests must not read the developer's own Databricks configuration, and MLflow must not send
# usage telemetry: every request of this suite goes to the emulator on 127.0.0.1.
for _name in [name for name in os.environ if name.startswith("DATABRICKS_")]:
    del os.environ[_name]
os.environ["DATABRICKS_CONFIG_FILE"] = os.devnull
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

from databricks.sdk import WorkspaceClient  # noqa: E402

from emulator import Served, ServedWorkspace  # noqa: E402


@pytest.fixture
def served(tmp_path: Path):
    """A fresh emulator with the default workspaces dev, staging (123456789) and prod (987654321)."""
    emulator = Served(tmp_path / "emulator.log")
    yield emulator
    emulator.stop()


@pytest.fixture
def staging(served: Served) -> ServedWorkspace:
    """The staging workspace of a fresh emulator."""
    return served["staging"]


@pytest.fixture
def admin(staging: ServedWorkspace) -> WorkspaceClient:
    """An SDK client of staging that authenticates as the workspace admin."""
    return staging.client()
