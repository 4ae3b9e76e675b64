//! `mlops validate`.

use std::path::Path;

use crate::session::load_config;

pub fn run(config_path: &Path) -> anyhow::Result<u8> {
    let config = load_config(config_path)?;
    let registries = config.registry_workspaces().len();
    let count = |number: usize, one: &str, many: &str| format!("{number} {}", if number == 1 { one } else { many });
    super::print_stdout(&format!(
        "The configuration is valid: {}, {}, {}.\n",
        count(config.workspaces.len(), "workspace", "workspaces"),
        count(registries, "registry", "registries"),
        count(config.links.len(), "link", "links")
    ))?;
    Ok(0)
}
