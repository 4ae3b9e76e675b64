//! `mlops emulator serve`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use mlops_emulator::{Emulator, WorkspaceSpec};
use serde_json::json;

use super::hinted;
use crate::cli::ServeArgs;
use crate::embedded::derived_workspace_id;

/// Workspaces served when no `--workspace` is given.
const DEFAULT_WORKSPACES: [&str; 3] = ["dev", "staging=123456789", "prod=987654321"];

pub async fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let specs = parse_workspaces(&args.workspaces)?;
    let emulator = match &args.data {
        Some(path) => Emulator::load_or_new(path, &specs)?,
        None => Emulator::try_new(&specs)?,
    };

    for (index, spec) in specs.iter().enumerate() {
        let port = match args.port_base {
            0 => 0,
            base => base.checked_add(u16::try_from(index)?).ok_or_else(|| {
                hinted(format!("port {base} + {index} is past 65535"), "choose a lower --port-base")
            })?,
        };
        let listening = emulator.bind(&spec.name, SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let token = emulator.create_admin_token(&spec.name)?;
        let (client_id, client_secret) = emulator.admin_client_credentials(&spec.name)?;
        let line = json!({
            "name": spec.name,
            "host": listening.base_url,
            "workspace_id": listening.workspace_id,
            "token": token,
            "client_id": client_id,
            "client_secret": client_secret,
        });
        super::print_stdout(&format!("{line}\n"))?;
    }

    wait_and_persist(&emulator, args.data.as_deref()).await
}

/// Serves until interrupted, writing the data file whenever the world changed.
async fn wait_and_persist(emulator: &Emulator, data: Option<&std::path::Path>) -> anyhow::Result<u8> {
    let mut saved = u64::MAX;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        if let Some(path) = data {
            let count = emulator.mutation_count();
            if count != saved {
                emulator.save(path)?;
                saved = count;
            }
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    if let Some(path) = data {
        emulator.save(path)?;
    }
    Ok(0)
}

fn parse_workspaces(arguments: &[String]) -> anyhow::Result<Vec<WorkspaceSpec>> {
    let arguments: Vec<String> = if arguments.is_empty() {
        DEFAULT_WORKSPACES.iter().map(|text| (*text).to_owned()).collect()
    } else {
        arguments.to_vec()
    };
    let mut specs: Vec<WorkspaceSpec> = Vec::new();
    for argument in arguments {
        let (name, id) = match argument.split_once('=') {
            Some((name, id)) => (name.to_owned(), id.to_owned()),
            None => (argument.clone(), derived_workspace_id(&argument)),
        };
        let valid_name = name.chars().next().is_some_and(|first| first.is_ascii_lowercase())
            && name.chars().all(|character| character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-' || character == '_');
        let valid_id = id.chars().all(|character| character.is_ascii_digit()) && id.parse::<i64>().is_ok_and(|number| number > 0);
        if !valid_name || !valid_id {
            return Err(hinted(
                format!("invalid --workspace `{argument}`"),
                "write NAME or NAME=ID, with a lowercase name and a positive numeric id that fits in 64 bits, e.g. --workspace staging=123456789",
            ));
        }
        if specs.iter().any(|spec| spec.name == name) {
            return Err(hinted(format!("workspace `{name}` is given twice"), "give each --workspace once"));
        }
        specs.push(WorkspaceSpec { name, workspace_id: id });
    }
    Ok(specs)
}
