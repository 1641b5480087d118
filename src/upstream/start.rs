//! Bringing every configured upstream up at start: spawn or connect, handshake, list tools,
//! all servers at once and each bounded in time, so one slow or dead server never holds up
//! the others. Runs on the control thread.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::gate::CallGate;
use super::health::{Health, HealthState};
use super::http::HttpUpstream;
use super::listing::{list_server, ServerItems};
use super::sse_legacy::{SseSpec, SseUpstream};
use super::stdio::{StdioSpec, StdioUpstream};
use super::{InitializeInfo, Upstream, UpstreamError};
use crate::auth::Governance;
use crate::config::{Config, ServerConfig, Transport};
use crate::registry::{RegistryBuilder, RegistrySnapshot, ServerEntry, ServerListing};
use crate::runtime::{block_on, CoreHandle, IoDriver};

/// Longest line a stdio server may send.
const MAX_STDIO_LINE: usize = 64 << 20;
/// Calls in flight to one stdio or legacy SSE server beyond its clients' bound
/// (`max_concurrent_calls`, which the gate enforces): the gateway's own (health checks,
/// listings, `logging/setLevel`).
const INTERNAL_CALLS: usize = 64;

/// The upstreams running now, for shutdown: those started at start-up, plus those a config
/// reload added, minus those it removed (which are stopped by the reload's drain).
#[derive(Clone, Default)]
pub struct StartedUpstreams {
    upstreams: Arc<Mutex<Vec<Upstream>>>,
}

impl StartedUpstreams {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Upstream>> {
        self.upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add(&self, upstream: Upstream) {
        self.list().push(upstream);
    }

    pub fn remove(&self, upstream: &Upstream) {
        self.list().retain(|u| !u.same_as(upstream));
    }

    /// Stops every stdio child gracefully (in parallel) and every SSE stream.
    pub fn shutdown(&self, grace: Duration) {
        let upstreams: Vec<Upstream> = self.list().clone();
        let stops: Vec<_> = upstreams
            .into_iter()
            .filter_map(|u| match u {
                Upstream::Stdio(_) => std::thread::Builder::new()
                    .name("mcpgate-stop".into())
                    .spawn(move || u.shutdown(grace))
                    .ok(),
                other => {
                    other.shutdown(grace);
                    None
                }
            })
            .collect();
        for stop in stops {
            let _ = stop.join();
        }
    }
}

pub struct Started {
    pub snapshot: RegistrySnapshot,
    /// Holds the listings, for servers that come up later (see `recovery`).
    pub builder: RegistryBuilder,
    pub upstreams: StartedUpstreams,
}

fn create(
    server: &ServerConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    max_reply: usize,
    owner: &CoreHandle,
    workers: usize,
) -> Result<Upstream, String> {
    // The pending-call map and stdin queue are bounded a little above what the gate admits:
    // the gate is what clients meet; these only stop the gateway's own calls piling up.
    let max_in_flight = CallGate::new(server.calls, workers)
        .total()
        .saturating_add(INTERNAL_CALLS);
    match &server.transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => Ok(Upstream::Stdio(StdioUpstream::start(
            StdioSpec {
                name: server.name.clone(),
                command: command.clone(),
                args: args.clone(),
                env: env.clone(),
                cwd: cwd.clone(),
                max_line_bytes: MAX_STDIO_LINE.max(max_reply),
                max_in_flight,
            },
            owner.clone(),
        ))),
        Transport::Http { url, headers } => {
            HttpUpstream::with_tls(&server.name, url, headers.clone(), max_reply, tls).map(|h| {
                h.follow_server_stream_on(owner.clone());
                Upstream::Http(Arc::new(h))
            })
        }
        Transport::Sse { url, headers } => SseUpstream::start(
            SseSpec {
                name: server.name.clone(),
                url: url.clone(),
                headers: headers.clone(),
                max_event_bytes: max_reply,
                max_in_flight,
                tls,
            },
            owner,
        )
        .map(Upstream::Sse),
    }
}

/// A server's config and its upstream, or why it could not be created.
pub type Created = (ServerConfig, Result<Upstream, String>);

/// Creates the upstreams of `servers` (spawns stdio children, opens SSE streams) without
/// waiting for them, spread over `cores`; for servers a config reload adds. A server that
/// cannot be created at all (a bad URL) is returned with the reason.
pub fn create_upstreams(
    servers: &[ServerConfig],
    max_reply: usize,
    cores: &[CoreHandle],
) -> Result<Vec<Created>, String> {
    if cores.is_empty() {
        return Err("no core to drive stdio servers on".to_owned());
    }
    let tls = crate::tls::check_upstreams(servers).map_err(|e| e.to_string())?;
    Ok(servers
        .iter()
        .zip(tls)
        .enumerate()
        .map(|(i, (s, tls))| {
            (
                s.clone(),
                create(s, tls, max_reply, &cores[i % cores.len()], cores.len()),
            )
        })
        .collect())
}

/// Starts every server, waits for each at most the smaller of `startup_timeout` and its own
/// `timeout_ms`, and builds the first snapshot. Servers that fail are kept with their error, so
/// calls to them fail fast naming them, until `recovery` brings them in. Stdio servers' pipes
/// and SSE servers' streams are spread over `cores` (the worker cores when serving), one core
/// per server.
pub fn start_upstreams(
    config: &Config,
    driver: IoDriver,
    cores: &[CoreHandle],
) -> Result<Started, String> {
    if cores.is_empty() {
        return Err("no core to drive stdio servers on".to_owned());
    }
    let bound = config.startup_timeout;
    // A CA file that cannot be read is a config error: refuse to start, as for any other.
    let tls = crate::tls::check_upstreams(&config.servers).map_err(|e| e.to_string())?;
    let created: Vec<Created> = config
        .servers
        .iter()
        .zip(tls)
        .enumerate()
        .map(|(i, (s, tls))| {
            let core = &cores[i % cores.len()];
            (
                s.clone(),
                create(s, tls, config.max_upstream_reply_bytes, core, cores.len()),
            )
        })
        .collect();

    // Stdio and SSE handshakes run on their own and block their waiter; wait for all of
    // them in parallel threads.
    let waits: Vec<_> = created
        .iter()
        .map(|(cfg, up)| {
            type WaitReady =
                Box<dyn FnOnce(Duration) -> Result<InitializeInfo, UpstreamError> + Send>;
            let wait_ready: WaitReady = match up {
                Ok(Upstream::Stdio(s)) => {
                    let s = s.clone();
                    Box::new(move |wait| s.wait_ready(wait))
                }
                Ok(Upstream::Sse(s)) => {
                    let s = s.clone();
                    Box::new(move |wait| s.wait_ready(wait))
                }
                _ => return Err(String::new()),
            };
            let name = cfg.name.clone();
            let wait = bound.min(cfg.timeout);
            std::thread::Builder::new()
                .name("mcpgate-start".into())
                .spawn(move || wait_ready(wait).map(|_| ()).map_err(|e| e.to_string()))
                .map_err(move |e| format!("{name}: cannot start a waiter thread: {e}"))
        })
        .collect();
    let mut ready: Vec<Result<(), String>> = Vec::with_capacity(created.len());
    for (wait, (_, up)) in waits.into_iter().zip(&created) {
        ready.push(match (wait, up) {
            (Ok(handle), _) => handle
                .join()
                .unwrap_or_else(|_| Err("the start-up waiter panicked".into())),
            (Err(e), Ok(Upstream::Stdio(_) | Upstream::Sse(_))) => Err(e),
            (Err(_), Ok(_)) => Ok(()),
            (Err(_), Err(e)) => Err(e.clone()),
        });
    }

    let listings = block_on(driver, || async {
        let mut tasks = Vec::with_capacity(created.len());
        for ((cfg, up), ready) in created.iter().zip(ready) {
            let cfg = cfg.clone();
            let up = up.clone();
            tasks.push(monoio::spawn(async move {
                let up = up?;
                ready?;
                let wait = bound.min(cfg.timeout);
                let listed = monoio::time::timeout(wait, async {
                    if let Upstream::Http(h) = &up {
                        h.initialize().await.map_err(|e| e.to_string())?;
                    }
                    list_server(&up, &cfg.name, wait)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await;
                match listed {
                    Ok(r) => r.map(|items| (up, items)),
                    Err(_) => Err(format!("no answer within {} ms at start", wait.as_millis())),
                }
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await);
        }
        super::pool::drop_idle_connections();
        out
    })
    .map_err(|e| format!("cannot start the control runtime: {e}"))?;

    let upstreams = StartedUpstreams::default();
    let mut entries = Vec::with_capacity(created.len());
    for ((cfg, up), listed) in created.into_iter().zip(listings) {
        if let Ok(u) = &up {
            upstreams.add(u.clone());
        }
        let (upstream, items, error) = match (up, listed) {
            (_, Ok((u, items))) => {
                tracing::info!(
                    server = %cfg.name, tools = items.tools.len(), prompts = items.prompts.len(),
                    "upstream ready"
                );
                (Some(u), items, None)
            }
            (up, Err(e)) => {
                tracing::error!(server = %cfg.name, error = %e, "upstream failed to start; serving without it until it comes up");
                (up.ok(), ServerItems::default(), Some(e))
            }
        };
        let Some(upstream) = upstream else {
            // The server could not even be created (bad URL, unresolvable host): nothing to call.
            tracing::error!(server = %cfg.name, "upstream is not usable and is left out");
            continue;
        };
        entries.push(ServerListing {
            server: Arc::new(ServerEntry {
                name: cfg.name.clone(),
                upstream,
                timeout: cfg.timeout,
                filter: cfg.tools.clone(),
                health: Arc::new(match &error {
                    None => Health::new(HealthState::Healthy, None),
                    Some(e) => Health::new(HealthState::Backoff, Some(e.clone())),
                }),
                policy: cfg.health,
                gate: Arc::new(CallGate::new(cfg.calls, cores.len())),
                error,
            }),
            items,
        });
    }
    let governance = Arc::new(
        Governance::new(&config.governance, None, config.workers)
            .map_err(|e| format!("limits: {e}"))?,
    );
    let mut builder = RegistryBuilder::new(
        governance,
        config.tool_prefix,
        config.tools_page_size,
        entries,
    );
    let snapshot = builder.build();
    Ok(Started {
        snapshot,
        builder,
        upstreams,
    })
}
