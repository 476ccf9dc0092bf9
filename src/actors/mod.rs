//! The node's actors, one module each. The supervision tree:
//!
//! ```text
//! NodeSupervisor                restarts a failed child with backoff; never touches running egresses
//! ├── QueueActor                the embedded FIFO of accepted requests
//! ├── ReporterActor             persists status transitions; answers Get/List/Watch
//! ├── MonitorActor              samples /proc; admission ledger; sends Kill(reason)
//! ├── IntakeActor               takes the next request from the queue only when Monitor admits its cost
//! └── EgressSupervisor          one ProcessActor per egress; forwards their reports
//!     └── ProcessActor × N      owns one `egress handler` child and its kill reason
//! ```
//!
//! Actors find each other through [`Peers`], published by the NodeSupervisor on a watch channel each time it
//! (re)starts a child, so a restarted Monitor or Reporter is reached by everyone without a shared lock.

pub mod egresses;
pub mod intake;
pub mod monitor;
pub mod node;
pub mod process;
pub mod queue;
pub mod reporter;

use ractor::ActorRef;
use tokio::sync::watch;

/// The current address of every node-level actor.
#[derive(Clone)]
pub struct Peers {
    pub queue: ActorRef<queue::QueueMessage>,
    pub reporter: ActorRef<reporter::ReporterMessage>,
    pub monitor: ActorRef<monitor::MonitorMessage>,
    pub intake: ActorRef<intake::IntakeMessage>,
    pub egresses: ActorRef<egresses::EgressesMessage>,
}

/// Readers of the current [`Peers`]; `None` until the node has started.
pub type PeersRx = watch::Receiver<Option<Peers>>;

/// What `/healthz` and `/readyz` report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeHealth {
    /// Every node-level actor is running.
    pub actors_running: bool,
    /// The node takes new work (not draining, intake running).
    pub accepting: bool,
}

/// A failed actor call: the actor is gone, or it did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("{actor} did not answer: {reason}")]
pub struct CallError {
    pub actor: &'static str,
    pub reason: String,
}

/// Calls an actor with a deadline. Used from tasks and API handlers, never from inside an actor's handler.
pub async fn call<M, T>(
    actor: &ActorRef<M>,
    name: &'static str,
    timeout: std::time::Duration,
    msg: impl FnOnce(ractor::RpcReplyPort<T>) -> M,
) -> Result<T, CallError>
where
    M: ractor::Message,
    T: Send + 'static,
{
    match actor.call(msg, Some(timeout)).await {
        Ok(ractor::rpc::CallResult::Success(v)) => Ok(v),
        Ok(ractor::rpc::CallResult::Timeout) => {
            Err(CallError { actor: name, reason: format!("no answer within {timeout:?}") })
        }
        Ok(ractor::rpc::CallResult::SenderError) => {
            Err(CallError { actor: name, reason: "dropped the request".into() })
        }
        Err(e) => Err(CallError { actor: name, reason: e.to_string() }),
    }
}
