//! NodeSupervisor: starts the node-level actors, publishes their addresses, restarts a failed one with backoff
//! (running egresses go on), and runs the shutdown: drain, then `Kill(Shutdown)`, then stop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::egresses::{EgressSupervisor, EgressesMessage};
use super::intake::{IntakeActor, IntakeMessage};
use super::monitor::{MonitorActor, MonitorMessage};
use super::queue::{QueueActor, QueueMessage};
use super::reporter::{ReporterActor, ReporterMessage, StatusStore, StatusUpdate};
use super::{call, NodeHealth, Peers};
use crate::config::Config;
use crate::outcome::Status;

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A child that ran this long since its last restart starts again from the first backoff.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// The node-level actors the supervisor owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildKind {
    Queue,
    Reporter,
    Monitor,
    Intake,
    Egresses,
}

impl ChildKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queue" => Self::Queue,
            "reporter" => Self::Reporter,
            "monitor" => Self::Monitor,
            "intake" => Self::Intake,
            "egresses" => Self::Egresses,
            _ => return None,
        })
    }
}

pub struct NodeSupervisor {
    pub cfg: Arc<Config>,
    pub store: Arc<StatusStore>,
    pub peers_tx: watch::Sender<Option<Peers>>,
    pub health_tx: watch::Sender<NodeHealth>,
}

pub struct NodeState {
    queue: Option<ActorRef<QueueMessage>>,
    reporter: Option<ActorRef<ReporterMessage>>,
    monitor: Option<ActorRef<MonitorMessage>>,
    intake: Option<ActorRef<IntakeMessage>>,
    egresses: Option<ActorRef<EgressesMessage>>,
    kinds: HashMap<ActorId, ChildKind>,
    backoff: HashMap<ChildKind, (Duration, Instant)>,
    draining: bool,
    stopping: bool,
}

pub enum NodeMessage {
    /// Stop taking work; give running egresses `timeout`, then kill them with `Shutdown`. Zero: kill at once.
    Drain { timeout: Duration },
    /// Every egress has ended during a drain (sent by the EgressSupervisor).
    EgressesIdle,
    /// Start a child again after its backoff.
    Restart(ChildKind),
    /// Test-only (debug.fault_injection): make a child actor fail.
    Crash(ChildKind),
    /// Test-only (debug.fault_injection): make one egress' ProcessActor fail.
    CrashProcess(crate::request::EgressId),
}

impl Actor for NodeSupervisor {
    type Msg = NodeMessage;
    type State = NodeState;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<NodeState, ActorProcessingErr> {
        let mut state = NodeState {
            queue: None,
            reporter: None,
            monitor: None,
            intake: None,
            egresses: None,
            kinds: HashMap::new(),
            backoff: HashMap::new(),
            draining: false,
            stopping: false,
        };
        // Order matters only for who can be reached first; everyone reads Peers lazily.
        for kind in [ChildKind::Queue, ChildKind::Reporter, ChildKind::Egresses, ChildKind::Monitor, ChildKind::Intake]
        {
            self.start_child(&myself, &mut state, kind).await?;
        }
        self.publish(&state);
        info!("Node actors started.");
        Ok(state)
    }

    async fn post_stop(&self, _myself: ActorRef<Self::Msg>, state: &mut NodeState) -> Result<(), ActorProcessingErr> {
        state.stopping = true;
        self.health_tx.send_replace(NodeHealth { actors_running: false, accepting: false });
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMessage::Drain { timeout } => self.drain(state, timeout),
            NodeMessage::EgressesIdle => {
                if state.stopping {
                    return Ok(());
                }
                info!("All egresses ended; stopping the node.");
                state.stopping = true;
                // Let the Reporter take in the last final statuses before the actors go.
                if let Some(reporter) = state.reporter.clone() {
                    let me = myself.clone();
                    tokio::spawn(async move {
                        let _ = call(&reporter, "reporter", Duration::from_secs(2), ReporterMessage::List).await;
                        me.stop_children_and_wait(None, Some(Duration::from_secs(5))).await;
                        me.stop(None);
                    });
                } else {
                    myself.stop(None);
                }
            }
            NodeMessage::Restart(kind) => {
                if !state.stopping {
                    if let Err(e) = self.start_child(&myself, state, kind).await {
                        error!(?kind, error = %e, "Restart failed; retrying after backoff.");
                        self.schedule_restart(&myself, state, kind);
                    } else {
                        self.publish(state);
                        if kind == ChildKind::Monitor {
                            if let Some(e) = &state.egresses {
                                let _ = e.cast(EgressesMessage::ResyncMonitor);
                            }
                        }
                    }
                }
            }
            NodeMessage::CrashProcess(egress) => {
                warn!(egress_id = %egress, "Crashing a ProcessActor on request (fault injection).");
                if let Some(e) = &state.egresses {
                    let _ = e.cast(EgressesMessage::CrashProcess(egress));
                }
            }
            NodeMessage::Crash(kind) => {
                warn!(?kind, "Crashing an actor on request (fault injection).");
                match kind {
                    ChildKind::Monitor => state.monitor.as_ref().map(|a| a.cast(MonitorMessage::Crash).is_ok()),
                    ChildKind::Intake => state.intake.as_ref().map(|a| a.cast(IntakeMessage::Crash).is_ok()),
                    ChildKind::Reporter => state.reporter.as_ref().map(|a| a.cast(ReporterMessage::Crash).is_ok()),
                    ChildKind::Queue | ChildKind::Egresses => None,
                };
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        // Overridden: ractor's default would stop this supervisor whenever a child stops.
        let (cell, why): (ActorCell, String) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, format!("stopped: {}", reason.unwrap_or_default()))
            }
            _ => return Ok(()),
        };
        let Some(kind) = state.kinds.remove(&cell.get_id()) else {
            return Ok(());
        };
        match kind {
            ChildKind::Queue => state.queue = None,
            ChildKind::Reporter => state.reporter = None,
            ChildKind::Monitor => state.monitor = None,
            ChildKind::Intake => state.intake = None,
            ChildKind::Egresses => state.egresses = None,
        }
        if state.stopping {
            return Ok(());
        }
        error!(?kind, %why, "Node actor ended; restarting it after backoff. Running egresses go on.");
        self.health_tx.send_modify(|h| h.actors_running = false);
        self.schedule_restart(&myself, state, kind);
        Ok(())
    }
}

impl NodeSupervisor {
    async fn start_child(
        &self,
        myself: &ActorRef<NodeMessage>,
        state: &mut NodeState,
        kind: ChildKind,
    ) -> Result<(), ActorProcessingErr> {
        let supervisor = myself.get_cell();
        let peers = self.peers_tx.subscribe();
        let cell = match kind {
            ChildKind::Queue => {
                let (a, _) = Actor::spawn_linked(None, QueueActor, (), supervisor).await?;
                state.queue = Some(a.clone());
                a.get_cell()
            }
            ChildKind::Reporter => {
                let (a, _) =
                    Actor::spawn_linked(None, ReporterActor { store: self.store.clone() }, (), supervisor).await?;
                state.reporter = Some(a.clone());
                a.get_cell()
            }
            ChildKind::Monitor => {
                let (a, _) = Actor::spawn_linked(None, MonitorActor { cfg: self.cfg.clone() }, (), supervisor).await?;
                state.monitor = Some(a.clone());
                a.get_cell()
            }
            ChildKind::Intake => {
                let actor = IntakeActor { cfg: self.cfg.clone(), peers };
                let (a, _) = Actor::spawn_linked(None, actor, state.draining, supervisor).await?;
                state.intake = Some(a.clone());
                a.get_cell()
            }
            ChildKind::Egresses => {
                let actor = EgressSupervisor { cfg: self.cfg.clone(), peers, node: myself.clone() };
                let (a, _) = Actor::spawn_linked(None, actor, (), supervisor).await?;
                state.egresses = Some(a.clone());
                a.get_cell()
            }
        };
        state.kinds.insert(cell.get_id(), kind);
        Ok(())
    }

    fn schedule_restart(&self, myself: &ActorRef<NodeMessage>, state: &mut NodeState, kind: ChildKind) {
        let now = Instant::now();
        let delay = match state.backoff.get(&kind) {
            Some((prev, at)) if now.duration_since(*at) < BACKOFF_RESET_AFTER => (*prev * 2).min(BACKOFF_MAX),
            _ => BACKOFF_FIRST,
        };
        state.backoff.insert(kind, (delay, now));
        myself.send_after(delay, move || NodeMessage::Restart(kind));
    }

    /// Publishes the current addresses once every child is running.
    fn publish(&self, state: &NodeState) {
        let (Some(queue), Some(reporter), Some(monitor), Some(intake), Some(egresses)) =
            (&state.queue, &state.reporter, &state.monitor, &state.intake, &state.egresses)
        else {
            return;
        };
        self.peers_tx.send_replace(Some(Peers {
            queue: queue.clone(),
            reporter: reporter.clone(),
            monitor: monitor.clone(),
            intake: intake.clone(),
            egresses: egresses.clone(),
        }));
        self.health_tx.send_replace(NodeHealth { actors_running: true, accepting: !state.draining });
        let _ = intake.cast(IntakeMessage::Nudge);
    }

    fn drain(&self, state: &mut NodeState, timeout: Duration) {
        if state.draining {
            // A second signal during a drain: do not wait any longer. (KillAll, not another Drain: idle must
            // still wait for the first Drain, which follows the queued requests' final statuses.)
            if timeout.is_zero() {
                if let Some(e) = &state.egresses {
                    let _ = e.cast(EgressesMessage::KillAll(crate::outcome::KillReason::Shutdown));
                }
            }
            return;
        }
        info!(timeout_secs = timeout.as_secs_f64(), "Draining: no new work is taken.");
        state.draining = true;
        self.health_tx.send_modify(|h| h.accepting = false);
        if let Some(intake) = &state.intake {
            let _ = intake.cast(IntakeMessage::Pause);
        }
        // Requests still queued in the embedded queue cannot outlive this process: end them with a reason, and
        // only then start the drain, so their final statuses are delivered before the node reports idle.
        let (queue, egresses) = (state.queue.clone(), state.egresses.clone());
        tokio::spawn(async move {
            let Some(egresses) = egresses else {
                warn!("No egress supervisor to drain.");
                return;
            };
            if let Some(queue) = queue {
                if let Ok(items) = call(&queue, "queue", Duration::from_secs(2), QueueMessage::Drain).await {
                    for item in items {
                        let mut update = StatusUpdate::new(item.egress_id, Status::Aborted);
                        update.error = Some("node shut down before it was launched".into());
                        let _ = egresses.cast(EgressesMessage::Status(update));
                    }
                }
            }
            let _ = egresses.cast(EgressesMessage::Drain { timeout });
        });
    }
}
