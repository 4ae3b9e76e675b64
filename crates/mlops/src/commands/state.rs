//! `mlops state list`, `mlops state show` and `mlops force-unlock`.

use std::path::Path;

use mlops_state::StateStore;

use super::hinted;
use crate::session::load_config;

pub fn list(config_path: &Path) -> anyhow::Result<u8> {
    let config = load_config(config_path)?;
    let Some(state) = StateStore::new(&config.state_path).read()? else {
        eprintln!("No state file at {}: nothing is managed yet.", config.state_path.display());
        return Ok(0);
    };
    let text: String = state.resources.iter().map(|resource| format!("{}\n", resource.address)).collect();
    super::print_stdout(&text)?;
    Ok(0)
}

pub fn show(config_path: &Path, address: &str) -> anyhow::Result<u8> {
    let config = load_config(config_path)?;
    let state = StateStore::new(&config.state_path).read()?.unwrap_or_else(mlops_state::State::new);
    let Some(resource) = state.get(address) else {
        return Err(hinted(
            format!("no object `{address}` in the state `{}`", config.state_path.display()),
            "list the addresses with `mlops state list`",
        ));
    };
    let mut text = serde_json::to_string_pretty(resource)?;
    text.push('\n');
    super::print_stdout(&text)?;
    Ok(0)
}

pub fn remove(config_path: &Path, addresses: &[String]) -> anyhow::Result<u8> {
    let config = load_config(config_path)?;
    let store = StateStore::new(&config.state_path);
    let _lock = store.lock("state rm", std::time::Duration::from_secs(0))?;
    let Some(mut state) = store.read()? else {
        return Err(hinted(format!("no state file at `{}`", config.state_path.display()), "nothing is managed yet"));
    };
    for address in addresses {
        if state.get(address).is_none() {
            return Err(hinted(
                format!("no object `{address}` in the state `{}`; nothing was removed", config.state_path.display()),
                "list the addresses with `mlops state list`",
            ));
        }
    }
    for address in addresses {
        state.remove(address);
    }
    store.write(&mut state)?;
    eprintln!("Removed {} object(s) from the state. The workspaces are unchanged.", addresses.len());
    Ok(0)
}

pub fn force_unlock(config_path: &Path, lock_id: &str) -> anyhow::Result<u8> {
    let config = load_config(config_path)?;
    mlops_state::force_unlock(&config.state_path, lock_id)?;
    eprintln!("Removed lock {lock_id} from {}.", config.state_path.display());
    Ok(0)
}
