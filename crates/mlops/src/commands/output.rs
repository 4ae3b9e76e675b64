//! `mlops output`: the Terraform module's outputs, plus a registry URI per link.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::OutputFormat;
use crate::session::load_config;

pub fn run(config_path: &Path, format: OutputFormat) -> anyhow::Result<u8> {
    let config = load_config(config_path)?;
    let outputs = outputs(&config);
    let text = match format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&outputs)?;
            text.push('\n');
            text
        }
        OutputFormat::Text => outputs.iter().map(|(name, value)| format!("{name} = \"{value}\"\n")).collect(),
    };
    super::print_stdout(&text)?;
    Ok(0)
}

/// Returns every output by name.
pub fn outputs(config: &mlops_config::Config) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    for link in &config.links {
        outputs.insert(format!("{}_secret_scope_name_for_{}", link.reader, link.registry), link.scope.clone());
        outputs.insert(format!("{}_secret_scope_prefix_for_{}", link.reader, link.registry), link.prefix.clone());
        outputs.insert(format!("{}_registry_uri_for_{}", link.reader, link.registry), format!("databricks://{}:{}", link.scope, link.prefix));
    }
    outputs.insert("service_principal_group_name".to_owned(), config.names.group.clone());
    outputs
}
