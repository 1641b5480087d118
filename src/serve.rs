//! `mcpgate serve`: start the upstreams, build the first registry, run the worker cores,
//! and stop cleanly on SIGINT/SIGTERM: drain the cores (`runtime::drain`: stop accepting,
//! finish requests in progress up to `shutdown_grace_ms`, end SSE streams), then stop the
//! upstreams' children. A second signal during the drain stops at once. The audit log thread
//! writes what is still queued before `serve` returns. With an `admin` block, the admin API
//! and `/metrics` are served on their own listener and thread.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::admin::metrics::{CoreMetrics, MetricsHub};
use crate::admin::{listener as admin_listener, AdminState};
use crate::audit::{AuditLog, AuditSenders, Recorder};
use crate::config::Config;
use crate::mcp::{
    announcements, subscriptions, McpService, ServiceSettings, SessionKeys, SessionVerifier,
};
use crate::registry::recovery::{spawn_recovery, Keeper, KeeperListeners};
use crate::registry::{PublishedRegistry, RegistryReader};
use crate::reload::ConfigReloader;
use crate::runtime::{
    bind_listeners, core_channel, drain, serve_on_workers_after, IoDriver, SpawnRefused,
};
use crate::upstream::start::start_upstreams;

/// Time given to stdio children to exit after their stdin closes, before signals.
const CHILD_GRACE: Duration = Duration::from_secs(3);
const HEARTBEAT: Duration = Duration::from_secs(15);

/// How often the config file's modification time is looked at.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// How often each core merges its metrics when it records nothing (so idle cores' figures,
/// calls in flight among them, stay current).
const METRICS_FLUSH: Duration = Duration::from_secs(1);

/// Longest the shutdown waits for the audit log thread to write what is queued (a sink that
/// hangs must not hold the exit).
const AUDIT_FLUSH_BOUND: Duration = Duration::from_secs(5);
/// Resource-update deliveries a core may have waiting before more are refused: a server can
/// send `notifications/resources/updated` at any rate, and a core busy with calls drains its
/// inbox only between them. A refused delivery is a hint lost (the client reads the resource
/// when it next hears of it), never a call.
const MAX_PENDING_DELIVERIES: usize = 4096;

/// Says once that resource updates are being refused; every one is a delivery lost.
fn undelivered_update(waiting: usize) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            waiting,
            "a worker core has {MAX_PENDING_DELIVERIES} resource-update deliveries waiting: a \
             server is sending notifications/resources/updated faster than they can be \
             delivered, and the excess is dropped (logged once)"
        );
    }
}

/// Serves until SIGINT or SIGTERM, then drains and stops the upstreams; `config_file` (when
/// the config came from one) is reloaded on SIGHUP and when it changes. An error says why
/// serving could not start, or that a second signal cut the drain short.
pub fn serve(config: Config, config_file: Option<PathBuf>, driver: IoDriver) -> Result<(), String> {
    if !config.listen.ip().is_loopback() && config.governance.keys.is_empty() {
        return Err(format!(
            "listen: {} is not a loopback address and no virtual_keys are configured; \
             anonymous access is only served on loopback (127.0.0.1 or [::1]): add \
             virtual_keys, or listen on a loopback address",
            config.listen
        ));
    }
    // Certificate and key are read before anything starts: a bad one is a config error.
    let tls = match &config.tls {
        Some(t) => Some(crate::tls::TlsAcceptor::new(
            crate::tls::listener_config(t).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    // The audit sinks too: an unusable path is a config error naming its key.
    let audit = AuditLog::start(&config.audit, config.access_log.as_ref())?;
    // What the admin API's audit route reads: the store this run writes, if any.
    let audit_store = config.audit.sqlite.clone().filter(|_| config.audit.enabled);
    match crate::runtime::raise_fd_limit() {
        Ok(n) => tracing::debug!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    // Bind before starting upstreams: a taken port should fail fast, before children spawn.
    let listeners = bind_listeners(config.listen, config.workers).map_err(|e| e.to_string())?;
    let local = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(config.listen);
    let admin_socket = match &config.admin {
        Some(admin) => Some(admin_listener::bind(admin.listen).map_err(|e| e.to_string())?),
        None => None,
    };
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    // Workers run first, not yet accepting: stdio servers' pipes are driven on their cores,
    // which start-up needs for the handshakes and listings. Each worker waits for its handler.
    let workers = listeners.len();
    let (cores, inboxes): (Vec<_>, Vec<_>) = (0..workers).map(|_| core_channel(driver)).unzip();
    let (go, waits): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| futures_channel::oneshot::channel::<Arc<WorkerStart>>())
        .unzip();
    let pending = Arc::new(std::sync::Mutex::new(
        inboxes.into_iter().zip(waits).map(Some).collect::<Vec<_>>(),
    ));
    serve_on_workers_after(
        listeners,
        driver,
        config.http_limits,
        config.busy_poll,
        tls.clone(),
        move |index| {
            let mine = pending
                .lock()
                .ok()
                .and_then(|mut p| p.get_mut(index).and_then(Option::take));
            async move {
                let (inbox, wait) = mine?;
                monoio::spawn(inbox.run());
                // Dropped without a start (start-up failed): this worker ends unserved.
                let start = wait.await.ok()?;
                let recorder = Rc::new(Recorder::new(
                    CoreMetrics::new(start.metrics.clone()),
                    start.audit.as_ref().map(AuditSenders::sender),
                ));
                monoio::spawn(flush_metrics(recorder.clone()));
                Some(McpService::with_recorder(
                    RegistryReader::new(start.registry.clone()),
                    SessionVerifier::new(start.sessions.clone()),
                    start.settings.clone(),
                    recorder,
                ))
            }
        },
    )
    .map_err(|e| format!("cannot start worker threads: {e}"))?;

    let started = start_upstreams(&config, driver, &cores)?;
    for c in started
        .snapshot
        .tools
        .collisions
        .iter()
        .chain(&started.snapshot.prompts.collisions)
    {
        tracing::warn!(name = %c.name, items = ?c.items, "name collision; later items got a hash suffix");
    }
    let sessions = SessionKeys::new(config.session_secret.clone(), config.session_ttl)
        .map_err(|e| format!("cannot set up session keys: {e}"))?;
    let tool_count = started.snapshot.tools.items.len();
    let registry = PublishedRegistry::new(started.snapshot);
    // Clients hear of list changes and of their subscriptions' updates on their GET streams,
    // on whichever core holds them.
    let (list_cores, update_cores) = (cores.clone(), cores.clone());
    let listeners = KeeperListeners {
        lists_changed: Box::new(move |lists: u8| {
            for core in &list_cores {
                let _ = core.spawn(move || async move { announcements::announce(lists) });
            }
        }),
        resource_updated: Box::new(move |server: &str, uri: &str| {
            for (session, client_uri) in subscriptions::subscribers(server, uri) {
                let params = serde_json::json!({ "uri": client_uri });
                let message = format!(
                    r#"{{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{params}}}"#
                );
                let message: Arc<[u8]> = message.into_bytes().into();
                for core in &update_cores {
                    let message = message.clone();
                    let sent = core.spawn_within(MAX_PENDING_DELIVERIES, move || async move {
                        announcements::deliver(session, message)
                    });
                    if let Err(SpawnRefused::Busy(waiting)) = sent {
                        undelivered_update(waiting);
                    }
                }
            }
        }),
    };
    let (keeper, _keeper_thread) = spawn_recovery(started.builder, registry.clone(), listeners)
        .map_err(|e| format!("cannot start the registry keeper thread: {e}"))?;
    let metrics = MetricsHub::new();
    if let Some(audit) = &audit {
        metrics.attach_audit(audit.stats());
    }
    let admin_registry = registry.clone();
    // The shutdown drains every worker core.
    let drained_cores = cores.clone();
    let start = Arc::new(WorkerStart {
        registry,
        sessions,
        settings: Arc::new(ServiceSettings {
            allowed_origins: config.allowed_origins.clone(),
            loopback_listener: local.ip().is_loopback(),
            heartbeat: HEARTBEAT,
            cores: cores.clone(),
        }),
        metrics: metrics.clone(),
        audit: audit.as_ref().map(AuditLog::senders),
    });
    for tx in go {
        if tx.send(start.clone()).is_err() {
            return Err("a worker thread stopped during start-up".to_owned());
        }
    }

    let mut reloader = config_file.map(|path| {
        ConfigReloader::new(
            path,
            config.clone(),
            cores.clone(),
            started.upstreams.clone(),
        )
    });
    if let (Some(socket), Some(admin)) = (admin_socket, &config.admin) {
        let addr = socket.addr;
        let state = Arc::new(AdminState {
            registry: admin_registry,
            keeper: keeper.clone(),
            metrics: metrics.clone(),
            reloads: reloader.as_ref().map(ConfigReloader::counts),
            driver,
            workers,
            started_at: std::time::SystemTime::now(),
            started: std::time::Instant::now(),
            audit_store: audit_store.clone(),
        });
        admin_listener::spawn(socket, state, admin.token, driver)
            .map_err(|e| format!("cannot start the admin listener thread: {e}"))?;
        if admin.token.is_none() {
            tracing::warn!(listen = %addr, "the admin API has no token: anything on this machine can use it (browsers excepted); set admin.token");
        }
        tracing::info!(listen = %addr, token = admin.token.is_some(), "admin API and /metrics are serving");
        println!("mcpgate: admin API on http://{addr}");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        listen = %local, workers = config.workers, io_driver = driver.as_str(), tools = tool_count,
        tls = tls.is_some(), "mcpgate is serving"
    );
    println!("mcpgate: listening on {scheme}://{local}/mcp");
    let signals = wait_for_stop(signals, &keeper, reloader.as_mut());
    let drained = drain::drain_cores(&drained_cores, config.shutdown_grace, &signals);
    let t = metrics.internal_time();
    // One line that perf scripts read; nanoseconds.
    tracing::info!(
        calls = t.count,
        p50_ns = t.p50,
        p90_ns = t.p90,
        p99_ns = t.p99,
        p999_ns = t.p999,
        max_ns = t.max,
        "gateway internal time"
    );
    if let Some(audit) = audit {
        let bound = if drained.interrupted {
            Duration::ZERO
        } else {
            AUDIT_FLUSH_BOUND
        };
        let (flushed, c) = audit.close(bound);
        if !flushed {
            tracing::warn!(
                bound_ms = bound.as_millis() as u64,
                "the audit log thread did not finish writing in time; what it had not written is lost"
            );
        }
        tracing::info!(
            written = c.written,
            dropped = c.dropped,
            sink_errors = c.sink_errors,
            access_written = c.access_written,
            access_dropped = c.access_dropped,
            "audit log closed"
        );
    }
    if drained.interrupted {
        // Asked twice: no grace for the children either (stdin closed, SIGTERM, SIGKILL).
        started.upstreams.shutdown(Duration::ZERO);
        return Err("stopped by a second signal before the drain finished".to_owned());
    }
    started.upstreams.shutdown(CHILD_GRACE);
    Ok(())
}

/// What each worker needs to build its handler once start-up is done.
struct WorkerStart {
    registry: Arc<PublishedRegistry>,
    sessions: Arc<SessionKeys>,
    settings: Arc<ServiceSettings>,
    metrics: Arc<MetricsHub>,
    /// Where each core gets its end of the audit queues, when the audit log runs.
    audit: Option<AuditSenders>,
}

/// Merges a core's metrics every [`METRICS_FLUSH`], for as long as the core runs.
async fn flush_metrics(recorder: Rc<Recorder>) {
    loop {
        monoio::time::sleep(METRICS_FLUSH).await;
        recorder.metrics.flush();
    }
}

/// Blocks until SIGINT or SIGTERM; meanwhile reloads the config on SIGHUP or a file change.
/// Returns where later signals arrive (a second stop signal cuts the drain short).
fn wait_for_stop(
    mut signals: signal_hook::iterator::Signals,
    keeper: &Keeper,
    mut reloader: Option<&mut ConfigReloader>,
) -> crossbeam_channel::Receiver<i32> {
    // Signals arrive on a thread of their own so this one can also look at the file.
    let (tx, rx) = crossbeam_channel::bounded::<i32>(16);
    let forwarded = std::thread::Builder::new()
        .name("mcpgate-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(sig).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = forwarded {
        tracing::error!(error = %e, "cannot start the signal thread; stopping");
        return rx;
    }
    loop {
        match rx.recv_timeout(CONFIG_POLL) {
            Ok(signal_hook::consts::SIGHUP) => match reloader.as_deref_mut() {
                Some(r) => r.reload(keeper),
                None => tracing::warn!("SIGHUP: the built-in config has no file to reload"),
            },
            Ok(sig) => {
                tracing::info!(signal = sig, "stopping");
                return rx;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Some(r) = reloader.as_deref_mut() {
                    r.reload_if_changed(keeper);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return rx,
        }
    }
}
