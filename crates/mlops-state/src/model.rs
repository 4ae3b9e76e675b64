//! The in-memory state: its header and the managed resources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the state file format that this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Contents of one state file.
///
/// Field order here is the key order in the written JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version of the file, equal to [`FORMAT_VERSION`].
    pub version: u32,
    /// UUID v4 minted when the state is created and kept for its whole life.
    pub lineage: String,
    /// Write counter, incremented by every [`crate::StateStore::write`].
    pub serial: u64,
    /// Managed objects, sorted by address in byte order, with unique addresses.
    pub resources: Vec<Resource>,
}

/// One managed object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Unique key of the object, such as `staging/group` or `dev/secret/remote-mr-prod/prod-token`.
    pub address: String,
    /// Object type, such as `group`, `service_principal`, `token` or `secret`.
    pub kind: String,
    /// Workspace name from the configuration.
    pub workspace: String,
    /// Numeric workspace id, as a string of decimal digits.
    pub workspace_id: String,
    /// Id of the object in the Databricks API, empty only while an [`Intent`] is pending.
    pub remote_id: String,
    /// Attributes used for diffing, sorted by key. Never a secret value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Create operation started but not yet confirmed, recorded before a create that is not
    /// idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Intent>,
}

/// Record of a create that was started and may have reached the server.
///
/// The marker is placed on the remote object (a token comment, for example) so that the next
/// run can find an object whose create succeeded after the process died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// Operation name, such as `create`.
    pub operation: String,
    /// Marker placed on the remote object to find it again.
    pub marker: String,
    /// Start time of the operation, RFC 3339 in UTC.
    pub started_at: String,
}

impl State {
    /// Creates an empty state with a fresh lineage and serial 0.
    pub fn new() -> State {
        State {
            version: FORMAT_VERSION,
            lineage: uuid::Uuid::new_v4().to_string(),
            serial: 0,
            resources: Vec::new(),
        }
    }

    /// Returns the resource at `address`.
    ///
    /// The lookup is a binary search, so it relies on `resources` being sorted, as
    /// [`State::upsert`], [`State::remove`] and [`crate::StateStore::read`] keep it.
    pub fn get(&self, address: &str) -> Option<&Resource> {
        let index = self.position(address).ok()?;
        Some(&self.resources[index])
    }

    /// Inserts `resource`, or replaces the resource with the same address, keeping the order.
    pub fn upsert(&mut self, resource: Resource) {
        match self.position(&resource.address) {
            Ok(index) => self.resources[index] = resource,
            Err(index) => self.resources.insert(index, resource),
        }
    }

    /// Removes and returns the resource at `address`.
    pub fn remove(&mut self, address: &str) -> Option<Resource> {
        let index = self.position(address).ok()?;
        Some(self.resources.remove(index))
    }

    /// Sorts `resources` by address, and each attribute object by key, at every depth.
    pub(crate) fn normalize(&mut self) {
        self.resources.sort_by(|a, b| a.address.cmp(&b.address));
        for resource in &mut self.resources {
            resource.attributes.values_mut().for_each(sort_object_keys);
        }
    }

    fn position(&self, address: &str) -> Result<usize, usize> {
        self.resources
            .binary_search_by(|resource| resource.address.as_str().cmp(address))
    }
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

/// Sorts the keys of every object inside `value`.
///
/// `serde_json` is built with `preserve_order` in this workspace, so objects keep insertion order
/// unless sorted here.
fn sort_object_keys(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_object_keys);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_object_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(address: &str) -> Resource {
        Resource {
            address: address.to_string(),
            kind: "group".to_string(),
            workspace: "staging".to_string(),
            workspace_id: "123456789".to_string(),
            remote_id: format!("id-{address}"),
            attributes: BTreeMap::new(),
            intent: None,
        }
    }

    fn addresses(state: &State) -> Vec<&str> {
        state.resources.iter().map(|r| r.address.as_str()).collect()
    }

    #[test]
    fn new_state_is_empty() {
        let state = State::new();

        assert_eq!(state.version, FORMAT_VERSION);
        assert_eq!(state.serial, 0);
        assert!(state.resources.is_empty());
        let lineage = uuid::Uuid::parse_str(&state.lineage).unwrap();
        assert_eq!(lineage.get_version(), Some(uuid::Version::Random));
    }

    #[test]
    fn new_states_get_distinct_lineages() {
        assert_ne!(State::new().lineage, State::new().lineage);
    }

    #[test]
    fn upsert_keeps_address_order() {
        let mut state = State::new();

        for address in ["prod/group", "dev/token", "staging/group", "dev/group"] {
            state.upsert(resource(address));
        }

        assert_eq!(
            addresses(&state),
            ["dev/group", "dev/token", "prod/group", "staging/group"]
        );
    }

    #[test]
    fn upsert_replaces_same_address() {
        let mut state = State::new();
        state.upsert(resource("dev/group"));
        let mut changed = resource("dev/group");
        changed.remote_id = "other".to_string();

        state.upsert(changed);

        assert_eq!(state.resources.len(), 1);
        assert_eq!(state.get("dev/group").unwrap().remote_id, "other");
    }

    #[test]
    fn remove_returns_resource() {
        let mut state = State::new();
        state.upsert(resource("a"));
        state.upsert(resource("b"));

        let removed = state.remove("a").unwrap();

        assert_eq!(removed.address, "a");
        assert_eq!(addresses(&state), ["b"]);
        assert!(state.remove("a").is_none());
        assert!(state.get("a").is_none());
    }

    #[test]
    fn normalize_sorts_nested_keys() {
        let mut state = State::new();
        let mut item = resource("a");
        item.attributes.insert(
            "nested".to_string(),
            serde_json::json!([{"zeta": 1, "alpha": {"y": 2, "b": 3}}]),
        );
        state.resources.push(item);
        state.resources.insert(0, resource("b"));

        state.normalize();

        assert_eq!(addresses(&state), ["a", "b"]);
        let text = serde_json::to_string(&state.resources[0].attributes).unwrap();
        assert_eq!(text, r#"{"nested":[{"alpha":{"b":3,"y":2},"zeta":1}]}"#);
    }
}
