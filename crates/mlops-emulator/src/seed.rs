//! The initial content of a new workspace.

use std::collections::BTreeMap;

use crate::credentials::{new_client_secret, new_hex_id, sha256_hex};
use crate::model::{
    ADMIN_USER_NAME, ADMINS_GROUP, AclEntry, Group, ModelTag, ModelVersion, OAuthClient,
    PrincipalId, RegisteredModel, Secret, USERS_GROUP, User, Workspace,
};

/// First numeric id handed out in a new world; real SCIM ids are numbers of about 15 digits.
pub(crate) const FIRST_ID: u64 = 700_000_000_000_001;

/// Seeded models: name, description and the stage of their single version.
const SEED_MODELS: [(&str, &str, &str); 3] = [
    (
        "fraud-detector",
        "Scores card transactions for fraud.",
        "Production",
    ),
    ("churn-model", "Predicts customer churn.", "Staging"),
    (
        "demand-forecast",
        "Forecasts daily demand per store.",
        "None",
    ),
];

/// Hands out world-wide unique numeric ids.
pub(crate) struct IdAllocator<'a> {
    next_id: &'a mut u64,
}

impl<'a> IdAllocator<'a> {
    /// Wraps the world's id counter.
    pub fn new(next_id: &'a mut u64) -> Self {
        Self { next_id }
    }

    /// Returns a fresh id.
    pub fn allocate(&mut self) -> u64 {
        let id = *self.next_id;
        *self.next_id += 1;
        id
    }
}

/// Builds a workspace with its admin user, the `admins` and `users` groups, the admin's OAuth
/// client, registry root permissions for `admins` only, three registered models and no token.
pub(crate) fn seed_workspace(
    name: &str,
    workspace_id: &str,
    ids: &mut IdAllocator<'_>,
    now_ms: i64,
) -> Workspace {
    let admin_user_id = ids.allocate();
    let admins_group_id = ids.allocate();
    let users_group_id = ids.allocate();

    let admin = User {
        id: admin_user_id,
        user_name: ADMIN_USER_NAME.to_owned(),
        display_name: "Workspace Admin".to_owned(),
        active: true,
        entitlements: vec!["allow-cluster-create".to_owned()],
    };
    let admins = Group {
        id: admins_group_id,
        display_name: ADMINS_GROUP.to_owned(),
        members: vec![PrincipalId::User(admin_user_id)],
        entitlements: vec![
            "allow-cluster-create".to_owned(),
            "allow-instance-pool-create".to_owned(),
        ],
        roles: Vec::new(),
        external_id: None,
    };
    let users = Group {
        id: users_group_id,
        display_name: USERS_GROUP.to_owned(),
        members: Vec::new(),
        entitlements: vec![
            "workspace-access".to_owned(),
            "databricks-sql-access".to_owned(),
        ],
        roles: Vec::new(),
        external_id: None,
    };

    let admin_client_id = uuid::Uuid::new_v4().to_string();
    let admin_client_secret = new_client_secret();
    let admin_client = OAuthClient {
        owner: PrincipalId::User(admin_user_id),
        secret_sha256: sha256_hex(&admin_client_secret),
    };

    Workspace {
        name: name.to_owned(),
        workspace_id: workspace_id.to_owned(),
        admin_user_id,
        admins_group_id,
        users_group_id,
        users: BTreeMap::from([(admin_user_id, admin)]),
        groups: BTreeMap::from([(admins_group_id, admins), (users_group_id, users)]),
        service_principals: BTreeMap::new(),
        tokens: BTreeMap::new(),
        access_tokens: BTreeMap::new(),
        oauth_clients: BTreeMap::from([(admin_client_id.clone(), admin_client)]),
        admin_client_id,
        admin_client_secret: Secret::new(admin_client_secret),
        token_permissions: None,
        registry_permissions: vec![AclEntry {
            principal: PrincipalId::Group(admins_group_id),
            level: "CAN_MANAGE".to_owned(),
        }],
        scopes: BTreeMap::new(),
        models: seed_models(now_ms),
    }
}

/// Builds the seeded registered models, each with one version.
fn seed_models(now_ms: i64) -> BTreeMap<String, RegisteredModel> {
    let experiment_id = 1_234_567_890_u64;
    SEED_MODELS
        .iter()
        .map(|(name, description, stage)| {
            let run_id = new_hex_id();
            let version = ModelVersion {
                version: 1,
                creation_timestamp: now_ms,
                last_updated_timestamp: now_ms,
                current_stage: (*stage).to_owned(),
                description: String::new(),
                source: format!(
                    "dbfs:/databricks/mlflow-tracking/{experiment_id}/{run_id}/artifacts/model"
                ),
                run_id,
                status: "READY".to_owned(),
                user_id: ADMIN_USER_NAME.to_owned(),
            };
            let model = RegisteredModel {
                id: new_hex_id(),
                name: (*name).to_owned(),
                description: (*description).to_owned(),
                user_id: ADMIN_USER_NAME.to_owned(),
                creation_timestamp: now_ms,
                last_updated_timestamp: now_ms,
                tags: vec![ModelTag {
                    key: "team".to_owned(),
                    value: "ml-platform".to_owned(),
                }],
                versions: vec![version],
            };
            ((*name).to_owned(), model)
        })
        .collect()
}
