//! ReporterActor: persists every status transition of every egress and answers Get/List/Watch.
//!
//! The store it writes to outlives the actor (the NodeSupervisor owns it and hands it to each new
//! ReporterActor), so a restarted Reporter still knows every egress and every watcher keeps its channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::broadcast;
use tracing::{debug, info};

use crate::metrics;
use crate::outcome::{HandlerResult, Status};
use crate::proto;
use crate::request::{EgressId, EgressType};

/// Everything known about one egress.
#[derive(Debug, Clone, PartialEq)]
pub struct EgressRecord {
    pub egress_id: EgressId,
    pub ty: EgressType,
    pub status: Status,
    pub result: Option<HandlerResult>,
    pub error: String,
    pub queued_at_ms: i64,
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    pub duration_secs: f64,
    pub size_bytes: u64,
    /// Outputs as shown to users (stream keys redacted).
    pub outputs: Vec<String>,
}

impl EgressRecord {
    pub fn queued(egress_id: EgressId, ty: EgressType, outputs: Vec<String>) -> Self {
        Self {
            egress_id,
            ty,
            status: Status::Queued,
            result: None,
            error: String::new(),
            queued_at_ms: now_ms(),
            started_at_ms: 0,
            ended_at_ms: 0,
            duration_secs: 0.0,
            size_bytes: 0,
            outputs,
        }
    }

    pub fn to_proto(&self) -> proto::EgressInfo {
        proto::EgressInfo {
            egress_id: self.egress_id.to_string(),
            status: self.status.to_proto() as i32,
            r#type: self.ty.as_str().to_string(),
            result: self.result.map(|r| r.as_str().to_string()).unwrap_or_default(),
            error: self.error.clone(),
            queued_at_ms: self.queued_at_ms,
            started_at_ms: self.started_at_ms,
            ended_at_ms: self.ended_at_ms,
            duration_secs: self.duration_secs,
            size_bytes: self.size_bytes,
            outputs: self.outputs.clone(),
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// One status transition.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub egress_id: EgressId,
    pub status: Status,
    /// Set with the final status of a launched handler.
    pub result: Option<HandlerResult>,
    pub error: Option<String>,
    pub duration_secs: Option<f64>,
    pub size_bytes: Option<u64>,
}

impl StatusUpdate {
    pub fn new(egress_id: EgressId, status: Status) -> Self {
        Self { egress_id, status, result: None, error: None, duration_secs: None, size_bytes: None }
    }
}

/// The in-memory status store. Only the ReporterActor (one at a time) touches it; the mutex exists because the
/// store outlives one actor instance, and it is never held across an `.await`.
pub struct StatusStore {
    records: Mutex<HashMap<EgressId, EgressRecord>>,
    changes: broadcast::Sender<EgressRecord>,
}

impl Default for StatusStore {
    fn default() -> Self {
        Self { records: Mutex::new(HashMap::new()), changes: broadcast::channel(4096).0 }
    }
}

impl StatusStore {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<EgressId, EgressRecord>> {
        // A panic while holding the guard cannot leave a record half-written (every write is one insert).
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct ReporterActor {
    pub store: Arc<StatusStore>,
}

pub enum ReporterMessage {
    /// A new request was accepted and queued.
    Queued(EgressRecord, RpcReplyPort<()>),
    /// A status transition; repeated, backward and post-final transitions are ignored.
    Update(StatusUpdate),
    /// Transitions in order, acknowledged once all are applied (so the sender can retry after a crash).
    Apply(Vec<StatusUpdate>, RpcReplyPort<()>),
    /// One egress.
    Get(EgressId, RpcReplyPort<Option<EgressRecord>>),
    /// Every egress, oldest first.
    List(RpcReplyPort<Vec<EgressRecord>>),
    /// The current record and a receiver of every later change (of all egresses; the caller filters).
    Watch(EgressId, RpcReplyPort<Option<(EgressRecord, broadcast::Receiver<EgressRecord>)>>),
    /// Test-only: make this actor fail so the NodeSupervisor's restart can be observed.
    Crash,
}

impl Actor for ReporterActor {
    type Msg = ReporterMessage;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(&self, _myself: ActorRef<Self::Msg>, msg: Self::Msg, _: &mut ()) -> Result<(), ActorProcessingErr> {
        match msg {
            ReporterMessage::Queued(record, reply) => {
                self.store.records().insert(record.egress_id.clone(), record.clone());
                let _ = self.store.changes.send(record);
                metrics::status_update();
                let _ = reply.send(());
            }
            ReporterMessage::Update(update) => self.apply(update),
            ReporterMessage::Apply(updates, reply) => {
                for update in updates {
                    self.apply(update);
                }
                let _ = reply.send(());
            }
            ReporterMessage::Get(id, reply) => {
                let _ = reply.send(self.store.records().get(&id).cloned());
            }
            ReporterMessage::List(reply) => {
                let mut all: Vec<_> = self.store.records().values().cloned().collect();
                all.sort_by(|a, b| (a.queued_at_ms, &a.egress_id).cmp(&(b.queued_at_ms, &b.egress_id)));
                let _ = reply.send(all);
            }
            ReporterMessage::Watch(id, reply) => {
                // Subscribe before reading so no change between the two is missed.
                let rx = self.store.changes.subscribe();
                let current = self.store.records().get(&id).cloned();
                let _ = reply.send(current.map(|c| (c, rx)));
            }
            ReporterMessage::Crash => return Err("crash requested (fault injection)".into()),
        }
        Ok(())
    }
}

impl ReporterActor {
    fn apply(&self, update: StatusUpdate) {
        let changed = {
            let mut records = self.store.records();
            let Some(record) = records.get_mut(&update.egress_id) else {
                debug!(egress_id = %update.egress_id, "Status update for an unknown egress ignored.");
                return;
            };
            // `<=`: a batch delivered again after a Reporter crash repeats transitions already applied.
            if record.status.is_final() || (update.status <= record.status && !update.status.is_final()) {
                debug!(egress_id = %update.egress_id, from = record.status.as_str(), to = update.status.as_str(),
                    "Stale status update ignored.");
                return;
            }
            record.status = update.status;
            if update.status == Status::Starting && record.started_at_ms == 0 {
                record.started_at_ms = now_ms();
            }
            if update.status.is_final() {
                record.ended_at_ms = now_ms();
                record.result = update.result;
            }
            if let Some(e) = update.error {
                record.error = e;
            }
            if let Some(d) = update.duration_secs {
                record.duration_secs = d;
            }
            if let Some(s) = update.size_bytes {
                record.size_bytes = s;
            }
            record.clone()
        };
        if changed.status.is_final() {
            info!(egress_id = %changed.egress_id, status = changed.status.as_str(),
                result = changed.result.map(|r| r.as_str()).unwrap_or("-"), error = %changed.error, "Egress ended.");
        }
        metrics::status_update();
        let _ = self.store.changes.send(changed);
    }
}

#[cfg(test)]
mod tests;
