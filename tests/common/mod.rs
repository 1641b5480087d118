//! Shared harness for mcpgate's integration tests.
//!
//! Everything here talks to real processes over real sockets and pipes: the `mcpgate` binary
//! built by cargo, its `mock-upstream` subcommand, and the reference server
//! `@modelcontextprotocol/server-everything` installed by `npm ci`. The MCP client is the
//! official Rust SDK, `rmcp`.
//!
//! Synchronisation is always on an event — a ready line on a process's stdout/stderr, a reply
//! to a request — never on a sleep. Every wait has a generous upper bound so a broken gateway
//! fails the test with its log instead of hanging it.
//!
//! Each test file uses only part of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod admin;
pub mod asking_http;
pub mod audit;
pub mod broken_http;
pub mod ledger_http;
pub mod legacy_sse_client;
pub mod proc;
pub mod procfs;
pub mod raw_http;
pub mod raw_sse;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::{json, Map, Value};

pub use proc::{Proc, Stream};

/// The two I/O drivers every integration test runs under.
pub const DRIVERS: [&str; 2] = ["epoll", "uring"];

/// Upper bound for a process to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for one MCP request/response exchange in a test (a liveness bound, not a timing
/// assertion: a healthy run answers in milliseconds).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Generates one `#[tokio::test]` per I/O driver for each named `async fn name(driver: &str)`.
///
/// `both_drivers!(foo);` produces the tests `foo::epoll` and `foo::uring`, so
/// `cargo test foo::uring` runs one of them.
#[macro_export]
macro_rules! both_drivers {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn epoll() {
                    super::$name("epoll").await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn uring() {
                    super::$name("uring").await
                }
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

/// The `mcpgate` binary under test.
pub fn mcpgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcpgate")
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `node_modules/.bin/mcp-server-everything`, installed by `npm ci` from `package-lock.json`.
pub fn everything_bin() -> String {
    let path = repo_root().join("node_modules/.bin/mcp-server-everything");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` first (in {})",
        path.display(),
        repo_root().display()
    );
    path.to_string_lossy().into_owned()
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "mcpgate-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP port that was free a moment ago (bind port 0, read it, release it).
///
/// Only for servers that cannot listen on port 0 and report the port themselves
/// (server-everything takes its port from `PORT`).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

// ---------------------------------------------------------------------------------------------
// Upstream server configuration snippets (the `mcpServers` entries)
// ---------------------------------------------------------------------------------------------

/// server-everything over stdio.
pub fn everything_stdio() -> Value {
    json!({ "command": everything_bin(), "args": ["stdio"] })
}

/// `mcpgate mock-upstream --stdio <extra>` as a stdio server.
pub fn mock_stdio(extra: &[&str]) -> Value {
    let mut args = vec!["mock-upstream".to_string(), "--stdio".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    json!({ "command": mcpgate_bin(), "args": args })
}

/// A stdio server from any command line.
pub fn stdio_server(command: &str, args: &[&str]) -> Value {
    json!({ "command": command, "args": args })
}

/// A streamable HTTP server.
pub fn http_server(url: &str) -> Value {
    json!({ "url": url })
}

/// A legacy HTTP+SSE server.
pub fn sse_server(url: &str) -> Value {
    json!({ "type": "sse", "url": url })
}

/// A gateway config with the given servers and `"tool_prefix": "always"`.
pub fn config(servers: &[(&str, Value)]) -> Value {
    let mut map = Map::new();
    for (name, server) in servers {
        map.insert((*name).to_string(), server.clone());
    }
    json!({ "mcpServers": Value::Object(map), "tool_prefix": "always" })
}

// ---------------------------------------------------------------------------------------------
// The gateway process
// ---------------------------------------------------------------------------------------------

/// A running `mcpgate serve`, killed (SIGTERM, then SIGKILL of its process group) on drop.
pub struct Gateway {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT/mcp` (`https://` with a `tls` listener), from the ready line.
    pub url: String,
    /// Holds the config file (or serves as the cwd); removed after the process is gone.
    _dir: TempDir,
}

const GATEWAY_READY_PREFIX: &str = "mcpgate: listening on ";

impl Gateway {
    /// Writes `config` to a temp dir and starts
    /// `mcpgate serve --config F --listen 127.0.0.1:0 --workers 2 --io-driver <driver>`.
    pub async fn start(driver: &str, config: &Value) -> Gateway {
        Self::start_with_env(driver, config, &[]).await
    }

    /// Like [`Gateway::start`], with extra environment variables for the gateway process.
    pub async fn start_with_env(driver: &str, config: &Value, env: &[(&str, &str)]) -> Gateway {
        Self::start_full(driver, config, env, 2).await
    }

    /// Like [`Gateway::start`] with `workers` worker cores (one makes per-core bounds exact).
    pub async fn start_workers(driver: &str, config: &Value, workers: usize) -> Gateway {
        Self::start_full(driver, config, &[], workers).await
    }

    async fn start_full(
        driver: &str,
        config: &Value,
        env: &[(&str, &str)],
        workers: usize,
    ) -> Gateway {
        let dir = TempDir::new("gw");
        let config_path = dir.path().join("mcpgate.json");
        std::fs::write(
            &config_path,
            serde_json::to_vec_pretty(config).expect("serialize config"),
        )
        .expect("write config");
        let config_arg = config_path.to_string_lossy().into_owned();
        Self::spawn(driver, &["--config", &config_arg], env, dir, workers).await
    }

    /// The config file the gateway serves (for reload tests).
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("mcpgate.json")
    }

    /// Writes `config` over the served file, sends SIGHUP, and returns the first log line after
    /// that containing `outcome` (e.g. "config reload applied", "config reload refused").
    pub fn reload_with(&mut self, config: &Value, outcome: &str) -> String {
        let mark = self.proc.mark();
        std::fs::write(
            self.config_path(),
            serde_json::to_vec_pretty(config).expect("config"),
        )
        .expect("write config");
        // SAFETY: sends SIGHUP to the gateway process this test started and still owns.
        let rc = unsafe { libc::kill(self.proc.pid() as i32, libc::SIGHUP) };
        assert_eq!(rc, 0, "kill -HUP failed");
        self.proc
            .wait_stderr_line_after(mark, |l| l.contains(outcome), READY_TIMEOUT)
    }

    /// Starts `mcpgate serve` with no `--config`, in an empty temp working directory: the
    /// README's "start the gateway" command, on the built-in default config.
    pub async fn start_default_config(driver: &str) -> Gateway {
        let dir = TempDir::new("gw-default");
        Self::spawn(driver, &[], &[], dir, 2).await
    }

    /// `mcpgate serve <extra> --listen 127.0.0.1:0 --workers <workers> --io-driver <driver>`
    /// in `dir`.
    async fn spawn(
        driver: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        dir: TempDir,
        workers: usize,
    ) -> Gateway {
        let workers = workers.to_string();
        let mut cmd = std::process::Command::new(mcpgate_bin());
        cmd.envs(env.iter().copied());
        cmd.arg("serve")
            .args(extra)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--workers",
                &workers,
                "--io-driver",
                driver,
            ])
            .current_dir(dir.path());
        let proc = Proc::spawn(&format!("mcpgate serve ({driver})"), cmd);
        let (proc, line) = wait_ready(proc, Stream::Stdout, |l| {
            l.starts_with(GATEWAY_READY_PREFIX)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        // Both drivers must really be exercised: monoio's fusion driver can fall back to epoll
        // silently, so the gateway logs the driver it runs (before its ready line).
        let (proc, _) = wait_ready(
            proc,
            Stream::Stderr,
            if driver == "uring" {
                |l: &str| l.contains("driver") && l.contains("io_uring")
            } else {
                |l: &str| l.contains("driver") && l.contains("epoll")
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!("the gateway did not log that it runs the {driver} driver: {e}")
        });
        let url = line[GATEWAY_READY_PREFIX.len()..].trim().to_string();
        assert!(
            (url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"))
                && url.ends_with("/mcp"),
            "unexpected ready line {line:?}"
        );
        Gateway {
            proc,
            url,
            _dir: dir,
        }
    }

    /// Waits until the gateway follows an HTTP server's own GET stream (it opens it once the
    /// server's session is up), so what the server sends there reaches the gateway.
    pub fn wait_following_get_stream(&mut self) {
        tokio::task::block_in_place(|| {
            self.proc.wait_stderr_line(
                |l| l.contains("following the server's GET stream"),
                std::time::Duration::from_secs(20),
            )
        });
    }

    /// `127.0.0.1:PORT` of the listener.
    pub fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches("/mcp")
            .to_string()
    }

    /// A fresh rmcp client connected to this gateway.
    pub async fn client(&self) -> Client {
        connect_http(&self.url).await
    }

    /// Proves the gateway still serves a normal request: a fresh rmcp client calls `tool`
    /// (an echo tool: `mock__echo`, `everything__echo`, ...) and gets its message back.
    pub async fn assert_echo_works(&self, tool: &str) {
        let client = self.client().await;
        let message = format!("still serving {}", unique_token());
        let result = call(&client, tool, json!({ "message": message }))
            .await
            .unwrap_or_else(|e| {
                panic!("normal `{tool}` call failed: {e}\n{}", self.proc.log_tail())
            });
        assert_ne!(
            result.is_error,
            Some(true),
            "`{tool}` returned an error result: {result:?}"
        );
        let text = text_of(&result);
        assert!(
            text.contains(&message),
            "`{tool}` reply {text:?} does not contain {message:?}"
        );
        close(client).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream processes the gateway talks to over HTTP
// ---------------------------------------------------------------------------------------------

/// An HTTP MCP server process (server-everything or mcpgate's mock), killed on drop.
pub struct HttpUpstream {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
}

const MOCK_READY_PREFIX: &str = "mock-upstream: listening on ";
const EVERYTHING_READY: &str = "MCP Streamable HTTP Server listening on port";

impl HttpUpstream {
    /// `mcpgate mock-upstream --listen 127.0.0.1:0 <extra>`; waits for its ready line.
    pub async fn mock(extra: &[&str]) -> HttpUpstream {
        Self::mock_listening("127.0.0.1:0", extra).await
    }

    /// `mcpgate mock-upstream --listen 127.0.0.1:<port> <extra>`: on a given port, to come back
    /// where the gateway expects a server that was stopped.
    pub async fn mock_on(port: u16, extra: &[&str]) -> HttpUpstream {
        Self::mock_listening(&format!("127.0.0.1:{port}"), extra).await
    }

    async fn mock_listening(listen: &str, extra: &[&str]) -> HttpUpstream {
        let mut cmd = std::process::Command::new(mcpgate_bin());
        cmd.args(["mock-upstream", "--listen", listen]).args(extra);
        let proc = Proc::spawn("mock-upstream (http)", cmd);
        let (proc, line) = wait_ready(proc, Stream::Stdout, |l| l.starts_with(MOCK_READY_PREFIX))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = line[MOCK_READY_PREFIX.len()..].trim().to_string();
        HttpUpstream { proc, url }
    }

    /// `mcp-server-everything streamableHttp` on `port` (one that was stopped, to come back
    /// where the gateway expects it). It issues session ids, so a restart forgets them.
    pub async fn everything_on(port: u16) -> HttpUpstream {
        let proc = everything_on_port("streamableHttp", port, |l| l.contains(EVERYTHING_READY))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        HttpUpstream {
            proc,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }

    /// The port of [`HttpUpstream::url`].
    pub fn port(&self) -> u16 {
        self.url
            .trim_start_matches("http://127.0.0.1:")
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.url))
    }

    /// A Node.js fixture server run with `node <script> --http`, which prints
    /// `listening on http://127.0.0.1:PORT/mcp` when ready.
    pub async fn node_fixture(script: &str) -> HttpUpstream {
        let mut cmd = std::process::Command::new("node");
        cmd.arg(repo_root().join("tests/fixtures").join(script))
            .arg("--http");
        let proc = Proc::spawn(script, cmd);
        let (proc, line) = wait_ready(proc, Stream::Stdout, |l| l.starts_with("listening on "))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = line["listening on ".len()..].trim().to_string();
        HttpUpstream { proc, url }
    }

    /// `mcp-server-everything streamableHttp` with `PORT=<free port>`; waits until it logs
    /// `MCP Streamable HTTP Server listening on port N` on stderr.
    pub async fn everything() -> HttpUpstream {
        let (proc, port) =
            everything_on_free_port("streamableHttp", |l| l.contains(EVERYTHING_READY)).await;
        HttpUpstream {
            proc,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

/// `mcp-server-everything <transport>` with `PORT=<free port>`, once it printed a line matching
/// `ready` on stderr. The port is picked by binding port 0 and releasing it; if another process
/// grabs it in between, the server exits with EADDRINUSE and we try again with a new port.
async fn everything_on_free_port(transport: &str, ready: fn(&str) -> bool) -> (Proc, u16) {
    let mut last_error = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        match everything_on_port(transport, port, ready).await {
            Ok(proc) => return (proc, port),
            Err(e) if e.contains("EADDRINUSE") || e.contains("already in use") => last_error = e,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("server-everything ({transport}) could not get a free port: {last_error}")
}

/// `mcp-server-everything <transport>` with `PORT=<port>`, once it printed a line matching
/// `ready` on stderr.
async fn everything_on_port(
    transport: &str,
    port: u16,
    ready: fn(&str) -> bool,
) -> Result<Proc, String> {
    let mut cmd = std::process::Command::new(everything_bin());
    cmd.arg(transport).env("PORT", port.to_string());
    let proc = Proc::spawn(&format!("server-everything ({transport})"), cmd);
    wait_ready(proc, Stream::Stderr, ready)
        .await
        .map(|(proc, _)| proc)
}

/// server-everything on the legacy HTTP+SSE transport (`mcp-server-everything sse`, stream at
/// `/sse`), killed on drop.
pub struct SseEverything {
    pub proc: Proc,
    pub port: u16,
    /// `http://127.0.0.1:PORT/sse`
    pub url: String,
}

const EVERYTHING_SSE_READY: &str = "Server is running on port";

impl SseEverything {
    /// On a free port; waits until it logs `Server is running on port N` on stderr.
    pub async fn start() -> SseEverything {
        let (proc, port) =
            everything_on_free_port("sse", |l| l.contains(EVERYTHING_SSE_READY)).await;
        Self::new(proc, port)
    }

    /// On `port` (the port of one that was stopped, to come back where the gateway expects it).
    pub async fn start_on(port: u16) -> SseEverything {
        let proc = everything_on_port("sse", port, |l| l.contains(EVERYTHING_SSE_READY))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self::new(proc, port)
    }

    fn new(proc: Proc, port: u16) -> SseEverything {
        SseEverything {
            proc,
            port,
            url: format!("http://127.0.0.1:{port}/sse"),
        }
    }
}

/// Waits (on the blocking pool) for `proc` to print a line matching `pred` on `stream`.
async fn wait_ready(
    mut proc: Proc,
    stream: Stream,
    pred: fn(&str) -> bool,
) -> Result<(Proc, String), String> {
    tokio::task::spawn_blocking(move || {
        let line = proc.try_wait_line(stream, &pred, READY_TIMEOUT)?;
        Ok((proc, line))
    })
    .await
    .expect("ready-line wait task")
}

// ---------------------------------------------------------------------------------------------
// rmcp clients
// ---------------------------------------------------------------------------------------------

/// An rmcp client session with the default (capability-free) client info.
pub type Client = RunningService<RoleClient, ()>;

/// Awaits `fut`, failing the test if it takes longer than `CALL_TIMEOUT` (a hang, not slowness).
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: no answer within {CALL_TIMEOUT:?}"),
    }
}

/// Pace of [`poll_until`]: how often a state is asked for again, never what a result depends on.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Asks `check` until it answers `Some`, failing the test at the [`within`] deadline. For state
/// the gateway shows only when asked (a metrics page, a store its log thread fills in
/// batches, an admin count), where no event says it changed; the condition decides, the
/// interval only paces the asking.
pub async fn poll_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(found) = check().await {
                return found;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
    .await
}

/// rmcp over streamable HTTP (the SDK's reqwest client).
pub async fn connect_http(url: &str) -> Client {
    connect_http_with(url, 16).await
}

/// Installs rustls's ring provider as the process default. rmcp's HTTP client is reqwest with
/// rustls built without a provider of its own (so the TLS tests need no aws-lc-rs build); a
/// reqwest client built without a preconfigured TLS setup panics unless a default is installed.
/// [`http_transport`] does it; tests that build a reqwest client themselves call it first.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means some other code installed one first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// rmcp's streamable-HTTP transport for `config`, with the TLS provider its client needs.
pub fn http_transport(
    config: StreamableHttpClientTransportConfig,
) -> StreamableHttpClientTransport<reqwest_rmcp::Client> {
    install_crypto_provider();
    StreamableHttpClientTransport::from_config(config)
}

/// rmcp over streamable HTTP allowing `max_concurrent` POSTs in flight at once.
pub async fn connect_http_with(url: &str, max_concurrent: usize) -> Client {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url).max_concurrent_requests(max_concurrent);
    let transport = http_transport(config);
    within(&format!("rmcp initialize with {url}"), ().serve(transport))
        .await
        .unwrap_or_else(|e| panic!("rmcp could not initialize with {url}: {e}"))
}

/// rmcp over streamable HTTP presenting `key` as `Authorization: Bearer <key>`.
pub async fn connect_http_with_key(url: &str, key: &str) -> Client {
    try_connect_http_with_key(url, key)
        .await
        .unwrap_or_else(|e| panic!("rmcp could not initialize with {url} using a key: {e}"))
}

/// Like [`connect_http_with_key`], returning the failure instead of panicking.
pub async fn try_connect_http_with_key(
    url: &str,
    key: &str,
) -> Result<Client, rmcp::service::ClientInitializeError> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(key);
    let transport = http_transport(config);
    within(&format!("rmcp initialize with {url}"), ().serve(transport)).await
}

/// A node script of tests/fixtures as a stdio server.
pub fn node_fixture_stdio(script: &str) -> Value {
    let path = repo_root().join("tests/fixtures").join(script);
    json!({ "command": "node", "args": [path.to_string_lossy()] })
}

/// rmcp over the child-process (stdio) transport; the child's stderr is discarded and the child
/// is killed when the client is dropped.
pub async fn connect_stdio(program: &str, args: &[&str]) -> Client {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let command = tokio::process::Command::new(program).configure(|c| {
        c.args(&args).kill_on_drop(true);
    });
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    within(
        &format!("rmcp initialize with {program}"),
        ().serve(transport),
    )
    .await
    .unwrap_or_else(|e| panic!("rmcp could not initialize with {program} {args:?}: {e}"))
}

/// rmcp directly on server-everything over stdio.
pub async fn connect_everything_stdio() -> Client {
    connect_stdio(&everything_bin(), &["stdio"]).await
}

/// A client that declares what mcpgate declares to its upstreams (sampling, elicitation,
/// roots), so a server that offers some tools only to such clients lists to it what it lists
/// to the gateway.
#[derive(Clone, Default)]
pub struct GatewayLikeClient;

impl rmcp::ClientHandler for GatewayLikeClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let caps = serde_json::from_value(json!({"sampling": {}, "elicitation": {}, "roots": {}}))
            .expect("client capabilities");
        rmcp::model::ClientConfig::new(caps, rmcp::model::Implementation::new("gateway-like", "1"))
    }
}

/// server-everything's tools (over stdio) as the gateway sees them.
pub async fn everything_tools_as_gateway_sees_them() -> Vec<Tool> {
    let command = tokio::process::Command::new(everything_bin()).configure(|c| {
        c.arg("stdio").kill_on_drop(true);
    });
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn server-everything");
    let client = within(
        "initialize server-everything",
        GatewayLikeClient.serve(transport),
    )
    .await
    .expect("initialize server-everything");
    let tools = within("tools/list", client.list_all_tools())
        .await
        .expect("tools/list");
    let _ = client.cancel().await;
    tools
}

/// rmcp directly on `mcpgate mock-upstream --stdio <extra>`.
pub async fn connect_mock_stdio(extra: &[&str]) -> Client {
    let mut args = vec!["mock-upstream", "--stdio"];
    args.extend_from_slice(extra);
    connect_stdio(mcpgate_bin(), &args).await
}

/// Closes a client session (stops its transport; a stdio child is shut down).
pub async fn close(client: Client) {
    let _ = tokio::time::timeout(CALL_TIMEOUT, client.cancel()).await;
}

/// `tools/call` with JSON arguments, bounded by `CALL_TIMEOUT`.
pub async fn call(
    client: &Client,
    name: &str,
    arguments: Value,
) -> Result<CallToolResult, ServiceError> {
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = match arguments {
        Value::Object(map) => Some(map),
        Value::Null => None,
        other => panic!("tool arguments must be an object, got {other}"),
    };
    within(&format!("tools/call {name}"), client.call_tool(params)).await
}

/// `tools/call` that must succeed with a non-error result.
pub async fn call_ok(client: &Client, name: &str, arguments: Value) -> CallToolResult {
    let result = call(client, name, arguments.clone())
        .await
        .unwrap_or_else(|e| panic!("tools/call {name} {arguments} failed: {e}"));
    assert_ne!(
        result.is_error,
        Some(true),
        "tools/call {name} {arguments} returned an error result: {result:?}"
    );
    result
}

/// Every tool, following `nextCursor` to the end (rmcp's `list_all_tools`).
pub async fn list_tools(client: &Client) -> Vec<Tool> {
    within("tools/list", client.list_all_tools())
        .await
        .unwrap_or_else(|e| panic!("tools/list failed: {e}"))
}

/// The names of `tools`, in order.
pub fn names(tools: &[Tool]) -> Vec<String> {
    tools.iter().map(|t| t.name.to_string()).collect()
}

/// Asserts no tool name appears twice.
pub fn assert_unique_names(tools: &[Tool]) {
    let mut seen = std::collections::HashSet::new();
    for name in names(tools) {
        assert!(seen.insert(name.clone()), "tool {name:?} is listed twice");
    }
}

/// The concatenated `text` of the result's text content blocks.
pub fn text_of(result: &CallToolResult) -> String {
    let value = serde_json::to_value(result).expect("serialize CallToolResult");
    value["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

/// The MCP error inside a failed call, or a panic naming what came back instead.
pub fn mcp_error(
    what: &str,
    result: Result<CallToolResult, ServiceError>,
) -> rmcp::model::ErrorData {
    match result {
        Err(ServiceError::McpError(error)) => error,
        Err(other) => {
            panic!("{what}: expected a JSON-RPC error reply, got transport/client error {other}")
        }
        Ok(ok) => panic!("{what}: expected a JSON-RPC error reply, got a result {ok:?}"),
    }
}

/// The upstream request id in a mock-upstream log line (`mock-upstream: request 7 hangs …`).
pub fn mock_request_id(line: &str) -> String {
    line.split("mock-upstream: request ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no request id in {line:?}"))
        .to_owned()
}

/// A token unique within this test process (for messages that must not collide).
pub fn unique_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
