//! Every way a handler can end badly yields exactly one result of the right kind: killed from outside, never
//! ready, unresponsive, burning CPU, exceeding memory.

mod common;

use std::time::Duration;

use common::*;

fn assert_one_result(node: &Node, result: &str) {
    let m = node.metrics();
    assert_eq!(
        metric_value(&m, "egress_handler_results_total", &[("type", "test"), ("result", result)]),
        Some(1.0),
        "{result}"
    );
    assert_eq!(metric_sum(&m, "egress_handler_results_total"), 1.0);
    assert_eq!(metric_sum(&m, "egress_handler_started_total"), 1.0);
}

#[test]
fn handler_killed_from_outside_is_a_process_error() {
    let node = Node::start(&[]);
    let id = node.start_egress(&["--source", "test", "--file", "k.mp4", "--preset", "240p15"]);
    node.wait_status(&id, &["ACTIVE"], Duration::from_secs(30));
    kill(node.handler_pid(&id), SIGKILL);
    let info = node.wait_final(&id, Duration::from_secs(15));
    assert_eq!(info["status"], "FAILED", "{info}");
    assert_eq!(info["result"], "process_error");
    assert_one_result(&node, "process_error");
}

#[test]
fn handler_never_ready_is_a_launch_failure() {
    let node = Node::start(&[("EGRESS_HANDLER_LAUNCH_TIMEOUT_SECS", "2")]);
    let id = node.start_egress(&["--source", "test", "--file", "n.mp4", "--fault-hang-before-ready"]);
    let pid = node.handler_pid(&id);
    let info = node.wait_final(&id, Duration::from_secs(15));
    assert_eq!(info["status"], "FAILED", "{info}");
    assert_eq!(info["result"], "launch_failed");
    assert!(info["error"].as_str().unwrap().contains("not ready"), "{info}");
    assert_one_result(&node, "launch_failed");
    eventually(Duration::from_secs(5), "handler gone", || (!alive(pid)).then_some(()));
}

#[test]
fn handler_that_stops_answering_is_killed_unresponsive() {
    let node = Node::start(&[
        ("EGRESS_HANDLER_PING_INTERVAL_MS", "200"),
        ("EGRESS_HANDLER_IPC_TIMEOUT_MS", "300"),
        ("EGRESS_HANDLER_UNRESPONSIVE_AFTER_MISSED_PINGS", "2"),
    ]);
    let id = node.start_egress(&[
        "--source",
        "test",
        "--file",
        "u.mp4",
        "--preset",
        "240p15",
        "--fault-stop-answering-after",
        "0.5",
    ]);
    let pid = node.handler_pid(&id);
    let info = node.wait_final(&id, Duration::from_secs(20));
    assert_eq!(info["status"], "FAILED", "{info}");
    assert_eq!(info["result"], "killed_unresponsive");
    assert_one_result(&node, "killed_unresponsive");
    // The node went on answering all the while, and the hung child is gone.
    assert!(!alive(pid));
    assert_eq!(node.http_get("/readyz").0, 200);
}

/// Starts a no-pipeline egress with extra fault flags.
fn start_quiet(node: &Node, file: &str, extra: &[&str]) -> String {
    let mut args = vec!["--source", "test", "--file", file, "--fault-no-pipeline"];
    args.extend_from_slice(extra);
    node.start_egress(&args)
}

#[test]
fn the_egress_most_above_its_cost_is_killed_cpu_and_a_bystander_goes_on() {
    let node = Node::start(&[
        ("EGRESS_MONITOR_KILL_CPU_THRESHOLD", "0.6"),
        ("EGRESS_MONITOR_KILL_CPU_AFTER_SECS", "2"),
        ("EGRESS_MONITOR_SAMPLE_INTERVAL_MS", "250"),
    ]);
    let bystander = start_quiet(&node, "calm.mp4", &[]);
    node.wait_status(&bystander, &["ACTIVE"], Duration::from_secs(10));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).to_string();
    let burner = start_quiet(&node, "c.mp4", &["--fault-burn-cpu", &cores]);
    let info = node.wait_final(&burner, Duration::from_secs(30));
    assert_eq!(info["status"], "FAILED", "{info}");
    assert_eq!(info["result"], "killed_cpu");
    assert!(info["error"].as_str().unwrap().contains("CPU"), "{info}");
    assert_eq!(node.status(&bystander), "ACTIVE");
    node.cli(&["stop", &bystander]);
    assert_eq!(node.wait_final(&bystander, Duration::from_secs(10))["result"], "completed");
    assert_eq!(node.result_count("killed_cpu"), 1.0);
}

#[test]
fn the_largest_egress_over_the_memory_limit_is_killed_oom_and_a_smaller_one_goes_on() {
    let node =
        Node::start(&[("EGRESS_MONITOR_MAX_MEMORY_BYTES", "200000000"), ("EGRESS_MONITOR_SAMPLE_INTERVAL_MS", "250")]);
    let small = start_quiet(&node, "small.mp4", &["--fault-alloc-bytes", "60000000"]);
    node.wait_status(&small, &["ACTIVE"], Duration::from_secs(10));
    let big = start_quiet(&node, "m.mp4", &["--fault-alloc-bytes", "400000000"]);
    let info = node.wait_final(&big, Duration::from_secs(30));
    assert_eq!(info["status"], "FAILED", "{info}");
    assert_eq!(info["result"], "killed_oom");
    assert_eq!(node.status(&small), "ACTIVE");
    node.cli(&["stop", &small]);
    assert_eq!(node.wait_final(&small, Duration::from_secs(10))["result"], "completed");
    assert_eq!(node.result_count("killed_oom"), 1.0);
}

#[test]
fn a_pipeline_error_fails_with_the_reason() {
    let node = Node::start(&[]);
    std::fs::create_dir_all(&node.output_root).unwrap();
    // A regular file where the output's directory should be.
    std::fs::write(node.output_root.join("blocked"), b"x").unwrap();
    let out =
        node.cli(&["start", "--source", "test", "--duration", "1", "--file", "blocked/x.mp4", "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["status"], "FAILED", "{info}");
    assert_eq!(info["result"], "pipeline_error");
    assert!(info["error"].as_str().unwrap().contains("blocked"), "{info}");
    assert_one_result(&node, "pipeline_error");
}

#[test]
fn a_crashing_handler_is_a_process_error_and_never_outlives_its_egress() {
    let node = Node::start(&[]);
    let id =
        node.start_egress(&["--source", "test", "--file", "x.mp4", "--preset", "240p15", "--fault-crash-after", "0.5"]);
    let pid = node.handler_pid(&id);
    let info = node.wait_final(&id, Duration::from_secs(20));
    assert_eq!(info["result"], "process_error", "{info}");
    assert!(!alive(pid));
    assert_one_result(&node, "process_error");
}

#[test]
fn handlers_die_with_the_node() {
    let mut node = Node::start(&[]);
    let id = node.start_egress(&["--source", "test", "--file", "d.mp4", "--fault-no-pipeline"]);
    node.wait_status(&id, &["ACTIVE"], Duration::from_secs(15));
    let pid = node.handler_pid(&id);
    node.signal(SIGKILL);
    node.wait_exit(Duration::from_secs(5));
    eventually(Duration::from_secs(5), "handler to die with the node", || (!alive(pid)).then_some(()));
}

#[test]
fn a_source_that_never_delivers_media_is_a_launch_failure_at_the_start_deadline() {
    // An HTTP server that accepts and never answers: the pipeline waits for media that never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().take(4).flatten().collect();
        std::thread::sleep(Duration::from_secs(60));
        drop(held);
    });
    let node = Node::start(&[("EGRESS_HANDLER_START_TIMEOUT_SECS", "3")]);
    let source = format!("url:http://127.0.0.1:{port}/stalled.mp4");
    let id = node.start_egress(&["--source", &source, "--file", "s.mp4", "--preset", "240p15"]);
    let pid = node.handler_pid(&id);
    let info = node.wait_final(&id, Duration::from_secs(20));
    assert_eq!(info["status"], "FAILED", "{info}");
    assert_eq!(info["result"], "launch_failed");
    assert!(info["error"].as_str().unwrap().contains("no media"), "{info}");
    assert!(!alive(pid));
    let m = node.metrics();
    assert_eq!(
        metric_value(&m, "egress_handler_results_total", &[("type", "url"), ("result", "launch_failed")]),
        Some(1.0)
    );
    assert_eq!(metric_sum(&m, "egress_handler_results_total"), metric_sum(&m, "egress_handler_started_total"));
}
