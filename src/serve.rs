//! `mcpgate serve`: start the upstreams, build the first registry, run the worker cores,
//! and stop cleanly on SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use crate::admin::metrics::{CoreMetrics, MetricsHub};
use crate::config::Config;
use crate::mcp::{
    announcements, subscriptions, McpService, ServiceSettings, SessionKeys, SessionVerifier,
};
use crate::registry::recovery::{spawn_recovery, KeeperListeners};
use crate::registry::{PublishedRegistry, RegistryReader};
use crate::runtime::{bind_listeners, core_channel, serve_on_workers_after, IoDriver};
use crate::upstream::start::{start_upstreams, StartedUpstreams};

/// Time given to stdio children to exit after their stdin closes, before signals.
const CHILD_GRACE: Duration = Duration::from_secs(3);
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Serves until SIGINT or SIGTERM, then stops the upstreams. An error says why serving could
/// not start.
pub fn serve(config: Config, driver: IoDriver) -> Result<(), String> {
    if !config.listen.ip().is_loopback() {
        return Err(format!(
            "listen: {} is not a loopback address and no virtual_keys are configured; \
             anonymous access is only served on loopback (127.0.0.1 or [::1])",
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
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
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
                Some(McpService::new(
                    RegistryReader::new(start.registry.clone()),
                    SessionVerifier::new(start.sessions.clone()),
                    start.settings.clone(),
                    CoreMetrics::new(start.metrics.clone()),
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
                    let _ =
                        core.spawn(move || async move { announcements::deliver(session, message) });
                }
            }
        }),
    };
    spawn_recovery(started.builder, registry.clone(), listeners)
        .map_err(|e| format!("cannot start the registry keeper thread: {e}"))?;
    let metrics = MetricsHub::new();
    let start = Arc::new(WorkerStart {
        registry,
        sessions,
        settings: Arc::new(ServiceSettings {
            allowed_origins: config.allowed_origins.clone(),
            loopback_listener: true,
            heartbeat: HEARTBEAT,
            cores,
        }),
        metrics: metrics.clone(),
    });
    for tx in go {
        if tx.send(start.clone()).is_err() {
            return Err("a worker thread stopped during start-up".to_owned());
        }
    }

    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        listen = %local, workers = config.workers, io_driver = driver.as_str(), tools = tool_count,
        tls = tls.is_some(), "mcpgate is serving"
    );
    println!("mcpgate: listening on {scheme}://{local}/mcp");
    wait_for_signal(signals);
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
    shutdown(&started.upstreams);
    Ok(())
}

/// What each worker needs to build its handler once start-up is done.
struct WorkerStart {
    registry: Arc<PublishedRegistry>,
    sessions: Arc<SessionKeys>,
    settings: Arc<ServiceSettings>,
    metrics: Arc<MetricsHub>,
}

fn wait_for_signal(mut signals: signal_hook::iterator::Signals) {
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "stopping");
    }
}

fn shutdown(upstreams: &StartedUpstreams) {
    upstreams.shutdown(CHILD_GRACE);
}
