//! Semantic validation: raw structs to [`Config`], with defaults filled in and every problem
//! collected into one report.

mod links;
mod policy;
mod workspaces;

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use crate::Config;
use crate::error::{Position, Problem};
use crate::raw::{RawConfig, Text};
use crate::yaml::position_from;

/// The only `version` this crate reads.
const SUPPORTED_VERSION: i64 = 1;

/// Default state file, relative to the configuration file's folder.
const DEFAULT_STATE_PATH: &str = "state/mlops.state.json";

/// Default emulator data file, relative to the configuration file's folder.
const DEFAULT_EMULATOR_DATA_PATH: &str = "state/emulator.json";

/// Problems found so far.
#[derive(Debug, Default)]
pub(crate) struct Report {
    problems: Vec<Problem>,
}

impl Report {
    /// Records a problem with its fix.
    pub(crate) fn add(
        &mut self,
        position: Option<Position>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.problems.push(Problem {
            position,
            message: message.into(),
            hint: Some(hint.into()),
        });
    }

    /// Returns the problems ordered by position, those without a position first.
    fn into_sorted(mut self) -> Vec<Problem> {
        self.problems.sort_by_key(|problem| problem.position);
        self.problems
    }
}

/// Returns where a value is used in the file.
pub(crate) fn position<T>(spanned: &Spanned<T>) -> Option<Position> {
    position_from(spanned.referenced)
}

/// Validates the raw configuration of the file at `config_path`, which must be absolute.
pub(crate) fn validate(
    config_path: &Path,
    sha256: String,
    raw: RawConfig,
) -> Result<Config, Vec<Problem>> {
    let mut report = Report::default();
    let folder = config_path.parent().unwrap_or(Path::new("/"));

    check_version(&mut report, raw.version.as_ref());
    let declared = workspaces::declare(&mut report, raw.workspaces.as_ref());
    let tokens = policy::token_policy(&mut report, raw.tokens.as_ref());
    let token_usage = policy::token_usage(&mut report, raw.token_usage.as_ref());
    let names = policy::names(&mut report, raw.names.as_ref());
    let additional_token_usage_groups = policy::additional_groups(
        &mut report,
        raw.additional_token_usage_groups.as_ref(),
        &names,
    );
    let links = links::resolve(
        &mut report,
        raw.links.as_ref(),
        &declared,
        raw.workspaces.as_ref(),
    );
    workspaces::check_registry_ids(&mut report, &declared, &links);
    let state_path = resolve_path(
        &mut report,
        folder,
        raw.state.as_ref(),
        "state",
        DEFAULT_STATE_PATH,
    );
    let emulator = raw
        .emulator
        .as_ref()
        .map(|emulator| crate::EmulatorSettings {
            data: resolve_path(
                &mut report,
                folder,
                emulator.value.data.as_ref(),
                "emulator.data",
                DEFAULT_EMULATOR_DATA_PATH,
            ),
        });

    if !report.problems.is_empty() {
        return Err(report.into_sorted());
    }

    Ok(Config {
        path: config_path.to_owned(),
        sha256,
        workspaces: declared
            .into_iter()
            .filter_map(|workspace| workspace.resolved)
            .collect(),
        additional_token_usage_groups,
        token_usage,
        tokens,
        links,
        names,
        state_path,
        emulator,
    })
}

/// Requires `version: 1`.
fn check_version(report: &mut Report, version: Option<&Spanned<i64>>) {
    match version {
        None => report.add(
            None,
            "missing `version`",
            "add `version: 1` as the first line",
        ),
        Some(version) if version.value != SUPPORTED_VERSION => report.add(
            position(version),
            format!("unsupported version {}", version.value),
            format!("this mlops reads configuration version {SUPPORTED_VERSION}: set `version: {SUPPORTED_VERSION}`"),
        ),
        Some(_) => {}
    }
}

/// Resolves a path setting against the configuration file's folder, or returns the default.
fn resolve_path(
    report: &mut Report,
    folder: &Path,
    value: Option<&Text>,
    key: &str,
    default: &str,
) -> PathBuf {
    let Some(value) = value else {
        return folder.join(default);
    };

    if value.value.trim().is_empty() {
        report.add(
            position(value),
            format!("`{key}` is empty"),
            format!("write a file path, or remove `{key}` to use the default `{default}`"),
        );
    }
    folder.join(&value.value)
}
