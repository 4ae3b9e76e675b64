//! Mock workspace servers on 127.0.0.1 for the integration tests.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mlops_databricks::{ClientOptions, Credentials, WorkspaceClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bearer token every test client sends.
pub const TOKEN: &str = "dapi0123456789abcdef0123456789abcdef";

/// Serves `router` on an ephemeral loopback port and returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{address}")
}

/// Options with millisecond retry delays, so retry tests stay fast.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        max_concurrent_requests: 4,
        request_timeout: Duration::from_secs(5),
        retry_budget: Duration::from_secs(10),
        user_agent: "mlops-databricks-tests".to_owned(),
        retry_base_delay: Duration::from_millis(1),
        retry_max_delay: Duration::from_millis(5),
    }
}

/// Creates a bearer-token client for `base_url` with [`fast_options`].
pub fn client(base_url: &str) -> WorkspaceClient {
    client_with(base_url, fast_options())
}

pub fn client_with(base_url: &str, options: ClientOptions) -> WorkspaceClient {
    WorkspaceClient::new(base_url, Credentials::Bearer(TOKEN.into()), options).unwrap()
}

/// Builds a JSON response with the given status and body text.
pub fn json_response(status: u16, body: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (
        status,
        [("content-type", "application/json")],
        body.to_owned(),
    )
        .into_response()
}

/// Checks the headers every API request must carry.
pub fn assert_api_headers(headers: &HeaderMap) {
    let authorization = headers.get("authorization").unwrap().to_str().unwrap();
    assert_eq!(authorization, format!("Bearer {TOKEN}"));
    assert_eq!(headers.get("accept").unwrap(), "application/json");
}

/// A request counter shared between a handler and the test.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn increment(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the raw server does with one connection.
pub enum RawAction {
    /// Read the request, then close the connection without a response.
    Drop,
    /// Read the request, then write these bytes and close.
    Respond(Vec<u8>),
}

/// Starts a plain TCP server that handles each connection with the next queued action.
///
/// Returns the base URL and a counter of requests read. Once the queue is empty, every
/// further connection is dropped.
pub async fn serve_raw(actions: Vec<RawAction>) -> (String, Counter) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let queue = Arc::new(Mutex::new(VecDeque::from(actions)));
    let counter = Counter::default();

    let requests = counter.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let action = queue.lock().unwrap().pop_front().unwrap_or(RawAction::Drop);
            let requests = requests.clone();
            tokio::spawn(async move { handle_raw(stream, action, requests).await });
        }
    });

    (format!("http://{address}"), counter)
}

/// Builds a complete HTTP/1.1 response with a JSON body.
pub fn raw_json(status: u16, body: &str) -> RawAction {
    let text = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    RawAction::Respond(text.into_bytes())
}

async fn handle_raw(mut stream: TcpStream, action: RawAction, requests: Counter) {
    if read_request(&mut stream).await.is_none() {
        return;
    }
    requests.increment();

    match action {
        RawAction::Drop => drop(stream),
        RawAction::Respond(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
    }
}

/// Reads one request (headers plus a `content-length` body).
async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        data.extend_from_slice(&buffer[..read]);

        let Some(header_end) = find(&data, b"\r\n\r\n") else {
            continue;
        };
        let headers = String::from_utf8_lossy(&data[..header_end]).to_ascii_lowercase();
        let length = headers
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map(|value| value.trim().parse::<usize>().unwrap())
            .unwrap_or(0);
        if data.len() >= header_end + 4 + length {
            return Some(data);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
