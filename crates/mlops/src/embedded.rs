//! The embedded emulator: serves every configured workspace in process from one data file.
//!
//! Requests still go through the real HTTP client, to loopback ports, while the configured hosts
//! stay the workspaces' identities (they are what the host secrets hold). The emulator supplies
//! the admin credentials, so no credential of the configuration is read.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use mlops_config::Config;
use mlops_databricks::Credentials;
use mlops_emulator::{Emulator, WorkspaceSpec};
use mlops_engine::Endpoint;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// A running embedded emulator.
pub struct Embedded {
    emulator: Emulator,
    data: PathBuf,
}

impl Embedded {
    /// Loads the world from the data file (or creates it) and serves each workspace on a free
    /// loopback port.
    pub async fn start(config: &Config, data: PathBuf) -> anyhow::Result<(Embedded, BTreeMap<String, Endpoint>)> {
        let specs: Vec<WorkspaceSpec> = config
            .workspaces
            .iter()
            .map(|workspace| WorkspaceSpec {
                name: workspace.name.clone(),
                workspace_id: workspace.workspace_id.clone().unwrap_or_else(|| derived_workspace_id(&workspace.name)),
            })
            .collect();
        let emulator = Emulator::load_or_new(&data, &specs)
            .with_context(|| format!("failed to load the emulator data file `{}`", data.display()))?;

        let mut endpoints = BTreeMap::new();
        for spec in &specs {
            let listening = emulator.bind(&spec.name, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
            let token = emulator.admin_access_token(&spec.name)?;
            endpoints.insert(
                spec.name.clone(),
                Endpoint { base_url: listening.base_url, credentials: Credentials::Bearer(SecretString::from(token)) },
            );
        }
        spawn_autosave(emulator.clone(), data.clone());
        Ok((Embedded { emulator, data }, endpoints))
    }

    /// Writes the emulated world back to its data file.
    pub fn save(&self) -> anyhow::Result<()> {
        self.emulator
            .save(&self.data)
            .with_context(|| format!("failed to save the emulator data file `{}`", self.data.display()))
    }
}

/// Writes the world to its data file shortly after each change, so that a killed run loses at
/// most the last few changes of the emulated workspaces.
fn spawn_autosave(emulator: Emulator, data: PathBuf) {
    tokio::spawn(async move {
        let mut saved = emulator.mutation_count();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let count = emulator.mutation_count();
            if count != saved {
                if let Err(error) = emulator.save(&data) {
                    tracing::warn!("failed to save the emulator data file `{}`: {error}", data.display());
                }
                saved = count;
            }
        }
    });
}

/// Returns a stable numeric id for a workspace that has none configured.
pub fn derived_workspace_id(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let number = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % 9_000_000_000;
    (1_000_000_000 + number).to_string()
}
