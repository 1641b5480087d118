//! `mcpgate serve`: start the upstreams, build the first registry, run the worker cores,
//! and stop cleanly on SIGINT/SIGTERM.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::http::serve_connection;
use crate::mcp::{McpService, ServiceSettings, SessionKeys, SessionVerifier};
use crate::registry::recovery::spawn_recovery;
use crate::registry::{PublishedRegistry, RegistryReader};
use crate::runtime::{bind_listeners, spawn_workers, IoDriver};
use crate::upstream::start::{start_upstreams, StartedUpstreams};

/// Time given to stdio children to exit after their stdin closes, before signals.
const CHILD_GRACE: Duration = Duration::from_secs(3);
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Serves until a termination signal; returns the process exit code.
pub fn serve(config: Config, driver: IoDriver) -> Result<(), String> {
    if !config.listen.ip().is_loopback() {
        return Err(format!(
            "listen: {} is not a loopback address and no virtual_keys are configured; \
             anonymous access is only served on loopback (127.0.0.1 or [::1])",
            config.listen
        ));
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

    let started = start_upstreams(&config, driver)?;
    for c in &started.snapshot.collisions {
        tracing::warn!(name = %c.name, tools = ?c.tools, "tool name collision; later tools got a hash suffix");
    }
    let sessions = SessionKeys::new(config.session_secret.clone(), config.session_ttl)
        .map_err(|e| format!("cannot set up session keys: {e}"))?;
    let tool_count = started.snapshot.tools.len();
    let registry = PublishedRegistry::new(started.snapshot);
    spawn_recovery(started.builder, registry.clone())
        .map_err(|e| format!("cannot start the recovery thread: {e}"))?;
    let settings = Arc::new(ServiceSettings {
        allowed_origins: config.allowed_origins.clone(),
        loopback_listener: true,
        heartbeat: HEARTBEAT,
    });
    let limits = config.http_limits;
    let listeners: Arc<std::sync::Mutex<Vec<Option<TcpListener>>>> = Arc::new(
        std::sync::Mutex::new(listeners.into_iter().map(Some).collect()),
    );
    let worker_registry = registry.clone();
    spawn_workers(config.workers, driver, move |index| {
        let listener = listeners
            .lock()
            .ok()
            .and_then(|mut l| l.get_mut(index).and_then(Option::take));
        let service = McpService::new(
            RegistryReader::new(worker_registry.clone()),
            SessionVerifier::new(sessions.clone()),
            settings.clone(),
        );
        async move {
            let Some(listener) = listener else {
                tracing::error!(worker = index, "no listener for this worker");
                return;
            };
            accept_loop(index, listener, std::rc::Rc::new(service), limits).await;
        }
    })
    .map_err(|e| format!("cannot start worker threads: {e}"))?;

    tracing::info!(
        listen = %local, workers = config.workers, io_driver = driver.as_str(), tools = tool_count,
        "mcpgate is serving"
    );
    println!("mcpgate: listening on http://{local}/mcp");
    wait_for_signal(signals);
    shutdown(&started.upstreams);
    Ok(())
}

fn wait_for_signal(mut signals: signal_hook::iterator::Signals) {
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "stopping");
    }
}

fn shutdown(upstreams: &StartedUpstreams) {
    upstreams.shutdown(CHILD_GRACE);
}

/// Accepts connections on one core and serves each on a task of its own.
async fn accept_loop(
    index: usize,
    listener: TcpListener,
    service: std::rc::Rc<McpService>,
    limits: crate::http::HttpLimits,
) {
    let listener = match monoio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "cannot register the listener");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                let service = service.clone();
                monoio::spawn(async move {
                    serve_connection(stream, &*service, limits).await;
                });
            }
            Err(e) => {
                // Out of descriptors or similar: back off briefly instead of spinning.
                tracing::warn!(worker = index, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
