//! Fault injection: latency, throttling and unavailability errors, dropped connections, errors
//! or hangs after a request was carried out, and lists that lag behind creates.
//!
//! Rules belong to one workspace and are checked in order for every request outside
//! `/_emulator`. Every matching `latency` rule adds its delay. The first matching rule of any
//! other kind decides the outcome, and later ones are not counted. `*_after_mutation` rules only
//! look at requests that turned out to be mutations (see [`is_mutation`]), after carrying them out.
//! An `eventual_consistency` rule acts on the responses of matching reads only.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::server::{AppState, ConnectionHandle};

/// Path prefix of the emulator control endpoints, which faults never touch.
pub(crate) const CONTROL_PREFIX: &str = "/_emulator";

/// The effect of a fault rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Delays the request by `latency_ms`, then serves it normally.
    Latency,
    /// Responds 429 `REQUEST_LIMIT_EXCEEDED` with `Retry-After: retry_after` (default 1 s), without carrying the request out.
    Status429,
    /// Responds 500 `REQUEST_LIMIT_EXCEEDED`, the way SCIM reports throttling, without carrying the request out.
    Status500Limit,
    /// Responds 503 `TEMPORARILY_UNAVAILABLE` without carrying the request out.
    Status503,
    /// Closes the connection without a response, without carrying the request out.
    Drop,
    /// Carries a mutation out, then responds with `status` (default 500) instead of the real response.
    ErrorAfterMutation,
    /// Carries a mutation out, then never responds.
    HangAfterMutation,
    /// Carries a mutation out, then closes the connection without a response.
    DropAfterMutation,
    /// Leaves each object that a `POST` created while the rule was set out of the lists that
    /// matching reads return for `window_ms` (default 1000) of real time, as a service whose
    /// lists are eventually consistent does. A read of the object by its id still finds it.
    EventualConsistency,
}

impl FaultKind {
    /// Returns whether the rule acts after a mutation was carried out.
    fn acts_after_mutation(self) -> bool {
        matches!(
            self,
            Self::ErrorAfterMutation | Self::HangAfterMutation | Self::DropAfterMutation
        )
    }
}

/// One fault rule, as `POST /_emulator/faults` accepts it in a JSON list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// HTTP method to match, any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path prefix to match, such as `/api/2.0/preview/scim`; any path when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    pub kind: FaultKind,
    /// Maximum number of times the rule fires; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Fires on every Nth matching request only (1, the default, is every one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// The rule is armed only once this many mutations of the workspace were carried out since
    /// the rules were set, so `{"kind":"hang_after_mutation","after_mutations":2,"times":1}`
    /// hangs the third mutation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_mutations: Option<u64>,
    /// Delay of a `latency` rule, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// `Retry-After` value in seconds for `status429` (default 1), and for `status503` or
    /// `error_after_mutation` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// HTTP status of `error_after_mutation`, 500 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long an `eventual_consistency` rule leaves a new object out of lists, in milliseconds
    /// of real time (the emulator clock may be frozen); 1000 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
}

impl FaultRule {
    /// Creates a rule of `kind` that matches every request, with no limits.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            method: None,
            path_prefix: None,
            kind,
            times: None,
            every: None,
            after_mutations: None,
            latency_ms: None,
            retry_after: None,
            status: None,
            window_ms: None,
        }
    }

    /// Checks the fields that the kind needs and the ranges of the numbers.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.kind == FaultKind::Latency && self.latency_ms.is_none() {
            return Err("a latency rule needs latency_ms".to_owned());
        }
        if self.every == Some(0) {
            return Err("every must be at least 1".to_owned());
        }
        if let Some(method) = &self.method
            && Method::from_bytes(method.as_bytes()).is_err()
        {
            return Err(format!("invalid method `{method}`"));
        }
        if let Some(status) = self.status
            && !(400..=599).contains(&status)
        {
            return Err(format!("invalid status {status}: expected 400 to 599"));
        }
        Ok(())
    }

    /// Returns whether the rule applies to this method and path.
    fn matches(&self, method: &Method, path: &str) -> bool {
        let method_matches = self
            .method
            .as_deref()
            .is_none_or(|expected| expected.eq_ignore_ascii_case(method.as_str()));
        let path_matches = self
            .path_prefix
            .as_deref()
            .is_none_or(|prefix| path.starts_with(prefix));
        method_matches && path_matches
    }
}

/// A rule with its counters.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RuleState {
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Matching requests seen while the rule was armed.
    pub matched: u64,
    /// Times the rule fired.
    pub fired: u64,
}

/// Default of [`FaultRule::window_ms`].
const DEFAULT_WINDOW: Duration = Duration::from_millis(1000);

/// The fault rules of one workspace.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct FaultSet {
    pub rules: Vec<RuleState>,
    /// Mutations of the workspace carried out since the rules were set.
    pub mutations: u64,
    /// Ids of objects created while an `eventual_consistency` rule was set, with the time of
    /// their create.
    #[serde(skip)]
    created: Vec<(String, Instant)>,
}

impl FaultSet {
    /// Wraps validated rules.
    pub fn new(rules: Vec<FaultRule>) -> Self {
        let rules = rules
            .into_iter()
            .map(|rule| RuleState {
                rule,
                matched: 0,
                fired: 0,
            })
            .collect();
        Self {
            rules,
            mutations: 0,
            created: Vec::new(),
        }
    }

    /// Returns whether any rule lets lists lag behind creates.
    fn lags_lists(&self) -> bool {
        self.rules.iter().any(|state| state.rule.kind == FaultKind::EventualConsistency)
    }

    /// Remembers objects that a create made, for the lists that lag behind.
    fn remember_created(&mut self, ids: Vec<String>) {
        let now = Instant::now();
        let longest = self.rules.iter().filter_map(|state| state.rule.window_ms).map(Duration::from_millis).fold(DEFAULT_WINDOW, Duration::max);
        self.created.retain(|(_, created)| now.duration_since(*created) < longest);
        self.created.extend(ids.into_iter().map(|id| (id, now)));
    }

    /// Returns the ids that a list read at this method and path leaves out, counting the first
    /// matching `eventual_consistency` rule as fired when there are any.
    fn ids_left_out(&mut self, method: &Method, path: &str) -> Vec<String> {
        let Some(index) = self
            .rules
            .iter()
            .position(|state| state.rule.kind == FaultKind::EventualConsistency && state.rule.matches(method, path))
        else {
            return Vec::new();
        };
        let window = self.rules[index].rule.window_ms.map_or(DEFAULT_WINDOW, Duration::from_millis);
        let recent: Vec<String> = self
            .created
            .iter()
            .filter(|(_, created)| created.elapsed() < window)
            .map(|(id, _)| id.clone())
            .collect();
        if recent.is_empty() || !self.fire(index) {
            return Vec::new();
        }
        recent
    }

    /// Counts a match of rule `index` and returns whether it fires.
    fn fire(&mut self, index: usize) -> bool {
        let mutations = self.mutations;
        let state = &mut self.rules[index];
        if state
            .rule
            .after_mutations
            .is_some_and(|armed_after| mutations < armed_after)
        {
            return false;
        }
        if state.rule.times.is_some_and(|times| state.fired >= times) {
            return false;
        }

        state.matched += 1;
        if !state.matched.is_multiple_of(state.rule.every.unwrap_or(1)) {
            return false;
        }
        state.fired += 1;
        true
    }

    /// Decides the faults of a request before it is carried out.
    fn before_request(&mut self, method: &Method, path: &str) -> (Duration, Option<Fault>) {
        let mut latency = Duration::ZERO;
        let mut fault = None;
        for index in 0..self.rules.len() {
            let rule = self.rules[index].rule.clone();
            let relevant = rule.matches(method, path)
                && !rule.kind.acts_after_mutation()
                && rule.kind != FaultKind::EventualConsistency;
            if !relevant
                || (fault.is_some() && rule.kind != FaultKind::Latency)
                || !self.fire(index)
            {
                continue;
            }
            match rule.kind {
                FaultKind::Latency => {
                    latency += Duration::from_millis(rule.latency_ms.unwrap_or(0))
                }
                _ => fault = Fault::from_rule(&rule),
            }
        }
        (latency, fault)
    }

    /// Counts a carried-out mutation and decides the fault that replaces its response.
    fn after_mutation(&mut self, method: &Method, path: &str) -> Option<Fault> {
        let mut fault = None;
        for index in 0..self.rules.len() {
            let rule = self.rules[index].rule.clone();
            if rule.matches(method, path) && rule.kind.acts_after_mutation() && self.fire(index) {
                fault = Fault::from_rule(&rule);
                break;
            }
        }
        self.mutations += 1;
        fault
    }
}

/// The outcome of a fired rule.
#[derive(Debug)]
enum Fault {
    Respond {
        status: StatusCode,
        code: &'static str,
        message: &'static str,
        retry_after: Option<u64>,
    },
    Drop,
    Hang,
}

impl Fault {
    /// Resolves a fired rule; a latency rule has no outcome besides its delay.
    fn from_rule(rule: &FaultRule) -> Option<Self> {
        let fault = match rule.kind {
            FaultKind::Latency | FaultKind::EventualConsistency => return None,
            FaultKind::Status429 => Self::Respond {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "REQUEST_LIMIT_EXCEEDED",
                message: "Too many requests. Please wait a moment and try again.",
                retry_after: Some(rule.retry_after.unwrap_or(1)),
            },
            FaultKind::Status500Limit => Self::Respond {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "REQUEST_LIMIT_EXCEEDED",
                message: "REQUEST_LIMIT_EXCEEDED: the request rate limit of this API was exceeded.",
                retry_after: rule.retry_after,
            },
            FaultKind::Status503 => Self::Respond {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "TEMPORARILY_UNAVAILABLE",
                message: "The service is temporarily unavailable.",
                retry_after: rule.retry_after,
            },
            FaultKind::ErrorAfterMutation => error_after_mutation(rule),
            FaultKind::Drop | FaultKind::DropAfterMutation => Self::Drop,
            FaultKind::HangAfterMutation => Self::Hang,
        };
        Some(fault)
    }
}

/// Resolves an `error_after_mutation` rule into the error response for its status.
fn error_after_mutation(rule: &FaultRule) -> Fault {
    let status = rule
        .status
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match status.as_u16() {
        429 => "REQUEST_LIMIT_EXCEEDED",
        503 => "TEMPORARILY_UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "BAD_REQUEST",
        _ => "INTERNAL_ERROR",
    };
    Fault::Respond {
        status,
        code,
        message: "The request failed after it was carried out.",
        retry_after: rule.retry_after,
    }
}

/// Returns whether a request counts as a mutation: a non-GET request outside `/_emulator` and
/// `/oidc` that succeeded. `get-latest-versions` is a POST that only reads, so it does not count.
pub(crate) fn is_mutation(method: &Method, path: &str, status: StatusCode) -> bool {
    let reading = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let excluded = path.starts_with(CONTROL_PREFIX)
        || path.starts_with("/oidc/")
        || path == "/api/2.0/mlflow/registered-models/get-latest-versions";
    !reading && !excluded && status.is_success()
}

/// Middleware that applies the configured latency and fault rules and counts mutations.
pub(crate) async fn apply_faults(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let connection = request
        .extensions()
        .get::<ConnectInfo<ConnectionHandle>>()
        .map(|info| info.0.clone());

    if let Some(latency) = state.emulator.base_latency() {
        tokio::time::sleep(latency).await;
    }
    if path.starts_with(CONTROL_PREFIX) {
        return next.run(request).await;
    }

    let (latency, fault) = rules_before_request(&state, &method, &path);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = fault {
        tracing::info!(workspace = %state.workspace, %method, path, ?fault, "injected fault before the request");
        return answer_fault(fault, connection.as_ref()).await;
    }

    let response = next.run(request).await;
    tracing::debug!(workspace = %state.workspace, %method, path, status = response.status().as_u16(), "request served");
    if method == Method::GET {
        return leave_out_recent(&state, &method, &path, response).await;
    }
    if !is_mutation(&method, &path, response.status()) {
        return response;
    }

    state.emulator.record_mutation();
    let response = remember_created(&state, &method, response).await;
    match rules_after_mutation(&state, &method, &path) {
        None => response,
        Some(fault) => {
            tracing::info!(workspace = %state.workspace, %method, path, ?fault, "injected fault after the mutation");
            answer_fault(fault, connection.as_ref()).await
        }
    }
}

/// Records the id of the object a `POST` created, when a rule lets lists lag behind creates.
async fn remember_created(state: &AppState, method: &Method, response: Response) -> Response {
    let lags = state.emulator.faults().get(&*state.workspace).is_some_and(FaultSet::lags_lists);
    if *method != Method::POST || !lags {
        return response;
    }
    let (parts, bytes) = match read_body(response).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    if let Ok(body) = serde_json::from_slice::<Value>(&bytes) {
        let ids: Vec<String> = [body.get("id"), body.get("token_info").and_then(|info| info.get("token_id"))]
            .into_iter()
            .flatten()
            .map(id_text)
            .collect();
        if let Some(set) = state.emulator.faults().get_mut(&*state.workspace) {
            set.remember_created(ids);
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Leaves recently created objects out of a list response, as an `eventual_consistency` rule sets.
async fn leave_out_recent(state: &AppState, method: &Method, path: &str, response: Response) -> Response {
    let hidden = match state.emulator.faults().get_mut(&*state.workspace) {
        Some(set) => set.ids_left_out(method, path),
        None => Vec::new(),
    };
    if hidden.is_empty() || !response.status().is_success() {
        return response;
    }
    let (mut parts, bytes) = match read_body(response).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let Ok(mut body) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if remove_listed(&mut body, &hidden) == 0 {
        return Response::from_parts(parts, Body::from(bytes));
    }
    tracing::info!(workspace = %state.workspace, path, "injected fault: left recently created objects out of a list");
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// Removes the items with a hidden `id` or `token_id` from every list at the top of `body`,
/// lowers the SCIM counts to match, and returns how many items it removed.
fn remove_listed(body: &mut Value, hidden: &[String]) -> u64 {
    let Value::Object(fields) = body else { return 0 };
    let mut removed = 0;
    for value in fields.values_mut() {
        if let Value::Array(items) = value {
            let before = items.len();
            items.retain(|item| {
                let id = item.get("id").or_else(|| item.get("token_id")).map(id_text);
                !id.is_some_and(|id| hidden.contains(&id))
            });
            removed += (before - items.len()) as u64;
        }
    }
    for count in ["totalResults", "itemsPerPage"] {
        if let Some(total) = fields.get(count).and_then(Value::as_u64) {
            fields.insert(count.to_owned(), json!(total.saturating_sub(removed)));
        }
    }
    removed
}

/// Returns an id that may be a JSON string or number as text.
fn id_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Reads a whole response body, or returns a 500 when it cannot be read.
async fn read_body(response: Response) -> Result<(axum::http::response::Parts, axum::body::Bytes), Response> {
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => Ok((parts, bytes)),
        Err(error) => {
            tracing::error!(%error, "failed to read a response body for fault injection");
            Err((StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error_code": "INTERNAL_ERROR", "message": "The emulator failed to read its own response." }))).into_response())
        }
    }
}

/// Applies the rules of the workspace before a request.
fn rules_before_request(
    state: &AppState,
    method: &Method,
    path: &str,
) -> (Duration, Option<Fault>) {
    let mut faults = state.emulator.faults();
    match faults.get_mut(&*state.workspace) {
        Some(set) => set.before_request(method, path),
        None => (Duration::ZERO, None),
    }
}

/// Applies the rules of the workspace after a mutation.
fn rules_after_mutation(state: &AppState, method: &Method, path: &str) -> Option<Fault> {
    let mut faults = state.emulator.faults();
    faults
        .get_mut(&*state.workspace)
        .and_then(|set| set.after_mutation(method, path))
}

/// Builds the response of a fault; a drop or a hang sends none.
async fn answer_fault(fault: Fault, connection: Option<&ConnectionHandle>) -> Response {
    match fault {
        Fault::Respond {
            status,
            code,
            message,
            retry_after,
        } => {
            let mut response = (
                status,
                Json(json!({ "error_code": code, "message": message })),
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(seconds));
            }
            response
        }
        Fault::Drop => drop_connection(connection),
        Fault::Hang => std::future::pending().await,
    }
}

/// Aborts the connection so the client gets no response at all.
fn drop_connection(connection: Option<&ConnectionHandle>) -> Response {
    match connection {
        Some(handle) => {
            tracing::info!(peer = %handle.peer, "dropping connection");
            handle.abort();
        }
        // A router used without `Emulator::bind` has no connection to drop.
        None => {
            tracing::warn!("cannot drop a connection of a router that was not bound; answering 502")
        }
    }
    let body = json!({ "error_code": "BAD_GATEWAY", "message": "The connection was dropped." });
    (StatusCode::BAD_GATEWAY, Json(body)).into_response()
}
