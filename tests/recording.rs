//! Recordings through a real node and real handler processes: playable files, stop while active, stop while
//! starting, and the exactly-once counters.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn three_second_test_source_records_a_playable_mp4() {
    let node = Node::start(&[]);
    let id = node.start_egress(&["--source", "test", "--duration", "3", "--file", "three.mp4", "--preset", "360p30"]);
    let info = node.wait_final(&id, Duration::from_secs(60));
    assert_eq!(info["status"], "COMPLETE", "{info}");
    assert_eq!(info["result"], "completed");
    let d = discover(&node.output_root.join("three.mp4"));
    assert!((d.duration_secs - 3.0).abs() <= 0.5, "duration {} s\n{}", d.duration_secs, d.text);
    assert!(d.text.contains("H.264"), "{}", d.text);
    assert!(d.text.contains("MPEG-4 AAC"), "{}", d.text);
    assert!(info["size_bytes"].as_u64().unwrap() > 10_000, "{info}");
    assert_eq!(node.result_count("completed"), 1.0);
    assert_eq!(node.started_count(), 1.0);
    assert_eq!(metric_sum(&node.metrics(), "egress_handler_results_total"), 1.0);
}

#[test]
fn start_wait_exits_zero_only_for_complete() {
    let node = Node::start(&[]);
    let out =
        node.cli(&["start", "--source", "test", "--duration", "1", "--file", "w.webm", "--preset", "240p15", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = discover(&node.output_root.join("w.webm"));
    assert!(d.text.contains("VP8") && d.text.contains("Opus"), "{}", d.text);

    let out = node.cli(&["start", "--source", "test", "--duration", "1", "--file", "a.ogg", "--wait", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["status"], "COMPLETE");
    let d = discover(&node.output_root.join("a.ogg"));
    assert!(d.text.contains("Opus") && !d.text.contains("video"), "{}", d.text);

    // A handler that crashes: --wait exits non-zero.
    let out = node.cli(&[
        "start",
        "--source",
        "test",
        "--file",
        "crash.mp4",
        "--preset",
        "240p15",
        "--fault-crash-after",
        "0.5",
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn stop_while_active_completes_with_a_playable_file() {
    let node = Node::start(&[]);
    let id = node.start_egress(&["--source", "test", "--file", "live.mp4", "--preset", "240p15"]);
    node.wait_status(&id, &["ACTIVE"], Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    let out = node.cli(&["stop", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info = node.wait_final(&id, Duration::from_secs(30));
    assert_eq!(info["status"], "COMPLETE", "{info}");
    let d = discover(&node.output_root.join("live.mp4"));
    assert!(d.duration_secs >= 1.0, "{}", d.text);
    assert_eq!(node.result_count("completed"), 1.0);
}

#[test]
fn stop_while_starting_is_aborted() {
    let node = Node::start(&[]);
    // The handler hangs before it is ready, so the egress stays STARTING until it is stopped.
    let id = node.start_egress(&["--source", "test", "--file", "never.mp4", "--fault-hang-before-ready"]);
    node.wait_status(&id, &["STARTING"], Duration::from_secs(10));
    node.handler_pid(&id);
    assert!(node.cli(&["stop", &id]).status.success());
    let info = node.wait_final(&id, Duration::from_secs(30));
    assert_eq!(info["status"], "ABORTED", "{info}");
    assert_eq!(info["result"], "aborted");
    assert_eq!(node.result_count("aborted"), 1.0);
    assert_eq!(node.started_count(), 1.0);
}

#[test]
fn list_and_get_show_every_egress() {
    let node = Node::start(&[]);
    let a = node.start_egress(&["--source", "test", "--duration", "1", "--file", "l1.mp4", "--preset", "240p15"]);
    let b = node.start_egress(&["--source", "test", "--duration", "1", "--file", "l2.mp4", "--preset", "240p15"]);
    node.wait_final(&a, Duration::from_secs(30));
    node.wait_final(&b, Duration::from_secs(30));
    let out = node.cli(&["list", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|i| i["egress_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str()]);
    let out = node.cli(&["get", &a]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "COMPLETE");
    let out = node.cli(&["get", "EG_doesnotexist"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no egress"));
}
