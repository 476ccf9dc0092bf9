//! MonitorActor: samples node CPU and every handler's process group from `/proc` each second, admits requests by
//! CPU cost against `cpus × max_cpu_utilization`, and sends `Kill(reason)` to the egress that overloads the node.
//! It never calls into a child: it reads `/proc` (in a blocking task that reports back) and sends messages.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{debug, warn};

use super::process::ProcessMessage;
use crate::config::Config;
use crate::metrics;
use crate::outcome::KillReason;
use crate::request::{EgressId, EgressType};

pub mod sample;

use sample::{GroupUsage, NodeSample};

pub struct MonitorActor {
    pub cfg: Arc<Config>,
}

/// One admitted egress in the ledger.
struct Entry {
    cost_cores: f64,
    pgid: Option<i32>,
    process: Option<ActorRef<ProcessMessage>>,
    used_cores: f64,
    rss_bytes: u64,
    last: Option<(u64, Instant)>,
    kill_sent: bool,
}

impl Entry {
    /// An egress holds max(its cost, its measured CPU) for its whole life, so a burst admitted before its load
    /// shows in the samples cannot overshoot.
    fn reserved_cores(&self) -> f64 {
        self.cost_cores.max(self.used_cores)
    }
}

pub struct MonitorState {
    capacity_cores: f64,
    memory_limit_bytes: u64,
    ledger: HashMap<EgressId, Entry>,
    last_node: Option<sample::CpuTimes>,
    cpu_load: f64,
    over_threshold_since: Option<Instant>,
    sampling: bool,
}

impl MonitorState {
    fn reserved_cores(&self) -> f64 {
        self.ledger.values().map(Entry::reserved_cores).sum()
    }
}

pub enum MonitorMessage {
    /// Reserve `ty`'s cost for `egress` if it fits now; answers whether it was admitted.
    Admit { egress: EgressId, ty: EgressType, reply: RpcReplyPort<bool> },
    /// Drop a reservation that was admitted but never launched.
    Release(EgressId),
    /// A launched egress: its process group and its actor (also re-sent to a restarted Monitor).
    Track { egress: EgressId, ty: EgressType, pgid: Option<i32>, process: ActorRef<ProcessMessage> },
    /// The egress' child has exited: forget it.
    Forget(EgressId),
    /// Time to sample (periodic).
    Tick,
    /// A sample taken by the blocking sampling task.
    Sampled(Box<NodeSample>),
    /// The reserved cores and the capacity, for tests and benchmarks.
    Ledger(RpcReplyPort<(f64, f64)>),
    /// Test-only: make this actor fail so the NodeSupervisor's restart can be observed.
    Crash,
}

impl Actor for MonitorActor {
    type Msg = MonitorMessage;
    type State = MonitorState;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<MonitorState, ActorProcessingErr> {
        let capacity_cores = self.cfg.cpus() * self.cfg.monitor.max_cpu_utilization;
        let memory_limit_bytes = match self.cfg.monitor.max_memory_bytes {
            0 => sample::mem_total_bytes().map(|t| t / 10 * 9).unwrap_or(u64::MAX),
            n => n,
        };
        myself.send_interval(Duration::from_millis(self.cfg.monitor.sample_interval_ms), || MonitorMessage::Tick);
        let state = MonitorState {
            capacity_cores,
            memory_limit_bytes,
            ledger: HashMap::new(),
            last_node: None,
            cpu_load: 0.0,
            over_threshold_since: None,
            sampling: false,
        };
        self.publish(&state);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut MonitorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MonitorMessage::Admit { egress, ty, reply } => {
                let cost_cores = self.cfg.monitor.cpu_cost_cores(ty);
                let fits = state.reserved_cores() + cost_cores <= state.capacity_cores + 1e-9;
                if fits {
                    state.ledger.entry(egress).or_insert(Entry {
                        cost_cores,
                        pgid: None,
                        process: None,
                        used_cores: 0.0,
                        rss_bytes: 0,
                        last: None,
                        kill_sent: false,
                    });
                    self.publish(state);
                }
                let _ = reply.send(fits);
            }
            MonitorMessage::Release(egress) | MonitorMessage::Forget(egress) => {
                state.ledger.remove(&egress);
                self.publish(state);
            }
            MonitorMessage::Track { egress, ty, pgid, process } => {
                let cost_cores = self.cfg.monitor.cpu_cost_cores(ty);
                let entry = state.ledger.entry(egress).or_insert(Entry {
                    cost_cores,
                    pgid: None,
                    process: None,
                    used_cores: 0.0,
                    rss_bytes: 0,
                    last: None,
                    kill_sent: false,
                });
                entry.pgid = pgid.or(entry.pgid);
                entry.process = Some(process);
                self.publish(state);
            }
            MonitorMessage::Tick => {
                if !state.sampling {
                    state.sampling = true;
                    let pgids: HashSet<i32> = state.ledger.values().filter_map(|e| e.pgid).collect();
                    let me = myself.clone();
                    tokio::task::spawn_blocking(move || {
                        let sample = sample::take(&pgids);
                        let _ = me.cast(MonitorMessage::Sampled(Box::new(sample)));
                    });
                }
            }
            MonitorMessage::Sampled(sample) => {
                state.sampling = false;
                self.apply_sample(state, *sample);
            }
            MonitorMessage::Ledger(reply) => {
                let _ = reply.send((state.reserved_cores(), state.capacity_cores));
            }
            MonitorMessage::Crash => return Err("crash requested (fault injection)".into()),
        }
        Ok(())
    }
}

impl MonitorActor {
    fn apply_sample(&self, state: &mut MonitorState, sample: NodeSample) {
        if let (Some(prev), Some(now)) = (state.last_node, sample.cpu) {
            state.cpu_load = now.load_since(&prev);
        }
        state.last_node = sample.cpu.or(state.last_node);
        for entry in state.ledger.values_mut() {
            let Some(pgid) = entry.pgid else { continue };
            let usage = sample.groups.get(&pgid).copied().unwrap_or(GroupUsage::default());
            if let Some((ticks, at)) = entry.last {
                let secs = sample.at.duration_since(at).as_secs_f64();
                if secs > 0.0 {
                    entry.used_cores = usage.cpu_ticks.saturating_sub(ticks) as f64 / sample.clk_tck / secs;
                }
            }
            entry.last = Some((usage.cpu_ticks, sample.at));
            entry.rss_bytes = usage.rss_bytes;
        }
        self.enforce_cpu(state);
        self.enforce_memory(state);
        self.publish(state);
    }

    fn enforce_cpu(&self, state: &mut MonitorState) {
        let m = &self.cfg.monitor;
        if state.cpu_load < m.kill_cpu_threshold {
            state.over_threshold_since = None;
            return;
        }
        let since = *state.over_threshold_since.get_or_insert_with(Instant::now);
        if since.elapsed() < Duration::from_secs(m.kill_cpu_after_secs) {
            return;
        }
        let worst = state
            .ledger
            .iter_mut()
            .filter(|(_, e)| !e.kill_sent && e.process.is_some())
            .max_by(|(_, a), (_, b)| (a.used_cores - a.cost_cores).total_cmp(&(b.used_cores - b.cost_cores)));
        if let Some((egress, entry)) = worst {
            warn!(egress_id = %egress, load = state.cpu_load, used_cores = entry.used_cores,
                cost_cores = entry.cost_cores, "Node CPU overloaded; killing the egress most above its cost.");
            entry.kill_sent = true;
            let reason = KillReason::Cpu { used_cores: entry.used_cores, cost_cores: entry.cost_cores };
            if let Some(p) = &entry.process {
                let _ = p.cast(ProcessMessage::Kill(reason));
            }
            state.over_threshold_since = None;
        }
    }

    fn enforce_memory(&self, state: &mut MonitorState) {
        let total: u64 = state.ledger.values().filter(|e| !e.kill_sent).map(|e| e.rss_bytes).sum();
        if total <= state.memory_limit_bytes {
            return;
        }
        let largest = state
            .ledger
            .iter_mut()
            .filter(|(_, e)| !e.kill_sent && e.process.is_some())
            .max_by_key(|(_, e)| e.rss_bytes);
        if let Some((egress, entry)) = largest {
            warn!(egress_id = %egress, rss_bytes = entry.rss_bytes, total_bytes = total,
                limit_bytes = state.memory_limit_bytes, "Handlers over the memory limit; killing the largest.");
            entry.kill_sent = true;
            let reason = KillReason::Memory { rss_bytes: entry.rss_bytes, limit_bytes: state.memory_limit_bytes };
            if let Some(p) = &entry.process {
                let _ = p.cast(ProcessMessage::Kill(reason));
            }
        }
    }

    fn publish(&self, state: &MonitorState) {
        let reserved = state.reserved_cores();
        let rss: u64 = state.ledger.values().map(|e| e.rss_bytes).sum();
        let memory_ratio =
            if state.memory_limit_bytes > 0 { rss as f64 / state.memory_limit_bytes as f64 } else { 0.0 };
        metrics::node_load(state.cpu_load, reserved, state.capacity_cores, memory_ratio);
        for ty in EgressType::ALL {
            let fits = reserved + self.cfg.monitor.cpu_cost_cores(ty) <= state.capacity_cores + 1e-9;
            metrics::can_accept(ty, fits);
        }
        debug!(
            reserved,
            capacity = state.capacity_cores,
            load = state.cpu_load,
            tracked = state.ledger.len(),
            "Ledger."
        );
    }
}

#[cfg(test)]
mod tests;
