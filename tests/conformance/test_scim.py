"""SCIM groups, service principals and Me through the official SDK."""

from __future__ import annotations

from databricks.sdk import WorkspaceClient
from databricks.sdk.service import iam

PATCH_SCHEMA = [iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]
SCIM_GROUPS = "/api/2.0/preview/scim/v2/Groups"


def record_requests(client: WorkspaceClient) -> list[tuple[str, str, dict]]:
    """Record the method, path and query of every request that the client sends from now on."""
    sent: list[tuple[str, str, dict]] = []
    original = client.api_client.do

    def do(method, path=None, *args, **kwargs):
        sent.append((method, path, dict(kwargs.get("query") or {})))
        return original(method, path, *args, **kwargs)

    client.api_client.do = do
    return sent


def add_member(client: WorkspaceClient, group_id: str, member_id: str) -> None:
    operation = iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": member_id}])
    client.groups.patch(group_id, operations=[operation], schemas=PATCH_SCHEMA)


def remove_member(client: WorkspaceClient, group_id: str, member_id: str) -> None:
    operation = iam.Patch(op=iam.PatchOp.REMOVE, path=f'members[value eq "{member_id}"]')
    client.groups.patch(group_id, operations=[operation], schemas=PATCH_SCHEMA)


def member_ids(group: iam.Group) -> list[str]:
    return sorted(member.value for member in group.members or [])


def test_group_create_get_delete(admin):
    created = admin.groups.create(display_name="mlops-service-principals")
    assert created.id
    assert created.display_name == "mlops-service-principals"

    fetched = admin.groups.get(created.id)
    assert fetched.id == created.id
    assert fetched.display_name == "mlops-service-principals"
    assert fetched.meta.resource_type == "WorkspaceGroup"

    admin.groups.delete(created.id)
    names = [group.display_name for group in admin.groups.list()]
    assert "mlops-service-principals" not in names


def test_group_list_filter(admin):
    admin.groups.create(display_name="team-a")
    admin.groups.create(display_name="team-b")

    found = list(admin.groups.list(filter='displayName eq "team-b"'))
    assert [group.display_name for group in found] == ["team-b"]
    starting = sorted(group.display_name for group in admin.groups.list(filter='displayName sw "team-"'))
    assert starting == ["team-a", "team-b"]
    assert list(admin.groups.list(filter='displayName eq "absent"')) == []


def test_group_list_spans_pages(admin):
    for index in range(7):
        admin.groups.create(display_name=f"team-{index}")
    sent = record_requests(admin)

    groups = list(admin.groups.list(count=3))
    names = sorted(group.display_name for group in groups)
    assert names == sorted(["admins", "users", *(f"team-{index}" for index in range(7))])
    assert len({group.id for group in groups}) == 9

    pages = [query for method, path, query in sent if method == "GET" and path == SCIM_GROUPS]
    assert [query["startIndex"] for query in pages] == [1, 4, 7, 10]
    assert all(query["count"] == 3 for query in pages)


def test_group_membership_patch(admin):
    group = admin.groups.create(display_name="mlops-service-principals")
    principal = admin.service_principals.create(display_name="reader")

    add_member(admin, group.id, principal.id)
    assert member_ids(admin.groups.get(group.id)) == [principal.id]
    parents = [parent.display for parent in admin.service_principals.get(principal.id).groups or []]
    assert parents == ["mlops-service-principals"]

    remove_member(admin, group.id, principal.id)
    assert member_ids(admin.groups.get(group.id)) == []


def test_service_principal_create_get_delete(admin):
    created = admin.service_principals.create(
        display_name="READ-only Model Registry Service Principal",
        entitlements=[iam.ComplexValue(value="allow-cluster-create")],
    )
    assert created.id
    assert created.application_id and len(created.application_id) == 36
    assert created.active is True
    assert [entitlement.value for entitlement in created.entitlements] == ["allow-cluster-create"]

    fetched = admin.service_principals.get(created.id)
    assert fetched.application_id == created.application_id
    assert fetched.display_name == "READ-only Model Registry Service Principal"

    admin.service_principals.delete(created.id)
    assert list(admin.service_principals.list()) == []


def test_service_principal_list_filter_and_pages(admin):
    created = [admin.service_principals.create(display_name=f"reader-{index}") for index in range(5)]
    sent = record_requests(admin)

    listed = list(admin.service_principals.list(count=2))
    assert sorted(principal.display_name for principal in listed) == [f"reader-{index}" for index in range(5)]
    pages = [query for method, path, query in sent if method == "GET" and path.endswith("/ServicePrincipals")]
    assert len(pages) == 4

    application_id = created[3].application_id
    by_application = list(admin.service_principals.list(filter=f'applicationId eq "{application_id}"'))
    assert [principal.id for principal in by_application] == [created[3].id]
    by_name = list(admin.service_principals.list(filter='displayName eq "reader-1"'))
    assert [principal.id for principal in by_name] == [created[1].id]


def test_service_principal_deactivate_patch(admin):
    principal = admin.service_principals.create(display_name="reader")

    operation = iam.Patch(op=iam.PatchOp.REPLACE, path="active", value="false")
    admin.service_principals.patch(principal.id, operations=[operation], schemas=PATCH_SCHEMA)
    assert admin.service_principals.get(principal.id).active is False


def test_me_as_admin(staging, admin):
    me = admin.current_user.me()
    assert me.user_name == "admin@example.com"
    assert me.active is True
    assert "admins" in [group.display for group in me.groups or []]

    response = admin.api_client.do("GET", "/api/2.0/preview/scim/v2/Me", response_headers=["X-Databricks-Org-Id"])
    assert response["X-Databricks-Org-Id"] == staging.workspace_id


def test_me_as_service_principal(staging, admin):
    principal = admin.service_principals.create(display_name="reader")
    credentials = admin.api_client.do("POST", f"/_emulator/service-principals/{principal.id}/secret", body={})

    as_principal = staging.oauth_client(credentials["client_id"], credentials["client_secret"])
    me = as_principal.current_user.me()
    assert me.user_name == principal.application_id
    assert me.id == principal.id
