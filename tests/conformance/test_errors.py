"""Emulator errors arrive as the SDK's own exception classes."""

from __future__ import annotations

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    BadRequest,
    DatabricksError,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
)
from databricks.sdk.service import workspace

from emulator import user_access_token


def non_admin(staging, admin: WorkspaceClient) -> WorkspaceClient:
    """Create a user outside `admins` and return an SDK client that acts as that user."""
    user = admin.users.create(user_name="ana@example.com")
    return WorkspaceClient(host=staging.host, token=user_access_token(admin, user.id), auth_type="pat")


def test_missing_objects_raise_not_found(admin):
    with pytest.raises(NotFound, match="Group with id 1234 is not found"):
        admin.groups.get("1234")
    with pytest.raises(NotFound):
        admin.service_principals.get("1234")
    with pytest.raises(NotFound):
        admin.token_management.get("0" * 64)
    with pytest.raises(NotFound, match="Scope absent does not exist!") as raised:
        admin.secrets.list_secrets("absent")
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(NotFound):
        admin.api_client.do("GET", "/api/2.0/mlflow/registered-models/get", query={"name": "absent"})


def test_duplicate_scope_raises_already_exists(admin):
    admin.secrets.create_scope(scope="remote-mr-prod")

    with pytest.raises(ResourceAlreadyExists, match="Scope remote-mr-prod already exists!") as raised:
        admin.secrets.create_scope(scope="remote-mr-prod")
    assert raised.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_duplicate_group_raises_conflict(admin):
    admin.groups.create(display_name="mlops-service-principals")

    with pytest.raises(ResourceConflict, match="Group with name mlops-service-principals already exists."):
        admin.groups.create(display_name="mlops-service-principals")


def test_non_admin_raises_permission_denied(staging, admin):
    user = non_admin(staging, admin)
    admin.secrets.create_scope(scope="remote-mr-prod")
    admin.secrets.put_secret("remote-mr-prod", "prod-token", string_value="not-for-users")

    with pytest.raises(PermissionDenied):
        list(user.token_management.list())
    with pytest.raises(PermissionDenied):
        user.token_management.get_permissions()
    with pytest.raises(PermissionDenied):
        list(user.service_principals.list())
    with pytest.raises(PermissionDenied) as raised:
        user.secrets.get_secret("remote-mr-prod", "prod-token")
    assert raised.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(PermissionDenied):
        user.secrets.put_acl("remote-mr-prod", "users", workspace.AclPermission.READ)
    with pytest.raises(PermissionDenied, match="does not have permission to read registered models"):
        list(user.model_registry.search_models())


def test_invalid_token_is_rejected(staging):
    stranger = WorkspaceClient(host=staging.host, token="dapi" + "0" * 32, auth_type="pat")

    with pytest.raises(PermissionDenied, match="Invalid access token."):
        stranger.current_user.me()


def test_invalid_request_raises_bad_request(admin):
    with pytest.raises(BadRequest):
        admin.secrets.create_scope(scope="no spaces allowed")


def test_unknown_endpoint_names_path(admin):
    with pytest.raises(DatabricksError, match="/api/2.0/clusters/list") as raised:
        admin.api_client.do("GET", "/api/2.0/clusters/list")
    assert raised.value.error_code == "ENDPOINT_NOT_FOUND"
