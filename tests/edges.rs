//! The edges: bad input is refused with the field named and nothing launched; secrets stay out of the child's
//! argv and environment and out of every log; `/metrics` passes `promtool check metrics`.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use common::*;

#[test]
fn bad_requests_name_the_field_and_launch_nothing() {
    let node = Node::start(&[]);
    let cases: &[(&[&str], &str)] = &[
        (&["--source", "ftp://x", "--file", "a.mp4"], "source"),
        (&["--source", "url:gopher://h/x", "--file", "a.mp4"], "source"),
        (&["--source", "test", "--file", "../escape.mp4"], "outputs[0].file"),
        (&["--source", "test", "--file", "/etc/passwd.mp4"], "outputs[0].file"),
        (&["--source", "test", "--file", "a.avi"], "outputs[0].file"),
        (&["--source", "test", "--file", "a.mp4", "--preset", "8k240"], "preset"),
        (&["--source", "test", "--file", "a.mp4", "--duration", "0"], "duration_secs"),
        (&["--source", "test", "--file", "a.mp4", "--duration", "-3"], "duration_secs"),
        (&["--source", "test"], "outputs"),
        (&["--source", "test", "--stream", "http://h/app/key"], "outputs[0].stream"),
    ];
    for (args, field) in cases {
        let mut all = vec!["start"];
        all.extend_from_slice(args);
        let out = node.cli(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} should be refused: {err}");
        assert!(err.contains(&format!("invalid {field}:")), "{args:?}: {err}");
    }
    // A malformed API message (bytes that are not a StartRequest) gets a clear error too.
    let answer = grpc_raw(&node.api, "/egress.v1.Egress/Start", &[0x0a, 0xff, 0xff, 0xff]);
    assert!(answer.contains("grpc-status: 13"), "{answer}");
    assert!(answer.contains("StartRequest.source"), "the error names the field: {answer}");
    let out = node.cli(&["list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    assert_eq!(node.started_count(), 0.0);
    assert!(!node.log_text().contains("Handler launched."));
}

/// Sends one raw gRPC frame over HTTP/2 (h2c prior knowledge) with curl; returns the response head.
fn grpc_raw(api: &str, path: &str, payload: &[u8]) -> String {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, frame).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "--http2-prior-knowledge", "-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("{api}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_stream_key_never_reaches_argv_environment_or_logs() {
    let key = "sk_9f8e7d6c5b4a39281706";
    // A fake RTMP server that accepts and never answers: the handler stays alive, connecting.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = fake.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in fake.incoming().flatten() {
            held.push(s);
            if held.len() > 8 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let node = Node::start(&[("EGRESS_HANDLER_STOP_GRACE_SECS", "2"), ("EGRESS_HANDLER_TERM_GRACE_SECS", "1")]);
    let url = format!("rtmp://127.0.0.1:{port}/live/{key}");
    let id = node.start_egress(&["--source", "test", "--stream", &url, "--file", "s.mp4", "--preset", "240p15"]);
    let pid = node.handler_pid(&id);
    // Let the handler receive its request and start connecting.
    eventually(Duration::from_secs(10), "handler to start its pipeline", || {
        node.log_text().contains("Starting pipeline.").then_some(())
    });
    let read = |what: &str| {
        let mut buf = Vec::new();
        if let Ok(mut f) = std::fs::File::open(format!("/proc/{pid}/{what}")) {
            let _ = f.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    };
    let cmdline = read("cmdline");
    let environ = read("environ");
    assert!(cmdline.contains("handler"), "handler cmdline not read: {cmdline:?}");
    assert!(!cmdline.contains(key), "key in cmdline: {cmdline:?}");
    assert!(!environ.contains(key), "key in environ");
    let info = node.info(&id);
    assert!(!info.to_string().contains(key), "{info}");
    assert!(info["outputs"].to_string().contains("/live/****"), "{info}");
    node.cli(&["stop", &id]);
    node.wait_final(&id, Duration::from_secs(30));
    let log = node.log_text();
    assert!(!log.contains(key), "key in the node or handler log");
    assert!(log.contains("****"), "redacted URL expected in the log");
}

#[test]
fn metrics_pass_promtool_and_preregister_every_result() {
    let node = Node::start(&[]);
    let id = node.start_egress(&["--source", "test", "--duration", "1", "--file", "p.mp4", "--preset", "240p15"]);
    node.wait_final(&id, Duration::from_secs(30));
    let text = node.metrics();
    for ty in ["test", "url", "web", "room_composite"] {
        for result in [
            "completed",
            "pipeline_error",
            "process_error",
            "launch_failed",
            "aborted",
            "killed_cpu",
            "killed_oom",
            "killed_shutdown",
            "killed_unresponsive",
        ] {
            assert!(
                metric_value(&text, "egress_handler_results_total", &[("type", ty), ("result", result)]).is_some(),
                "{ty}/{result} not pre-registered"
            );
        }
    }
    for name in [
        "egress_active",
        "egress_queue_depth",
        "egress_cpu_load",
        "egress_time_to_playing_seconds_bucket",
        "egress_can_accept",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.http_get("/healthz").0, 200);
}
