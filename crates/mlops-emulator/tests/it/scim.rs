//! SCIM groups, service principals and Me.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::*;

/// Returns the displayNames of a list response, or none when `Resources` is absent.
fn names(reply: &Reply) -> Vec<String> {
    reply.body["Resources"]
        .as_array()
        .map(|resources| {
            resources
                .iter()
                .map(|resource| resource["displayName"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn groups_paginate_until_empty_page() {
    let running = start().await;
    let admin = running.admin("dev");
    for index in 0..7 {
        create_group(&admin, &format!("team-{index}")).await;
    }

    let mut seen = BTreeSet::new();
    let mut start_index = 1;
    let mut pages = 0;
    loop {
        let reply = admin
            .get(&format!("{SCIM}/Groups?startIndex={start_index}&count=4"))
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body["totalResults"], 9);
        assert_eq!(reply.body["startIndex"], start_index);
        let Some(resources) = reply.body["Resources"].as_array() else {
            assert_eq!(reply.body["itemsPerPage"], 0);
            break;
        };
        pages += 1;
        for resource in resources {
            assert!(
                seen.insert(resource["id"].as_str().unwrap().to_owned()),
                "duplicate id"
            );
        }
        start_index += resources.len();
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 9);

    let past_end = admin
        .get(&format!("{SCIM}/Groups?startIndex=100&count=4"))
        .await;
    assert_eq!(past_end.status, 200);
    assert!(past_end.body.get("Resources").is_none());
    assert_eq!(
        past_end.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
}

#[tokio::test]
async fn filters_select_groups_and_service_principals() {
    let running = start().await;
    let admin = running.admin("dev");
    let alpha_id = create_group(&admin, "alpha-readers").await;
    create_group(&admin, "beta-readers").await;
    create_group(&admin, "gamma-writers").await;
    let (_, application_id) = create_service_principal(&admin, "reader").await;
    create_service_principal(&admin, "writer").await;

    let cases = [
        (r#"displayName eq "alpha-readers""#, vec!["alpha-readers"]),
        (
            r#"displayName co "readers""#,
            vec!["alpha-readers", "beta-readers"],
        ),
        (r#"displayName sw "gamma""#, vec!["gamma-writers"]),
        (
            r#"displayName co "readers" and displayName ne "beta-readers""#,
            vec!["alpha-readers"],
        ),
        (
            r#"displayName eq "admins" or displayName eq "users""#,
            vec!["admins", "users"],
        ),
        (&format!(r#"id eq "{alpha_id}""#), vec!["alpha-readers"]),
    ];
    for (filter, expected) in cases {
        let reply = admin
            .request(reqwest::Method::GET, &format!("{SCIM}/Groups"))
            .query(&[("filter", filter)])
            .send()
            .await
            .unwrap();
        let reply = read_reply(reply).await;
        assert_eq!(names(&reply), expected, "{filter}");
    }

    let by_application = admin
        .request(reqwest::Method::GET, &format!("{SCIM}/ServicePrincipals"))
        .query(&[("filter", format!(r#"applicationId eq "{application_id}""#))])
        .send()
        .await
        .unwrap();
    assert_eq!(names(&read_reply(by_application).await), ["reader"]);

    let invalid = admin
        .get(&format!("{SCIM}/Groups?filter=userName%20gt%20%22x%22"))
        .await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.body["scimType"], "invalidFilter");
    assert_eq!(invalid.body["status"], "400");
}

#[tokio::test]
async fn duplicate_group_conflicts() {
    let running = start().await;
    let admin = running.admin("dev");
    create_group(&admin, "mlops-service-principals").await;

    let reply = admin
        .post(
            &format!("{SCIM}/Groups"),
            json!({ "displayName": "mlops-service-principals" }),
        )
        .await;
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.body,
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "detail": "Group with name mlops-service-principals already exists.",
            "status": "409",
        })
    );
}

#[tokio::test]
async fn scim_accepts_scim_json_content_type() {
    let running = start().await;
    let admin = running.admin("dev");

    let response = admin
        .request(reqwest::Method::POST, &format!("{SCIM}/Groups"))
        .header("content-type", "application/scim+json; charset=utf-8")
        .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"scim-json"}"#)
        .send()
        .await
        .unwrap();
    let reply = read_reply(response).await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.body["displayName"], "scim-json");
    assert_eq!(reply.body["meta"]["resourceType"], "WorkspaceGroup");
}

#[tokio::test]
async fn service_principal_patch_forms() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, application_id) = create_service_principal(&admin, "reader").await;
    let path = format!("{SCIM}/ServicePrincipals/{sp_id}");

    let created = admin.get(&path).await;
    assert_eq!(created.body["active"], true);
    assert_eq!(
        created.body["entitlements"],
        json!([{ "value": "allow-cluster-create" }])
    );
    assert!(uuid::Uuid::parse_str(&application_id).is_ok());

    let forms = [
        json!("false"),
        json!([{ "value": "true" }]),
        json!(false),
        json!("True"),
    ];
    let expected = [false, true, false, true];
    for (value, active) in forms.iter().zip(expected) {
        let body = json!({ "Operations": [{ "op": "replace", "path": "active", "value": value }] });
        let reply = admin.patch(&path, body).await;
        assert_eq!(reply.status, 204);
        assert_eq!(reply.body, Value::Null);
        assert_eq!(admin.get(&path).await.body["active"], active, "{value}");
    }

    let add = json!({ "Operations": [{ "op": "add", "path": "entitlements", "value": [{ "value": "databricks-sql-access" }] }] });
    assert_eq!(admin.patch(&path, add).await.status, 204);
    let remove = json!({ "Operations": [{ "op": "remove", "path": "entitlements[value eq \"allow-cluster-create\"]" }] });
    assert_eq!(admin.patch(&path, remove).await.status, 204);
    assert_eq!(
        admin.get(&path).await.body["entitlements"],
        json!([{ "value": "databricks-sql-access" }])
    );

    let unknown =
        json!({ "Operations": [{ "op": "add", "path": "members", "value": [{ "value": "1" }] }] });
    let reply = admin.patch(&path, unknown).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["scimType"], "invalidPath");
    assert_eq!(
        reply.body["detail"],
        "No such attribute with the name : members in the current resource"
    );

    let bad_entitlement = json!({ "Operations": [{ "op": "add", "path": "entitlements", "value": [{ "value": "fly" }] }] });
    assert_eq!(admin.patch(&path, bad_entitlement).await.status, 400);
}

#[tokio::test]
async fn group_members_render_refs() {
    let running = start().await;
    let admin = running.admin("dev");
    let parent_id = create_group(&admin, "parent").await;
    let child_id = create_group(&admin, "child").await;
    let (sp_id, _) = create_service_principal(&admin, "reader").await;
    add_member(&admin, &parent_id, &sp_id).await;
    add_member(&admin, &parent_id, &child_id).await;

    let parent = admin.get(&format!("{SCIM}/Groups/{parent_id}")).await;
    assert_eq!(
        parent.body["members"],
        json!([
            { "value": sp_id, "display": "reader", "$ref": format!("ServicePrincipals/{sp_id}") },
            { "value": child_id, "display": "child", "$ref": format!("Groups/{child_id}") },
        ])
    );

    let sp = admin
        .get(&format!("{SCIM}/ServicePrincipals/{sp_id}"))
        .await;
    assert_eq!(sp.body["groups"][0]["value"], parent_id.as_str());
    assert_eq!(sp.body["groups"][0]["$ref"], format!("Groups/{parent_id}"));

    let cycle = json!({ "Operations": [{ "op": "add", "path": "members", "value": [{ "value": parent_id }] }] });
    assert_eq!(
        admin
            .patch(&format!("{SCIM}/Groups/{child_id}"), cycle)
            .await
            .status,
        400
    );
    let unknown =
        json!({ "Operations": [{ "op": "add", "path": "members", "value": [{ "value": "42" }] }] });
    assert_eq!(
        admin
            .patch(&format!("{SCIM}/Groups/{child_id}"), unknown)
            .await
            .status,
        400
    );

    let put = admin
        .put(
            &format!("{SCIM}/Groups/{parent_id}"),
            json!({ "displayName": "renamed" }),
        )
        .await;
    assert_eq!(put.status, 200);
    assert!(put.body.get("members").is_none());
}

#[tokio::test]
async fn builtin_groups_stay() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, _) = create_service_principal(&admin, "reader").await;

    let groups = admin.get(&format!("{SCIM}/Groups")).await;
    let resources = groups.body["Resources"].as_array().unwrap();
    let id_of = |name: &str| {
        resources
            .iter()
            .find(|group| group["displayName"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let admins_id = id_of("admins");
    let users_id = id_of("users");

    for id in [&admins_id, &users_id] {
        let reply = admin.delete(&format!("{SCIM}/Groups/{id}")).await;
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.body["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
    }

    let users = admin.get(&format!("{SCIM}/Groups/{users_id}")).await;
    let member_ids: Vec<&str> = users.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["value"].as_str().unwrap())
        .collect();
    assert!(member_ids.contains(&sp_id.as_str()));
    assert_eq!(member_ids.len(), 2);

    let admin_user_id = admin.get(&format!("{SCIM}/Me")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let remove_last = json!({ "Operations": [{ "op": "remove", "path": format!("members[value eq \"{admin_user_id}\"]") }] });
    assert_eq!(
        admin
            .patch(&format!("{SCIM}/Groups/{admins_id}"), remove_last)
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn missing_resources_are_scim_404() {
    let running = start().await;
    let admin = running.admin("dev");

    let group = admin.get(&format!("{SCIM}/Groups/1234")).await;
    assert_eq!(group.status, 404);
    assert_eq!(
        group.body,
        json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": "Group with id 1234 is not found", "status": "404" })
    );
    assert_eq!(
        admin.delete(&format!("{SCIM}/Groups/1234")).await.status,
        404
    );
    assert_eq!(
        admin
            .get(&format!("{SCIM}/ServicePrincipals/1234"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn me_returns_service_principal_application_id() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, application_id) = create_service_principal(&admin, "reader").await;
    let sp = admin.with_token(&service_principal_access_token(&admin, &sp_id).await);

    let me = sp
        .get(&format!("{SCIM}/Me?excludedAttributes=entitlements"))
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.headers["x-databricks-org-id"], "1111");
    assert_eq!(me.body["userName"], application_id.as_str());
    assert_eq!(me.body["id"], sp_id.as_str());
    assert!(me.body.get("entitlements").is_none());

    let admin_me = admin.get(&format!("{SCIM}/Me")).await;
    assert_eq!(admin_me.body["userName"], "admin@example.com");
    assert_eq!(admin_me.body["groups"][0]["display"], "admins");
}

#[tokio::test]
async fn non_admin_scim_access_limited() {
    let running = start().await;
    let admin = running.admin("dev");
    let (sp_id, _) = create_service_principal(&admin, "reader").await;
    let sp = admin.with_token(&service_principal_access_token(&admin, &sp_id).await);

    let create = sp
        .post(
            &format!("{SCIM}/Groups"),
            json!({ "displayName": "sneaky" }),
        )
        .await;
    assert_eq!(create.status, 403);
    assert_eq!(create.body["status"], "403");
    assert_eq!(
        sp.get(&format!("{SCIM}/ServicePrincipals")).await.status,
        403
    );

    let groups = sp.get(&format!("{SCIM}/Groups")).await;
    assert_eq!(groups.status, 200);
    let admins = &groups.body["Resources"][0];
    assert_eq!(admins["displayName"], "admins");
    assert!(admins.get("members").is_none());
}
