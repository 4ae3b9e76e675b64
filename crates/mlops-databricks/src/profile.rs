//! Reading a named profile from the Databricks CLI configuration file.
//!
//! The file is `$DATABRICKS_CONFIG_FILE` when set, else `~/.databrickscfg`. It is INI:
//! one `[name]` section per profile, values optionally quoted, and `#` or `;` starting a
//! comment at the start of a line or after whitespace. A `[__settings__]` section contains
//! CLI settings and is not a profile. Only the profile named by the caller is read, and there
//! is no fallback to `[DEFAULT]`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ini::{Ini, ParseOption};
use secrecy::SecretString;

/// Environment variable that overrides the configuration file path.
pub const CONFIG_FILE_ENV: &str = "DATABRICKS_CONFIG_FILE";

/// File name of the configuration file in the home directory.
const DEFAULT_FILE_NAME: &str = ".databrickscfg";

/// Section that contains CLI settings, not a profile.
const SETTINGS_SECTION: &str = "__settings__";

/// Connection settings from one profile.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Workspace URL (`host`).
    pub host: Option<String>,
    /// Personal access token (`token`).
    pub token: Option<SecretString>,
    /// OAuth client id (`client_id`).
    pub client_id: Option<String>,
    /// OAuth client secret (`client_secret`).
    pub client_secret: Option<SecretString>,
}

/// Failure to load a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Neither `DATABRICKS_CONFIG_FILE` nor a home directory is available.
    #[error(
        "cannot locate ~/.databrickscfg because the home directory is unknown: set {CONFIG_FILE_ENV} to the configuration file"
    )]
    NoHomeDirectory,

    /// The configuration file does not exist.
    #[error(
        "Databricks configuration file `{}` not found: create it with a `[{profile}]` section, \
         or set {CONFIG_FILE_ENV} to the file that has one",
        path.display()
    )]
    MissingFile {
        /// Path that was tried.
        path: PathBuf,
        /// Profile that was requested.
        profile: String,
    },

    /// The configuration file could not be read.
    #[error("failed to read Databricks configuration file `{}`", path.display())]
    Read {
        /// Path of the file.
        path: PathBuf,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The configuration file is not valid INI.
    #[error("invalid Databricks configuration file `{}`: {message}", path.display())]
    Parse {
        /// Path of the file.
        path: PathBuf,
        /// Parser message with line and column.
        message: String,
    },

    /// The file has no section with the requested name.
    #[error(
        "profile `{profile}` not found in `{}`, which has {}: add a `[{profile}]` section or use one of those",
        path.display(),
        describe_profiles(available)
    )]
    MissingProfile {
        /// Path of the file.
        path: PathBuf,
        /// Profile that was requested.
        profile: String,
        /// Profiles the file does have, in file order.
        available: Vec<String>,
    },
}

/// Loads profile `name` from `$DATABRICKS_CONFIG_FILE` or `~/.databrickscfg`.
pub fn load_profile(name: &str) -> Result<Profile, ProfileError> {
    let path = config_file_path(std::env::var_os(CONFIG_FILE_ENV), std::env::home_dir())
        .ok_or(ProfileError::NoHomeDirectory)?;
    load_profile_from(&path, name)
}

/// Returns the configuration file path: the override when set and non-empty, else
/// `.databrickscfg` in `home`.
pub fn config_file_path(override_path: Option<OsString>, home: Option<PathBuf>) -> Option<PathBuf> {
    match override_path.filter(|path| !path.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None => home.map(|home| home.join(DEFAULT_FILE_NAME)),
    }
}

/// Loads profile `name` from the configuration file at `path`.
///
/// When a section appears more than once, later keys override earlier ones.
pub fn load_profile_from(path: &Path, name: &str) -> Result<Profile, ProfileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ProfileError::MissingFile {
                path: path.to_owned(),
                profile: name.to_owned(),
            });
        }
        Err(source) => {
            return Err(ProfileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };

    let options = ParseOption {
        enabled_quote: true,
        // Backslashes stay literal, as the Databricks CLI reads them.
        enabled_escape: false,
        ..ParseOption::default()
    };
    let ini = Ini::load_from_str_opt(&text, options).map_err(|error| ProfileError::Parse {
        path: path.to_owned(),
        message: format!("line {} column {}: {}", error.line, error.col, error.msg),
    })?;

    let sections: Vec<_> = ini.section_all(Some(name)).collect();
    if name == SETTINGS_SECTION || sections.is_empty() {
        return Err(ProfileError::MissingProfile {
            path: path.to_owned(),
            profile: name.to_owned(),
            available: profile_names(&ini),
        });
    }

    let value = |key: &str| {
        sections
            .iter()
            .rev()
            .find_map(|section| section.get(key))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };

    Ok(Profile {
        host: value("host"),
        token: value("token").map(SecretString::from),
        client_id: value("client_id"),
        client_secret: value("client_secret").map(SecretString::from),
    })
}

/// Names of the profiles in file order, without duplicates or `[__settings__]`.
fn profile_names(ini: &Ini) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in ini.sections().flatten() {
        if name != SETTINGS_SECTION && !names.iter().any(|known| known == name) {
            names.push(name.to_owned());
        }
    }
    names
}

fn describe_profiles(names: &[String]) -> String {
    if names.is_empty() {
        return "no profiles".to_owned();
    }

    let mut text = String::from("profiles ");
    for (index, name) in names.iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        let _ = write!(text, "`{name}`");
    }
    text
}
