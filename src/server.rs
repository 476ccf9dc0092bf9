//! `egress serve`: wires the NodeSupervisor, the gRPC API and the HTTP server together and runs until the node
//! has drained. Takes its listeners and its shutdown signals from the caller, so tests can bind port 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use metrics_exporter_prometheus::PrometheusHandle;
use ractor::Actor;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};

use crate::actors::node::{NodeMessage, NodeSupervisor};
use crate::actors::reporter::StatusStore;
use crate::actors::NodeHealth;
use crate::api::Api;
use crate::config::Config;
use crate::proto::egress_server::EgressServer;

/// How long in-flight API calls (e.g. `--wait` watchers) get to finish after the node has stopped.
const API_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("output root {path}: {source}")]
    OutputRoot { path: PathBuf, source: std::io::Error },
    #[error("runtime dir {path}: {source}")]
    RuntimeDir { path: PathBuf, source: std::io::Error },
    #[error("cannot start the node actors: {0}")]
    Actors(String),
    #[error("shutdown did not finish within its deadline")]
    ShutdownDeadline,
}

/// What the node was asked to do by its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownSignal {
    /// SIGTERM: drain for `node.drain_timeout_secs`, then kill with `Shutdown`.
    Drain,
    /// SIGINT (or a second SIGTERM): kill with `Shutdown` at once.
    Immediate,
}

pub struct Listeners {
    pub api: TcpListener,
    pub http: TcpListener,
}

pub async fn run(
    mut cfg: Config,
    listeners: Listeners,
    metrics: PrometheusHandle,
    signals: impl Stream<Item = ShutdownSignal> + Unpin,
) -> Result<(), NodeError> {
    use std::os::unix::fs::PermissionsExt;
    let root = cfg.node.output_root.clone();
    std::fs::create_dir_all(&root).map_err(|source| NodeError::OutputRoot { path: root.clone(), source })?;
    cfg.node.output_root =
        root.canonicalize().map_err(|source| NodeError::OutputRoot { path: root.clone(), source })?;
    let runtime = cfg.runtime_dir();
    std::fs::create_dir_all(&runtime)
        .and_then(|()| std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)))
        .map_err(|source| NodeError::RuntimeDir { path: runtime.clone(), source })?;
    let cfg = Arc::new(cfg);

    let (peers_tx, peers_rx) = watch::channel(None);
    let (health_tx, health_rx) = watch::channel(NodeHealth::default());
    let supervisor = NodeSupervisor { cfg: cfg.clone(), store: Arc::new(StatusStore::default()), peers_tx, health_tx };
    let (node, node_handle) = Actor::spawn(None, supervisor, ()).await.map_err(|e| NodeError::Actors(e.to_string()))?;

    let api = Api::new(cfg.clone(), cfg.node.output_root.clone(), peers_rx, health_rx.clone());
    let (api_stop_tx, api_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let api_addr = listeners.api.local_addr().ok();
    let api_server = tokio::spawn(
        tonic::transport::Server::builder().add_service(EgressServer::new(api)).serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listeners.api),
            async {
                let _ = api_stop_rx.await;
            },
        ),
    );
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http_addr = listeners.http.local_addr().ok();
    let router = crate::http::router(metrics, health_rx, node.clone(), cfg.debug.fault_injection);
    let http_server = tokio::spawn(async move {
        axum::serve(listeners.http, router)
            .with_graceful_shutdown(async {
                let _ = http_stop_rx.await;
            })
            .await
    });
    info!(api = ?api_addr, http = ?http_addr, output_root = %cfg.node.output_root.display(), "Node ready.");

    let drain = Duration::from_secs(cfg.node.drain_timeout_secs);
    // However children behave, ending them takes at most their graces plus the ProcessActor's give-up delay;
    // past that (plus a margin) the node stops anyway and its children die with it (PR_SET_PDEATHSIG).
    let ending = Duration::from_secs(cfg.handler.stop_grace_secs + cfg.handler.term_grace_secs + 15);
    let mut hard_deadline: Option<tokio::time::Instant> = None;
    let mut signals = signals.fuse();
    let mut node_handle = node_handle;
    let mut forced = false;
    loop {
        let deadline = async {
            match hard_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut node_handle => break,
            () = deadline => {
                error!("Shutdown did not finish within its deadline; stopping the node with egresses still running.");
                forced = true;
                node.stop(Some("shutdown deadline".into()));
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut node_handle).await;
                break;
            }
            // An ended signal stream disables this branch (the pattern no longer matches).
            Some(sig) = signals.next() => {
                let timeout = match sig {
                    ShutdownSignal::Drain => {
                        info!(drain_timeout_secs = drain.as_secs(), "SIGTERM: draining.");
                        drain
                    }
                    ShutdownSignal::Immediate => {
                        info!("Immediate shutdown: ending every egress now.");
                        Duration::ZERO
                    }
                };
                let _ = node.cast(NodeMessage::Drain { timeout });
                let d = tokio::time::Instant::now() + timeout + ending;
                hard_deadline = Some(hard_deadline.map_or(d, |h| h.min(d)));
            }
        }
    }
    let _ = api_stop_tx.send(());
    if tokio::time::timeout(API_GRACE, api_server).await.is_err() {
        error!("API calls still open after the grace; closing them.");
    }
    let _ = http_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), http_server).await;
    if forced {
        return Err(NodeError::ShutdownDeadline);
    }
    info!("Node stopped.");
    Ok(())
}
