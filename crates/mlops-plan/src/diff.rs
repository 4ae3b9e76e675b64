//! Compares desired, recorded and live state into a [`Plan`].

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use mlops_config::{Config, TokenUsageMode};
use mlops_state::{Resource, State};
use serde_json::{Value, json};

use crate::address::{Kind, keyed, single};
use crate::desired::{Detail, SecretValue, desired, scope_reader_principals};
use crate::live::{Live, LiveWorkspace, group_principal, service_principal_principal};
use crate::plan::{Action, Attributes, Change, FORMAT_VERSION, Operation, Plan, PlanWorkspace, Summary, string_list};

mod consistency;
mod recovery;

pub use recovery::FIRST_TOKEN_COMMENT;

/// Shown for values that apply decides.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// Permission levels on the registry root that include `CAN_READ`.
const REGISTRY_READ_LEVELS: [&str; 5] =
    ["CAN_READ", "CAN_EDIT", "CAN_MANAGE_STAGING_VERSIONS", "CAN_MANAGE_PRODUCTION_VERSIONS", "CAN_MANAGE"];

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Prefix of the comments of the Terraform module's tokens: `PAT on behalf of <display name>`.
const MODULE_TOKEN_COMMENT: &str = "PAT on behalf of ";

/// Everything a plan is made from.
pub struct PlanInput<'a> {
    pub config: &'a Config,
    pub state: &'a State,
    pub live: &'a Live,
    pub now: Timestamp,
    pub operation: Operation,
}

/// Problems that stop a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("workspace `{workspace}` was not read")]
    MissingWorkspace { workspace: String },
    #[error(
        "workspace `{workspace}` has {count} service principals named `{display_name}` (application ids {application_ids}), so mlops cannot tell which one to manage"
    )]
    AmbiguousServicePrincipal { workspace: String, display_name: String, count: usize, application_ids: String },
    #[error("workspace `{workspace}` has {count} groups named `{display_name}`")]
    AmbiguousGroup { workspace: String, display_name: String, count: usize },
    #[error("{address} is the group `{recorded}`, but names.group is now `{wanted}`; renaming the managed group is not supported")]
    GroupRenamed { address: String, recorded: String, wanted: String },
    #[error("state file `{path}`: entry `{address}` is inconsistent: {problem}")]
    InconsistentState { path: String, address: String, problem: String, fix: String },
}

impl PlanError {
    /// Returns what the user can do about the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            PlanError::AmbiguousServicePrincipal { workspace, .. } => Some(format!(
                "pin one with `service_principal_application_id: <application id>` under `workspaces.{workspace}` in the configuration"
            )),
            PlanError::AmbiguousGroup { .. } => Some("delete or rename the extra groups, then plan again".to_owned()),
            PlanError::GroupRenamed { recorded, .. } => Some(format!(
                "set names.group back to `{recorded}`; to move to a new group, run `mlops destroy` with the old name first"
            )),
            PlanError::MissingWorkspace { .. } => None,
            PlanError::InconsistentState { fix, .. } => Some(fix.clone()),
        }
    }
}

/// Returns the comment that marks a token as made by mlops for this object.
pub fn token_comment(address: &str) -> String {
    format!("mlops:{address}")
}

/// Makes the plan.
///
/// # Errors
///
/// Fails when the live state cannot be matched to the configuration without guessing, for example
/// when two service principals share the managed display name.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    check_group_name(input)?;
    consistency::check_state(input)?;
    let mut builder = Builder::new(input);
    let mut changes = match input.operation {
        Operation::Apply => builder.apply_changes()?,
        Operation::Destroy => builder.destroy_changes(),
    };
    sort_changes(input.config, &mut changes);

    let workspaces = input
        .config
        .workspaces
        .iter()
        .map(|workspace| {
            let live = input.live.workspaces.get(&workspace.name);
            PlanWorkspace {
                name: workspace.name.clone(),
                workspace_id: live.map(|live| live.workspace_id.clone()).unwrap_or_default(),
                needs_first_token: builder.needs_first_token.contains(&workspace.name),
            }
        })
        .collect();

    Ok(Plan {
        format_version: FORMAT_VERSION,
        operation: input.operation,
        created_at: input.now.to_string(),
        lineage: input.state.lineage.clone(),
        serial: input.state.serial,
        config_sha256: input.config.sha256.clone(),
        workspaces,
        summary: Summary::of(&changes),
        changes,
        warnings: builder.warnings,
    })
}

/// Rejects a change of `names.group` for a group that mlops already manages.
// TODO: rename the group in place (SCIM PATCH of displayName) and move its grants and ACLs.
fn check_group_name(input: &PlanInput<'_>) -> Result<(), PlanError> {
    let wanted = &input.config.names.group;
    for resource in input.state.resources.iter().filter(|resource| resource.kind == Kind::Group.as_str()) {
        let recorded = resource.attributes.get("display_name").and_then(Value::as_str).unwrap_or(wanted);
        if recorded != wanted {
            return Err(PlanError::GroupRenamed { address: resource.address.clone(), recorded: recorded.to_owned(), wanted: wanted.clone() });
        }
    }
    Ok(())
}

/// Orders changes by workspace, then by creation stage; deletions come last, in reverse order.
fn sort_changes(config: &Config, changes: &mut [Change]) {
    let position = |workspace: &str| config.workspaces.iter().position(|candidate| candidate.name == workspace);
    changes.sort_by_key(|change| {
        let deleting = change.action == Action::Delete;
        let stage = change.kind.stage();
        (position(&change.workspace), deleting, if deleting { usize::MAX - stage } else { stage }, change.address.clone())
    });
}

/// Decisions about the registry objects of one workspace, kept for the objects that
/// refer to them.
#[derive(Default)]
struct RegistryFacts {
    group_id: Option<String>,
    service_principal_id: Option<String>,
    application_id: Option<String>,
    /// Fingerprint of the token value that readers must hold; `None` when apply mints a new token.
    token_sha256: Option<String>,
}

struct Builder<'a> {
    input: &'a PlanInput<'a>,
    now_ms: i64,
    registries: BTreeMap<String, RegistryFacts>,
    needs_first_token: BTreeSet<String>,
    warnings: Vec<String>,
}

impl<'a> Builder<'a> {
    fn new(input: &'a PlanInput<'a>) -> Self {
        Builder {
            input,
            now_ms: input.now.as_millisecond(),
            registries: BTreeMap::new(),
            needs_first_token: BTreeSet::new(),
            warnings: Vec::new(),
        }
    }

    fn live(&self, workspace: &str) -> Result<&'a LiveWorkspace, PlanError> {
        self.input
            .live
            .workspaces
            .get(workspace)
            .ok_or_else(|| PlanError::MissingWorkspace { workspace: workspace.to_owned() })
    }

    fn recorded(&self, address: &str) -> Option<&'a Resource> {
        self.input.state.get(address)
    }

    fn apply_changes(&mut self) -> Result<Vec<Change>, PlanError> {
        let config = self.input.config;
        let mut changes = Vec::new();
        for workspace in config.registry_workspaces() {
            changes.extend(self.registry_changes(&workspace.name)?);
        }
        self.force_rotation_without_copies()?;
        for change in changes.iter_mut().filter(|change| change.kind == Kind::Token) {
            self.finish_token_change(change);
        }

        let orphaned_tokens = self.orphaned_token_changes(&changes);

        let mut wanted: BTreeSet<String> = changes.iter().map(|change| change.address.clone()).collect();
        for workspace in &config.workspaces {
            for change in self.reader_changes(&workspace.name)? {
                wanted.insert(change.address.clone());
                changes.push(change);
            }
        }

        changes.extend(self.orphan_changes(&wanted));
        changes.extend(orphaned_tokens);
        self.explain_interrupted_creates(&mut changes);
        Ok(changes)
    }

    fn destroy_changes(&self) -> Vec<Change> {
        self.input.state.resources.iter().map(|resource| self.delete_change(resource, "destroy requested")).collect()
    }

    /// Plans deletion of recorded objects that the configuration no longer declares.
    fn orphan_changes(&self, wanted: &BTreeSet<String>) -> Vec<Change> {
        self.input
            .state
            .resources
            .iter()
            .filter(|resource| !wanted.contains(&resource.address))
            .map(|resource| self.delete_change(resource, "no longer in the configuration"))
            .collect()
    }

    fn delete_change(&self, resource: &Resource, reason: &str) -> Change {
        let kind = Kind::parse(&resource.kind).unwrap_or(Kind::Group);
        let mut reasons = vec![reason.to_owned()];
        let made_by_mlops = resource.attributes.get("granted_by_mlops").and_then(Value::as_bool).unwrap_or(true);
        let adopted = resource.attributes.get("adopted").and_then(Value::as_bool).unwrap_or(false);
        if !made_by_mlops {
            reasons.push("granted outside mlops, so only its state entry is removed".to_owned());
        } else if adopted {
            reasons.push("adopted by mlops, not created by it, so only its state entry is removed".to_owned());
        }
        if kind == Kind::TokenPermission && made_by_mlops {
            reasons.push("principals of this grant lose their tokens at once".to_owned());
        }
        Change {
            address: resource.address.clone(),
            kind,
            workspace: resource.workspace.clone(),
            action: Action::Delete,
            reasons,
            drift: false,
            remote_id: Some(resource.remote_id.clone()),
            before: Some(resource.attributes.clone()),
            after: None,
        }
    }

    fn registry_changes(&mut self, workspace: &str) -> Result<Vec<Change>, PlanError> {
        let live = self.live(workspace)?;
        let config = self.input.config;
        let mut facts = RegistryFacts::default();
        let mut changes = Vec::new();

        changes.push(self.group_change(workspace, live, &mut facts)?);
        if live.token_permissions.is_none() {
            self.needs_first_token.insert(workspace.to_owned());
        }
        for resource in desired(config).into_iter().filter(|resource| resource.workspace == workspace) {
            if let Detail::TokenPermission { group } = &resource.detail {
                changes.push(self.token_permission_change(workspace, live, group));
            }
        }
        if config.token_usage.mode == TokenUsageMode::Authoritative {
            changes.extend(self.authoritative_revocations(workspace, live));
        }
        changes.push(self.service_principal_change(workspace, live, &mut facts)?);
        if let Some(group) = changes.iter_mut().find(|change| change.kind == Kind::Group) {
            self.unexpected_members(group, live, &facts);
        }
        changes.push(self.membership_change(workspace, live, &facts));
        changes.push(self.registry_permission_change(workspace, live, &facts));
        changes.push(self.token_change(workspace, live, &mut facts));

        self.registries.insert(workspace.to_owned(), facts);
        Ok(changes)
    }

    fn group_change(&self, workspace: &str, live: &LiveWorkspace, facts: &mut RegistryFacts) -> Result<Change, PlanError> {
        let name = &self.input.config.names.group;
        let address = single(workspace, Kind::Group);
        let recorded = self.recorded(&address);
        let after = attributes([("display_name", json!(name))]);
        let mut change = Change::new(&address, Kind::Group, workspace, after);

        if let Some(group) = recorded.and_then(|resource| live.group_by_id(&resource.remote_id)) {
            facts.group_id = Some(group.id.clone());
            return Ok(change.no_op(&group.id));
        }
        let named = live.groups_named(name);
        if named.len() > 1 {
            return Err(PlanError::AmbiguousGroup { workspace: workspace.to_owned(), display_name: name.clone(), count: named.len() });
        }
        if let Some(group) = named.first() {
            facts.group_id = Some(group.id.clone());
            change.remote_id = Some(group.id.clone());
            change.action = Action::Import;
            change.reasons.push(match recorded {
                Some(resource) => format!("recorded group {} not found, adopting group {} of the same name", resource.remote_id, group.id),
                None => "exists but is not in state".to_owned(),
            });
            return Ok(change);
        }
        Ok(change.create(recorded.is_some()))
    }

    fn token_permission_change(&mut self, workspace: &str, live: &LiveWorkspace, group: &str) -> Change {
        let address = keyed(workspace, Kind::TokenPermission, group);
        let recorded = self.recorded(&address);
        let principal = group_principal(group);
        let after = attributes([("principal", json!(principal)), ("permission_level", json!("CAN_USE"))]);
        let mut change = Change::new(&address, Kind::TokenPermission, workspace, after);

        if live.token_permissions.is_none() {
            change.reasons.push("the workspace has no token yet, so apply creates a short-lived personal token first".to_owned());
            return change.create(false);
        }
        match live.token_permission(&principal) {
            Some(grant) if grant.level == "CAN_USE" || grant.level == "CAN_MANAGE" => match recorded {
                Some(_) => change.no_op("tokens"),
                None => {
                    change.action = Action::Import;
                    change.remote_id = Some("tokens".to_owned());
                    change.reasons.push(format!("`{group}` already holds {}", grant.level));
                    if let Some(after) = change.after.as_mut() {
                        after.insert("granted_by_mlops".to_owned(), json!(false));
                    }
                    change
                }
            },
            _ => change.recreate(recorded.is_some(), "removed outside mlops"),
        }
    }

    /// Lists the principals that authoritative mode takes `CAN_USE` away from.
    fn authoritative_revocations(&self, workspace: &str, live: &LiveWorkspace) -> Vec<Change> {
        let Some(grants) = &live.token_permissions else { return Vec::new() };
        let config = self.input.config;
        let wanted: Vec<String> = crate::desired::token_usage_groups(config).iter().map(|group| group_principal(group)).collect();
        grants
            .iter()
            .filter(|grant| !grant.inherited && grant.principal != group_principal("admins") && !wanted.contains(&grant.principal))
            .map(|grant| {
                let name = grant.principal.split_once(':').map_or(grant.principal.as_str(), |(_, name)| name);
                let address = keyed(workspace, Kind::TokenPermission, name);
                let mut reasons = vec!["not declared and token_usage.mode is authoritative".to_owned()];
                reasons.push(format!("revokes {} live token(s) at once", revoked_token_count(live, &grant.principal, &wanted)));
                if !config.token_usage.allow_revoke.iter().any(|allowed| allowed == name) {
                    reasons.push(format!("apply rejects this unless `{name}` is listed in token_usage.allow_revoke"));
                }
                Change {
                    address,
                    kind: Kind::TokenPermission,
                    workspace: workspace.to_owned(),
                    action: Action::Delete,
                    reasons,
                    drift: false,
                    remote_id: Some("tokens".to_owned()),
                    before: Some(attributes([("principal", json!(grant.principal)), ("permission_level", json!(grant.level))])),
                    after: None,
                }
            })
            .collect()
    }

    fn service_principal_change(&mut self, workspace: &str, live: &LiveWorkspace, facts: &mut RegistryFacts) -> Result<Change, PlanError> {
        let config = self.input.config;
        let display_name = &config.names.service_principal;
        let entitlements = &config.names.service_principal_entitlements;
        let address = single(workspace, Kind::ServicePrincipal);
        let recorded = self.recorded(&address);
        let after = attributes([
            ("display_name", json!(display_name)),
            ("active", json!(true)),
            ("entitlements", json!(entitlements)),
            ("application_id", json!(KNOWN_AFTER_APPLY)),
        ]);
        let mut change = Change::new(&address, Kind::ServicePrincipal, workspace, after);

        let pinned = config.workspace(workspace).and_then(|workspace| workspace.service_principal_application_id.clone());
        let found = match recorded.and_then(|resource| live.service_principal_by_id(&resource.remote_id)) {
            Some(principal) => Some((principal, true)),
            None => {
                let named: Vec<_> = live
                    .service_principals
                    .iter()
                    .filter(|principal| match &pinned {
                        Some(application_id) => &principal.application_id == application_id,
                        None => &principal.display_name == display_name,
                    })
                    .collect();
                if named.len() > 1 {
                    let application_ids = named.iter().map(|principal| principal.application_id.as_str()).collect::<Vec<_>>().join(", ");
                    return Err(PlanError::AmbiguousServicePrincipal {
                        workspace: workspace.to_owned(),
                        display_name: display_name.clone(),
                        count: named.len(),
                        application_ids,
                    });
                }
                named.first().map(|principal| (*principal, false))
            }
        };

        let Some((principal, tracked)) = found else {
            return Ok(change.create(recorded.is_some()));
        };
        facts.service_principal_id = Some(principal.id.clone());
        facts.application_id = Some(principal.application_id.clone());
        if let Some(after) = change.after.as_mut() {
            after.insert("application_id".to_owned(), json!(principal.application_id));
        }
        change.remote_id = Some(principal.id.clone());
        change.before = Some(attributes([
            ("display_name", json!(principal.display_name)),
            ("active", json!(principal.active)),
            ("entitlements", json!(principal.entitlements)),
            ("application_id", json!(principal.application_id)),
        ]));

        let mut drift = Vec::new();
        if !principal.active {
            drift.push("deactivated outside mlops".to_owned());
        }
        let recorded_entitlements: Vec<String> = recorded
            .and_then(|resource| resource.attributes.get("entitlements").cloned())
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or_default();
        for entitlement in entitlements.iter().filter(|entitlement| !principal.entitlements.contains(entitlement)) {
            if recorded.is_some() && !recorded_entitlements.contains(entitlement) {
                drift.push(format!("config changed: entitlement `{entitlement}` added"));
            } else {
                drift.push(format!("entitlement `{entitlement}` removed outside mlops"));
            }
        }
        if !tracked {
            change.action = Action::Import;
            change.reasons.push(match recorded {
                Some(resource) => format!("recorded service principal {} not found, adopting {}", resource.remote_id, principal.id),
                None => "exists but is not in state".to_owned(),
            });
            change.reasons.extend(drift);
            return Ok(change);
        }
        self.warn_duplicate_principals(workspace, live, principal, display_name);
        if drift.is_empty() {
            return Ok(change.no_op(&principal.id));
        }
        change.action = Action::Update;
        change.drift = drift.iter().any(|reason| reason.contains("outside mlops"));
        change.reasons = drift;
        Ok(change)
    }

    /// Turns members added to the managed group outside mlops into an update that removes them.
    /// Members the group had when mlops created or adopted it are left alone.
    fn unexpected_members(&self, change: &mut Change, live: &LiveWorkspace, facts: &RegistryFacts) {
        if change.action != Action::NoOp {
            return;
        }
        let Some(group) = facts.group_id.as_deref().and_then(|id| live.group_by_id(id)) else { return };
        let baseline: Vec<String> = self
            .recorded(&change.address)
            .and_then(|resource| resource.attributes.get("baseline_members").cloned())
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or_default();
        let unexpected: Vec<String> = group
            .members
            .iter()
            .filter(|member| Some(member.as_str()) != facts.service_principal_id.as_deref() && !baseline.contains(member))
            .cloned()
            .collect();
        if unexpected.is_empty() {
            return;
        }
        change.action = Action::Update;
        change.drift = true;
        change.reasons.push(format!("unexpected member(s) {} added outside mlops", unexpected.join(", ")));
        change.before = Some(attributes([("display_name", json!(group.display_name)), ("members", json!(group.members))]));
        if let Some(after) = change.after.as_mut() {
            after.insert("remove_members".to_owned(), json!(unexpected));
        }
    }

    /// Warns about other service principals that carry the managed display name, such as one
    /// left by a create whose response was lost. mlops does not delete them, because it cannot
    /// tell who made them.
    fn warn_duplicate_principals(&mut self, workspace: &str, live: &LiveWorkspace, managed: &crate::live::LiveServicePrincipal, display_name: &str) {
        let others: Vec<String> = live
            .service_principals
            .iter()
            .filter(|principal| principal.id != managed.id && principal.display_name == display_name)
            .map(|principal| format!("{} (application id {})", principal.id, principal.application_id))
            .collect();
        if !others.is_empty() {
            self.warnings.push(format!(
                "{workspace}/service_principal: besides the managed service principal {}, workspace `{workspace}` has {} more named `{display_name}`: {}; delete them if nobody uses them",
                managed.id,
                others.len(),
                others.join(", ")
            ));
        }
    }

    fn membership_change(&self, workspace: &str, live: &LiveWorkspace, facts: &RegistryFacts) -> Change {
        let config = self.input.config;
        let address = single(workspace, Kind::GroupMember);
        let recorded = self.recorded(&address);
        let after = attributes([
            ("group", json!(config.names.group)),
            ("member", json!(config.names.service_principal)),
        ]);
        let mut change = Change::new(&address, Kind::GroupMember, workspace, after);

        let (Some(group_id), Some(member_id)) = (&facts.group_id, &facts.service_principal_id) else {
            change.reasons.push("the group or the service principal is new".to_owned());
            change.action = Action::Create;
            return change;
        };
        let is_member = live.group_by_id(group_id).is_some_and(|group| group.members.contains(member_id));
        let remote_id = format!("{group_id}/{member_id}");
        match (is_member, recorded) {
            (true, Some(_)) => change.no_op(&remote_id),
            (true, None) => change.import(&remote_id),
            (false, recorded) => change.recreate(recorded.is_some(), "removed outside mlops, which also revoked the service principal's tokens"),
        }
    }

    fn registry_permission_change(&self, workspace: &str, live: &LiveWorkspace, facts: &RegistryFacts) -> Change {
        let address = single(workspace, Kind::RegistryPermission);
        let recorded = self.recorded(&address);
        let principal = facts.application_id.as_deref().map_or_else(|| KNOWN_AFTER_APPLY.to_owned(), service_principal_principal);
        let after = attributes([("principal", json!(principal)), ("permission_level", json!("CAN_READ"))]);
        let mut change = Change::new(&address, Kind::RegistryPermission, workspace, after);

        if facts.application_id.is_none() {
            change.reasons.push("the service principal is new".to_owned());
            change.action = Action::Create;
            return change;
        }
        let granted = live
            .registry_permissions
            .iter()
            .any(|grant| grant.principal == principal && !grant.inherited && REGISTRY_READ_LEVELS.contains(&grant.level.as_str()));
        match (granted, recorded) {
            (true, Some(_)) => change.no_op("root"),
            (true, None) => change.import("root"),
            (false, recorded) => change.recreate(recorded.is_some(), "removed outside mlops"),
        }
    }

    fn token_change(&mut self, workspace: &str, live: &LiveWorkspace, facts: &mut RegistryFacts) -> Change {
        let policy = self.input.config.tokens;
        let address = single(workspace, Kind::Token);
        let recorded = self.recorded(&address);
        let after = attributes([
            ("owner", json!(single(workspace, Kind::ServicePrincipal))),
            ("lifetime_days", json!(policy.lifetime_days)),
            ("comment", json!(token_comment(&address))),
            ("token_id", json!(KNOWN_AFTER_APPLY)),
        ]);
        let mut change = Change::new(&address, Kind::Token, workspace, after);

        let Some(principal_id) = facts.service_principal_id.clone() else {
            change.reasons.push("the service principal is new".to_owned());
            change.action = Action::Create;
            return change;
        };
        let Some(resource) = recorded else {
            return self.adopt_token(change, workspace, live, &principal_id, facts);
        };
        change.remote_id = Some(resource.remote_id.clone());
        change.before = Some(resource.attributes.clone());
        let Some(token) = live.token(&resource.remote_id) else {
            change.reasons.push("deleted or revoked outside mlops".to_owned());
            change.drift = true;
            change.action = Action::Rotate;
            return change;
        };

        if token.owner_id.as_deref() != Some(principal_id.as_str()) {
            change.reasons.push("owned by another principal than the service principal".to_owned());
            change.drift = true;
            change.action = Action::Rotate;
            return change;
        }
        if token.expiry_time < 0 {
            self.warnings.push(format!("{address}: token {} never expires, which breaks the rotation policy", token.token_id));
            facts.token_sha256 = recorded_string(resource, "value_sha256");
            return change.no_op(&token.token_id);
        }
        let remaining = token.expiry_time - self.now_ms;
        let date = date_of(token.expiry_time);
        if remaining <= 0 {
            change.reasons.push(format!("expired on {date}"));
            change.drift = true;
            change.action = Action::Rotate;
            return change;
        }
        if remaining < i64::from(policy.rotate_before_days) * MILLIS_PER_DAY {
            let days = remaining / MILLIS_PER_DAY;
            change.reasons.push(format!("expires {date}, in {days} days"));
            change.action = Action::Rotate;
            return change;
        }
        facts.token_sha256 = recorded_string(resource, "value_sha256");
        let superseded: Vec<String> = string_list(&resource.attributes, "superseded_token_ids");
        if !superseded.is_empty() {
            change.remote_id = Some(token.token_id.clone());
            change.action = Action::Update;
            change.reasons.push(format!("old token(s) {} still to be revoked after an interrupted rotation", superseded.join(", ")));
            return change;
        }
        change.no_op(&token.token_id)
    }

    /// Adopts a token of the service principal that mlops or the Terraform module made, when every
    /// reader scope holds one same value for it; otherwise plans a new token.
    fn adopt_token(&self, mut change: Change, workspace: &str, live: &LiveWorkspace, principal_id: &str, facts: &mut RegistryFacts) -> Change {
        let marker = token_comment(&change.address);
        let candidates: Vec<&crate::live::LiveToken> = live
            .tokens
            .iter()
            .filter(|token| token.owner_id.as_deref() == Some(principal_id))
            .filter(|token| token.comment == marker || token.comment.starts_with(MODULE_TOKEN_COMMENT))
            .filter(|token| token.expiry_time < 0 || token.expiry_time > self.now_ms)
            .collect();
        let token = match candidates.as_slice() {
            [] => return change.create(false),
            [token] => *token,
            _ => {
                change.reasons.push(format!("{} tokens could be the current one, so a new token replaces them all", candidates.len()));
                let ids: Vec<&str> = candidates.iter().map(|token| token.token_id.as_str()).collect();
                if let Some(after) = change.after.as_mut() {
                    after.insert("superseded_token_ids".to_owned(), json!(ids));
                }
                return change.create(false);
            }
        };
        let Some(sha256) = self.reader_token_sha256(workspace) else {
            change.reasons.push(format!("token {} exists, but the reader scopes do not all hold one value for it", token.token_id));
            return change.create(false);
        };

        facts.token_sha256 = Some(sha256.clone());
        change.remote_id = Some(token.token_id.clone());
        change.action = Action::Import;
        change.reasons.push(format!("token {} exists but is not in state", token.token_id));
        if let Some(after) = change.after.as_mut() {
            after.insert("token_id".to_owned(), json!(token.token_id));
            after.insert("value_sha256".to_owned(), json!(sha256));
        }
        let remaining = token.expiry_time - self.now_ms;
        if token.expiry_time >= 0 && remaining < i64::from(self.input.config.tokens.rotate_before_days) * MILLIS_PER_DAY {
            change.action = Action::Rotate;
            facts.token_sha256 = None;
            change.reasons = vec![format!("expires {}, in {} days", date_of(token.expiry_time), remaining / MILLIS_PER_DAY)];
        }
        change
    }

    /// Returns the one fingerprint that every reader scope of this registry holds as its token.
    fn reader_token_sha256(&self, registry: &str) -> Option<String> {
        let config = self.input.config;
        let mut found: Option<String> = None;
        for link in config.links.iter().filter(|link| link.registry == registry) {
            let live = self.input.live.workspaces.get(&link.reader)?;
            let key = format!("{}-token", link.prefix);
            let address = keyed(&link.reader, Kind::Secret, &format!("{}/{key}", link.scope));
            let sha256 = self.live_secret_sha256(live, &link.scope, &key, &address)?;
            match &found {
                Some(previous) if *previous != sha256 => return None,
                _ => found = Some(sha256),
            }
        }
        found
    }

    /// Rotates a token whose value no reader scope still holds, since apply cannot copy it.
    fn force_rotation_without_copies(&mut self) -> Result<(), PlanError> {
        let config = self.input.config;
        let registries: Vec<String> = self.registries.keys().cloned().collect();
        for registry in registries {
            let Some(expected) = self.registries[&registry].token_sha256.clone() else { continue };
            let mut holders = 0;
            let mut stale = 0;
            for link in config.links.iter().filter(|link| link.registry == registry) {
                let live = self.live(&link.reader)?;
                let address = keyed(&link.reader, Kind::Secret, &format!("{}/{}-token", link.scope, link.prefix));
                match self.live_secret_sha256(live, &link.scope, &format!("{}-token", link.prefix), &address) {
                    Some(actual) if actual == expected => holders += 1,
                    _ => stale += 1,
                }
            }
            if stale > 0 && holders == 0 {
                if let Some(facts) = self.registries.get_mut(&registry) {
                    facts.token_sha256 = None;
                }
                self.warnings.push(format!(
                    "{registry}/token: no reader scope holds its value any more, so apply mints a new token"
                ));
            }
        }
        Ok(())
    }

    /// Turns a no-op token change into a rotation when a pass after it found the value lost.
    fn finish_token_change(&self, change: &mut Change) {
        let facts = &self.registries[&change.workspace];
        if matches!(change.action, Action::NoOp | Action::Update) && facts.token_sha256.is_none() {
            change.reasons.clear();
            change.action = Action::Rotate;
            change.drift = true;
            change.reasons.push("no reader scope holds the token value any more".to_owned());
        }
    }

    /// Returns the fingerprint of a live secret: read from the value when refresh fetched it, else
    /// taken from state when the server's last update time is the one recorded.
    fn live_secret_sha256(&self, live: &LiveWorkspace, scope: &str, key: &str, address: &str) -> Option<String> {
        let secret = live.scope(scope)?.secret(key)?;
        if let Some(sha256) = &secret.value_sha256 {
            return Some(sha256.clone());
        }
        let recorded = self.recorded(address)?;
        let recorded_time = recorded.attributes.get("last_updated_timestamp").and_then(Value::as_i64)?;
        (recorded_time == secret.last_updated_timestamp).then(|| recorded_string(recorded, "value_sha256")).flatten()
    }

    fn reader_changes(&self, reader: &str) -> Result<Vec<Change>, PlanError> {
        let config = self.input.config;
        if config.links_from(reader).next().is_none() {
            return Ok(Vec::new());
        }
        let live = self.live(reader)?;
        let mut changes = Vec::new();
        for resource in desired(config).into_iter().filter(|resource| resource.workspace == reader) {
            match &resource.detail {
                Detail::SecretScope { name } => changes.push(self.scope_change(reader, live, name)),
                Detail::Secret { scope, key, value } => changes.push(self.secret_change(reader, live, scope, key, value)),
                _ => {}
            }
        }

        let mut principals = scope_reader_principals(config, reader);
        if !principals.contains(&config.names.group) && !live.groups_named(&config.names.group).is_empty() {
            principals.push(config.names.group.clone());
        }
        let scopes: BTreeSet<&str> = config.links_from(reader).map(|link| link.scope.as_str()).collect();
        for scope in scopes {
            for principal in &principals {
                changes.push(self.acl_change(reader, live, scope, principal));
            }
        }
        Ok(changes)
    }

    fn scope_change(&self, reader: &str, live: &LiveWorkspace, name: &str) -> Change {
        let address = keyed(reader, Kind::SecretScope, name);
        let recorded = self.recorded(&address);
        let mut change = Change::new(&address, Kind::SecretScope, reader, attributes([("name", json!(name))]));
        match (live.scope(name), recorded) {
            (Some(scope), Some(resource)) => {
                let unexpected = self.unexpected_acls(reader, live, scope, resource);
                if unexpected.is_empty() {
                    return change.no_op(name);
                }
                change.remote_id = Some(name.to_owned());
                change.action = Action::Update;
                change.drift = true;
                let listed: Vec<String> = unexpected.iter().map(|acl| format!("`{}` ({})", acl.principal, acl.permission)).collect();
                change.reasons.push(format!("unexpected principal(s) {} added outside mlops", listed.join(", ")));
                if let Some(after) = change.after.as_mut() {
                    after.insert("remove_principals".to_owned(), json!(unexpected.iter().map(|acl| acl.principal.clone()).collect::<Vec<_>>()));
                }
                change
            }
            (Some(_), None) => change.import(name),
            (None, recorded) => change.create(recorded.is_some()),
        }
    }

    /// Returns the ACLs of a managed scope that neither the configuration declares nor the scope
    /// had when mlops created or adopted it.
    fn unexpected_acls(&self, reader: &str, live: &LiveWorkspace, scope: &crate::live::LiveScope, resource: &Resource) -> Vec<crate::live::LiveAcl> {
        let config = self.input.config;
        let mut expected = scope_reader_principals(config, reader);
        expected.push(config.names.group.clone());
        let baseline: Vec<String> = string_list(&resource.attributes, "baseline_principals");
        let _ = live;
        let recorded = |principal: &str| self.recorded(&keyed(reader, Kind::SecretAcl, &format!("{}/{principal}", resource.remote_id))).is_some();
        scope
            .acls
            .iter()
            .filter(|acl| !expected.contains(&acl.principal) && !baseline.contains(&acl.principal) && !recorded(&acl.principal))
            .cloned()
            .collect()
    }

    fn secret_change(&self, reader: &str, live: &LiveWorkspace, scope: &str, key: &str, value: &SecretValue) -> Change {
        let address = keyed(reader, Kind::Secret, &format!("{scope}/{key}"));
        let recorded = self.recorded(&address);
        let (wanted, source) = self.wanted_secret(value);
        let mut after = attributes([
            ("scope", json!(scope)),
            ("key", json!(key)),
            ("value_sha256", json!(wanted.clone().unwrap_or_else(|| KNOWN_AFTER_APPLY.to_owned()))),
        ]);
        after.insert("source".to_owned(), json!(source));
        let mut change = Change::new(&address, Kind::Secret, reader, after);
        let remote_id = format!("{scope}/{key}");

        let scope_exists = live.scope(scope).is_some();
        let actual = if scope_exists { self.live_secret_sha256(live, scope, key, &address) } else { None };
        let exists = scope_exists && live.scope(scope).and_then(|scope| scope.secret(key)).is_some();
        if !exists {
            return change.create(recorded.is_some());
        }
        change.remote_id = Some(remote_id.clone());
        change.before = Some(attributes([
            ("scope", json!(scope)),
            ("key", json!(key)),
            ("value_sha256", json!(actual.clone().unwrap_or_else(|| "(unknown)".to_owned()))),
        ]));
        let Some(wanted) = wanted else {
            change.action = Action::Update;
            change.reasons.push(format!("follows the new token of {}", single(source_registry(value), Kind::Token)));
            return change;
        };
        if actual.as_deref() == Some(wanted.as_str()) {
            return match recorded {
                Some(_) => change.no_op(&remote_id),
                None => change.import(&remote_id),
            };
        }

        change.action = Action::Update;
        let recorded_sha256 = recorded.and_then(|resource| recorded_string(resource, "value_sha256"));
        if recorded.is_some() && recorded_sha256.as_deref() != Some(wanted.as_str()) && matches!(value, SecretValue::Plain { .. }) {
            change.reasons.push("config changed".to_owned());
        } else if recorded.is_some() {
            change.reasons.push("value overwritten outside mlops".to_owned());
            change.drift = true;
        } else {
            change.reasons.push("exists with another value".to_owned());
        }
        change
    }

    /// Returns the fingerprint a secret must have (`None` when apply mints the value) and where
    /// apply takes the value from.
    fn wanted_secret(&self, value: &SecretValue) -> (Option<String>, String) {
        match value {
            SecretValue::Plain { text, registry } => {
                let text = match text.is_empty() {
                    true => self.input.live.workspaces.get(registry).map(|live| live.workspace_id.clone()).unwrap_or_default(),
                    false => text.clone(),
                };
                (Some(crate::fingerprint(&text)), "configuration".to_owned())
            }
            SecretValue::Token { registry } => {
                let sha256 = self.registries.get(registry).and_then(|facts| facts.token_sha256.clone());
                (sha256, single(registry, Kind::Token))
            }
        }
    }

    fn acl_change(&self, reader: &str, live: &LiveWorkspace, scope: &str, principal: &str) -> Change {
        let address = keyed(reader, Kind::SecretAcl, &format!("{scope}/{principal}"));
        let recorded = self.recorded(&address);
        let after = attributes([("scope", json!(scope)), ("principal", json!(principal)), ("permission", json!("READ"))]);
        let mut change = Change::new(&address, Kind::SecretAcl, reader, after);
        let remote_id = format!("{scope}/{principal}");

        let acl = live.scope(scope).and_then(|scope| scope.acl(principal));
        match (acl, recorded) {
            (Some(acl), Some(_)) if acl.permission == "READ" => change.no_op(&remote_id),
            (Some(acl), None) if acl.permission == "READ" => change.import(&remote_id),
            (Some(acl), _) => {
                change.remote_id = Some(remote_id);
                change.before = Some(attributes([("scope", json!(scope)), ("principal", json!(principal)), ("permission", json!(acl.permission))]));
                change.action = Action::Update;
                change.drift = recorded.is_some();
                change.reasons.push(format!("permission is {} instead of READ", acl.permission));
                change
            }
            (None, recorded) => change.create(recorded.is_some()),
        }
    }
}

/// Counts the live tokens whose owners lose `CAN_USE` when `principal` loses its grant: members
/// of the group (everyone for `users`), less those that keep a grant through `admins` or a
/// declared group. Every principal is a member of `users`, so no principal loses access while `users`
/// keeps its grant.
fn revoked_token_count(live: &LiveWorkspace, principal: &str, kept: &[String]) -> usize {
    if kept.iter().any(|group| group == "group:users") {
        return 0;
    }
    let members_of = |name: &str| -> Vec<String> { live.groups_named(name).iter().flat_map(|group| group.members.clone()).collect() };
    let mut keeping: Vec<String> = members_of("admins");
    for group in kept {
        keeping.extend(members_of(group.trim_start_matches("group:")));
    }
    let losing = |owner: &str| -> bool {
        if keeping.iter().any(|member| member == owner) {
            return false;
        }
        match principal.split_once(':') {
            Some(("group", "users")) => true,
            Some(("group", name)) => members_of(name).iter().any(|member| member == owner),
            _ => false,
        }
    };
    live.tokens.iter().filter(|token| token.owner_id.as_deref().is_some_and(losing)).count()
}

fn source_registry(value: &SecretValue) -> &str {
    match value {
        SecretValue::Plain { registry, .. } | SecretValue::Token { registry } => registry,
    }
}

impl Change {
    fn new(address: &str, kind: Kind, workspace: &str, after: Attributes) -> Change {
        Change {
            address: address.to_owned(),
            kind,
            workspace: workspace.to_owned(),
            action: Action::NoOp,
            reasons: Vec::new(),
            drift: false,
            remote_id: None,
            before: None,
            after: Some(after),
        }
    }

    fn no_op(mut self, remote_id: &str) -> Change {
        self.action = Action::NoOp;
        self.remote_id = Some(remote_id.to_owned());
        self
    }

    fn import(mut self, remote_id: &str) -> Change {
        self.action = Action::Import;
        self.remote_id = Some(remote_id.to_owned());
        self.reasons.push("exists but is not in state".to_owned());
        self
    }

    /// Marks a missing object for creation, with `reason` as drift when state knew it.
    fn recreate(self, was_recorded: bool, reason: &str) -> Change {
        if !was_recorded {
            return self.create(false);
        }
        let mut change = self;
        change.reasons.push(reason.to_owned());
        change.drift = true;
        change.action = Action::Create;
        change
    }

    /// Marks the object for creation; `was_recorded` means state knew it, so it was deleted outside mlops.
    fn create(mut self, was_recorded: bool) -> Change {
        self.action = Action::Create;
        if was_recorded {
            self.reasons.push("deleted outside mlops".to_owned());
            self.drift = true;
        } else if self.reasons.is_empty() {
            self.reasons.push("missing".to_owned());
        }
        self
    }
}

fn attributes<const N: usize>(pairs: [(&str, Value); N]) -> Attributes {
    pairs.into_iter().map(|(key, value)| (key.to_owned(), value)).collect()
}

fn recorded_string(resource: &Resource, key: &str) -> Option<String> {
    resource.attributes.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Formats epoch milliseconds as a UTC date.
pub fn date_of(millis: i64) -> String {
    Timestamp::from_millisecond(millis).map_or_else(|_| millis.to_string(), |time| time.strftime("%Y-%m-%d").to_string())
}
