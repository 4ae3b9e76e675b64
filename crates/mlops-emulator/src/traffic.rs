//! Request counters, the SCIM concurrency limit and one-at-a-time serving.
//!
//! Every request outside `/_emulator` is counted for its workspace. When a SCIM concurrency limit
//! is set, a SCIM request that would raise the number of SCIM requests in flight in its workspace
//! above the limit gets 429 `REQUEST_LIMIT_EXCEEDED` with `Retry-After: 1` and is not carried
//! out. A request is in flight from the moment this layer sees it until its response is built,
//! so the time spent in injected latency counts.
//!
//! A serialized emulator serves one request at a time across all workspaces, which is the timing
//! a client that sends one request at a time would see. Requests that wait for their turn are
//! not yet in flight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::EmulatorError;
use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::faults::CONTROL_PREFIX;
use crate::server::AppState;

/// Environment variable that sets the SCIM concurrency limit of every workspace.
const SCIM_LIMIT_VARIABLE: &str = "MLOPS_EMULATOR_SCIM_CONCURRENCY_LIMIT";

/// Path prefix of the workspace SCIM endpoints.
const SCIM_PREFIX: &str = "/api/2.0/preview/scim/";

/// Request counters of one workspace, as [`crate::Emulator::request_counts`] returns them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// Requests received outside `/_emulator`, throttled ones included.
    pub total: u64,
    /// SCIM requests received, throttled ones included.
    pub scim: u64,
    /// Requests answered with 429 by the SCIM concurrency limit.
    pub throttled: u64,
    /// Largest number of requests in flight at once.
    pub peak_in_flight: u64,
    /// Largest number of SCIM requests in flight at once, throttled ones included.
    pub peak_scim_in_flight: u64,
}

/// Counters of one workspace with its requests in flight.
#[derive(Default)]
struct WorkspaceTraffic {
    counts: RequestCounts,
    in_flight: u64,
    scim_in_flight: u64,
}

/// Traffic settings and counters shared by every workspace of an emulator.
pub(crate) struct Traffic {
    /// Maximum SCIM requests in flight per workspace; 0 means no limit.
    scim_limit: AtomicUsize,
    serialized: AtomicBool,
    /// Held for the whole of each request while the emulator is serialized.
    turn: tokio::sync::Mutex<()>,
    workspaces: Mutex<BTreeMap<String, WorkspaceTraffic>>,
}

impl Traffic {
    /// Creates the traffic state with the SCIM limit from `MLOPS_EMULATOR_SCIM_CONCURRENCY_LIMIT`.
    pub fn from_env() -> Result<Traffic, EmulatorError> {
        let scim_limit = match std::env::var(SCIM_LIMIT_VARIABLE) {
            Ok(value) => parse_limit(&value)?,
            Err(_) => 0,
        };
        Ok(Traffic {
            scim_limit: AtomicUsize::new(scim_limit),
            serialized: AtomicBool::new(false),
            turn: tokio::sync::Mutex::new(()),
            workspaces: Mutex::new(BTreeMap::new()),
        })
    }

    /// Sets the SCIM concurrency limit of every workspace; `None` removes it.
    pub fn set_scim_limit(&self, limit: Option<usize>) {
        self.scim_limit.store(limit.unwrap_or(0), Ordering::SeqCst);
    }

    /// Makes the emulator serve one request at a time, or lifts that.
    pub fn set_serialized(&self, serialized: bool) {
        self.serialized.store(serialized, Ordering::SeqCst);
    }

    /// Returns the counters of every workspace that received a request.
    pub fn counts(&self) -> BTreeMap<String, RequestCounts> {
        self.workspaces().iter().map(|(name, traffic)| (name.clone(), traffic.counts)).collect()
    }

    /// Returns the counters of one workspace.
    pub fn counts_of(&self, workspace: &str) -> RequestCounts {
        self.workspaces().get(workspace).map(|traffic| traffic.counts).unwrap_or_default()
    }

    /// Sets the counters of every workspace back to zero, or of one workspace when given.
    /// Requests in flight stay counted as in flight.
    pub fn reset(&self, workspace: Option<&str>) {
        for (name, traffic) in self.workspaces().iter_mut() {
            if workspace.is_none_or(|only| only == name) {
                traffic.counts = RequestCounts::default();
            }
        }
    }

    fn workspaces(&self) -> MutexGuard<'_, BTreeMap<String, WorkspaceTraffic>> {
        self.workspaces.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a request that arrives, and returns its flight, or `None` when the SCIM limit
    /// rejects it.
    fn enter<'a>(&'a self, workspace: &'a str, scim: bool) -> Option<Flight<'a>> {
        let limit = self.scim_limit.load(Ordering::SeqCst) as u64;
        let mut workspaces = self.workspaces();
        let traffic = workspaces.entry(workspace.to_owned()).or_default();
        let counts = &mut traffic.counts;
        counts.total += 1;
        traffic.in_flight += 1;
        counts.peak_in_flight = counts.peak_in_flight.max(traffic.in_flight);
        if scim {
            counts.scim += 1;
            traffic.scim_in_flight += 1;
            counts.peak_scim_in_flight = counts.peak_scim_in_flight.max(traffic.scim_in_flight);
        }

        let flight = Flight { traffic: self, workspace, scim };
        if scim && limit > 0 && traffic.scim_in_flight > limit {
            traffic.counts.throttled += 1;
            drop(workspaces);
            drop(flight);
            return None;
        }
        Some(flight)
    }
}

/// A request in flight; dropping it ends the flight.
struct Flight<'a> {
    traffic: &'a Traffic,
    workspace: &'a str,
    scim: bool,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut workspaces = self.traffic.workspaces();
        if let Some(traffic) = workspaces.get_mut(self.workspace) {
            traffic.in_flight = traffic.in_flight.saturating_sub(1);
            if self.scim {
                traffic.scim_in_flight = traffic.scim_in_flight.saturating_sub(1);
            }
        }
    }
}

/// Parses a SCIM concurrency limit: a whole number, where 0 means no limit.
fn parse_limit(value: &str) -> Result<usize, EmulatorError> {
    value.trim().parse::<usize>().map_err(|_| EmulatorError::InvalidEnvironment {
        variable: SCIM_LIMIT_VARIABLE,
        value: value.to_owned(),
        expected: "a whole number of requests such as 4, or 0 for no limit",
    })
}

/// Middleware that counts requests, applies the SCIM limit and serializes when asked to.
pub(crate) async fn account(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with(CONTROL_PREFIX) {
        return next.run(request).await;
    }

    let traffic = state.emulator.traffic();
    let _turn = match traffic.serialized.load(Ordering::SeqCst) {
        true => Some(traffic.turn.lock().await),
        false => None,
    };
    let scim = path.starts_with(SCIM_PREFIX);
    let Some(_flight) = traffic.enter(&state.workspace, scim) else {
        tracing::debug!(workspace = %state.workspace, path, "SCIM concurrency limit exceeded, answering 429");
        return throttled();
    };
    next.run(request).await
}

/// Builds the 429 that a throttled SCIM request gets.
fn throttled() -> Response {
    let error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "REQUEST_LIMIT_EXCEEDED",
        "Too many concurrent SCIM requests in this workspace. Please wait a moment and try again.",
    );
    let mut response = error.into_response();
    response.headers_mut().insert("retry-after", HeaderValue::from(1u64));
    response
}

/// Routes of `/_emulator/requests`: read (`GET`) or reset (`DELETE`) the counters of the workspace.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/_emulator/requests", get(get_counts).delete(reset_counts))
}

async fn get_counts(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<RequestCounts>> {
    require_admin(&state, &caller)?;
    Ok(Json(state.emulator.traffic().counts_of(&state.workspace)))
}

async fn reset_counts(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<RequestCounts>> {
    require_admin(&state, &caller)?;
    state.emulator.traffic().reset(Some(&state.workspace));
    Ok(Json(RequestCounts::default()))
}

fn require_admin(state: &AppState, caller: &Caller) -> ApiResult<()> {
    state.read(|ws, _| caller.require_admin(ws, "Only workspace admins can use the emulator control endpoints."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(limit: usize) -> Traffic {
        let traffic = Traffic {
            scim_limit: AtomicUsize::new(0),
            serialized: AtomicBool::new(false),
            turn: tokio::sync::Mutex::new(()),
            workspaces: Mutex::new(BTreeMap::new()),
        };
        traffic.set_scim_limit(Some(limit));
        traffic
    }

    #[test]
    fn scim_request_over_limit_is_throttled() {
        let traffic = traffic(2);
        let first = traffic.enter("dev", true);
        let second = traffic.enter("dev", true);
        let third = traffic.enter("dev", true);
        assert!(first.is_some());
        assert!(second.is_some());
        assert!(third.is_none());

        let counts = traffic.counts_of("dev");
        assert_eq!(counts.total, 3);
        assert_eq!(counts.scim, 3);
        assert_eq!(counts.throttled, 1);
        assert_eq!(counts.peak_scim_in_flight, 3);
    }

    #[test]
    fn ended_flight_frees_its_place() {
        let traffic = traffic(1);
        drop(traffic.enter("dev", true));
        assert!(traffic.enter("dev", true).is_some());
        assert_eq!(traffic.counts_of("dev").throttled, 0);
    }

    #[test]
    fn limit_is_per_workspace_and_scim_only() {
        let traffic = traffic(1);
        let _dev = traffic.enter("dev", true);
        let _staging = traffic.enter("staging", true);
        let _secrets = [traffic.enter("dev", false), traffic.enter("dev", false)];
        assert_eq!(traffic.counts_of("dev").throttled, 0);
        assert_eq!(traffic.counts_of("staging").throttled, 0);
        assert_eq!(traffic.counts_of("dev").peak_in_flight, 3);
        assert_eq!(traffic.counts_of("dev").peak_scim_in_flight, 1);
    }

    #[test]
    fn zero_limit_means_none() {
        let traffic = traffic(0);
        let flights: Vec<_> = (0..10).map(|_| traffic.enter("dev", true)).collect();
        assert!(flights.iter().all(Option::is_some));
    }

    #[test]
    fn reset_clears_one_workspace() {
        let traffic = traffic(0);
        drop(traffic.enter("dev", false));
        drop(traffic.enter("prod", false));
        traffic.reset(Some("dev"));
        assert_eq!(traffic.counts_of("dev").total, 0);
        assert_eq!(traffic.counts_of("prod").total, 1);
    }

    #[test]
    fn invalid_limit_names_the_variable() {
        let error = parse_limit("four").unwrap_err().to_string();
        assert!(error.contains(SCIM_LIMIT_VARIABLE), "{error}");
    }
}
