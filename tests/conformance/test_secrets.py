"""Secret scopes, secrets and ACLs through the official SDK."""

from __future__ import annotations

import base64
import time

import pytest
from databricks.sdk.errors import NotFound
from databricks.sdk.service import workspace

from emulator import decode_secret


def test_scope_create_list_delete(admin):
    admin.secrets.create_scope(scope="remote-mr-prod")

    scopes = {scope.name: scope for scope in admin.secrets.list_scopes()}
    assert list(scopes) == ["remote-mr-prod"]
    assert scopes["remote-mr-prod"].backend_type == workspace.ScopeBackendType.DATABRICKS

    admin.secrets.delete_scope("remote-mr-prod")
    assert list(admin.secrets.list_scopes()) == []


def test_secret_put_list_get_delete(admin):
    admin.secrets.create_scope(scope="remote-mr-prod")
    before_ms = int(time.time() * 1000)

    admin.secrets.put_secret("remote-mr-prod", "prod-host", string_value="https://dbc-cccc.cloud.databricks.com")
    raw = bytes([0, 1, 2, 255])
    admin.secrets.put_secret("remote-mr-prod", "prod-raw", bytes_value=base64.b64encode(raw).decode())

    listed = {secret.key: secret for secret in admin.secrets.list_secrets("remote-mr-prod")}
    assert sorted(listed) == ["prod-host", "prod-raw"]
    assert before_ms <= listed["prod-host"].last_updated_timestamp <= int(time.time() * 1000)

    fetched = admin.secrets.get_secret("remote-mr-prod", "prod-host")
    assert fetched.key == "prod-host"
    assert decode_secret(fetched.value) == "https://dbc-cccc.cloud.databricks.com"
    assert base64.b64decode(admin.secrets.get_secret("remote-mr-prod", "prod-raw").value) == raw

    admin.secrets.put_secret("remote-mr-prod", "prod-host", string_value="https://dbc-dddd.cloud.databricks.com")
    assert decode_secret(admin.secrets.get_secret("remote-mr-prod", "prod-host").value) == "https://dbc-dddd.cloud.databricks.com"

    admin.secrets.delete_secret("remote-mr-prod", "prod-host")
    assert [secret.key for secret in admin.secrets.list_secrets("remote-mr-prod")] == ["prod-raw"]
    with pytest.raises(NotFound):
        admin.secrets.get_secret("remote-mr-prod", "prod-host")


def test_scope_names_ignore_case(admin):
    admin.secrets.create_scope(scope="Remote-MR-Prod")
    admin.secrets.put_secret("remote-mr-prod", "prod-host", string_value="https://x")

    assert decode_secret(admin.secrets.get_secret("REMOTE-MR-PROD", "prod-host").value) == "https://x"


def test_acl_put_get_list_delete(admin):
    admin.secrets.create_scope(scope="remote-mr-prod")
    creator = {acl.principal: acl.permission for acl in admin.secrets.list_acls("remote-mr-prod")}
    assert creator == {"admin@example.com": workspace.AclPermission.MANAGE}

    admin.secrets.put_acl("remote-mr-prod", "users", workspace.AclPermission.READ)
    fetched = admin.secrets.get_acl("remote-mr-prod", "users")
    assert fetched.principal == "users"
    assert fetched.permission == workspace.AclPermission.READ

    admin.secrets.put_acl("remote-mr-prod", "users", workspace.AclPermission.WRITE)
    acls = {acl.principal: acl.permission for acl in admin.secrets.list_acls("remote-mr-prod")}
    assert acls == {"admin@example.com": workspace.AclPermission.MANAGE, "users": workspace.AclPermission.WRITE}

    admin.secrets.delete_acl("remote-mr-prod", "users")
    assert [acl.principal for acl in admin.secrets.list_acls("remote-mr-prod")] == ["admin@example.com"]
    with pytest.raises(NotFound):
        admin.secrets.get_acl("remote-mr-prod", "users")


def test_scope_delete_drops_secrets(admin):
    admin.secrets.create_scope(scope="remote-mr-prod")
    admin.secrets.put_secret("remote-mr-prod", "prod-host", string_value="https://x")

    admin.secrets.delete_scope("remote-mr-prod")
    admin.secrets.create_scope(scope="remote-mr-prod")
    assert list(admin.secrets.list_secrets("remote-mr-prod")) == []
