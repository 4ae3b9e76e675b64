"""OAuth machine-to-machine login of the official SDK against the emulator."""

from __future__ import annotations

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import iam

PATCH_SCHEMA = [iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]


def test_admin_client_credentials_log_in(served):
    for workspace in served.workspaces.values():
        client = workspace.oauth_client()
        assert client.config.auth_type == "oauth-m2m"
        assert client.current_user.me().user_name == "admin@example.com"


def test_host_metadata_and_discovery(staging):
    anonymous = WorkspaceClient(host=staging.host, token="unused", auth_type="pat").api_client
    metadata = anonymous.do("GET", "/.well-known/databricks-config")
    assert metadata["workspace_id"] == staging.workspace_id
    assert metadata["oidc_endpoint"] == f"{staging.host}/oidc"

    discovery = anonymous.do("GET", "/oidc/.well-known/oauth-authorization-server")
    assert discovery["token_endpoint"] == f"{staging.host}/oidc/v1/token"
    assert discovery["authorization_endpoint"] == f"{staging.host}/oidc/v1/authorize"


def test_service_principal_client_credentials_log_in(staging, admin):
    principal = admin.service_principals.create(display_name="reader")
    credentials = admin.api_client.do("POST", f"/_emulator/service-principals/{principal.id}/secret", body={})
    assert credentials["client_id"] == principal.application_id

    as_principal = staging.oauth_client(credentials["client_id"], credentials["client_secret"])
    assert as_principal.current_user.me().user_name == principal.application_id
    read = iam.AccessControlRequest(service_principal_name=principal.application_id, permission_level=iam.PermissionLevel.CAN_READ)
    admin.permissions.update("registered-models", "root", access_control_list=[read])
    names = sorted(model.name for model in as_principal.model_registry.search_models())
    assert names == ["churn-model", "demand-forecast", "fraud-detector"]


def test_wrong_client_secret_fails_login(staging):
    with pytest.raises(ValueError, match="invalid_client: Client authentication failed."):
        staging.oauth_client(client_secret="dose" + "0" * 64).current_user.me()


def test_deactivated_principal_loses_login(staging, admin):
    principal = admin.service_principals.create(display_name="reader")
    credentials = admin.api_client.do("POST", f"/_emulator/service-principals/{principal.id}/secret", body={})
    as_principal = staging.oauth_client(credentials["client_id"], credentials["client_secret"])
    assert as_principal.current_user.me().user_name == principal.application_id

    operation = iam.Patch(op=iam.PatchOp.REPLACE, path="active", value="false")
    admin.service_principals.patch(principal.id, operations=[operation], schemas=PATCH_SCHEMA)
    with pytest.raises(ValueError, match="invalid_client: Client authentication failed."):
        staging.oauth_client(credentials["client_id"], credentials["client_secret"]).current_user.me()
