"""On-behalf-of tokens, token permissions and registry root permissions through the official SDK."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import InvalidParameterValue, NotFound
from databricks.sdk.service import iam, settings

PATCH_SCHEMA = [iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]
LIFETIME_SECONDS = 8_640_000

# The SDK's TokenPermissionLevel enum lists only CAN_USE, but a token PUT must keep admins at
# CAN_MANAGE; the request body only reads `.value` of the level.
CAN_MANAGE = SimpleNamespace(value="CAN_MANAGE")
ADMINS_MANAGE = settings.TokenAccessControlRequest(group_name="admins", permission_level=CAN_MANAGE)


def token_reader(admin: WorkspaceClient) -> iam.ServicePrincipal:
    """Create a service principal in a group that has CAN_USE on tokens."""
    group = admin.groups.create(display_name="mlops-service-principals")
    principal = admin.service_principals.create(display_name="reader")
    operation = iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": principal.id}])
    admin.groups.patch(group.id, operations=[operation], schemas=PATCH_SCHEMA)
    grant = settings.TokenAccessControlRequest(
        group_name="mlops-service-principals", permission_level=settings.TokenPermissionLevel.CAN_USE
    )
    admin.token_management.update_permissions(access_control_list=[grant])
    return principal


def direct_levels(acl, **principal: str) -> list[str | None]:
    """Return the non-inherited levels that an access control list gives one principal. A level
    that the SDK's enum does not list reads as None."""
    (key, name), = principal.items()
    return sorted(
        (permission.permission_level.value if permission.permission_level else None
         for entry in acl or []
         if getattr(entry, key) == name
         for permission in entry.all_permissions or []
         if not permission.inherited),
        key=str,
    )


def raw_token_levels(admin: WorkspaceClient, group: str) -> list[str]:
    """Return a group's direct token levels from the raw response, CAN_MANAGE included."""
    body = admin.api_client.do("GET", "/api/2.0/permissions/authorization/tokens")
    return sorted(
        permission["permission_level"]
        for entry in body["access_control_list"]
        if entry.get("group_name") == group
        for permission in entry["all_permissions"]
        if permission["inherited"] is False
    )


def test_obo_token_create_get_list_delete(staging, admin):
    principal = token_reader(admin)
    before_ms = int(time.time() * 1000)

    created = admin.token_management.create_obo_token(
        application_id=principal.application_id, lifetime_seconds=LIFETIME_SECONDS, comment="mlops:staging/token"
    )
    assert created.token_value.startswith("dapi")
    assert len(created.token_value) == 36
    info = created.token_info
    assert info.comment == "mlops:staging/token"
    assert info.owner_id == int(principal.id)
    assert before_ms <= info.creation_time <= int(time.time() * 1000)
    assert info.expiry_time == info.creation_time + LIFETIME_SECONDS * 1000

    fetched = admin.token_management.get(info.token_id).token_info
    assert fetched.token_id == info.token_id
    assert fetched.created_by_username == "admin@example.com"
    assert fetched.workspace_id == int(staging.workspace_id)

    listed = [token.token_id for token in admin.token_management.list()]
    assert info.token_id in listed
    created_by_admin = list(admin.token_management.list(created_by_username="admin@example.com"))
    assert info.token_id in [token.token_id for token in created_by_admin]
    assert list(admin.token_management.list(created_by_username="nobody@example.com")) == []

    as_principal = WorkspaceClient(host=staging.host, token=created.token_value, auth_type="pat")
    assert as_principal.current_user.me().user_name == principal.application_id

    admin.token_management.delete(info.token_id)
    assert info.token_id not in [token.token_id for token in admin.token_management.list()]
    with pytest.raises(NotFound):
        admin.token_management.get(info.token_id)


def test_obo_token_without_lifetime_never_expires(admin):
    principal = token_reader(admin)

    created = admin.token_management.create_obo_token(application_id=principal.application_id)
    assert created.token_info.expiry_time == -1


def test_token_permissions_get_set_update(admin):
    admin.groups.create(display_name="mlops-service-principals")
    levels = admin.token_management.get_permission_levels().permission_levels
    assert "CAN_USE" in [level.permission_level.value for level in levels if level.permission_level]

    current = admin.token_management.get_permissions()
    assert current.object_id == "/authorization/tokens"
    assert current.object_type == "tokens"
    assert raw_token_levels(admin, "admins") == ["CAN_MANAGE"]

    use = settings.TokenPermissionLevel.CAN_USE
    updated = admin.token_management.update_permissions(
        access_control_list=[settings.TokenAccessControlRequest(group_name="users", permission_level=use)]
    )
    assert direct_levels(updated.access_control_list, group_name="users") == ["CAN_USE"]
    assert raw_token_levels(admin, "admins") == ["CAN_MANAGE"]

    replaced = admin.token_management.set_permissions(
        access_control_list=[
            ADMINS_MANAGE,
            settings.TokenAccessControlRequest(group_name="mlops-service-principals", permission_level=use),
        ]
    )
    assert direct_levels(replaced.access_control_list, group_name="mlops-service-principals") == ["CAN_USE"]
    assert direct_levels(replaced.access_control_list, group_name="users") == []
    assert raw_token_levels(admin, "admins") == ["CAN_MANAGE"]
    assert admin.token_management.get_permissions().as_dict() == replaced.as_dict()


def test_token_permissions_set_keeps_admins(admin):
    use = settings.TokenPermissionLevel.CAN_USE
    without_admins = [settings.TokenAccessControlRequest(group_name="users", permission_level=use)]

    with pytest.raises(InvalidParameterValue, match="Cannot change permissions for group 'admins' to None."):
        admin.token_management.set_permissions(access_control_list=without_admins)
    assert direct_levels(admin.token_management.get_permissions().access_control_list, group_name="users") == []


def test_losing_can_use_revokes_tokens(staging, admin):
    principal = token_reader(admin)
    created = admin.token_management.create_obo_token(application_id=principal.application_id)

    admin.token_management.set_permissions(access_control_list=[ADMINS_MANAGE])
    with pytest.raises(NotFound):
        admin.token_management.get(created.token_info.token_id)


def test_registry_root_permissions_get_set_update(admin):
    principal = admin.service_principals.create(display_name="reader")
    read = iam.PermissionLevel.CAN_READ

    current = admin.permissions.get("registered-models", "root")
    assert current.object_id == "/registered-models/root"
    assert direct_levels(current.access_control_list, group_name="admins") == ["CAN_MANAGE"]

    updated = admin.permissions.update(
        "registered-models",
        "root",
        access_control_list=[iam.AccessControlRequest(service_principal_name=principal.application_id, permission_level=read)],
    )
    assert direct_levels(updated.access_control_list, service_principal_name=principal.application_id) == ["CAN_READ"]
    assert direct_levels(updated.access_control_list, group_name="admins") == ["CAN_MANAGE"]

    replaced = admin.permissions.set(
        "registered-models",
        "root",
        access_control_list=[
            iam.AccessControlRequest(group_name="admins", permission_level=iam.PermissionLevel.CAN_MANAGE),
            iam.AccessControlRequest(group_name="users", permission_level=read),
        ],
    )
    assert direct_levels(replaced.access_control_list, group_name="users") == ["CAN_READ"]
    assert direct_levels(replaced.access_control_list, service_principal_name=principal.application_id) == []
    fetched = admin.permissions.get("registered-models", "root")
    assert direct_levels(fetched.access_control_list, group_name="users") == ["CAN_READ"]
