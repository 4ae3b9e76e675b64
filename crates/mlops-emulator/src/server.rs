//! The router of one workspace, its shared state, and the loopback listener that serves it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::api_error::{ApiError, ApiResult};
use crate::model::Workspace;
use crate::seed::IdAllocator;
use crate::{
    Emulator, EmulatorError, control, faults, oauth, permissions, registry, scim, secrets, tokens,
    traffic,
};

/// The address and identity of a bound workspace listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listening {
    pub name: String,
    pub workspace_id: String,
    /// `http://127.0.0.1:PORT` for a listener bound on 127.0.0.1.
    pub base_url: String,
}

/// State of the router of one workspace.
#[derive(Clone)]
pub(crate) struct AppState {
    pub emulator: Emulator,
    pub workspace: Arc<str>,
    pub workspace_id: Arc<str>,
}

/// Context of a mutating handler: the current time and the world's id allocator.
pub(crate) struct Ctx<'a> {
    pub now_ms: i64,
    pub ids: IdAllocator<'a>,
}

impl AppState {
    /// Runs `action` on the workspace with the current time in epoch milliseconds.
    pub fn read<T>(&self, action: impl FnOnce(&Workspace, i64) -> ApiResult<T>) -> ApiResult<T> {
        let now_ms = self.emulator.now_ms();
        let world = self.emulator.world();
        let ws = world
            .workspaces
            .get(&*self.workspace)
            .ok_or_else(missing_workspace)?;
        action(ws, now_ms)
    }

    /// Runs `action` on the workspace, then revokes the tokens of principals that lost the right
    /// to use tokens. `action` must check everything before it changes anything.
    pub fn write<T>(
        &self,
        action: impl FnOnce(&mut Workspace, &mut Ctx<'_>) -> ApiResult<T>,
    ) -> ApiResult<T> {
        let now_ms = self.emulator.now_ms();
        let mut world = self.emulator.world();
        let crate::model::World {
            next_id,
            workspaces,
            ..
        } = &mut *world;
        let ws = workspaces
            .get_mut(&*self.workspace)
            .ok_or_else(missing_workspace)?;

        let mut ctx = Ctx {
            now_ms,
            ids: IdAllocator::new(next_id),
        };
        let result = action(ws, &mut ctx);
        ws.revoke_unentitled_tokens();
        result
    }
}

/// Returns the error for a router whose workspace is gone. Workspaces are never removed, so
/// this only guards the invariant.
fn missing_workspace() -> ApiError {
    ApiError::internal("the workspace of this listener does not exist")
}

/// Builds the router of one workspace with its middleware.
pub(crate) fn build_router(emulator: Emulator, workspace: &str, workspace_id: &str) -> Router {
    let state = AppState {
        emulator,
        workspace: Arc::from(workspace),
        workspace_id: Arc::from(workspace_id),
    };

    Router::new()
        .merge(scim::routes())
        .merge(tokens::routes())
        .merge(permissions::routes())
        .merge(secrets::routes())
        .merge(registry::routes())
        .merge(oauth::routes())
        .merge(control::routes())
        .merge(traffic::routes())
        .fallback(endpoint_not_found)
        .method_not_allowed_fallback(endpoint_not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            faults::apply_faults,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            traffic::account,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            add_org_id_header,
        ))
        .with_state(state)
}

/// Returns the 404 for a method and path that no route serves.
async fn endpoint_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::endpoint_not_found(method.as_str(), uri.path())
}

/// Adds `X-Databricks-Org-Id: <workspace id>` to every response.
async fn add_org_id_header(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&state.workspace_id) {
        response.headers_mut().insert("x-databricks-org-id", value);
    }
    response
}

/// Binds a listener for one workspace and serves it on a spawned task.
pub(crate) async fn bind(
    emulator: Emulator,
    workspace: &str,
    workspace_id: &str,
    addr: SocketAddr,
) -> Result<Listening, EmulatorError> {
    let bind_error = |source| EmulatorError::Bind {
        workspace: workspace.to_owned(),
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;

    let router = build_router(emulator, workspace, workspace_id);
    let service = router.into_make_service_with_connect_info::<ConnectionHandle>();
    let name = workspace.to_owned();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(ControlledListener { inner: listener }, service).await {
            tracing::error!(workspace = %name, %error, "emulator server stopped");
        }
    });

    tracing::info!(workspace, %local_addr, "emulator listening");
    Ok(Listening {
        name: workspace.to_owned(),
        workspace_id: workspace_id.to_owned(),
        base_url: format!("http://{local_addr}"),
    })
}

/// A TCP listener whose connections a handler can abort, to emulate a dropped connection.
struct ControlledListener {
    inner: TcpListener,
}

/// Connection info of an accepted connection: the peer and the switch that aborts it.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionHandle {
    pub peer: SocketAddr,
    aborted: Arc<AtomicBool>,
}

impl ConnectionHandle {
    /// Makes every later read and write of the connection fail, so the server closes it
    /// without sending a response.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
    }
}

/// A TCP stream that fails every operation once its [`ConnectionHandle`] is aborted.
struct ControlledStream {
    stream: TcpStream,
    aborted: Arc<AtomicBool>,
}

impl ControlledStream {
    /// Returns the error of an aborted connection, if it is aborted.
    fn check_aborted(&self) -> io::Result<()> {
        if self.aborted.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection dropped by an injected fault",
            ));
        }
        Ok(())
    }
}

impl Listener for ControlledListener {
    type Io = ControlledStream;
    type Addr = ConnectionHandle;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, peer) = Listener::accept(&mut self.inner).await;
        let aborted = Arc::new(AtomicBool::new(false));
        (
            ControlledStream {
                stream,
                aborted: aborted.clone(),
            },
            ConnectionHandle { peer, aborted },
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        let peer = self.inner.local_addr()?;
        Ok(ConnectionHandle {
            peer,
            aborted: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Connected<IncomingStream<'_, ControlledListener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, ControlledListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl AsyncRead for ControlledStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check_aborted()?;
        Pin::new(&mut self.get_mut().stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for ControlledStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_aborted()?;
        Pin::new(&mut self.get_mut().stream).poll_write(context, buffer)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_aborted()?;
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}

/// Query parameters of a request; a query that cannot be decoded is a 400 in the Databricks form.
pub(crate) struct Params(pub HashMap<String, String>);

impl Params {
    /// Returns a parameter, treating an empty value as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// Returns a required parameter, or the MLflow-style error for a missing one.
    pub fn require(&self, name: &str) -> ApiResult<&str> {
        self.get(name).ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "Missing value for required parameter '{name}'. See the API docs for more information about request parameters."
            ))
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                ApiError::malformed(format!("invalid query string: {}", rejection.body_text()))
            })?;
        Ok(Self(map))
    }
}

/// Parses a JSON request body; an empty body counts as `{}`.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|error| ApiError::malformed(describe_json_error(&error)))
}

/// Describes a body parse error by kind and position only, because serde_json messages can
/// quote values, and a value may be a secret.
fn describe_json_error(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "unreadable body",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected field type or missing field",
        serde_json::error::Category::Eof => "unexpected end of body",
    };
    format!(
        "Invalid JSON given in the body of the request: {kind} at line {} column {}",
        error.line(),
        error.column()
    )
}
