//! Admission: a request runs only when its cost fits `cpus × max_cpu_utilization`; the rest wait in FIFO order,
//! a wait past `queue.max_wait_secs` ends FAILED with the reason, and a request that can never fit is refused.

mod common;

use std::time::Duration;

use common::*;

/// Capacity of exactly one test egress: 1 cpu × 1.0, cost 1 core.
const ONE_AT_A_TIME: [(&str, &str); 3] = [
    ("EGRESS_MONITOR_CPUS", "1"),
    ("EGRESS_MONITOR_MAX_CPU_UTILIZATION", "1.0"),
    ("EGRESS_MONITOR_CPU_COST_TEST_CORES", "1.0"),
];

#[test]
fn requests_that_do_not_fit_wait_in_fifo_order() {
    let node = Node::start(&ONE_AT_A_TIME);
    let args = |f: &'static str| ["--source", "test", "--file", f, "--duration", "1", "--fault-no-pipeline"];
    let a = node.start_egress(&args("a.mp4"));
    let b = node.start_egress(&args("b.mp4"));
    let c = node.start_egress(&args("c.mp4"));
    node.wait_status(&a, &["ACTIVE"], Duration::from_secs(10));
    assert_eq!(node.status(&b), "QUEUED");
    assert_eq!(node.status(&c), "QUEUED");
    assert_eq!(node.metric("egress_queue_depth", &[]), 2.0);
    assert_eq!(node.metric("egress_can_accept", &[("type", "test")]), 0.0);
    for id in [&a, &b, &c] {
        assert_eq!(node.wait_final(id, Duration::from_secs(20))["status"], "COMPLETE");
    }
    let started = |id: &str| node.info(id)["started_at_ms"].as_i64().unwrap();
    assert!(started(&a) < started(&b) && started(&b) < started(&c), "FIFO order");
    // Never more than one ran at once: each started after the previous ended.
    let ended = |id: &str| node.info(id)["ended_at_ms"].as_i64().unwrap();
    assert!(started(&b) >= ended(&a) && started(&c) >= ended(&b));
}

#[test]
fn a_queued_request_past_its_deadline_fails_with_the_reason_and_stop_withdraws_one() {
    let mut env = ONE_AT_A_TIME.to_vec();
    env.push(("EGRESS_QUEUE_MAX_WAIT_SECS", "1"));
    let node = Node::start(&env);
    let busy = node.start_egress(&["--source", "test", "--file", "busy.mp4", "--fault-no-pipeline"]);
    node.wait_status(&busy, &["ACTIVE"], Duration::from_secs(10));
    let late = node.start_egress(&["--source", "test", "--file", "late.mp4", "--fault-no-pipeline"]);
    let info = node.wait_final(&late, Duration::from_secs(10));
    assert_eq!(info["status"], "FAILED", "{info}");
    assert!(info["error"].as_str().unwrap().contains("queue.max_wait_secs"), "{info}");
    let withdrawn = node.start_egress(&["--source", "test", "--file", "w.mp4", "--fault-no-pipeline"]);
    let out = node.cli(&["stop", &withdrawn]);
    assert!(out.status.success());
    // The answer to Stop already shows the withdrawn request's final status.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{withdrawn} ABORTED"));
    assert_eq!(node.wait_final(&withdrawn, Duration::from_secs(5))["status"], "ABORTED");
    // Neither was ever launched: one handler started, none counted for the other two.
    assert_eq!(node.started_count(), 1.0);
    node.cli(&["stop", &busy]);
    node.wait_final(&busy, Duration::from_secs(10));
}

#[test]
fn a_request_that_can_never_fit_is_refused_at_once() {
    let node = Node::start(&[("EGRESS_MONITOR_CPUS", "1"), ("EGRESS_MONITOR_CPU_COST_TEST_CORES", "4")]);
    let out = node.cli(&["start", "--source", "test", "--file", "big.mp4"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("capacity") && err.contains("monitor.cpu_cost_test_cores"), "{err}");
}
