//! IntakeActor: takes the next request from the queue only when the Monitor admits its cost, oldest first among
//! the requests this node can afford, and hands it to the EgressSupervisor. Requests that waited past
//! `queue.max_wait_secs` end FAILED with the reason.
//!
//! One admission round runs at a time, in a task (queue and Monitor answers are awaited there, never in the
//! handler); a round that launched something starts the next at once, otherwise a nudge or the tick does.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};

use super::egresses::EgressesMessage;
use super::monitor::MonitorMessage;
use super::queue::QueueMessage;
use super::reporter::StatusUpdate;
use super::{call, CallError, Peers, PeersRx};
use crate::config::Config;
use crate::outcome::Status;

/// How many queued requests one round looks at.
const ROUND_WINDOW: usize = 32;
/// Deadline of each call to the queue or the Monitor within a round.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

pub struct IntakeActor {
    pub cfg: Arc<Config>,
    pub peers: PeersRx,
}

#[derive(Default)]
pub struct IntakeState {
    round_running: bool,
    /// A nudge arrived during a round: run another right after it.
    again: bool,
    paused: bool,
}

pub enum IntakeMessage {
    /// Something changed (a request queued, an egress ended): try to admit.
    Nudge,
    /// Periodic retry, since capacity also frees up as measured load falls.
    Tick,
    /// An admission round finished; `launched` says whether it handed a request on.
    RoundDone { launched: bool },
    /// Take no more requests (node draining).
    Pause,
    /// Test-only: make this actor fail so the NodeSupervisor's restart can be observed.
    Crash,
}

impl Actor for IntakeActor {
    type Msg = IntakeMessage;
    type State = IntakeState;
    type Arguments = bool;

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, paused: bool) -> Result<IntakeState, ActorProcessingErr> {
        myself.send_interval(Duration::from_millis(500), || IntakeMessage::Tick);
        let _ = myself.cast(IntakeMessage::Nudge);
        Ok(IntakeState { paused, ..Default::default() })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut IntakeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IntakeMessage::Nudge | IntakeMessage::Tick => {
                if state.round_running {
                    state.again = true;
                } else {
                    self.start_round(&myself, state);
                }
            }
            IntakeMessage::RoundDone { launched } => {
                state.round_running = false;
                if launched || std::mem::take(&mut state.again) {
                    self.start_round(&myself, state);
                }
            }
            IntakeMessage::Pause => {
                info!("Intake paused.");
                state.paused = true;
            }
            IntakeMessage::Crash => return Err("crash requested (fault injection)".into()),
        }
        Ok(())
    }
}

impl IntakeActor {
    fn start_round(&self, myself: &ActorRef<IntakeMessage>, state: &mut IntakeState) {
        if state.paused {
            return;
        }
        let Some(peers) = self.peers.borrow().clone() else {
            return;
        };
        state.round_running = true;
        let max_wait = Duration::from_secs(self.cfg.queue.max_wait_secs);
        let me = myself.clone();
        tokio::spawn(async move {
            let launched = match round(&peers, max_wait).await {
                Ok(launched) => launched,
                Err(e) => {
                    warn!(error = %e, "Admission round failed.");
                    false
                }
            };
            let _ = me.cast(IntakeMessage::RoundDone { launched });
        });
    }
}

/// One pass over the head of the queue: expire overdue requests, launch the first one the Monitor admits.
async fn round(peers: &Peers, max_wait: Duration) -> Result<bool, CallError> {
    let items = call(&peers.queue, "queue", CALL_TIMEOUT, |r| QueueMessage::Peek(ROUND_WINDOW, r)).await?;
    for item in items {
        if !max_wait.is_zero() && item.queued_at.elapsed() > max_wait {
            if let Some(expired) =
                call(&peers.queue, "queue", CALL_TIMEOUT, |r| QueueMessage::Take(item.egress_id.clone(), r)).await?
            {
                warn!(egress_id = %expired.egress_id, waited_secs = max_wait.as_secs(), "Queued request expired.");
                let mut update = StatusUpdate::new(expired.egress_id, Status::Failed);
                update.error = Some(format!(
                    "not admitted within queue.max_wait_secs ({} s): node at capacity",
                    max_wait.as_secs()
                ));
                // Through the EgressSupervisor's acknowledged delivery, like every other transition.
                let _ = peers.egresses.cast(EgressesMessage::Status(update));
            }
            continue;
        }
        let ty = item.request.egress_type();
        let release = || {
            let _ = peers.monitor.cast(MonitorMessage::Release(item.egress_id.clone()));
        };
        let admitted = call(&peers.monitor, "monitor", CALL_TIMEOUT, |reply| MonitorMessage::Admit {
            egress: item.egress_id.clone(),
            ty,
            reply,
        })
        .await
        // The Monitor may have admitted it after we stopped waiting: release any reservation.
        .inspect_err(|_| release())?;
        if !admitted {
            debug!(egress_id = %item.egress_id, "Does not fit yet.");
            continue;
        }
        let taken =
            match call(&peers.queue, "queue", CALL_TIMEOUT, |r| QueueMessage::Take(item.egress_id.clone(), r)).await {
                Ok(t) => t,
                Err(e) => {
                    // The reservation must not outlive a round that launched nothing.
                    release();
                    return Err(e);
                }
            };
        let Some(taken) = taken else {
            // Withdrawn by Stop in the meantime.
            release();
            continue;
        };
        debug!(egress_id = %taken.egress_id, "Admitted.");
        if let Err(e) = peers.egresses.cast(EgressesMessage::Launch(Box::new(taken))) {
            // The supervisor is gone (restarting): nothing was launched. Put the request back in its place so it
            // is neither lost nor overtaken.
            release();
            if let ractor::MessagingErr::SendErr(EgressesMessage::Launch(back)) = e {
                let _ = peers.queue.cast(QueueMessage::Requeue(*back));
            }
            return Ok(false);
        }
        return Ok(true);
    }
    Ok(false)
}
