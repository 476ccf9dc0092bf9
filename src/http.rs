//! The node's small HTTP server: `/metrics` (rendered from the installed Prometheus recorder), `/healthz`,
//! `/readyz`, and, only with `debug.fault_injection`, `POST /debug/crash/{actor}` and
//! `POST /debug/crash-process/{egress_id}` for supervision tests.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use ractor::ActorRef;
use tokio::sync::watch;

use crate::actors::node::{ChildKind, NodeMessage};
use crate::actors::NodeHealth;

#[derive(Clone)]
struct HttpState {
    metrics: PrometheusHandle,
    health: watch::Receiver<NodeHealth>,
    node: ActorRef<NodeMessage>,
}

pub fn router(
    metrics: PrometheusHandle,
    health: watch::Receiver<NodeHealth>,
    node: ActorRef<NodeMessage>,
    fault_injection: bool,
) -> Router {
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let mut router = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if fault_injection {
        router = router
            .route("/debug/crash/{actor}", post(crash))
            .route("/debug/crash-process/{egress_id}", post(crash_process));
    }
    router.with_state(HttpState { metrics, health, node })
}

async fn render_metrics(State(s): State<HttpState>) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (StatusCode::OK, [("content-type", "text/plain; version=0.0.4")], s.metrics.render())
}

async fn healthz(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    if s.health.borrow().actors_running {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "actors not running\n")
    }
}

async fn readyz(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    let h = *s.health.borrow();
    match (h.actors_running, h.accepting) {
        (true, true) => (StatusCode::OK, "ready\n"),
        (_, false) => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        (false, true) => (StatusCode::SERVICE_UNAVAILABLE, "actors restarting\n"),
    }
}

async fn crash_process(State(s): State<HttpState>, Path(egress_id): Path<String>) -> (StatusCode, String) {
    match s.node.cast(NodeMessage::CrashProcess(egress_id.into())) {
        Ok(()) => (StatusCode::ACCEPTED, "crashing the egress' ProcessActor\n".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}

async fn crash(State(s): State<HttpState>, Path(actor): Path<String>) -> (StatusCode, String) {
    match ChildKind::parse(&actor) {
        Some(kind @ (ChildKind::Monitor | ChildKind::Intake | ChildKind::Reporter)) => {
            match s.node.cast(NodeMessage::Crash(kind)) {
                Ok(()) => (StatusCode::ACCEPTED, format!("crashing {actor}\n")),
                Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
            }
        }
        _ => (StatusCode::BAD_REQUEST, "actor must be monitor, intake or reporter\n".into()),
    }
}
