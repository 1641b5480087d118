//! Harness for mcpgate-load's tests: real servers as child processes (`mcpgate mock-upstream`,
//! `server-everything`), waited on by their ready line — never by a sleep — and the
//! `mcpgate-load` binary run to completion under a generous liveness bound.
//!
//! Each test file uses only part of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// Upper bound for a server to print its ready line, and for a load run to end. A liveness
/// bound only: healthy runs take a few seconds.
pub const LIVENESS: Duration = Duration::from_secs(120);

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The `mcpgate` binary of this build profile (`target/<profile>/mcpgate`, next to this
/// test's own `deps/` directory), built once with cargo when it is missing.
pub fn mcpgate_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("tests run from target/<profile>/deps")
            .to_path_buf();
        let bin = profile_dir.join("mcpgate");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(workspace_root())
                .args(["build", "-p", "mcpgate", "--bin", "mcpgate"]);
            match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => {}
                Some("release") => {
                    cmd.arg("--release");
                }
                Some(other) => {
                    cmd.args(["--profile", other]);
                }
            }
            let status = cmd
                .status()
                .expect("run cargo build for the mcpgate binary");
            assert!(status.success(), "cargo build -p mcpgate failed: {status}");
            assert!(bin.exists(), "{} missing after cargo build", bin.display());
        }
        bin
    })
}

/// `node_modules/.bin/mcp-server-everything`, installed by `npm ci` at the workspace root.
pub fn everything_bin() -> PathBuf {
    let path = workspace_root().join("node_modules/.bin/mcp-server-everything");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` in {} first",
        path.display(),
        workspace_root().display()
    );
    path
}

/// A TCP port that was free a moment ago (for servers that cannot listen on port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The gateway's own test harness for child processes (captured output, event-driven waits,
/// the whole process group killed on drop), shared rather than written twice.
#[allow(dead_code)]
#[path = "../../../tests/common/proc.rs"]
mod proc;
pub use proc::Proc;

/// `mcpgate mock-upstream --listen 127.0.0.1:0` and its URL.
pub fn mock_upstream() -> (Proc, String) {
    let mut cmd = Command::new(mcpgate_bin());
    cmd.args(["mock-upstream", "--listen", "127.0.0.1:0", "--workers", "1"]);
    let mut server = Proc::spawn("mock-upstream", cmd);
    let url = listening_url(&mut server, "mock-upstream: listening on ");
    (server, url)
}

/// The URL in `process`'s ready line (`<ready> <url>` on its stdout), once it prints it.
fn listening_url(process: &mut Proc, ready: &str) -> String {
    let line = process.wait_stdout_line(|l| l.contains(ready), LIVENESS);
    line.split_once(ready)
        .map(|(_, u)| u.trim().to_owned())
        .expect("URL in the ready line")
}

/// `mcpgate serve` (one worker, audit log off) in front of the streamable-HTTP server at
/// `upstream`, named `name`; its `/mcp` URL once it serves. The config file lives in the
/// system's temporary directory until the returned guard is dropped.
pub fn gateway_in_front_of(name: &str, upstream: &str) -> (Proc, String, ConfigFile) {
    let config = ConfigFile::new(&serde_json::json!({
        "mcpServers": { name: { "url": upstream } },
        "audit": { "enabled": false },
    }));
    let mut cmd = Command::new(mcpgate_bin());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--config",
    ])
    .arg(&config.0);
    let mut gateway = Proc::spawn("mcpgate", cmd);
    let url = listening_url(&mut gateway, "mcpgate: listening on ");
    (gateway, url, config)
}

/// A config file written for one test, removed when dropped.
pub struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(config: &Value) -> ConfigFile {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("mcpgate-load-test-{}-{n}.json", std::process::id()));
        std::fs::write(&path, config.to_string()).expect("write the gateway's config");
        ConfigFile(path)
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `server-everything streamableHttp` on a free port, and its URL.
pub fn everything() -> (Proc, String) {
    let port = free_port();
    let mut cmd = Command::new(everything_bin());
    cmd.arg("streamableHttp").env("PORT", port.to_string());
    let mut server = Proc::spawn("server-everything", cmd);
    server.wait_stderr_line(
        |l| l.contains("MCP Streamable HTTP Server listening on port"),
        LIVENESS,
    );
    (server, format!("http://127.0.0.1:{port}/mcp"))
}

/// What a finished `mcpgate-load` run printed.
pub struct LoadRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl LoadRun {
    /// The `--json` report.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `mcpgate-load <args>` to completion (killed, failing the test, past the bound).
pub fn load(args: &[&str]) -> LoadRun {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpgate-load"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcpgate-load");
    let out = read_all(child.stdout.take().expect("piped stdout"));
    let err = read_all(child.stderr.take().expect("piped stderr"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(LIVENESS) {
        Ok(s) => s.expect("wait for mcpgate-load"),
        Err(_) => {
            // SAFETY: killing the child we spawned (not yet reaped: its waiter is still blocked).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("mcpgate-load {args:?} did not finish within {LIVENESS:?}");
        }
    };
    LoadRun {
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

/// Checks the figures every successful report shares.
pub fn assert_sane(report: &Value) {
    let l = &report["latency_us"];
    let (p50, p99, max) = (
        l["p50"].as_u64().unwrap(),
        l["p99"].as_u64().unwrap(),
        l["max"].as_u64().unwrap(),
    );
    assert!(p50 <= p99 && p99 <= max, "percentiles out of order: {l}");
    let calls = report["calls"].as_u64().unwrap();
    let ok = report["ok"].as_u64().unwrap();
    let errors = report["errors"].as_u64().unwrap();
    assert_eq!(calls, ok + errors, "{report}");
}
