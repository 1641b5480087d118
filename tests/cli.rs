//! The `mcpgate` command line: `check`, `tools`, and how `serve` starts and stops (refusals at
//! start-up, SIGTERM with a stdio upstream running).
//!
//! Commands that only read a config run as plain tests; those that serve run under both I/O
//! drivers. Every wait is on an event (a process exiting, a ready line) with a generous upper
//! bound so a hang fails the test instead of blocking it.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::raw_http::RawSession;
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

both_drivers!(
    serve_refuses_a_port_in_use,
    sigterm_stops_the_gateway_and_its_children,
);

/// Upper bound for a command that should finish on its own (a liveness bound, not a timing
/// assertion).
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A fresh `mcpgate` command that inherits nothing the test did not choose: a scratch working
/// directory (so no ./mcpgate.json is picked up) and no `MCPGATE_LOG`.
fn mcpgate(dir: &TempDir) -> Command {
    let mut cmd = Command::new(mcpgate_bin());
    cmd.current_dir(dir.path())
        .env_remove("MCPGATE_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

/// Runs `cmd` to completion and collects its output; kills its process group and fails if it
/// does not exit within [`EXIT_TIMEOUT`].
fn run(mut cmd: Command) -> Output {
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(EXIT_TIMEOUT) {
        Ok(Ok(out)) => Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("waiting for {cmd:?}: {e}"),
        Err(_) => {
            // SAFETY: signalling the process group of a child we spawned (not yet reaped: the
            // waiting thread is still blocked on it).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            panic!("{cmd:?} did not exit within {EXIT_TIMEOUT:?}");
        }
    }
}

/// Writes `config` as `mcpgate.json` into `dir`; returns its path.
fn write_config(dir: &TempDir, config: &Value) -> PathBuf {
    let path = dir.path().join("mcpgate.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).expect("write config");
    path
}

/// Writes raw config text as `bad.json` into `dir`; returns its path.
fn write_text(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("bad.json");
    std::fs::write(&path, text).expect("write config");
    path
}

// ---------------------------------------------------------------------------------------------
// mcpgate check
// ---------------------------------------------------------------------------------------------

#[test]
fn check_accepts_a_valid_config_without_echoing_values() {
    let dir = TempDir::new("cli-check");
    let config = json!({
        "listen": "127.0.0.1:18080",
        "tool_prefix": "on_conflict",
        "mcpServers": {
            "local_tools": {
                "command": "/usr/bin/env",
                "args": ["--token=arg-s3cr3t-value", "${CLI_TEST_ARG_SECRET}"],
                "env": { "API_TOKEN": "env-s3cr3t-value", "FROM_VAR": "${CLI_TEST_ENV_SECRET}" }
            },
            "remote": {
                "url": "http://127.0.0.1:3001/mcp?key=url-s3cr3t-value",
                "headers": {
                    "Authorization": "Bearer s3cr3t-value",
                    "X-Api-Key": "${CLI_TEST_HEADER_SECRET}"
                }
            },
            "vscode_style": { "type": "http", "url": "https://example.invalid/mcp" },
            "legacy": {
                "type": "sse",
                "url": "http://127.0.0.1:3002/sse",
                "headers": { "X-Token": "sse-s3cr3t-value" }
            },
            "switched_off": { "command": "x", "disabled": true }
        }
    });
    let path = write_config(&dir, &config);
    let mut cmd = mcpgate(&dir);
    cmd.args(["check", "--config"])
        .arg(&path)
        .env("CLI_TEST_ARG_SECRET", "expanded-arg-s3cr3t")
        .env("CLI_TEST_ENV_SECRET", "expanded-env-s3cr3t")
        .env("CLI_TEST_HEADER_SECRET", "expanded-header-s3cr3t");
    let out = run(cmd);
    assert!(out.status.success(), "check failed: {}", out.describe());
    assert!(
        out.stdout.lines().any(|l| l.trim() == "config ok"),
        "no `config ok`: {}",
        out.describe()
    );
    for name in ["local_tools", "remote", "vscode_style"] {
        assert!(
            out.stdout.contains(name),
            "server {name} not listed: {}",
            out.describe()
        );
    }
    // Each server's line says its transport.
    for shown in [
        "local_tools: stdio",
        "remote: http http://127.0.0.1:3001/mcp",
        "legacy: sse http://127.0.0.1:3002/sse",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.trim().starts_with(shown)),
            "no line starting {shown:?}: {}",
            out.describe()
        );
    }
    // Keys may be shown; values never.
    for secret in [
        "s3cr3t-value",
        "Bearer",
        "arg-s3cr3t",
        "env-s3cr3t",
        "url-s3cr3t",
        "expanded-arg-s3cr3t",
        "expanded-env-s3cr3t",
        "expanded-header-s3cr3t",
    ] {
        for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !text.contains(secret),
                "{stream} echoes the config value {secret:?}: {}",
                out.describe()
            );
        }
    }
}

#[test]
fn check_refuses_bad_configs_naming_the_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "an argument that is not a string",
            r#"{"mcpServers": {"a": {"command": "x", "args": [1]}}}"#,
            &["mcpServers.a.args[0]"],
        ),
        (
            "a URL that is not http(s)",
            r#"{"mcpServers": {"a": {"url": "ftp://x"}}}"#,
            &["mcpServers.a.url"],
        ),
        (
            "an unset variable",
            r#"{"mcpServers": {"a": {"command": "x", "env": {"K": "${UNSET_VAR_XYZ}"}}}}"#,
            &["mcpServers.a.env.K", "UNSET_VAR_XYZ"],
        ),
        (
            "virtual keys (not built yet)",
            r#"{"virtual_keys": [{"key": "k"}], "mcpServers": {"a": {"command": "x"}}}"#,
            &["virtual_keys"],
        ),
        (
            "no servers",
            r#"{"listen": "127.0.0.1:8080"}"#,
            &["mcpServers"],
        ),
        (
            "a server with neither command nor url",
            r#"{"mcpServers": {"a": {"command": "x"}, "b": {}}}"#,
            &["mcpServers.b"],
        ),
        (
            "a bad listen address",
            r#"{"listen": "everywhere", "mcpServers": {"a": {"command": "x"}}}"#,
            &["listen"],
        ),
    ];
    let dir = TempDir::new("cli-check-bad");
    for (what, text, needles) in cases {
        let path = write_text(&dir, text);
        let mut cmd = mcpgate(&dir);
        cmd.args(["check", "--config"])
            .arg(&path)
            .env_remove("UNSET_VAR_XYZ");
        let out = run(cmd);
        assert!(
            !out.status.success(),
            "{what}: check accepted {text}: {}",
            out.describe()
        );
        for needle in *needles {
            assert!(
                out.stderr.contains(needle),
                "{what}: stderr does not name {needle:?}: {}",
                out.describe()
            );
        }
        assert!(
            !out.stdout.contains("config ok"),
            "{what}: {}",
            out.describe()
        );
    }
}

#[test]
fn check_reports_invalid_json_with_its_position() {
    let dir = TempDir::new("cli-check-json");
    // A trailing comma on line 3.
    let path = write_text(
        &dir,
        "{\n  \"mcpServers\": {\n    \"a\": { \"command\": \"x\", },\n  }\n}\n",
    );
    let mut cmd = mcpgate(&dir);
    cmd.args(["check", "--config"]).arg(&path);
    let out = run(cmd);
    assert!(!out.status.success(), "{}", out.describe());
    let stderr = out.stderr.to_ascii_lowercase();
    assert!(stderr.contains("json"), "{}", out.describe());
    assert!(stderr.contains("line 3"), "{}", out.describe());
    assert!(stderr.contains("column"), "{}", out.describe());
}

#[test]
fn check_errors_do_not_echo_expanded_values() {
    let dir = TempDir::new("cli-check-secret");
    let mut leaks = Vec::new();
    for (key, text) in [
        (
            "workers",
            r#"{"workers": "${CLI_TEST_SECRET}", "mcpServers": {"a": {"command": "x"}}}"#,
        ),
        (
            "mcpServers.a.url",
            r#"{"mcpServers": {"a": {"url": "${CLI_TEST_SECRET}"}}}"#,
        ),
        (
            "listen",
            r#"{"listen": "${CLI_TEST_SECRET}", "mcpServers": {"a": {"command": "x"}}}"#,
        ),
        (
            "io_driver",
            r#"{"io_driver": "${CLI_TEST_SECRET}", "mcpServers": {"a": {"command": "x"}}}"#,
        ),
        (
            "tool_prefix",
            r#"{"tool_prefix": "${CLI_TEST_SECRET}", "mcpServers": {"a": {"command": "x"}}}"#,
        ),
        (
            "mcpServers.a.type",
            r#"{"mcpServers": {"a": {"type": "${CLI_TEST_SECRET}", "command": "x"}}}"#,
        ),
        (
            "mcpServers.a.timeout_ms",
            r#"{"mcpServers": {"a": {"command": "x", "timeout_ms": "${CLI_TEST_SECRET}"}}}"#,
        ),
    ] {
        let path = write_text(&dir, text);
        let mut cmd = mcpgate(&dir);
        cmd.args(["check", "--config"])
            .arg(&path)
            .env("CLI_TEST_SECRET", "hunter2-s3cr3t");
        let out = run(cmd);
        assert!(!out.status.success(), "{key}: {}", out.describe());
        assert!(
            out.stderr.contains(key),
            "{key}: error does not name the key: {}",
            out.describe()
        );
        // Every case is checked before failing, so one run names every leak.
        if out.stderr.contains("hunter2") || out.stdout.contains("hunter2") {
            leaks.push(format!("{key}: {}", out.stderr.trim()));
        }
    }
    assert!(
        leaks.is_empty(),
        "config errors echo the (expanded) value:\n{}",
        leaks.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// mcpgate tools
// ---------------------------------------------------------------------------------------------

/// 8 hex digits of SHA-256(server ‖ 0 ‖ tool): the README's collision suffix.
fn short_hash(server: &str, tool: &str) -> String {
    let mut h = Sha256::new();
    h.update(server.as_bytes());
    h.update([0u8]);
    h.update(tool.as_bytes());
    h.finalize()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_hash_suffixed(name: &str, base: &str) -> bool {
    name.strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn tools_lists_prefixed_names_of_every_server() {
    let dir = TempDir::new("cli-tools");
    let path = write_config(
        &dir,
        &config(&[
            ("a", mock_stdio(&["--tools", "2"])),
            ("b", mock_stdio(&["--tools", "3"])),
        ]),
    );
    let mut cmd = mcpgate(&dir);
    cmd.args(["tools", "--config"]).arg(&path);
    let out = run(cmd);
    assert!(out.status.success(), "{}", out.describe());
    let names: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    for expected in [
        "a__echo",
        "a__add",
        "a__sleep",
        "a__tool_0001",
        "a__tool_0002",
        "b__echo",
        "b__add",
        "b__sleep",
        "b__tool_0001",
        "b__tool_0003",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} not listed: {}",
            out.describe()
        );
    }
    assert!(
        !names.contains(&"a__tool_0003"),
        "a has only 2 synthetic tools: {}",
        out.describe()
    );
    assert_eq!(names.len(), 11, "{}", out.describe());
    assert!(
        !out.stderr.to_ascii_lowercase().contains("collision"),
        "{}",
        out.describe()
    );
}

#[test]
fn tools_reports_collisions_without_prefixes() {
    let dir = TempDir::new("cli-tools-never");
    let mut cfg = config(&[
        ("a", mock_stdio(&["--tools", "1"])),
        ("b", mock_stdio(&["--tools", "1"])),
    ]);
    cfg["tool_prefix"] = json!("never");
    let path = write_config(&dir, &cfg);
    let mut cmd = mcpgate(&dir);
    cmd.args(["tools", "--config"]).arg(&path);
    let out = run(cmd);
    assert!(out.status.success(), "{}", out.describe());
    let names: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    for tool in ["echo", "add", "sleep", "tool_0001"] {
        // Both are kept: `a` (first in name order) under the plain name, `b` with its hash.
        assert!(
            names.contains(&tool),
            "{tool} not listed: {}",
            out.describe()
        );
        let suffixed: Vec<&&str> = names.iter().filter(|n| is_hash_suffixed(n, tool)).collect();
        assert_eq!(
            suffixed.len(),
            1,
            "{tool}: expected exactly one `{tool}_xxxxxxxx`: {}",
            out.describe()
        );
        assert_eq!(
            **suffixed[0],
            format!("{tool}_{}", short_hash("b", tool)),
            "{tool}: the suffix is not the stable hash of (b, {tool}): {}",
            out.describe()
        );
        assert!(
            out.stderr
                .lines()
                .any(|l| l.to_ascii_lowercase().contains("collision") && l.contains(tool)),
            "collision on {tool} not reported on stderr: {}",
            out.describe()
        );
    }
    assert_eq!(names.len(), 8, "{}", out.describe());
}

// ---------------------------------------------------------------------------------------------
// mcpgate serve: refusals
// ---------------------------------------------------------------------------------------------

async fn serve_refuses_a_port_in_use(driver: &str) {
    let dir = TempDir::new("cli-port");
    let path = write_config(&dir, &config(&[("mock", mock_stdio(&[]))]));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = taken.local_addr().expect("local addr").to_string();
    let mut cmd = mcpgate(&dir);
    cmd.args(["serve", "--config"]).arg(&path).args([
        "--listen",
        &addr,
        "--workers",
        "2",
        "--io-driver",
        driver,
    ]);
    let out = tokio::task::spawn_blocking(move || run(cmd))
        .await
        .expect("run task");
    assert!(!out.status.success(), "{}", out.describe());
    assert!(out.stderr.contains("already in use"), "{}", out.describe());
    assert!(
        !out.stdout.contains("listening on"),
        "claims to listen on a taken port: {}",
        out.describe()
    );
    // The port's owner is undisturbed.
    let client = std::net::TcpStream::connect(&addr).expect("connect to the holder");
    let (_accepted, _) = taken.accept().expect("the holder still accepts");
    drop(client);
}

#[test]
fn serve_refuses_a_non_loopback_address_without_access_control() {
    let dir = TempDir::new("cli-loopback");
    let path = write_config(&dir, &config(&[("mock", mock_stdio(&[]))]));
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let mut cmd = mcpgate(&dir);
        cmd.args(["serve", "--config"]).arg(&path).args([
            "--listen",
            listen,
            "--io-driver",
            "epoll",
        ]);
        let out = run(cmd);
        assert!(!out.status.success(), "{listen}: {}", out.describe());
        assert!(
            out.stderr.contains("loopback"),
            "{listen}: {}",
            out.describe()
        );
        assert!(
            !out.stdout.contains("listening on"),
            "{listen}: {}",
            out.describe()
        );
    }
    // The same from the config file.
    let mut cfg = config(&[("mock", mock_stdio(&[]))]);
    cfg["listen"] = json!("0.0.0.0:0");
    let path = write_config(&dir, &cfg);
    let mut cmd = mcpgate(&dir);
    cmd.args(["serve", "--config"])
        .arg(&path)
        .args(["--io-driver", "epoll"]);
    let out = run(cmd);
    assert!(!out.status.success(), "{}", out.describe());
    assert!(out.stderr.contains("loopback"), "{}", out.describe());
}

#[test]
fn serve_rejects_an_unknown_io_driver() {
    let dir = TempDir::new("cli-driver");
    let path = write_config(&dir, &config(&[("mock", mock_stdio(&[]))]));
    let mut cmd = mcpgate(&dir);
    cmd.args(["serve", "--config"]).arg(&path).args([
        "--listen",
        "127.0.0.1:0",
        "--io-driver",
        "bogus",
    ]);
    let out = run(cmd);
    // clap's usage errors exit with 2.
    assert_eq!(out.status.code(), Some(2), "{}", out.describe());
    assert!(out.stderr.contains("bogus"), "{}", out.describe());
    assert!(out.stderr.contains("--io-driver"), "{}", out.describe());
    assert!(!out.stdout.contains("listening on"), "{}", out.describe());
}

// ---------------------------------------------------------------------------------------------
// mcpgate serve: SIGTERM
// ---------------------------------------------------------------------------------------------

/// A serving gateway whose exit status the test reads itself; its process group is killed on
/// drop if the test did not reap it.
struct Serving {
    child: Option<Child>,
    ready: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// The thread copying stderr; it ends at EOF.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Serving {
    fn start(driver: &str, dir: &TempDir, config_path: &std::path::Path) -> Serving {
        let mut cmd = mcpgate(dir);
        cmd.args(["serve", "--config"]).arg(config_path).args([
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--io-driver",
            driver,
        ]);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec. The
        // gateway dies with the test thread if the test binary aborts.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn mcpgate serve");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr piped");
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if line.starts_with("mcpgate: listening on ") {
                    let _ = tx.send(line);
                    break;
                }
            }
            // Keep draining so the gateway never blocks on a full pipe.
            for _ in lines {}
        });
        let mut serving = Serving {
            child: Some(child),
            ready: String::new(),
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        serving.ready = rx
            .recv_timeout(READY_TIMEOUT)
            .unwrap_or_else(|_| panic!("no ready line\n{}", serving.stderr_text()));
        serving
    }

    fn pid(&self) -> libc::pid_t {
        self.child.as_ref().expect("running").id() as libc::pid_t
    }

    fn addr(&self) -> String {
        self.ready
            .trim_start_matches("mcpgate: listening on http://")
            .trim_end_matches("/mcp")
            .trim()
            .to_string()
    }

    /// All of stderr, once the process has exited and closed it.
    fn stderr_to_end(&mut self) -> String {
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().expect("stderr reader");
        }
        self.stderr_text()
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to exit (bounded) and reaps it.
    fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let (tx, rx) = mpsc::channel();
        let pid = child.id() as libc::pid_t;
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(EXIT_TIMEOUT) {
            Ok(status) => status.expect("wait for mcpgate"),
            Err(_) => {
                // SAFETY: our own child's process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                panic!(
                    "mcpgate did not exit within {EXIT_TIMEOUT:?} of SIGTERM\n{}",
                    self.stderr_text()
                );
            }
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if std::thread::panicking() {
                eprintln!("--- mcpgate stderr ---\n{}", self.stderr_text());
            }
            let pid = child.id() as libc::pid_t;
            // SAFETY: our own child's process group; it is not reaped yet.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

/// The pids whose parent is `ppid`, from `/proc/*/stat`.
fn children_of(ppid: libc::pid_t) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // gone meanwhile
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let _state = fields.next();
        if fields.next().and_then(|p| p.parse().ok()) == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

fn cmdline(pid: libc::pid_t) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Whether `pid` names no process at all (`kill(pid, 0)` fails with ESRCH).
fn is_gone(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

async fn sigterm_stops_the_gateway_and_its_children(driver: &str) {
    let dir = TempDir::new("cli-sigterm");
    let path = write_config(
        &dir,
        &config(&[("mock", mock_stdio(&[])), ("other", mock_stdio(&[]))]),
    );
    let mut gw = Serving::start(driver, &dir, &path);

    // It serves (a whole session through one of the upstreams)...
    let session = RawSession::open(&gw.addr()).await;
    let reply = session
        .request(
            "tools/call",
            json!({ "name": "mock__echo", "arguments": { "message": "before SIGTERM" } }),
        )
        .await;
    assert!(
        reply["result"].to_string().contains("before SIGTERM"),
        "{reply}"
    );

    // ...with its stdio upstreams as child processes.
    let gateway_pid = gw.pid();
    let children: Vec<libc::pid_t> = children_of(gateway_pid)
        .into_iter()
        .filter(|&pid| cmdline(pid).contains("mock-upstream"))
        .collect();
    assert_eq!(
        children.len(),
        2,
        "expected the two mock upstreams as children of {gateway_pid}, found {children:?}\n{}",
        gw.stderr_text()
    );

    // SAFETY: signalling our own, unreaped child.
    assert_eq!(unsafe { libc::kill(gateway_pid, libc::SIGTERM) }, 0);
    let status = tokio::task::spawn_blocking(move || {
        let status = gw.wait();
        (status, gw)
    })
    .await
    .expect("wait task");
    let (status, mut gw) = status;
    assert!(
        status.success(),
        "mcpgate exited with {status:?} on SIGTERM\n{}",
        gw.stderr_text()
    );
    for pid in children {
        assert!(
            is_gone(pid),
            "upstream child {pid} ({}) outlived the gateway\n{}",
            cmdline(pid),
            gw.stderr_text()
        );
    }
    // The driver under test really ran (monoio can fall back to epoll silently).
    let log = gw.stderr_to_end();
    let wanted = if driver == "uring" {
        "io_uring"
    } else {
        "epoll"
    };
    assert!(
        log.lines()
            .any(|l| l.contains("driver") && l.contains(wanted)),
        "the gateway did not log that it ran the {wanted} driver\n{log}"
    );
}
