"""End to end: `mlops apply` wires the links, then a non-admin reader uses MLflow's own client.

After apply, a member of `users` in each reader workspace reads the link's host, workspace id and
token through the secrets API. It writes them into a Databricks configuration profile and lists
the registry workspace's models with `MlflowClient`, as a remote registry reader does outside a
notebook, because the `databricks://<scope>:<prefix>` form reads notebook secrets.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied
from mlflow import MlflowClient

from emulator import Served, decode_secret, mlops_binary, user_access_token

SEEDED_MODELS = ["churn-model", "demand-forecast", "fraud-detector"]
LINKS = [("dev", "staging"), ("dev", "prod"), ("staging", "prod")]


def write_config(served: Served, folder: Path) -> Path:
    """Write an mlops.yaml that reaches every served workspace with a token from the environment."""
    lines = ["version: 1", "workspaces:"]
    for name, workspace in served.workspaces.items():
        lines += [f"  {name}:", f"    host: {workspace.host}", f"    token_env: {name.upper()}_TOKEN"]
        if name != "dev":
            lines.append(f'    workspace_id: "{workspace.workspace_id}"')
    lines += ["additional_token_usage_groups: [users]", "state: state/mlops.state.json"]
    path = folder / "mlops.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_mlops(served: Served, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the mlops binary in `folder` with each workspace's admin token in the environment."""
    env = {name: value for name, value in os.environ.items() if not name.endswith("_TOKEN")}
    env.update({f"{name.upper()}_TOKEN": workspace.token for name, workspace in served.workspaces.items()})
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [str(mlops_binary()), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )


def non_admin_reader(served: Served, workspace: str) -> WorkspaceClient:
    """Create a user in a workspace and return an SDK client that acts as that user."""
    admin = served[workspace].client()
    user = admin.users.create(user_name=f"analyst@{workspace}.example.com")
    reader = WorkspaceClient(host=served[workspace].host, token=user_access_token(admin, user.id), auth_type="pat")
    groups = [group.display for group in reader.current_user.me().groups or []]
    assert "admins" not in groups
    return reader


@pytest.fixture
def applied(served: Served, tmp_path: Path) -> Served:
    """The served emulator after `mlops apply` of the default links."""
    write_config(served, tmp_path)
    result = run_mlops(served, tmp_path, "apply", "--auto-approve")
    assert result.returncode == 0, result.stderr
    return served


@pytest.mark.parametrize(("reader", "registry"), LINKS)
def test_mlflow_lists_remote_models(applied, tmp_path, monkeypatch, reader, registry):
    user = non_admin_reader(applied, reader)
    scope = f"remote-mr-{registry}"
    stored = {key: decode_secret(user.secrets.get_secret(scope, f"{registry}-{key}").value) for key in ("host", "workspace-id", "token")}
    assert stored["host"] == applied[registry].host
    assert stored["workspace-id"] == applied[registry].workspace_id
    assert stored["token"] != applied[registry].token

    profile = f"{reader}-reads-{registry}"
    config_file = tmp_path / "reader.databrickscfg"
    config_file.write_text(f"[{profile}]\nhost = {stored['host']}\ntoken = {stored['token']}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config_file))
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri=f"databricks://{profile}", registry_uri=f"databricks://{profile}")

    models = client.search_registered_models()
    assert sorted(model.name for model in models) == SEEDED_MODELS
    latest = client.get_latest_versions("fraud-detector", stages=["Production"])
    assert [(version.name, version.version) for version in latest] == [("fraud-detector", "1")]
    assert client.get_registered_model("churn-model").description == "Predicts customer churn."
    versions = client.search_model_versions("name='demand-forecast'")
    assert [version.current_stage for version in versions] == ["None"]
    uri = client.get_model_version_download_uri("churn-model", "1")
    assert uri.startswith("dbfs:/databricks/mlflow-tracking/")


def test_reader_user_cannot_read_registry_directly(applied):
    user = non_admin_reader(applied, "staging")

    names = [scope.name for scope in user.secrets.list_scopes()]
    assert names == ["remote-mr-prod"]
    with pytest.raises(PermissionDenied):
        list(user.model_registry.search_models())


def test_verify_passes_after_apply(applied, tmp_path):
    result = run_mlops(applied, tmp_path, "verify")

    assert result.returncode == 0, result.stderr
    assert "All 3 links work." in result.stdout
