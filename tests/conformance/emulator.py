"""`mlops emulator serve` as a child process, and the official SDK connected to it.

The binary is `target/debug/mlops` of this repository, or the file named by `MLOPS_BIN`. It must be
built before pytest starts (`.ci/run` builds it).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient

REPO_ROOT = Path(__file__).resolve().parents[2]

# Seconds to wait for the emulator to print its workspaces, and for it to stop.
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10


def mlops_binary() -> Path:
    """Return the `mlops` binary under test, failing the test when it is not built."""
    binary = Path(os.environ.get("MLOPS_BIN", REPO_ROOT / "target" / "debug" / "mlops"))
    if not binary.is_file():
        pytest.fail(f"mlops binary not found at {binary}: run `cargo build -p mlops` first, or set MLOPS_BIN")
    return binary


@dataclass(frozen=True)
class ServedWorkspace:
    """One workspace as `mlops emulator serve` prints it."""

    name: str
    host: str
    workspace_id: str
    token: str
    client_id: str
    client_secret: str

    def client(self) -> WorkspaceClient:
        """Return an SDK client that authenticates with the admin personal access token."""
        return WorkspaceClient(host=self.host, token=self.token, auth_type="pat")

    def oauth_client(self, client_id: str | None = None, client_secret: str | None = None) -> WorkspaceClient:
        """Return an SDK client that logs in with OAuth machine-to-machine credentials."""
        return WorkspaceClient(
            host=self.host,
            client_id=client_id or self.client_id,
            client_secret=client_secret or self.client_secret,
            auth_type="oauth-m2m",
        )


class Served:
    """A running `mlops emulator serve`; `stop` ends it."""

    def __init__(self, log_path: Path, *args: str) -> None:
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(mlops_binary()), "emulator", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            cwd=log_path.parent,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        expected = args.count("--workspace") or 3
        try:
            lines = self._read_lines(expected)
        except BaseException:
            self.stop()
            raise
        printed = [json.loads(line) for line in lines]
        known = [field.name for field in fields(ServedWorkspace)]
        self.workspaces = {line["name"]: ServedWorkspace(**{key: line[key] for key in known}) for line in printed}

    def _read_lines(self, count: int) -> list[str]:
        """Read the first `count` stdout lines, failing when the emulator exits or stalls."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        lines: list[str] = []
        while len(lines) < count:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"mlops emulator serve printed {len(lines)} of {count} workspaces in {START_TIMEOUT_SECONDS}s")
            if line is None:
                pytest.fail(f"mlops emulator serve exited with code {self.process.wait()} before printing its workspaces")
            lines.append(line)
        return lines

    def _pump(self) -> None:
        """Queue every stdout line, then `None` at the end, so the emulator never blocks on a full pipe."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.decode())
        self._lines.put(None)

    def __getitem__(self, name: str) -> ServedWorkspace:
        return self.workspaces[name]

    def stop(self) -> None:
        """Stop the emulator with SIGTERM, or SIGKILL when it does not exit in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def decode_secret(value: str | None) -> str:
    """Decode the base64 value that the secrets API returns."""
    assert value is not None
    return base64.b64decode(value).decode()


def user_access_token(admin: WorkspaceClient, user_id: str) -> str:
    """Issue an access token for a user through the emulator's admin-only control endpoint."""
    reply = admin.api_client.do("POST", f"/_emulator/users/{user_id}/access-token", body={})
    return reply["access_token"]
