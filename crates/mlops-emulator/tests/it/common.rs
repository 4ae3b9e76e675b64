//! Test helpers: a running emulator, an HTTP client and shortcuts for common setup steps.

use std::net::SocketAddr;

use mlops_emulator::{Emulator, Listening, WorkspaceSpec};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub const SCIM: &str = "/api/2.0/preview/scim/v2";
pub const TOKEN_PERMISSIONS: &str = "/api/2.0/permissions/authorization/tokens";
pub const REGISTRY_ROOT: &str = "/api/2.0/permissions/registered-models/root";

/// An emulator with its workspaces bound on loopback ports.
pub struct Running {
    pub emulator: Emulator,
    pub listeners: Vec<Listening>,
}

/// Starts an emulator with `dev` (1111) and `staging` (123456789).
pub async fn start() -> Running {
    start_with(&[("dev", "1111"), ("staging", "123456789")]).await
}

/// Starts an emulator with these workspaces and binds each one.
pub async fn start_with(specs: &[(&str, &str)]) -> Running {
    let specs: Vec<WorkspaceSpec> = specs
        .iter()
        .map(|(name, id)| WorkspaceSpec {
            name: (*name).to_owned(),
            workspace_id: (*id).to_owned(),
        })
        .collect();
    let emulator = Emulator::new(&specs);
    bind_all(emulator, &specs).await
}

/// Binds every workspace of `specs` on 127.0.0.1.
pub async fn bind_all(emulator: Emulator, specs: &[WorkspaceSpec]) -> Running {
    let address: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut listeners = Vec::new();
    for spec in specs {
        listeners.push(emulator.bind(&spec.name, address).await.unwrap());
    }
    Running {
        emulator,
        listeners,
    }
}

impl Running {
    /// Returns the listener of a workspace.
    pub fn listener(&self, workspace: &str) -> &Listening {
        self.listeners
            .iter()
            .find(|listening| listening.name == workspace)
            .unwrap()
    }

    /// Returns a client of `workspace` without a token.
    pub fn anonymous(&self, workspace: &str) -> Api {
        Api {
            base_url: self.listener(workspace).base_url.clone(),
            token: None,
            client: client(),
        }
    }

    /// Returns a client of `workspace` with an admin OAuth access token.
    pub fn admin(&self, workspace: &str) -> Api {
        let token = self.emulator.admin_access_token(workspace).unwrap();
        self.anonymous(workspace).with_token(&token)
    }
}

/// Returns a plain-HTTP reqwest client.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

/// A client of one workspace with an optional bearer token.
#[derive(Clone)]
pub struct Api {
    pub base_url: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

/// A response with its JSON body (`Value::Null` when the body is empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Returns the `error_code` of a Databricks error body as text.
    pub fn error_code(&self) -> String {
        match &self.body["error_code"] {
            Value::String(code) => code.clone(),
            other => other.to_string(),
        }
    }

    /// Returns the `message` of a Databricks error body.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

impl Api {
    /// Returns a client of the same workspace with another token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Builds a request with the bearer token, if any.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends a request with an optional JSON body and reads the reply.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut builder = self.request(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        read_reply(builder.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }
}

/// Reads status, headers and JSON body of a response.
pub async fn read_reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Creates a group and returns its id.
pub async fn create_group(admin: &Api, name: &str) -> String {
    let reply = admin
        .post(&format!("{SCIM}/Groups"), json!({ "displayName": name }))
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    reply.body["id"].as_str().unwrap().to_owned()
}

/// Creates a service principal and returns its id and applicationId.
pub async fn create_service_principal(admin: &Api, name: &str) -> (String, String) {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"],
        "displayName": name,
        "entitlements": [{ "value": "allow-cluster-create" }],
    });
    let reply = admin.post(&format!("{SCIM}/ServicePrincipals"), body).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let application_id = reply.body["applicationId"].as_str().unwrap().to_owned();
    (id, application_id)
}

/// Adds a member to a group.
pub async fn add_member(admin: &Api, group_id: &str, member_id: &str) {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "add", "path": "members", "value": [{ "value": member_id }] }],
    });
    let reply = admin
        .patch(&format!("{SCIM}/Groups/{group_id}"), body)
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
}

/// Creates a personal token as the caller and returns its value.
pub async fn create_personal_token(api: &Api) -> String {
    let reply = api
        .post("/api/2.0/token/create", json!({ "comment": "test" }))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body["token_value"].as_str().unwrap().to_owned()
}

/// Grants `CAN_USE` on tokens to a group with PATCH.
pub async fn grant_token_use(admin: &Api, group: &str) {
    let body =
        json!({ "access_control_list": [{ "group_name": group, "permission_level": "CAN_USE" }] });
    let reply = admin.patch(TOKEN_PERMISSIONS, body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// Requests an on-behalf-of token.
pub async fn create_obo_token(
    admin: &Api,
    application_id: &str,
    lifetime_seconds: Option<i64>,
) -> Reply {
    let mut body = json!({ "application_id": application_id, "comment": "obo" });
    if let Some(seconds) = lifetime_seconds {
        body["lifetime_seconds"] = json!(seconds);
    }
    admin
        .post("/api/2.0/token-management/on-behalf-of/tokens", body)
        .await
}

/// Creates a service principal that may use tokens through a group, and returns its id,
/// applicationId, group id and an on-behalf-of token value.
pub async fn service_principal_with_token(admin: &Api) -> (String, String, String, String) {
    create_personal_token(admin).await;
    let group_id = create_group(admin, "mlops-service-principals").await;
    let (sp_id, application_id) = create_service_principal(admin, "reader").await;
    add_member(admin, &group_id, &sp_id).await;
    grant_token_use(admin, "mlops-service-principals").await;

    let reply = create_obo_token(admin, &application_id, None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let token = reply.body["token_value"].as_str().unwrap().to_owned();
    (sp_id, application_id, group_id, token)
}

/// Creates OAuth client credentials for a service principal and returns an access token.
pub async fn service_principal_access_token(admin: &Api, sp_id: &str) -> String {
    let reply = admin
        .post(
            &format!("/_emulator/service-principals/{sp_id}/secret"),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let client_id = reply.body["client_id"].as_str().unwrap().to_owned();
    let client_secret = reply.body["client_secret"].as_str().unwrap().to_owned();

    let response = admin
        .client
        .post(format!("{}/oidc/v1/token", admin.base_url))
        .basic_auth(client_id, Some(client_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
        .send()
        .await
        .unwrap();
    let reply = read_reply(response).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body["access_token"].as_str().unwrap().to_owned()
}

/// Variable that marks a child process started by [`run_in_child`].
const CHILD_MARKER: &str = "MLOPS_EMULATOR_TEST_CHILD";

/// Runs one test of this binary again in a child process with `variables` set, and checks that
/// it passed. Returns `false` in the child, so the test body runs there.
pub fn run_in_child(test_name: &str, variables: &[(&str, &str)]) -> bool {
    if std::env::var(CHILD_MARKER).is_ok() {
        return false;
    }
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test_name, "--test-threads=1"])
        .env(CHILD_MARKER, "1");
    for (name, value) in variables {
        command.env(name, value);
    }

    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child test failed: {stdout}");
    assert!(
        stdout.contains("1 passed"),
        "child test did not run: {stdout}"
    );
    true
}
