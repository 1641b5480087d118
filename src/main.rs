//! The `mcpgate` command line: serve | check | tools | mock-upstream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use mcpgate::config::{self, Config, IoDriverChoice, Transport, UpstreamTls};
use mcpgate::mock::{MockConfig, MockServer};
use mcpgate::runtime::{bind_listeners, IoDriver};

#[global_allocator]
static GLOBAL: mcpgate::runtime::Mimalloc = mcpgate::runtime::Mimalloc;

#[derive(Parser)]
#[command(name = "mcpgate", version, about = "A fast, governed MCP gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DriverArg {
    Auto,
    Uring,
    Epoll,
}

/// Which server `mock-upstream` is.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProfileArg {
    /// The fast synthetic server: echo, add, sleep, tool_NNNN (and the fault tools).
    Default,
    /// Everything the MCP conformance suite's server scenarios check: tools that log, report
    /// progress and ask the client for sampling and elicitation, resources and templates,
    /// prompts, completions, sessions and SSE resumption. The synthetic-tool flags do not
    /// apply to it, and it runs on one worker.
    Conformance,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP clients on /mcp.
    Serve {
        /// Config file; default ./mcpgate.json if present, else the built-in mock config.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Worker threads, one per core by default (overrides the config).
        #[arg(long)]
        workers: Option<usize>,
        /// I/O driver (overrides the config).
        #[arg(long, value_enum)]
        io_driver: Option<DriverArg>,
    },
    /// Validate a config and print what would be served; exits non-zero on error.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Connect to every server and print the exposed tool names.
    Tools {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// A fast MCP server for tests and benchmarks.
    MockUpstream {
        /// Which server to run.
        #[arg(long, value_enum, default_value = "default")]
        profile: ProfileArg,
        /// Serve on stdin/stdout.
        #[arg(long, conflicts_with = "listen")]
        stdio: bool,
        /// Serve streamable HTTP on this address.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Synthetic tools besides echo, add and sleep.
        #[arg(long, default_value_t = 10)]
        tools: usize,
        /// Delay before answering each tools/call, in microseconds.
        #[arg(long, default_value_t = 0)]
        latency_us: u64,
        /// Bytes of text a synthetic tool returns.
        #[arg(long, default_value_t = 100)]
        reply_bytes: usize,
        /// Tools per tools/list page.
        #[arg(long, default_value_t = 100)]
        page_size: usize,
        /// Expose fault tools (fault_exit, fault_garbage, fault_hang).
        #[arg(long)]
        faults: bool,
        /// HTTP worker threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Busy-poll for this many microseconds after traffic instead of sleeping (0 = off).
        #[arg(long, default_value_t = 0)]
        busy_poll_us: u64,
        #[arg(long, value_enum, default_value = "auto")]
        io_driver: DriverArg,
    },
}

fn driver_choice(d: DriverArg) -> IoDriverChoice {
    match d {
        DriverArg::Auto => IoDriverChoice::Auto,
        DriverArg::Uring => IoDriverChoice::Uring,
        DriverArg::Epoll => IoDriverChoice::Epoll,
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCPGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a terminal: log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

/// Where the config comes from: a given path, ./mcpgate.json, or the built-in default (which
/// needs an in-process mock HTTP upstream; `start_mock` starts it and returns its URL).
fn load_config(
    path: Option<&Path>,
    start_mock: &dyn Fn() -> Result<String, String>,
) -> Result<(Config, Option<PathBuf>), String> {
    if let Some(p) = path {
        let cfg = config::load_file(p).map_err(|e| format!("config {}: {e}", p.display()))?;
        return Ok((cfg, Some(p.to_path_buf())));
    }
    let local = Path::new("mcpgate.json");
    if local.exists() {
        let cfg = config::load_file(local).map_err(|e| format!("config mcpgate.json: {e}"))?;
        return Ok((cfg, Some(local.to_path_buf())));
    }
    tracing::info!("no --config and no ./mcpgate.json: serving the built-in mock upstreams");
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot locate the mcpgate executable: {e}"))?;
    let exe = exe.to_string_lossy().into_owned();
    let mock_url = start_mock()?;
    config::parse_config(config::BUILTIN_DEFAULT, &|name| match name {
        "MCPGATE_EXE" => Some(exe.clone()),
        "MCPGATE_MOCK_HTTP_URL" => Some(mock_url.clone()),
        _ => std::env::var(name).ok(),
    })
    .map(|cfg| (cfg, None))
    .map_err(|e| format!("built-in config: {e}"))
}

/// Starts the mock upstream over HTTP on a loopback port in this process.
fn start_in_process_mock(driver: IoDriver) -> Result<String, String> {
    let listeners = bind_listeners("127.0.0.1:0".parse().map_err(|_| "bad address")?, 1)
        .map_err(|e| e.to_string())?;
    let addr = listeners[0].local_addr().map_err(|e| e.to_string())?;
    let server = Arc::new(MockServer::new(MockConfig::default()));
    mcpgate::mock::http::spawn_http_workers(server, listeners, driver, None)
        .map_err(|e| e.to_string())?;
    Ok(format!("http://{addr}/mcp"))
}

/// A URL as `check` shows it: without credentials (`user:pass@`) or query string.
fn shown_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

fn describe(cfg: &Config) {
    println!("listen: {}", cfg.listen);
    if let Some(tls) = &cfg.tls {
        println!(
            "tls: cert {}, key {}",
            tls.cert_path.display(),
            tls.key_path.display()
        );
    }
    println!("workers: {}", cfg.workers);
    println!("io_driver: {:?}", cfg.io_driver);
    println!("tool_prefix: {:?}", cfg.tool_prefix);
    println!("servers:");
    for s in &cfg.servers {
        match &s.transport {
            // Arguments, env values and header values may hold credentials: not printed.
            Transport::Stdio {
                command, args, env, ..
            } => println!(
                "  {}: stdio `{}` ({} args, env: [{}]), timeout {} ms",
                s.name,
                command,
                args.len(),
                env.iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                s.timeout.as_millis()
            ),
            Transport::Http { url, headers } | Transport::Sse { url, headers } => println!(
                "  {}: {} {} (headers: [{}]), timeout {} ms{}",
                s.name,
                if matches!(s.transport, Transport::Sse { .. }) {
                    "sse"
                } else {
                    "http"
                },
                shown_url(url),
                headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                s.timeout.as_millis(),
                match (&s.tls, url.starts_with("https://")) {
                    (_, false) => String::new(),
                    (t, true) if t.insecure_skip_verify => ", tls: NOT verified".to_owned(),
                    (
                        UpstreamTls {
                            ca_file: Some(ca), ..
                        },
                        true,
                    ) => format!(", tls: verified against {}", ca.display()),
                    (_, true) => ", tls: verified against the system roots".to_owned(),
                }
            ),
        }
    }
    describe_governance(&cfg.governance);
    if let Some(admin) = &cfg.admin {
        // The token's value is not kept; only whether one is set.
        let token = if admin.token.is_some() {
            "token set"
        } else {
            "no token (loopback only)"
        };
        println!("admin: {} ({token})", admin.listen);
    }
    describe_logs(cfg);
}

/// Where the audit log and the access log go.
fn describe_logs(cfg: &Config) {
    let a = &cfg.audit;
    let mut sinks = Vec::new();
    if let Some(db) = &a.sqlite {
        sinks.push(format!("sqlite {}", db.display()));
    }
    if let Some(jsonl) = &a.jsonl {
        sinks.push(format!(
            "jsonl {} (rotated at {} bytes, {} kept)",
            jsonl.display(),
            a.jsonl_max_bytes,
            a.jsonl_keep
        ));
    }
    if !a.enabled || sinks.is_empty() {
        println!("audit: off");
    } else {
        let arguments = if a.log_arguments {
            format!("recorded, redacting [{}]", a.redact.join(", "))
        } else {
            "not recorded".to_owned()
        };
        println!("audit: {}; arguments {arguments}", sinks.join(", "));
    }
    match &cfg.access_log {
        Some(l) => println!(
            "access_log: {} (rotated at {} bytes, {} kept)",
            l.path.display(),
            l.max_bytes,
            l.keep
        ),
        None => println!("access_log: off"),
    }
}

/// Keys by name (never their values), what they reach, and the tool groups.
fn describe_governance(g: &config::GovernanceConfig) {
    let grants = |lists: &config::governance::GrantLists| {
        let shown: Vec<String> = lists
            .iter()
            .map(|(server, names)| format!("{server}: [{}]", names.join(", ")))
            .collect();
        if shown.is_empty() {
            "nothing".to_owned()
        } else {
            shown.join("; ")
        }
    };
    if g.keys.is_empty() {
        println!("virtual_keys: none (anonymous access, loopback only)");
    } else {
        println!("virtual_keys:");
        for k in &g.keys {
            let team = k
                .team
                .as_deref()
                .map(|t| format!(", team {t}"))
                .unwrap_or_default();
            let groups = if k.groups.is_empty() {
                String::new()
            } else {
                format!(", groups [{}]", k.groups.join(", "))
            };
            println!("  {}: grants {}{groups}{team}", k.name, grants(&k.grants));
        }
    }
    if !g.groups.is_empty() {
        println!("groups:");
        for (name, lists) in &g.groups {
            println!("  {name} (/mcp/{name}): {}", grants(lists));
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            config,
            listen,
            workers,
            io_driver,
        } => {
            init_logging("info");
            let mut choice_override = io_driver.map(driver_choice);
            // The in-process mock (built-in config only) runs on the driver the gateway will use.
            let pre_driver = IoDriver::resolve(choice_override.unwrap_or(IoDriverChoice::Auto))
                .map_err(|e| e.to_string())?;
            let (mut cfg, file) =
                load_config(config.as_deref(), &|| start_in_process_mock(pre_driver))?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(w) = workers {
                if w == 0 {
                    return Err("--workers: expected at least 1".into());
                }
                cfg.workers = w;
            }
            let choice = choice_override.take().unwrap_or(cfg.io_driver);
            let driver = IoDriver::resolve(choice).map_err(|e| e.to_string())?;
            if choice == IoDriverChoice::Auto && driver == IoDriver::Epoll {
                tracing::warn!(
                    "io_uring is not available here (kernel or seccomp); running on epoll"
                );
            }
            tracing::info!(io_driver = driver.as_str(), "I/O driver selected");
            mcpgate::serve::serve(cfg, file, driver)
        }
        Command::Check { config } => {
            init_logging("warn");
            let (cfg, _) = load_config(config.as_deref(), &|| {
                Ok("http://127.0.0.1:1/mcp".to_owned())
            })?;
            // The files the config names are part of it: a certificate that cannot be read
            // fails `check` as it would fail `serve`.
            if let Some(tls) = &cfg.tls {
                mcpgate::tls::listener_config(tls).map_err(|e| e.to_string())?;
            }
            mcpgate::tls::check_upstreams(&cfg.servers).map_err(|e| e.to_string())?;
            describe(&cfg);
            println!("config ok");
            Ok(())
        }
        Command::Tools { config } => {
            init_logging("warn");
            let driver = IoDriver::resolve(IoDriverChoice::Auto).map_err(|e| e.to_string())?;
            let (cfg, _) = load_config(config.as_deref(), &|| start_in_process_mock(driver))?;
            let stdio_core =
                mcpgate::runtime::CoreHandle::dedicated("mcpgate-stdio", IoDriver::Epoll)
                    .map_err(|e| format!("cannot start the stdio thread: {e}"))?;
            let started = mcpgate::upstream::start::start_upstreams(
                &cfg,
                IoDriver::Epoll,
                std::slice::from_ref(&stdio_core),
            )?;
            for server in &started.snapshot.servers {
                if let Some(e) = &server.error {
                    eprintln!("{}: FAILED: {e}", server.name);
                }
            }
            for t in &started.snapshot.tools.items {
                println!("{}", t.name);
            }
            for c in &started.snapshot.tools.collisions {
                eprintln!("collision on {}: {:?}", c.name, c.items);
            }
            started
                .upstreams
                .shutdown(std::time::Duration::from_secs(2));
            Ok(())
        }
        Command::MockUpstream {
            profile: ProfileArg::Conformance,
            stdio,
            listen,
            workers,
            io_driver,
            ..
        } => {
            init_logging("warn");
            let driver = IoDriver::resolve(driver_choice(io_driver)).map_err(|e| e.to_string())?;
            if stdio {
                return mcpgate::mock::conformance::stdio::run_stdio(driver)
                    .map_err(|e| format!("mock-upstream: {e}"));
            }
            let Some(addr) = listen else {
                return Err("mock-upstream: give --stdio or --listen HOST:PORT".into());
            };
            if workers != 1 {
                // Sessions live in one worker's memory; a second worker would not know them.
                return Err("mock-upstream: --profile conformance runs on one worker".into());
            }
            let mut listeners = bind_listeners(addr, 1).map_err(|e| e.to_string())?;
            let listener = listeners
                .pop()
                .ok_or("mock-upstream: no listener was bound")?;
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            let handles = mcpgate::mock::conformance::http::spawn_http_worker(listener, driver)
                .map_err(|e| e.to_string())?;
            println!("mock-upstream: listening on http://{local}/mcp");
            for h in handles {
                let _ = h.join();
            }
            Ok(())
        }
        Command::MockUpstream {
            profile: ProfileArg::Default,
            stdio,
            listen,
            tools,
            latency_us,
            reply_bytes,
            page_size,
            faults,
            workers,
            busy_poll_us,
            io_driver,
        } => {
            init_logging("warn");
            let cfg = MockConfig {
                tools,
                latency_us,
                reply_bytes,
                page_size: page_size.max(1),
                faults,
            };
            if stdio {
                return mcpgate::mock::run_stdio(cfg).map_err(|e| format!("mock-upstream: {e}"));
            }
            let Some(addr) = listen else {
                return Err("mock-upstream: give --stdio or --listen HOST:PORT".into());
            };
            let driver = IoDriver::resolve(driver_choice(io_driver)).map_err(|e| e.to_string())?;
            let listeners = bind_listeners(addr, workers.max(1)).map_err(|e| e.to_string())?;
            let local = listeners[0].local_addr().map_err(|e| e.to_string())?;
            let handles = mcpgate::mock::http::spawn_http_workers(
                Arc::new(MockServer::new(cfg)),
                listeners,
                driver,
                (busy_poll_us > 0).then(|| std::time::Duration::from_micros(busy_poll_us)),
            )
            .map_err(|e| e.to_string())?;
            println!("mock-upstream: listening on http://{local}/mcp");
            for h in handles {
                let _ = h.join();
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpgate: {e}");
            ExitCode::FAILURE
        }
    }
}
