//! EgressSupervisor: spawns one ProcessActor per admitted request, routes Stop to it, forwards its status reports
//! to the Reporter and its process group to the Monitor, and accounts for any ProcessActor that fails.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, info, warn};

use super::intake::IntakeMessage;
use super::monitor::MonitorMessage;
use super::node::NodeMessage;
use super::process::{signal_group, ProcessActor, ProcessArgs, ProcessMessage};
use super::queue::QueuedRequest;
use super::reporter::{ReporterMessage, StatusUpdate};
use super::{call, PeersRx};
use crate::config::Config;
use crate::metrics;
use crate::outcome::{KillReason, Status};
use crate::request::{EgressId, EgressType};

/// The most status updates sent to the Reporter in one acknowledged batch.
const MAX_BATCH: usize = 256;

/// How long the Reporter may take to acknowledge a batch of status updates.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a Stop for an egress that has left the queue but not yet reached us is remembered.
const PENDING_STOP_TTL: Duration = Duration::from_secs(30);

pub struct EgressSupervisor {
    pub cfg: Arc<Config>,
    pub peers: PeersRx,
    pub node: ActorRef<NodeMessage>,
}

struct Running {
    egress: EgressId,
    ty: EgressType,
    pgid: Option<i32>,
    process: ActorRef<ProcessMessage>,
}

#[derive(Default)]
pub struct EgressesState {
    running: HashMap<ActorId, Running>,
    by_egress: HashMap<EgressId, ActorId>,
    pending_stops: HashMap<EgressId, Instant>,
    /// Status updates not yet accepted by a Reporter (it may be restarting).
    backlog: VecDeque<StatusUpdate>,
    draining: bool,
    idle_reported: bool,
    /// A batch of the backlog is on its way to the Reporter.
    delivering: bool,
}

pub enum EgressesMessage {
    /// Launch an admitted request.
    Launch(Box<QueuedRequest>),
    /// Stop an egress (API); remembered briefly if it is between queue and launch.
    Stop(EgressId),
    /// A ProcessActor spawned its child (sent by the ProcessActor).
    Launched { egress: EgressId, pgid: Option<i32> },
    /// A status transition from a ProcessActor, for the Reporter.
    Status(StatusUpdate),
    /// The Monitor was restarted: send it every running egress again.
    ResyncMonitor,
    /// Stop intake-side launches; after `timeout` kill the rest with `Shutdown`. Tells the node when idle.
    Drain { timeout: Duration },
    /// Kill every running egress.
    KillAll(KillReason),
    /// Retry delivering the status backlog (periodic).
    Flush,
    /// Tell the node when a drain has nothing left to wait for.
    CheckIdle,
    /// Test-only: make one egress' ProcessActor fail.
    CrashProcess(EgressId),
    /// The Reporter applied the first `n` backlogged updates (0: delivery failed; retried on `Flush`).
    Delivered(usize),
}

impl Actor for EgressSupervisor {
    type Msg = EgressesMessage;
    type State = EgressesState;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<EgressesState, ActorProcessingErr> {
        myself.send_interval(Duration::from_millis(500), || EgressesMessage::Flush);
        Ok(EgressesState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut EgressesState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EgressesMessage::Launch(item) => self.launch(&myself, state, *item).await,
            EgressesMessage::Stop(egress) => match state.by_egress.get(&egress).and_then(|id| state.running.get(id)) {
                Some(r) => {
                    let _ = r.process.cast(ProcessMessage::Stop);
                }
                None => {
                    state.pending_stops.retain(|_, at| at.elapsed() < PENDING_STOP_TTL);
                    state.pending_stops.insert(egress, Instant::now());
                }
            },
            EgressesMessage::Launched { egress, pgid } => {
                if let Some(r) = state.by_egress.get(&egress).and_then(|id| state.running.get_mut(id)) {
                    r.pgid = pgid;
                    self.track(r);
                }
            }
            EgressesMessage::Status(update) => {
                state.backlog.push_back(update);
                self.flush(&myself, state);
            }
            EgressesMessage::Flush => {
                self.flush(&myself, state);
                // Through the mailbox, behind any final status still in it (see `ended`).
                let _ = myself.cast(EgressesMessage::CheckIdle);
            }
            EgressesMessage::CheckIdle => self.check_idle(&myself, state),
            EgressesMessage::Delivered(n) => {
                state.delivering = false;
                state.backlog.drain(..n.min(state.backlog.len()));
                if n > 0 {
                    self.flush(&myself, state);
                }
                let _ = myself.cast(EgressesMessage::CheckIdle);
            }
            EgressesMessage::ResyncMonitor => {
                for r in state.running.values() {
                    self.track(r);
                }
            }
            EgressesMessage::Drain { timeout } => {
                state.draining = true;
                info!(running = state.running.len(), timeout_secs = timeout.as_secs_f64(), "Draining egresses.");
                if timeout.is_zero() {
                    self.kill_all(state, KillReason::Shutdown);
                } else {
                    myself.send_after(timeout, || EgressesMessage::KillAll(KillReason::Shutdown));
                }
                let _ = myself.cast(EgressesMessage::CheckIdle);
            }
            EgressesMessage::KillAll(reason) => self.kill_all(state, reason),
            EgressesMessage::CrashProcess(egress) => {
                if let Some(r) = state.by_egress.get(&egress).and_then(|id| state.running.get(id)) {
                    let _ = r.process.cast(ProcessMessage::Crash);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut EgressesState,
    ) -> Result<(), ActorProcessingErr> {
        // Overridden so that one egress ending (or failing) never stops this supervisor.
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => self.ended(&myself, state, &cell, None),
            SupervisionEvent::ActorFailed(cell, err) => self.ended(&myself, state, &cell, Some(err.to_string())),
            _ => {}
        }
        Ok(())
    }
}

impl EgressSupervisor {
    async fn launch(&self, myself: &ActorRef<EgressesMessage>, state: &mut EgressesState, item: QueuedRequest) {
        let egress = item.egress_id.clone();
        let ty = item.request.egress_type();
        let refuse = if state.pending_stops.remove(&egress).is_some() {
            Some((Status::Aborted, "stopped before it was launched"))
        } else if state.draining {
            Some((Status::Aborted, "node shut down before it was launched"))
        } else {
            None
        };
        if let Some((status, why)) = refuse {
            info!(egress_id = %egress, why, "Not launching.");
            self.peer(|p| p.monitor.cast(MonitorMessage::Release(egress.clone())).ok());
            let mut update = StatusUpdate::new(egress, status);
            update.error = Some(why.into());
            state.backlog.push_back(update);
            self.flush(myself, state);
            return;
        }
        metrics::queue_wait(item.queued_at.elapsed().as_secs_f64());
        let actor = ProcessActor { cfg: self.cfg.clone(), parent: myself.clone(), peers: self.peers.clone() };
        let args = ProcessArgs { item, admitted_at: Instant::now() };
        match Actor::spawn_linked(None, actor, args, myself.get_cell()).await {
            Ok((process, _)) => {
                let id = process.get_id();
                state.by_egress.insert(egress.clone(), id);
                state.running.insert(id, Running { egress, ty, pgid: None, process });
            }
            Err(e) => {
                // No handler process exists. If `pre_start` ran, its state's Drop counted the result and sent a
                // final status, and the Reporter ignores this second one; if it did not, nothing was counted.
                error!(egress_id = %egress, error = %e, "ProcessActor failed to start.");
                self.peer(|p| p.monitor.cast(MonitorMessage::Release(egress.clone())).ok());
                let mut update = StatusUpdate::new(egress, Status::Failed);
                update.error = Some(format!("cannot start: {e}"));
                state.backlog.push_back(update);
                self.flush(myself, state);
            }
        }
    }

    fn ended(
        &self,
        myself: &ActorRef<EgressesMessage>,
        state: &mut EgressesState,
        cell: &ActorCell,
        failure: Option<String>,
    ) {
        let Some(r) = state.running.remove(&cell.get_id()) else {
            return;
        };
        state.by_egress.remove(&r.egress);
        if let Some(err) = failure {
            // Its state's Drop killed the child and counted the one result. ractor tells us before that Drop
            // runs, so the final status the Drop sends may come after an idle check: queue the same status here
            // (the Reporter ignores whichever arrives second).
            error!(egress_id = %r.egress, error = %err, "ProcessActor failed; its handler was killed.");
            signal_group(r.pgid, nix::sys::signal::Signal::SIGKILL);
            let mut update = StatusUpdate::new(r.egress.clone(), Status::Failed);
            update.result = Some(crate::outcome::HandlerResult::ProcessError);
            update.error = Some("the node lost track of this handler".into());
            state.backlog.push_back(update);
            self.flush(myself, state);
        }
        self.peer(|p| {
            let _ = p.monitor.cast(MonitorMessage::Forget(r.egress.clone()));
            p.intake.cast(IntakeMessage::Nudge).ok()
        });
        // Supervision events overtake ordinary messages: the ended actor's final status may still be in our
        // mailbox. A message to ourselves is handled after it.
        let _ = myself.cast(EgressesMessage::CheckIdle);
    }

    fn track(&self, r: &Running) {
        self.peer(|p| {
            p.monitor
                .cast(MonitorMessage::Track {
                    egress: r.egress.clone(),
                    ty: r.ty,
                    pgid: r.pgid,
                    process: r.process.clone(),
                })
                .ok()
        });
    }

    fn kill_all(&self, state: &mut EgressesState, reason: KillReason) {
        if !state.running.is_empty() {
            warn!(running = state.running.len(), reason = %reason.describe(), "Killing every running egress.");
        }
        for r in state.running.values() {
            let _ = r.process.cast(ProcessMessage::Kill(reason.clone()));
        }
    }

    /// During a drain, once nothing runs and every final status is with the Reporter, tell the node (once).
    fn check_idle(&self, myself: &ActorRef<EgressesMessage>, state: &mut EgressesState) {
        if !state.draining || state.idle_reported || !state.running.is_empty() {
            return;
        }
        self.flush(myself, state);
        if state.backlog.is_empty() && !state.delivering {
            state.idle_reported = true;
            let _ = self.node.cast(NodeMessage::EgressesIdle);
        }
    }

    /// Delivers the backlog to the Reporter in order, one batch at a time, in a task that waits for the
    /// Reporter's acknowledgement: an update leaves the backlog only once it was applied, so a Reporter that
    /// crashes with updates in its mailbox loses none (they are sent again; applying is idempotent).
    fn flush(&self, myself: &ActorRef<EgressesMessage>, state: &mut EgressesState) {
        metrics::status_backlog(state.backlog.len());
        if state.delivering || state.backlog.is_empty() {
            return;
        }
        let Some(reporter) = self.peers.borrow().as_ref().map(|p| p.reporter.clone()) else {
            return;
        };
        state.delivering = true;
        let batch: Vec<StatusUpdate> = state.backlog.iter().take(MAX_BATCH).cloned().collect();
        let me = myself.clone();
        tokio::spawn(async move {
            let n = batch.len();
            let delivered =
                match call(&reporter, "reporter", DELIVERY_TIMEOUT, |r| ReporterMessage::Apply(batch, r)).await {
                    Ok(()) => n,
                    Err(e) => {
                        warn!(error = %e, backlog = n, "Reporter unavailable; keeping status updates.");
                        0
                    }
                };
            let _ = me.cast(EgressesMessage::Delivered(delivered));
        });
    }

    fn peer<T>(&self, f: impl FnOnce(&super::Peers) -> Option<T>) -> Option<T> {
        self.peers.borrow().as_ref().and_then(f)
    }
}
