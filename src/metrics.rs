//! Every metric the node exposes: names as constants, descriptions at start-up, label values from enums,
//! and every known `type × result` pre-registered at 0 so `rate()` sees the first increment.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::outcome::HandlerResult;
use crate::request::EgressType;

pub const HANDLER_STARTED: &str = "egress_handler_started_total";
pub const HANDLER_RESULTS: &str = "egress_handler_results_total";
pub const ACTIVE: &str = "egress_active";
pub const QUEUE_DEPTH: &str = "egress_queue_depth";
pub const QUEUE_WAIT: &str = "egress_queue_wait_seconds";
pub const TIME_TO_PLAYING: &str = "egress_time_to_playing_seconds";
pub const CPU_LOAD: &str = "egress_cpu_load";
pub const CPU_RESERVED: &str = "egress_cpu_reserved_cores";
pub const LOAD_RATIO: &str = "egress_load_ratio";
pub const CAN_ACCEPT: &str = "egress_can_accept";
pub const STATUS_UPDATES: &str = "egress_status_updates_total";
pub const STATUS_BACKLOG: &str = "egress_status_update_backlog";
pub const OUTPUT_BYTES: &str = "egress_output_bytes_total";

const LATENCY_BUCKETS: [f64; 14] = [0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0];

#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus recorder: {0}")]
pub struct MetricsError(String);

/// Installs the process-wide recorder (once per process) and registers every series.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
        .map_err(|e| MetricsError(e.to_string()))?
        .install_recorder()
        .map_err(|e| MetricsError(e.to_string()))?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_counter!(HANDLER_STARTED, "Handler processes launched, by request type.");
    describe_counter!(HANDLER_RESULTS, "Outcomes of launched handlers: exactly one per handler.");
    describe_gauge!(ACTIVE, "Egresses running now (launched, not yet exited), by request type.");
    describe_gauge!(QUEUE_DEPTH, "Requests waiting in this node's queue.");
    describe_histogram!(QUEUE_WAIT, Unit::Seconds, "Time from queued to admitted.");
    describe_histogram!(TIME_TO_PLAYING, Unit::Seconds, "Time from admitted to ACTIVE.");
    describe_gauge!(CPU_LOAD, "Node CPU load, 0 to 1.");
    describe_gauge!(CPU_RESERVED, "CPU cores reserved by admitted egresses: max(cost, measured) each.");
    describe_gauge!(LOAD_RATIO, "Reserved share of capacity, by resource.");
    describe_gauge!(CAN_ACCEPT, "1 when one more egress of this type fits now.");
    describe_counter!(STATUS_UPDATES, "Status transitions persisted, by result.");
    describe_gauge!(STATUS_BACKLOG, "Status updates waiting for the Reporter.");
    describe_counter!(OUTPUT_BYTES, "Bytes written to file outputs.");
    for ty in EgressType::ALL {
        counter!(HANDLER_STARTED, "type" => ty.as_str()).absolute(0);
        gauge!(ACTIVE, "type" => ty.as_str()).set(0.0);
        gauge!(CAN_ACCEPT, "type" => ty.as_str()).set(0.0);
        for result in HandlerResult::ALL {
            counter!(HANDLER_RESULTS, "type" => ty.as_str(), "result" => result.as_str()).absolute(0);
        }
    }
    gauge!(QUEUE_DEPTH).set(0.0);
    for resource in ["cpu", "memory"] {
        gauge!(LOAD_RATIO, "resource" => resource).set(0.0);
    }
    counter!(STATUS_UPDATES, "result" => "ok").absolute(0);
    counter!(OUTPUT_BYTES).absolute(0);
    gauge!(STATUS_BACKLOG).set(0.0);
}

pub fn handler_started(ty: EgressType) {
    counter!(HANDLER_STARTED, "type" => ty.as_str()).increment(1);
    gauge!(ACTIVE, "type" => ty.as_str()).increment(1.0);
}

pub fn handler_result(ty: EgressType, result: HandlerResult) {
    counter!(HANDLER_RESULTS, "type" => ty.as_str(), "result" => result.as_str()).increment(1);
    gauge!(ACTIVE, "type" => ty.as_str()).decrement(1.0);
}

pub fn queue_depth(depth: usize) {
    gauge!(QUEUE_DEPTH).set(depth as f64);
}

pub fn queue_wait(seconds: f64) {
    histogram!(QUEUE_WAIT).record(seconds);
}

pub fn time_to_playing(seconds: f64) {
    histogram!(TIME_TO_PLAYING).record(seconds);
}

pub fn status_update() {
    counter!(STATUS_UPDATES, "result" => "ok").increment(1);
}

pub fn status_backlog(len: usize) {
    gauge!(STATUS_BACKLOG).set(len as f64);
}

pub fn output_bytes(bytes: u64) {
    counter!(OUTPUT_BYTES).increment(bytes);
}

/// One Monitor sample's worth of node gauges.
pub fn node_load(cpu_load: f64, reserved_cores: f64, capacity_cores: f64, memory_ratio: f64) {
    gauge!(CPU_LOAD).set(cpu_load);
    gauge!(CPU_RESERVED).set(reserved_cores);
    gauge!(LOAD_RATIO, "resource" => "cpu").set(if capacity_cores > 0.0 {
        reserved_cores / capacity_cores
    } else {
        1.0
    });
    gauge!(LOAD_RATIO, "resource" => "memory").set(memory_ratio);
}

pub fn can_accept(ty: EgressType, yes: bool) {
    gauge!(CAN_ACCEPT, "type" => ty.as_str()).set(if yes { 1.0 } else { 0.0 });
}
