//! `mlops validate`.

use std::path::Path;

use crate::session::load_config;

pub fn run(config_path: &Path) -> anyhow::Result<u8> {
    let config = load_config(config_path)?;
    let registries = config.registry_workspaces().len();
    super::print_stdout(&format!(
        "The configuration is valid: {} workspaces, {} registries, {} links.\n",
        config.workspaces.len(),
        registries,
        config.links.len()
    ))?;
    Ok(0)
}
