//! An emulated set of workspaces with an `mlops.yaml` that reaches them, and measured runs of
//! the `mlops` binary against it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use jiff::Timestamp;
use mlops_emulator::{Emulator, FaultKind, FaultRule, RequestCounts, WorkspaceSpec};
use tempfile::TempDir;
use tokio::runtime::Runtime;

use crate::measure;

/// Environment variables of the parent that would change what `mlops` does.
const CLEARED_VARIABLES: [&str; 5] = ["MLOPS_NOW", "RUST_LOG", "NO_COLOR", "DATABRICKS_CONFIG_FILE", "MLOPS_RETRY_BUDGET_SECONDS"];

/// The workspaces and links of a configuration.
pub struct Topology {
    /// Name and workspace id of each workspace.
    pub workspaces: Vec<(String, String)>,
    /// Reader and registry of each link; empty for the default links.
    pub links: Vec<(String, String)>,
}

impl Topology {
    /// Returns dev, staging and prod with the default links (dev → staging, dev → prod,
    /// staging → prod).
    pub fn default_three() -> Topology {
        let workspaces = [("dev", "1000000001"), ("staging", "123456789"), ("prod", "987654321")];
        Topology {
            workspaces: workspaces.iter().map(|(name, id)| ((*name).to_owned(), (*id).to_owned())).collect(),
            links: Vec::new(),
        }
    }

    /// Returns `registries` registry workspaces and `readers` reader workspaces, where every reader
    /// reads every registry.
    pub fn fleet(registries: usize, readers: usize) -> Topology {
        let registry_names: Vec<String> = (1..=registries).map(|index| format!("registry-{index}")).collect();
        let reader_names: Vec<String> = (1..=readers).map(|index| format!("reader-{index}")).collect();
        let workspaces = registry_names
            .iter()
            .chain(&reader_names)
            .enumerate()
            .map(|(index, name)| (name.clone(), (2_000_000_000 + index).to_string()))
            .collect();
        let links = reader_names
            .iter()
            .flat_map(|reader| registry_names.iter().map(move |registry| (reader.clone(), registry.clone())))
            .collect();
        Topology { workspaces, links }
    }
}

/// Emulator settings of a world.
#[derive(Clone, Copy)]
pub struct Network {
    /// Delay of every request, which stands for one round trip.
    pub latency: Duration,
    /// SCIM requests in flight per workspace above which the emulator returns 429.
    pub scim_limit: usize,
}

/// A running emulator with a working folder that contains `mlops.yaml` and the state.
pub struct World {
    pub emulator: Emulator,
    dir: TempDir,
    tokens: Vec<(String, String)>,
}

/// One measured run of `mlops`.
pub struct Sample {
    pub wall: Duration,
    pub requests: u64,
    pub throttled: u64,
    /// Largest number of SCIM requests in flight in one workspace.
    pub peak_scim_in_flight: u64,
    /// Resources in the state file after the run.
    pub objects: usize,
    pub peak_rss_kib: Option<u64>,
    pub stdout: String,
}

impl World {
    /// Starts an emulator of `topology` on loopback ports and writes the configuration.
    pub fn start(runtime: &Runtime, topology: &Topology, network: Network) -> anyhow::Result<World> {
        let specs: Vec<WorkspaceSpec> = topology
            .workspaces
            .iter()
            .map(|(name, id)| WorkspaceSpec { name: name.clone(), workspace_id: id.clone() })
            .collect();
        let emulator = Emulator::try_new(&specs)?;
        emulator.set_scim_concurrency_limit(Some(network.scim_limit));

        let mut hosts = BTreeMap::new();
        let mut tokens = Vec::new();
        for spec in &specs {
            let latency = FaultRule { latency_ms: Some(network.latency.as_millis() as u64), ..FaultRule::new(FaultKind::Latency) };
            emulator.set_faults(&spec.name, vec![latency])?;
            let listening = runtime.block_on(emulator.bind(&spec.name, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))?;
            hosts.insert(spec.name.clone(), listening.base_url);
            tokens.push((token_variable(&spec.name), emulator.create_admin_token(&spec.name)?));
        }

        let dir = tempfile::Builder::new().prefix("mlops-bench-").tempdir()?;
        std::fs::write(dir.path().join("mlops.yaml"), config_text(topology, &hosts)).context("failed to write mlops.yaml")?;
        Ok(World { emulator, dir, tokens })
    }

    /// Runs `mlops` with `args` in the world's folder, with `MLOPS_NOW` set to `now` when given,
    /// and fails unless it exits with 0.
    pub fn run(&self, mlops: &Path, args: &[&str], now: Option<Timestamp>) -> anyhow::Result<Sample> {
        let mut command = Command::new(mlops);
        command.args(args).current_dir(self.dir.path());
        for variable in CLEARED_VARIABLES {
            command.env_remove(variable);
        }
        command.env("NO_COLOR", "1").envs(self.tokens.iter().map(|(name, value)| (name, value)));
        if let Some(now) = now {
            command.env("MLOPS_NOW", now.to_string());
        }

        self.emulator.reset_request_counts();
        let outcome = measure::run(command, self.dir.path())?;
        if !outcome.status.success() {
            bail!("`mlops {}` failed with {}:\n{}", args.join(" "), outcome.status, tail(&outcome.stderr, 30));
        }

        let counts = self.emulator.request_counts();
        let sum = |field: fn(&RequestCounts) -> u64| counts.values().map(field).sum::<u64>();
        Ok(Sample {
            wall: outcome.wall,
            requests: sum(|counts| counts.total),
            throttled: sum(|counts| counts.throttled),
            peak_scim_in_flight: counts.values().map(|counts| counts.peak_scim_in_flight).max().unwrap_or(0),
            objects: self.managed_objects()?,
            peak_rss_kib: outcome.peak_rss_kib,
            stdout: outcome.stdout,
        })
    }

    /// Counts the resources in the state file.
    fn managed_objects(&self) -> anyhow::Result<usize> {
        let path = self.state_path();
        let text = std::fs::read_to_string(&path).with_context(|| format!("failed to read the state file {}", path.display()))?;
        let state: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("invalid state file {}", path.display()))?;
        Ok(state["resources"].as_array().map_or(0, Vec::len))
    }

    fn state_path(&self) -> PathBuf {
        self.dir.path().join("state/mlops.state.json")
    }
}

/// Returns the name of the environment variable with a workspace's admin token.
fn token_variable(workspace: &str) -> String {
    format!("{}_TOKEN", workspace.to_uppercase().replace('-', "_"))
}

/// Writes an `mlops.yaml` that reaches each workspace at its emulator host with `token_env`.
fn config_text(topology: &Topology, hosts: &BTreeMap<String, String>) -> String {
    let registries: Vec<&str> = match topology.links.is_empty() {
        true => vec!["staging", "prod"],
        false => topology.links.iter().map(|(_, registry)| registry.as_str()).collect(),
    };

    let mut text = String::from("version: 1\nworkspaces:\n");
    for (name, id) in &topology.workspaces {
        let _ = writeln!(text, "  {name}:\n    host: {}\n    token_env: {}", hosts[name], token_variable(name));
        if registries.contains(&name.as_str()) {
            let _ = writeln!(text, "    workspace_id: \"{id}\"");
        }
    }
    text.push_str("additional_token_usage_groups: [users]\nstate: state/mlops.state.json\n");
    if !topology.links.is_empty() {
        text.push_str("links:\n");
        for (reader, registry) in &topology.links {
            let _ = writeln!(text, "  - {{ reader: {reader}, registry: {registry} }}");
        }
    }
    text
}

/// Returns the last `count` lines of `text`.
fn tail(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_links_every_reader_to_every_registry() {
        let fleet = Topology::fleet(2, 3);
        assert_eq!(fleet.workspaces.len(), 5);
        assert_eq!(fleet.links.len(), 6);
        assert!(fleet.links.contains(&("reader-3".to_owned(), "registry-2".to_owned())));
    }

    #[test]
    fn config_gives_registries_their_id() {
        let fleet = Topology::fleet(1, 1);
        let hosts = BTreeMap::from([
            ("registry-1".to_owned(), "http://127.0.0.1:1".to_owned()),
            ("reader-1".to_owned(), "http://127.0.0.1:2".to_owned()),
        ]);
        let text = config_text(&fleet, &hosts);
        assert!(text.contains("  registry-1:\n    host: http://127.0.0.1:1\n    token_env: REGISTRY_1_TOKEN\n    workspace_id: \"2000000000\"\n"), "{text}");
        assert!(text.contains("  reader-1:\n    host: http://127.0.0.1:2\n    token_env: READER_1_TOKEN\nadditional"), "{text}");
        assert!(text.contains("  - { reader: reader-1, registry: registry-1 }\n"), "{text}");
    }
}
