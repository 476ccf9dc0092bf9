//! The node's own life: SIGTERM drains then kills with `Shutdown` (files still finalized), SIGINT kills at
//! once, a crashed Monitor is restarted while a recording goes on, and `/readyz` follows the node's state.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn sigterm_with_a_short_drain_kills_with_shutdown_and_the_file_is_playable() {
    let mut node = Node::start(&[("EGRESS_NODE_DRAIN_TIMEOUT_SECS", "2")]);
    let id = node.start_egress(&["--source", "test", "--file", "drain.mp4", "--preset", "240p15"]);
    node.wait_status(&id, &["ACTIVE"], Duration::from_secs(30));
    // A client waiting on the egress sees its final status before the node exits.
    let waiter = std::process::Command::new(BIN)
        .args(["start", "--source", "test", "--file", "drain2.mp4", "--preset", "240p15", "--wait", "--json"])
        .env("EGRESS_API", &node.api)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), "second egress active", || {
        let out = node.cli(&["list", "--json"]);
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (all.as_array()?.iter().filter(|i| i["status"] == "ACTIVE").count() == 2).then_some(())
    });
    node.signal(SIGTERM);
    eventually(Duration::from_secs(5), "readyz 503 while draining", || {
        (node.http_get("/readyz").0 == 503).then_some(())
    });
    // A new start is refused while draining.
    let out = node.cli(&["start", "--source", "test", "--file", "late.mp4"]);
    assert!(!out.status.success());
    assert_eq!(node.wait_exit(Duration::from_secs(40)), Some(0));

    let waited = waiter.wait_with_output().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&waited.stdout).expect("final record from --wait");
    assert_eq!(info["status"], "FAILED", "{info}");
    assert_eq!(info["result"], "killed_shutdown");
    assert_eq!(waited.status.code(), Some(1));

    let log = node.log_text();
    assert!(log.contains(&format!("egress_id={id} result=\"killed_shutdown\"")), "{log}");
    for f in ["drain.mp4", "drain2.mp4"] {
        let d = discover(&node.output_root.join(f));
        assert!(d.duration_secs > 1.0, "{f}: {}", d.text);
    }
}

#[test]
fn sigterm_lets_a_short_recording_finish_within_the_drain() {
    let mut node = Node::start(&[("EGRESS_NODE_DRAIN_TIMEOUT_SECS", "30")]);
    let id = node.start_egress(&["--source", "test", "--duration", "2", "--file", "fin.mp4", "--preset", "240p15"]);
    node.wait_status(&id, &["ACTIVE"], Duration::from_secs(30));
    node.signal(SIGTERM);
    assert_eq!(node.wait_exit(Duration::from_secs(30)), Some(0));
    assert!(node.log_text().contains(&format!("egress_id={id} result=\"completed\"")));
    discover(&node.output_root.join("fin.mp4"));
}

#[test]
fn sigint_kills_with_shutdown_at_once() {
    let mut node = Node::start(&[("EGRESS_NODE_DRAIN_TIMEOUT_SECS", "600")]);
    let id = node.start_egress(&["--source", "test", "--file", "int.mp4", "--preset", "240p15"]);
    node.wait_status(&id, &["ACTIVE"], Duration::from_secs(30));
    node.signal(SIGINT);
    assert_eq!(node.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(node.log_text().contains(&format!("egress_id={id} result=\"killed_shutdown\"")));
    discover(&node.output_root.join("int.mp4"));
}

#[test]
fn a_crashed_monitor_is_restarted_and_the_recording_completes() {
    let node = Node::start(&[]);
    let id = node.start_egress(&["--source", "test", "--duration", "4", "--file", "mon.mp4", "--preset", "240p15"]);
    node.wait_status(&id, &["ACTIVE"], Duration::from_secs(30));
    let (code, _) = http(&node.http, "POST", "/debug/crash/monitor");
    assert_eq!(code, 202);
    eventually(Duration::from_secs(5), "monitor restart in the log", || {
        node.log_text().contains("Node actor ended; restarting it").then_some(())
    });
    let info = node.wait_final(&id, Duration::from_secs(30));
    assert_eq!(info["status"], "COMPLETE", "{info}");
    discover(&node.output_root.join("mon.mp4"));
    // The restarted Monitor took the running egress back into its ledger and admits new work.
    eventually(Duration::from_secs(5), "ready again", || (node.http_get("/readyz").0 == 200).then_some(()));
    let id2 = node.start_egress(&["--source", "test", "--duration", "1", "--file", "after.mp4", "--preset", "240p15"]);
    assert_eq!(node.wait_final(&id2, Duration::from_secs(30))["status"], "COMPLETE");
    // Intake and Reporter restart the same way; the Reporter keeps every record across its restart.
    for actor in ["intake", "reporter"] {
        assert_eq!(http(&node.http, "POST", &format!("/debug/crash/{actor}")).0, 202);
    }
    eventually(Duration::from_secs(5), "ready after restarts", || (node.http_get("/readyz").0 == 200).then_some(()));
    assert_eq!(node.status(&id), "COMPLETE");
}

#[test]
fn a_failed_process_actor_still_kills_its_handler_and_counts_one_result() {
    let node = Node::start(&[]);
    let id = node.start_egress(&["--source", "test", "--file", "pa.mp4", "--fault-no-pipeline"]);
    node.wait_status(&id, &["ACTIVE"], Duration::from_secs(10));
    let pid = node.handler_pid(&id);
    assert_eq!(http(&node.http, "POST", &format!("/debug/crash-process/{id}")).0, 202);
    let info = node.wait_final(&id, Duration::from_secs(10));
    assert_eq!(info["status"], "FAILED", "{info}");
    assert_eq!(info["result"], "process_error");
    eventually(Duration::from_secs(5), "handler killed", || (!alive(pid)).then_some(()));
    let m = node.metrics();
    assert_eq!(metric_sum(&m, "egress_handler_results_total"), 1.0);
    assert_eq!(metric_sum(&m, "egress_handler_started_total"), 1.0);
    assert_eq!(metric_sum(&m, "egress_active"), 0.0);
    // The supervisor and the node go on.
    let next = node.start_egress(&["--source", "test", "--duration", "0.5", "--file", "pb.mp4", "--fault-no-pipeline"]);
    assert_eq!(node.wait_final(&next, Duration::from_secs(10))["status"], "COMPLETE");
}

#[test]
fn debug_endpoints_are_refused_without_fault_injection() {
    let node = Node::start(&[("EGRESS_DEBUG_FAULT_INJECTION", "false")]);
    assert_eq!(http(&node.http, "POST", "/debug/crash/monitor").0, 404);
    let out = node.cli(&["start", "--source", "test", "--file", "f.mp4", "--fault-burn-cpu", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fault") && err.contains("disabled"), "{err}");
    assert_eq!(node.started_count(), 0.0);
}
