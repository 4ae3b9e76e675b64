//! A local emulator of the Databricks workspace REST API that `mlops` uses.
//!
//! An [`Emulator`] contains a world of workspaces. Each workspace is served by its own axum
//! router, usually on its own loopback listener, so the listener decides the workspace.
//!
//! The emulator covers these endpoints:
//! - SCIM groups, service principals, users and `Me`;
//! - the host metadata at `/.well-known/databricks-config` that newer SDKs read first;
//! - token management and personal tokens;
//! - the permissions of tokens and of the registry root;
//! - secret scopes, secrets and ACLs;
//! - the model registry reads of a remote reader;
//! - OAuth client-credentials tokens.
//!
//! It keeps these quirks of the real service:
//! - error bodies and codes in the Databricks, SCIM and OAuth forms;
//! - SCIM paging that ends on an empty page;
//! - token permissions that do not exist before the first token;
//! - tokens revoked at once when their owner loses `CAN_USE`;
//! - times in epoch milliseconds, with `-1` for no expiry;
//! - `X-Databricks-Org-Id` on every response.
//!
//! Emulator-only endpoints live under `/_emulator` and need an admin token:
//! - `GET|POST /_emulator/clock` reads or sets the clock (`{"now": "<RFC 3339>" | null}` or
//!   `{"advance_seconds": N}`);
//! - `GET|POST|DELETE /_emulator/faults` reads, replaces or clears the fault rules (a JSON list
//!   of [`FaultRule`]);
//! - `POST /_emulator/service-principals/{id}/secret` creates OAuth client credentials for a
//!   service principal;
//! - `POST /_emulator/users/{id}/access-token` issues a one-hour OAuth access token for a user,
//!   as an interactive login would;
//! - `GET|DELETE /_emulator/requests` reads or resets the request counters of the workspace
//!   (see [`RequestCounts`]).
//!
//! Environment: `MLOPS_NOW` (RFC 3339) freezes the clock when the emulator is created,
//! `MLOPS_EMULATOR_LATENCY_MS` delays every request by that many milliseconds, and
//! `MLOPS_EMULATOR_SCIM_CONCURRENCY_LIMIT` returns 429 to a SCIM request while that many SCIM
//! requests of its workspace are already in flight (0, the default, sets no limit).

mod access;
mod api_error;
mod auth;
mod clock;
mod control;
mod credentials;
mod error;
mod faults;
mod model;
mod oauth;
mod permissions;
mod registry;
mod scim;
mod secrets;
mod seed;
mod server;
mod store;
mod tokens;
mod traffic;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;

pub use error::EmulatorError;
pub use faults::{FaultKind, FaultRule};
pub use server::Listening;
pub use traffic::RequestCounts;

use clock::Clock;
use faults::FaultSet;
use model::{DATA_VERSION, PrincipalId, Workspace, World};
use seed::{FIRST_ID, IdAllocator, seed_workspace};

/// Environment variable that adds a delay in milliseconds to every request.
const LATENCY_VARIABLE: &str = "MLOPS_EMULATOR_LATENCY_MS";

/// Lifetime of an OAuth access token, in seconds.
pub(crate) const ACCESS_TOKEN_LIFETIME_SECONDS: i64 = 3600;

/// The name and numeric id of one emulated workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceSpec {
    pub name: String,
    pub workspace_id: String,
}

/// A world of emulated workspaces, shared by every router and listener cloned from it.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

/// State shared by every clone of an [`Emulator`].
struct Shared {
    world: Mutex<World>,
    clock: Clock,
    /// Fault rules by workspace name; they are not persisted.
    faults: Mutex<BTreeMap<String, FaultSet>>,
    mutations: AtomicU64,
    base_latency: Option<Duration>,
    traffic: traffic::Traffic,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.world().workspaces.keys().cloned().collect();
        formatter
            .debug_struct("Emulator")
            .field("workspaces", &names)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Creates a fresh world with these workspaces, each seeded with its admin, groups and models.
    ///
    /// # Panics
    ///
    /// Panics when a spec is invalid (duplicate name or id, non-numeric id) or when
    /// `MLOPS_NOW` or `MLOPS_EMULATOR_LATENCY_MS` cannot be parsed; [`Emulator::try_new`]
    /// returns these as errors.
    pub fn new(specs: &[WorkspaceSpec]) -> Emulator {
        match Self::try_new(specs) {
            Ok(emulator) => emulator,
            Err(error) => panic!("failed to create emulator: {error}"),
        }
    }

    /// Creates a fresh world with these workspaces, or returns why the specs or the environment
    /// are invalid.
    pub fn try_new(specs: &[WorkspaceSpec]) -> Result<Emulator, EmulatorError> {
        let world = World {
            version: DATA_VERSION,
            next_id: FIRST_ID,
            workspaces: BTreeMap::new(),
        };
        Self::from_world(world, specs, None)
    }

    /// Loads a world from its data file, or creates one from `specs` when the file does not exist.
    ///
    /// Workspaces of `specs` that are missing from the file are added. A workspace whose id in the
    /// file differs from its spec is an error.
    pub fn load_or_new(path: &Path, specs: &[WorkspaceSpec]) -> Result<Emulator, EmulatorError> {
        match store::read_world(path)? {
            Some(world) => Self::from_world(world, specs, Some(path)),
            None => Self::try_new(specs),
        }
    }

    /// Writes the world atomically (tempfile in the same folder, fsync, rename), mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), EmulatorError> {
        let bytes = store::encode_world(&self.world())?;
        store::write_atomic(path, &bytes)
    }

    /// Issues an OAuth-style access token for the workspace admin, valid for 1 hour of emulator time.
    ///
    /// It is not a personal access token, so it creates no token and does not bring the token
    /// permissions object into existence.
    pub fn admin_access_token(&self, workspace: &str) -> Result<String, EmulatorError> {
        let now_ms = self.now_ms();
        self.with_workspace(workspace, |ws, _| {
            let owner = PrincipalId::User(ws.admin_user_id);
            oauth::issue_access_token(ws, owner, now_ms)
        })
    }

    /// Mints a personal access token (`dapi` + 32 hex) for the workspace admin, as `/token/create`
    /// would (so the token-permissions object then exists).
    pub fn create_admin_token(&self, workspace: &str) -> Result<String, EmulatorError> {
        let now_ms = self.now_ms();
        self.with_workspace(workspace, |ws, _| {
            let admin = PrincipalId::User(ws.admin_user_id);
            let request = tokens::NewToken {
                owner: admin,
                created_by: admin,
                lifetime_seconds: None,
                comment: String::new(),
            };
            tokens::mint_token(ws, request, now_ms).0
        })
    }

    /// Returns the admin's OAuth client id and secret for `/oidc/v1/token`.
    pub fn admin_client_credentials(
        &self,
        workspace: &str,
    ) -> Result<(String, String), EmulatorError> {
        self.with_workspace(workspace, |ws, _| {
            (
                ws.admin_client_id.clone(),
                ws.admin_client_secret.expose().to_owned(),
            )
        })
    }

    /// Builds the axum router that serves one workspace.
    pub fn router(&self, workspace: &str) -> Result<axum::Router, EmulatorError> {
        let workspace_id = self.with_workspace(workspace, |ws, _| ws.workspace_id.clone())?;
        Ok(server::build_router(self.clone(), workspace, &workspace_id))
    }

    /// Binds `addr` (use port 0 for any), spawns the server on the current tokio runtime and
    /// returns where it listens.
    pub async fn bind(
        &self,
        workspace: &str,
        addr: SocketAddr,
    ) -> Result<Listening, EmulatorError> {
        let workspace_id = self.with_workspace(workspace, |ws, _| ws.workspace_id.clone())?;
        server::bind(self.clone(), workspace, &workspace_id, addr).await
    }

    /// Number of mutating requests carried out so far (all workspaces).
    pub fn mutation_count(&self) -> u64 {
        self.shared.mutations.load(Ordering::SeqCst)
    }

    /// Sets the maximum number of SCIM requests in flight per workspace; a SCIM request beyond it
    /// gets 429 `REQUEST_LIMIT_EXCEEDED`. `None` removes the limit.
    pub fn set_scim_concurrency_limit(&self, limit: Option<usize>) {
        self.shared.traffic.set_scim_limit(limit);
    }

    /// Serves one request at a time across all workspaces while `serialized` is true, as a client
    /// that sends one request at a time would see the service.
    pub fn set_serialized(&self, serialized: bool) {
        self.shared.traffic.set_serialized(serialized);
    }

    /// Returns the request counters of every workspace that received a request, by name.
    pub fn request_counts(&self) -> BTreeMap<String, RequestCounts> {
        self.shared.traffic.counts()
    }

    /// Sets the request counters of every workspace back to zero.
    pub fn reset_request_counts(&self) {
        self.shared.traffic.reset(None);
    }

    /// Returns the current emulator time.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Freezes the clock at `now`, or lets it follow system time again when `now` is `None`.
    pub fn set_now(&self, now: Option<Timestamp>) {
        self.shared.clock.set(now);
    }

    /// Replaces the fault rules of a workspace, as `POST /_emulator/faults` does.
    pub fn set_faults(&self, workspace: &str, rules: Vec<FaultRule>) -> Result<(), EmulatorError> {
        self.with_workspace(workspace, |_, _| ())?;
        for (index, rule) in rules.iter().enumerate() {
            rule.validate()
                .map_err(|message| EmulatorError::InvalidFaultRule { index, message })?;
        }
        self.faults()
            .insert(workspace.to_owned(), FaultSet::new(rules));
        Ok(())
    }

    /// Removes the fault rules of a workspace, as `DELETE /_emulator/faults` does.
    pub fn clear_faults(&self, workspace: &str) -> Result<(), EmulatorError> {
        self.with_workspace(workspace, |_, _| ())?;
        self.faults().remove(workspace);
        Ok(())
    }

    /// Returns the names and ids of the workspaces, ordered by name.
    pub fn workspaces(&self) -> Vec<WorkspaceSpec> {
        self.world()
            .workspaces
            .values()
            .map(|ws| WorkspaceSpec {
                name: ws.name.clone(),
                workspace_id: ws.workspace_id.clone(),
            })
            .collect()
    }

    /// Adds the missing workspaces of `specs` to `world` and wraps it in an emulator.
    fn from_world(
        mut world: World,
        specs: &[WorkspaceSpec],
        path: Option<&Path>,
    ) -> Result<Emulator, EmulatorError> {
        let clock = Clock::from_env()?;
        let base_latency = latency_from_env()?;
        let traffic = traffic::Traffic::from_env()?;
        add_workspaces(&mut world, specs, path, clock.now_ms())?;

        let shared = Shared {
            world: Mutex::new(world),
            clock,
            faults: Mutex::new(BTreeMap::new()),
            mutations: AtomicU64::new(0),
            base_latency,
            traffic,
        };
        Ok(Emulator {
            shared: Arc::new(shared),
        })
    }

    /// Locks the world.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.shared
            .world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Locks the fault rules of every workspace.
    pub(crate) fn faults(&self) -> MutexGuard<'_, BTreeMap<String, FaultSet>> {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns the request counters and traffic settings.
    pub(crate) fn traffic(&self) -> &traffic::Traffic {
        &self.shared.traffic
    }

    /// Returns the emulator clock.
    pub(crate) fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Returns the current emulator time in epoch milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    /// Returns the latency that `MLOPS_EMULATOR_LATENCY_MS` adds to every request.
    pub(crate) fn base_latency(&self) -> Option<Duration> {
        self.shared.base_latency
    }

    /// Counts one carried-out mutating request.
    pub(crate) fn record_mutation(&self) {
        self.shared.mutations.fetch_add(1, Ordering::SeqCst);
    }

    /// Runs `action` on a workspace and the world's id allocator, then revokes the tokens that
    /// lost their permission.
    fn with_workspace<T>(
        &self,
        name: &str,
        action: impl FnOnce(&mut Workspace, &mut IdAllocator<'_>) -> T,
    ) -> Result<T, EmulatorError> {
        let mut guard = self.world();
        let World {
            next_id,
            workspaces,
            ..
        } = &mut *guard;
        let known = known_workspaces(workspaces);
        let ws = workspaces
            .get_mut(name)
            .ok_or_else(|| EmulatorError::UnknownWorkspace {
                name: name.to_owned(),
                known,
            })?;

        let result = action(ws, &mut IdAllocator::new(next_id));
        ws.revoke_unentitled_tokens();
        Ok(result)
    }
}

/// Describes the workspace names for an error message.
fn known_workspaces(workspaces: &BTreeMap<String, Workspace>) -> String {
    if workspaces.is_empty() {
        return "no workspaces".to_owned();
    }
    let names: Vec<&str> = workspaces.keys().map(String::as_str).collect();
    format!("workspaces {}", names.join(", "))
}

/// Validates `specs` against `world` and seeds the workspaces that are missing.
fn add_workspaces(
    world: &mut World,
    specs: &[WorkspaceSpec],
    path: Option<&Path>,
    now_ms: i64,
) -> Result<(), EmulatorError> {
    for spec in specs {
        validate_spec(world, spec, path)?;
        if world.workspaces.contains_key(&spec.name) {
            continue;
        }
        let mut ids = IdAllocator::new(&mut world.next_id);
        let workspace = seed_workspace(&spec.name, &spec.workspace_id, &mut ids, now_ms);
        world.workspaces.insert(spec.name.clone(), workspace);
    }
    Ok(())
}

/// Checks that a spec has a numeric id that matches its stored workspace and no other.
fn validate_spec(
    world: &World,
    spec: &WorkspaceSpec,
    path: Option<&Path>,
) -> Result<(), EmulatorError> {
    let numeric = !spec.workspace_id.is_empty()
        && spec.workspace_id.bytes().all(|byte| byte.is_ascii_digit())
        && spec.workspace_id.parse::<i64>().is_ok();
    if !numeric {
        return Err(EmulatorError::InvalidWorkspaceId {
            name: spec.name.clone(),
            id: spec.workspace_id.clone(),
        });
    }

    if let Some(stored) = world.workspaces.get(&spec.name) {
        if stored.workspace_id == spec.workspace_id {
            return Ok(());
        }
        let Some(path) = path else {
            return Err(EmulatorError::DuplicateWorkspace {
                what: "name",
                value: spec.name.clone(),
            });
        };
        return Err(EmulatorError::WorkspaceIdMismatch {
            name: spec.name.clone(),
            path: path.to_path_buf(),
            stored: stored.workspace_id.clone(),
            requested: spec.workspace_id.clone(),
        });
    }

    if world
        .workspaces
        .values()
        .any(|ws| ws.workspace_id == spec.workspace_id)
    {
        return Err(EmulatorError::DuplicateWorkspace {
            what: "id",
            value: spec.workspace_id.clone(),
        });
    }
    Ok(())
}

/// Reads `MLOPS_EMULATOR_LATENCY_MS`.
fn latency_from_env() -> Result<Option<Duration>, EmulatorError> {
    let Ok(value) = std::env::var(LATENCY_VARIABLE) else {
        return Ok(None);
    };
    let millis = value
        .trim()
        .parse::<u64>()
        .map_err(|_| EmulatorError::InvalidEnvironment {
            variable: LATENCY_VARIABLE,
            value: value.clone(),
            expected: "a whole number of milliseconds such as 50",
        })?;
    Ok(Some(Duration::from_millis(millis)))
}
