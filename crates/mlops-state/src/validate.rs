//! Rules that every state must follow, checked on read and before every write.

use crate::model::{Intent, Resource, State};

/// Attribute keys that hold a secret value in other tools' state, and never in `mlops` state.
const SECRET_ATTRIBUTE_KEYS: [&str; 3] = ["token_value", "value", "string_value"];

/// Prefix of a Databricks personal access token.
const TOKEN_PREFIX: &str = "dapi";

/// Minimum number of hex digits after [`TOKEN_PREFIX`] for a string to count as a token.
const TOKEN_MIN_HEX_DIGITS: usize = 32;

/// Broken rule of the state format.
///
/// Messages name attributes by key and never repeat a value that looks like a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The lineage is not a UUID.
    #[error("lineage `{lineage}` is not a UUID")]
    InvalidLineage { lineage: String },

    /// The serial cannot be incremented further.
    #[error("serial {serial} cannot be incremented")]
    SerialExhausted { serial: u64 },

    /// A required field of a resource is empty.
    #[error("resource #{index} (`{address}`) has an empty `{field}`")]
    EmptyField {
        index: usize,
        address: String,
        field: &'static str,
    },

    /// A resource comes before one with a smaller address.
    #[error(
        "resource `{address}` comes after `{previous}`, but resources must be sorted by address"
    )]
    Unsorted { address: String, previous: String },

    /// Two resources have the same address.
    #[error("address `{address}` appears more than once")]
    DuplicateAddress { address: String },

    /// A workspace id contains something other than decimal digits.
    #[error(
        "resource `{address}` has workspace_id `{workspace_id}`, which is not all decimal digits"
    )]
    InvalidWorkspaceId {
        address: String,
        workspace_id: String,
    },

    /// The start time of an intent is not an RFC 3339 timestamp.
    #[error(
        "resource `{address}` has intent started_at `{started_at}`, which is not an RFC 3339 timestamp"
    )]
    InvalidIntentTime { address: String, started_at: String },

    /// An attribute key names a field that stores a secret value in other tools.
    #[error("resource `{address}` has attribute `{attribute}`, a field that holds a secret value")]
    SecretAttribute { address: String, attribute: String },

    /// A string looks like a Databricks token (`dapi` followed by 32 or more hex digits).
    #[error("resource `{address}` has a value that looks like a Databricks token in `{field}`")]
    TokenShapedValue { address: String, field: String },
}

impl Problem {
    /// Returns how to fix the problem.
    pub fn hint(&self) -> String {
        match self {
            Problem::InvalidLineage { .. } => {
                "restore the file from git history, because the lineage must be the UUID that \
                 mlops minted for this state"
                    .to_string()
            }
            Problem::SerialExhausted { .. } => {
                "set `serial` to a smaller number that is still larger than any saved plan uses"
                    .to_string()
            }
            Problem::EmptyField { .. } | Problem::InvalidIntentTime { .. } => {
                "restore the file from git history, because it was edited by hand or written by \
                 another tool"
                    .to_string()
            }
            Problem::Unsorted { .. } => {
                "sort the `resources` array by `address` (byte order), or restore the file from \
                 git history"
                    .to_string()
            }
            Problem::DuplicateAddress { .. } => {
                "keep one entry per address (after a git merge, the one from the copy with the \
                 higher serial), or restore the file from git history"
                    .to_string()
            }
            Problem::InvalidWorkspaceId { .. } => {
                "use the numeric workspace id, as in the `workspace_id` of the configuration"
                    .to_string()
            }
            Problem::SecretAttribute { attribute, .. } => format!(
                "remove `{attribute}` from the file and from git history, and rotate the secret \
                 because it was exposed (mlops stores only a SHA-256 of a secret value)"
            ),
            Problem::TokenShapedValue { .. } => {
                "remove the value from the file and from git history, and revoke the token \
                 because it was exposed (mlops never stores token values)"
                    .to_string()
            }
        }
    }
}

impl State {
    /// Checks every rule of the state format except the version.
    pub fn validate(&self) -> Result<(), Problem> {
        let lineage_is_uuid =
            self.lineage.len() == 36 && uuid::Uuid::parse_str(&self.lineage).is_ok();
        if !lineage_is_uuid {
            return Err(Problem::InvalidLineage {
                lineage: self.lineage.clone(),
            });
        }

        for (index, resource) in self.resources.iter().enumerate() {
            validate_resource(index, resource)?;
        }

        validate_order(&self.resources)
    }
}

fn validate_order(resources: &[Resource]) -> Result<(), Problem> {
    for pair in resources.windows(2) {
        let (previous, current) = (&pair[0].address, &pair[1].address);
        if current == previous {
            return Err(Problem::DuplicateAddress {
                address: current.clone(),
            });
        }
        if current < previous {
            return Err(Problem::Unsorted {
                address: current.clone(),
                previous: previous.clone(),
            });
        }
    }
    Ok(())
}

fn validate_resource(index: usize, resource: &Resource) -> Result<(), Problem> {
    validate_required_fields(index, resource)?;

    let address = &resource.address;
    if !resource.workspace_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::InvalidWorkspaceId {
            address: address.clone(),
            workspace_id: resource.workspace_id.clone(),
        });
    }

    if let Some(intent) = &resource.intent {
        validate_intent(index, address, intent)?;
    }

    validate_no_secrets(resource)
}

fn validate_required_fields(index: usize, resource: &Resource) -> Result<(), Problem> {
    let pending = resource.intent.is_some();
    let fields = [
        ("address", &resource.address, false),
        ("kind", &resource.kind, false),
        ("workspace", &resource.workspace, false),
        ("workspace_id", &resource.workspace_id, false),
        // A resource whose create is still pending has no remote id yet.
        ("remote_id", &resource.remote_id, pending),
    ];

    for (field, value, may_be_empty) in fields {
        if value.is_empty() && !may_be_empty {
            return Err(Problem::EmptyField {
                index,
                address: resource.address.clone(),
                field,
            });
        }
    }
    Ok(())
}

fn validate_intent(index: usize, address: &str, intent: &Intent) -> Result<(), Problem> {
    for (field, value) in [
        ("intent.operation", &intent.operation),
        ("intent.marker", &intent.marker),
    ] {
        if value.is_empty() {
            return Err(Problem::EmptyField {
                index,
                address: address.to_string(),
                field,
            });
        }
    }

    if intent.started_at.parse::<jiff::Timestamp>().is_err() {
        return Err(Problem::InvalidIntentTime {
            address: address.to_string(),
            started_at: intent.started_at.clone(),
        });
    }
    Ok(())
}

fn validate_no_secrets(resource: &Resource) -> Result<(), Problem> {
    let address = &resource.address;
    for key in resource.attributes.keys() {
        if SECRET_ATTRIBUTE_KEYS.contains(&key.as_str()) {
            return Err(Problem::SecretAttribute {
                address: address.clone(),
                attribute: key.clone(),
            });
        }
    }

    let mut fields: Vec<(String, &str)> = vec![
        ("address".to_string(), address),
        ("kind".to_string(), &resource.kind),
        ("workspace".to_string(), &resource.workspace),
        ("remote_id".to_string(), &resource.remote_id),
    ];
    if let Some(intent) = &resource.intent {
        fields.push(("intent.operation".to_string(), &intent.operation));
        fields.push(("intent.marker".to_string(), &intent.marker));
    }
    for (key, value) in &resource.attributes {
        collect_strings(key.clone(), value, &mut fields);
    }

    match fields.into_iter().find(|(_, text)| contains_token(text)) {
        Some((field, _)) => Err(Problem::TokenShapedValue {
            address: address.clone(),
            field,
        }),
        None => Ok(()),
    }
}

/// Collects every string inside `value`, including object keys, labelled with its JSON path.
fn collect_strings<'a>(
    path: String,
    value: &'a serde_json::Value,
    out: &mut Vec<(String, &'a str)>,
) {
    match value {
        serde_json::Value::String(text) => out.push((path, text)),
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                collect_strings(format!("{path}[{index}]"), item, out);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                let item_path = format!("{path}.{key}");
                out.push((item_path.clone(), key));
                collect_strings(item_path, item, out);
            }
        }
        _ => {}
    }
}

/// Reports whether `text` contains `dapi` (in any case) followed by at least 32 hex digits.
pub(crate) fn contains_token(text: &str) -> bool {
    let bytes = text.as_bytes();
    let prefix = TOKEN_PREFIX.as_bytes();

    (0..bytes.len()).any(|start| {
        let rest = &bytes[start..];
        rest.len() >= prefix.len() + TOKEN_MIN_HEX_DIGITS
            && rest[..prefix.len()].eq_ignore_ascii_case(prefix)
            && rest[prefix.len()..]
                .iter()
                .take(TOKEN_MIN_HEX_DIGITS)
                .all(u8::is_ascii_hexdigit)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const TOKEN: &str = "dapi0123456789abcdef0123456789abcdef";

    fn resource(address: &str) -> Resource {
        Resource {
            address: address.to_string(),
            kind: "token".to_string(),
            workspace: "dev".to_string(),
            workspace_id: "123".to_string(),
            remote_id: "abc".to_string(),
            attributes: BTreeMap::new(),
            intent: None,
        }
    }

    fn state_with(resources: Vec<Resource>) -> State {
        State {
            resources,
            ..State::new()
        }
    }

    #[test]
    fn token_detection_cases() {
        assert!(contains_token(TOKEN));
        assert!(contains_token(&format!("prefix {TOKEN}-2 suffix")));
        assert!(contains_token(&TOKEN.to_uppercase()));
        assert!(!contains_token("dapi0123456789abcdef0123456789abcde"));
        assert!(!contains_token("dapi0123456789abcdef0123456789abcdeg"));
        assert!(!contains_token("mlops-reconciler:dev/token"));
        assert!(!contains_token(""));
    }

    #[test]
    fn valid_state_passes() {
        let mut pending = resource("b");
        pending.remote_id.clear();
        pending.intent = Some(Intent {
            operation: "create".to_string(),
            marker: "mlops-reconciler:x".to_string(),
            started_at: "2026-01-02T03:04:05Z".to_string(),
        });

        let state = state_with(vec![resource("a"), pending]);

        assert_eq!(state.validate(), Ok(()));
    }

    #[test]
    fn empty_remote_id_needs_intent() {
        let mut item = resource("a");
        item.remote_id.clear();

        let problem = state_with(vec![item]).validate().unwrap_err();

        assert!(matches!(
            problem,
            Problem::EmptyField {
                field: "remote_id",
                ..
            }
        ));
    }

    #[test]
    fn empty_kind_rejected() {
        let mut item = resource("a");
        item.kind.clear();

        let problem = state_with(vec![item]).validate().unwrap_err();

        assert!(matches!(problem, Problem::EmptyField { field: "kind", .. }));
    }

    #[test]
    fn nested_token_rejected_by_path() {
        let mut item = resource("a");
        item.attributes.insert(
            "comment".to_string(),
            serde_json::json!({"notes": ["fine", format!("copied {TOKEN}")]}),
        );

        let problem = state_with(vec![item]).validate().unwrap_err();

        assert_eq!(
            problem,
            Problem::TokenShapedValue {
                address: "a".to_string(),
                field: "comment.notes[1]".to_string(),
            }
        );
        assert!(!problem.to_string().contains(TOKEN));
        assert!(!problem.hint().contains(TOKEN));
    }

    #[test]
    fn token_in_remote_id_rejected() {
        let mut item = resource("a");
        item.remote_id = TOKEN.to_string();

        let problem = state_with(vec![item]).validate().unwrap_err();

        assert!(
            matches!(problem, Problem::TokenShapedValue { ref field, .. } if field == "remote_id")
        );
    }

    #[test]
    fn secret_keys_rejected() {
        for key in SECRET_ATTRIBUTE_KEYS {
            let mut item = resource("a");
            item.attributes
                .insert(key.to_string(), serde_json::json!("x"));

            let problem = state_with(vec![item]).validate().unwrap_err();

            assert!(
                matches!(problem, Problem::SecretAttribute { ref attribute, .. } if attribute == key),
                "{key}: {problem}"
            );
        }
    }

    #[test]
    fn nested_value_key_allowed() {
        let mut item = resource("a");
        item.attributes.insert(
            "entitlements".to_string(),
            serde_json::json!([{"value": "workspace-access"}]),
        );

        assert_eq!(state_with(vec![item]).validate(), Ok(()));
    }

    #[test]
    fn intent_time_must_parse() {
        let mut item = resource("a");
        item.intent = Some(Intent {
            operation: "create".to_string(),
            marker: "m".to_string(),
            started_at: "yesterday".to_string(),
        });

        let problem = state_with(vec![item]).validate().unwrap_err();

        assert!(matches!(problem, Problem::InvalidIntentTime { .. }));
    }

    #[test]
    fn lineage_must_be_hyphenated_uuid() {
        for lineage in ["not-a-uuid", "", "0123456789abcdef0123456789abcdef"] {
            let state = State {
                lineage: lineage.to_string(),
                ..State::new()
            };

            assert!(
                matches!(state.validate(), Err(Problem::InvalidLineage { .. })),
                "{lineage:?}"
            );
        }
    }
}
