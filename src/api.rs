//! The gRPC API (`egress.v1.Egress`): validates requests at the edge, queues them, and answers from the
//! Reporter's store. It holds no state of its own: it talks to the actors through the current [`Peers`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::sync::{broadcast, watch};
use tonic::{Request, Response, Status};
use tracing::info;

use crate::actors::egresses::EgressesMessage;
use crate::actors::intake::IntakeMessage;
use crate::actors::queue::{QueueMessage, QueuedRequest};
use crate::actors::reporter::{EgressRecord, ReporterMessage, StatusUpdate};
use crate::actors::{call, CallError, NodeHealth, Peers, PeersRx};
use crate::config::Config;
use crate::outcome;
use crate::proto::{self, egress_server::Egress};
use crate::request::{EgressId, EgressRequest, Limits, RequestError};

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Api {
    cfg: Arc<Config>,
    /// The output root as an absolute path, for validation.
    output_root: std::path::PathBuf,
    peers: PeersRx,
    health: watch::Receiver<NodeHealth>,
}

impl Api {
    pub fn new(
        cfg: Arc<Config>,
        output_root: std::path::PathBuf,
        peers: PeersRx,
        health: watch::Receiver<NodeHealth>,
    ) -> Self {
        Self { cfg, output_root, peers, health }
    }

    fn peers(&self) -> Result<Peers, Status> {
        self.peers.borrow().clone().ok_or_else(|| Status::unavailable("node is starting"))
    }

    async fn record(&self, peers: &Peers, id: &EgressId) -> Result<EgressRecord, Status> {
        call(&peers.reporter, "reporter", CALL_TIMEOUT, |r| ReporterMessage::Get(id.clone(), r))
            .await
            .map_err(unavailable)?
            .ok_or_else(|| Status::not_found(format!("no egress {id}")))
    }
}

fn unavailable(e: CallError) -> Status {
    Status::unavailable(e.to_string())
}

fn invalid(e: RequestError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn egress_id(raw: &str) -> Result<EgressId, Status> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(Status::invalid_argument("invalid egress_id: expected an id like EG_3f2a9c1d7b4e"));
    }
    Ok(EgressId::from(raw.to_string()))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<proto::EgressInfo, Status>> + Send>>;

#[tonic::async_trait]
impl Egress for Api {
    async fn start(&self, request: Request<proto::StartRequest>) -> Result<Response<proto::EgressInfo>, Status> {
        let raw = request.into_inner();
        let limits = Limits { output_root: &self.output_root, fault_injection: self.cfg.debug.fault_injection };
        let parsed = EgressRequest::from_proto(&raw, &limits).map_err(invalid)?;
        let ty = parsed.egress_type();
        let cost = self.cfg.monitor.cpu_cost_cores(ty);
        let capacity = self.cfg.cpus() * self.cfg.monitor.max_cpu_utilization;
        if cost > capacity + 1e-9 {
            return Err(Status::failed_precondition(format!(
                "a {} egress costs {cost} cores, more than this node's capacity of {capacity:.2} cores \
                 (monitor.cpu_cost_{}_cores, monitor.max_cpu_utilization)",
                ty.as_str(),
                ty.as_str()
            )));
        }
        if !self.health.borrow().accepting {
            return Err(Status::unavailable("node is draining or not ready; not accepting new egresses"));
        }
        let peers = self.peers()?;
        let id = EgressId::new();
        let record = EgressRecord::queued(id.clone(), ty, parsed.outputs_display());
        let info = record.to_proto();
        call(&peers.reporter, "reporter", CALL_TIMEOUT, |r| ReporterMessage::Queued(record, r))
            .await
            .map_err(unavailable)?;
        let item = QueuedRequest { egress_id: id.clone(), request: parsed, raw, queued_at: Instant::now() };
        info!(egress_id = %id, r#type = ty.as_str(), outputs = ?info.outputs, "Egress queued.");
        peers.queue.cast(QueueMessage::Push(item)).map_err(|e| Status::unavailable(format!("queue: {e}")))?;
        let _ = peers.intake.cast(IntakeMessage::Nudge);
        Ok(Response::new(info))
    }

    async fn stop(&self, request: Request<proto::StopRequest>) -> Result<Response<proto::EgressInfo>, Status> {
        let id = egress_id(&request.into_inner().egress_id)?;
        let peers = self.peers()?;
        let record = self.record(&peers, &id).await?;
        if record.status.is_final() {
            return Ok(Response::new(record.to_proto()));
        }
        let withdrawn = call(&peers.queue, "queue", CALL_TIMEOUT, |r| QueueMessage::Take(id.clone(), r))
            .await
            .map_err(unavailable)?;
        if withdrawn.is_some() {
            let mut update = StatusUpdate::new(id.clone(), outcome::Status::Aborted);
            update.error = Some("stopped while queued".into());
            // Applied before answering, so the reply shows ABORTED; nobody else updates a withdrawn request.
            if let Err(e) =
                call(&peers.reporter, "reporter", CALL_TIMEOUT, |r| ReporterMessage::Apply(vec![update.clone()], r))
                    .await
            {
                tracing::warn!(egress_id = %id, error = %e, "Reporter busy; status goes through the backlog.");
                let _ = peers.egresses.cast(EgressesMessage::Status(update));
            }
            info!(egress_id = %id, "Queued egress withdrawn.");
        } else {
            peers.egresses.cast(EgressesMessage::Stop(id.clone())).map_err(|e| Status::unavailable(e.to_string()))?;
        }
        Ok(Response::new(self.record(&peers, &id).await?.to_proto()))
    }

    async fn get(&self, request: Request<proto::GetRequest>) -> Result<Response<proto::EgressInfo>, Status> {
        let id = egress_id(&request.into_inner().egress_id)?;
        let peers = self.peers()?;
        Ok(Response::new(self.record(&peers, &id).await?.to_proto()))
    }

    async fn list(&self, _request: Request<proto::ListRequest>) -> Result<Response<proto::ListResponse>, Status> {
        let peers = self.peers()?;
        let all = call(&peers.reporter, "reporter", CALL_TIMEOUT, ReporterMessage::List).await.map_err(unavailable)?;
        Ok(Response::new(proto::ListResponse { items: all.iter().map(EgressRecord::to_proto).collect() }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<proto::GetRequest>) -> Result<Response<WatchStream>, Status> {
        let id = egress_id(&request.into_inner().egress_id)?;
        let peers = self.peers()?;
        let (current, mut rx) =
            call(&peers.reporter, "reporter", CALL_TIMEOUT, |r| ReporterMessage::Watch(id.clone(), r))
                .await
                .map_err(unavailable)?
                .ok_or_else(|| Status::not_found(format!("no egress {id}")))?;
        let reporter_peers = self.peers.clone();
        let stream = async_stream(move |tx| async move {
            let mut last = current.status;
            if tx.send(Ok(current.to_proto())).await.is_err() || last.is_final() {
                return;
            }
            loop {
                match rx.recv().await {
                    Ok(rec) if rec.egress_id == id => {
                        last = rec.status;
                        if tx.send(Ok(rec.to_proto())).await.is_err() || last.is_final() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Changes were dropped under load: catch up from the store.
                        let Some(p) = reporter_peers.borrow().clone() else {
                            continue;
                        };
                        if let Ok(Some(rec)) =
                            call(&p.reporter, "reporter", CALL_TIMEOUT, |r| ReporterMessage::Get(id.clone(), r)).await
                        {
                            if rec.status != last {
                                last = rec.status;
                                if tx.send(Ok(rec.to_proto())).await.is_err() || last.is_final() {
                                    return;
                                }
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let _ = tx.send(Err(Status::unavailable("node is shutting down"))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task through a small channel.
fn async_stream<F, Fut>(f: F) -> WatchStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<proto::EgressInfo, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
