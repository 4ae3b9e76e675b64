//! Serde structs that mirror `mlops.yaml` key for key.
//!
//! Every struct denies unknown keys, and every value that a semantic check may reject is wrapped
//! in [`Spanned`] so the check can report the line and column where the value is written.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// A string value with its position in the file.
pub(crate) type Text = Spanned<String>;

/// A list of strings, with the position of the list and of each item.
pub(crate) type TextList = Spanned<Vec<Text>>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub version: Option<Spanned<i64>>,
    pub workspaces: Option<Spanned<RawWorkspaces>>,
    pub additional_token_usage_groups: Option<TextList>,
    pub token_usage: Option<Spanned<RawTokenUsage>>,
    pub tokens: Option<Spanned<RawTokens>>,
    pub names: Option<RawNames>,
    pub links: Option<Spanned<Vec<Spanned<RawLink>>>>,
    pub state: Option<Text>,
    #[serde(default, deserialize_with = "deserialize_emulator")]
    pub emulator: Option<Spanned<RawEmulator>>,
}

/// The `workspaces` mapping, in declaration order.
#[derive(Debug)]
pub(crate) struct RawWorkspaces(pub Vec<(Text, RawWorkspace)>);

/// One entry of `workspaces`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkspace {
    pub host: Text,
    pub workspace_id: Option<Text>,
    pub profile: Option<Text>,
    pub token_env: Option<Text>,
    pub client_id_env: Option<Text>,
    pub client_secret_env: Option<Text>,
    pub service_principal_application_id: Option<Text>,
}

/// The `token_usage` mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTokenUsage {
    pub mode: Option<Spanned<RawTokenUsageMode>>,
    pub allow_revoke: Option<TextList>,
}

/// The values of `token_usage.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawTokenUsageMode {
    Additive,
    Authoritative,
}

/// The `tokens` mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTokens {
    pub lifetime_days: Option<Spanned<i64>>,
    pub rotate_before_days: Option<Spanned<i64>>,
}

/// The `names` mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNames {
    pub group: Option<Text>,
    pub service_principal: Option<Text>,
    pub service_principal_entitlements: Option<TextList>,
    pub scope_readers: Option<TextList>,
}

/// One item of `links`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLink {
    pub reader: Text,
    pub registry: Text,
    pub scope: Option<Text>,
    pub prefix: Option<Text>,
}

/// The `emulator` mapping.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmulator {
    pub data: Option<Text>,
}

/// Reads `emulator:` so that a key written with no value (YAML null) still turns the emulator on.
fn deserialize_emulator<'de, D>(deserializer: D) -> Result<Option<Spanned<RawEmulator>>, D::Error>
where
    D: Deserializer<'de>,
{
    let spanned = Spanned::<Option<RawEmulator>>::deserialize(deserializer)?;
    let emulator = spanned.value.unwrap_or_default();

    Ok(Some(Spanned::new(
        emulator,
        spanned.referenced,
        spanned.defined,
    )))
}

impl<'de> Deserialize<'de> for RawWorkspaces {
    fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
    where
        D: Deserializer<'de>,
    {
        deserializer.deserialize_map(WorkspacesVisitor)
    }
}

/// Collects the `workspaces` entries in the order the file declares them.
struct WorkspacesVisitor;

impl<'de> Visitor<'de> for WorkspacesVisitor {
    type Value = RawWorkspaces;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a mapping from workspace name to workspace settings")
    }

    fn visit_map<A>(self, mut map: A) -> Result<Self::Value, A::Error>
    where
        A: MapAccess<'de>,
    {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(name) = map.next_key::<Text>()? {
            let workspace = map.next_value::<RawWorkspace>()?;
            entries.push((name, workspace));
        }

        Ok(RawWorkspaces(entries))
    }
}
