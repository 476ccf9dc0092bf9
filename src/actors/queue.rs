//! QueueActor: the embedded in-memory FIFO of accepted requests (one node only; the Redis queue replaces it in a
//! fleet). It is its own actor so that a crash of the IntakeActor, which reads it, loses no request.

use std::collections::VecDeque;
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::metrics;
use crate::proto;
use crate::request::{EgressId, EgressRequest};

/// An accepted request waiting for admission.
#[derive(Debug, Clone)]
pub struct QueuedRequest {
    pub egress_id: EgressId,
    pub request: EgressRequest,
    /// The request as received; it is what travels to the handler over IPC.
    pub raw: proto::StartRequest,
    pub queued_at: Instant,
}

pub struct QueueActor;

#[derive(Default)]
pub struct QueueState {
    items: VecDeque<QueuedRequest>,
}

pub enum QueueMessage {
    /// Append a request at the tail.
    Push(QueuedRequest),
    /// Put a request back in its place by queue time (its launch could not be handed on).
    Requeue(QueuedRequest),
    /// The first `n` requests, oldest first, without removing them.
    Peek(usize, RpcReplyPort<Vec<QueuedRequest>>),
    /// Remove one request (taken by Intake, or withdrawn by Stop); `None` if it is no longer queued.
    Take(EgressId, RpcReplyPort<Option<QueuedRequest>>),
    /// Remove and return everything (node shutdown).
    Drain(RpcReplyPort<Vec<QueuedRequest>>),
}

impl QueueState {
    fn requeue(&mut self, item: QueuedRequest) {
        let at = self.items.iter().position(|q| q.queued_at > item.queued_at).unwrap_or(self.items.len());
        self.items.insert(at, item);
    }
}

impl Actor for QueueActor {
    type Msg = QueueMessage;
    type State = QueueState;
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<Self::Msg>, _: ()) -> Result<QueueState, ActorProcessingErr> {
        Ok(QueueState::default())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut QueueState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            QueueMessage::Push(item) => state.items.push_back(item),
            QueueMessage::Requeue(item) => state.requeue(item),
            QueueMessage::Peek(n, reply) => {
                let _ = reply.send(state.items.iter().take(n).cloned().collect());
            }
            QueueMessage::Take(id, reply) => {
                let taken = state.items.iter().position(|q| q.egress_id == id).and_then(|i| state.items.remove(i));
                // A caller that gave up waiting must not make the request vanish.
                if let Err(ractor::MessagingErr::SendErr(Some(item))) = reply.send(taken) {
                    state.requeue(item);
                }
            }
            QueueMessage::Drain(reply) => {
                let _ = reply.send(state.items.drain(..).collect());
            }
        }
        metrics::queue_depth(state.items.len());
        Ok(())
    }
}
