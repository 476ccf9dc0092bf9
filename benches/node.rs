//! Benchmarks of the real node (release build), each printing its figures:
//!
//! - `start-latency [N]`: request → ACTIVE for the test source over N sequential starts (default 50), p50/p99.
//! - `pipeline-overhead [SECS]`: CPU-seconds of a SECS (default 60) 1280×720@30 H.264 + AAC recording through
//!   egress (node + handler), a plain gst-launch-1.0 pipeline with the same encoder settings, and ffmpeg
//!   (libx264 + aac), run one after another in this one run.
//! - `control-plane [N]`: N (default 500) concurrent egresses whose handlers speak IPC but run no pipeline:
//!   node RSS, time to launch all, time to shut all down, and the count of results.
//!
//! Run: `cargo bench --bench node -- start-latency` (or `all`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use egress::proto::{self, egress_client::EgressClient};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let n = args.get(1).and_then(|s| s.parse().ok());
    let rt = tokio::runtime::Runtime::new().unwrap();
    match which {
        "start-latency" => rt.block_on(start_latency(n.unwrap_or(50))),
        "pipeline-overhead" => pipeline_overhead(n.unwrap_or(60) as u64),
        "control-plane" => rt.block_on(control_plane(n.unwrap_or(500))),
        "all" => {
            rt.block_on(start_latency(50));
            rt.block_on(control_plane(500));
            pipeline_overhead(60);
        }
        other => eprintln!("unknown benchmark {other:?}: start-latency | pipeline-overhead | control-plane | all"),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn status_of(info: &proto::EgressInfo) -> proto::Status {
    proto::Status::try_from(info.status).unwrap_or(proto::Status::Unspecified)
}

fn test_request(file: &str, preset: &str, no_pipeline: bool) -> proto::StartRequest {
    proto::StartRequest {
        source: "test".into(),
        duration_secs: None,
        outputs: vec![proto::Output { kind: Some(proto::output::Kind::File(file.into())) }],
        preset: preset.into(),
        fault: no_pipeline.then(|| proto::FaultInjection { no_pipeline: true, ..Default::default() }),
    }
}

async fn wait_for(
    client: &mut EgressClient<tonic::transport::Channel>,
    id: &str,
    wanted: &[proto::Status],
) -> proto::Status {
    let mut stream = client.watch(proto::GetRequest { egress_id: id.into() }).await.unwrap().into_inner();
    while let Some(info) = stream.message().await.unwrap() {
        let s = status_of(&info);
        if wanted.contains(&s) || matches!(s, proto::Status::Complete | proto::Status::Failed | proto::Status::Aborted)
        {
            return s;
        }
    }
    panic!("watch of {id} ended early");
}

async fn start_latency(n: usize) {
    let node = Node::start(&[("EGRESS_DEBUG_FAULT_INJECTION", "false"), ("RUST_LOG", "warn")]);
    let mut client = EgressClient::connect(node.api.clone()).await.unwrap();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        let info = client.start(test_request(&format!("lat{i}.mp4"), "360p30", false)).await.unwrap().into_inner();
        let s = wait_for(&mut client, &info.egress_id, &[proto::Status::Active]).await;
        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(s, proto::Status::Active, "start {i} did not become active");
        client.stop(proto::StopRequest { egress_id: info.egress_id.clone() }).await.unwrap();
        let end = wait_for(&mut client, &info.egress_id, &[]).await;
        assert_eq!(end, proto::Status::Complete);
    }
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let metrics = node.metrics();
    println!(
        "start-latency: n={n} request→ACTIVE p50={:.1} ms p99={:.1} ms min={:.1} ms max={:.1} ms; completed={}",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted[0],
        sorted[sorted.len() - 1],
        metric_value(&metrics, "egress_handler_results_total", &[("type", "test"), ("result", "completed")])
            .unwrap_or(0.0)
    );
}

/// CPU seconds (user + system) of all waited-for descendants of this process so far.
fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU seconds (user + system) a live process has used so far, from `/proc/<pid>/stat`.
fn process_cpu_secs(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a configuration value.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// One recording through egress: (CPU of node + handler + CLI, CPU of the node process alone, file duration).
fn run_egress(secs: u64) -> (f64, f64, f64) {
    let before = children_cpu_secs();
    let mut node = Node::start(&[("RUST_LOG", "warn")]);
    let out = node.cli(&[
        "start",
        "--source",
        "test",
        "--duration",
        &secs.to_string(),
        "--file",
        "egress.mp4",
        "--preset",
        "720p30",
        "--wait",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let node_only = process_cpu_secs(node.pid());
    let dur = discover(&node.output_root.join("egress.mp4")).duration_secs;
    node.signal(SIGTERM);
    node.wait_exit(Duration::from_secs(30));
    // The node is waited for, so its CPU and that of the handler it reaped are in RUSAGE_CHILDREN.
    (children_cpu_secs() - before, node_only, dur)
}

/// The same elements and encoder settings in a plain gst-launch-1.0: (CPU, file duration).
fn run_gst_launch(secs: u64, dir: &std::path::Path) -> (f64, f64) {
    let frames = secs * 30;
    let file = dir.join("gst.mp4");
    let before = children_cpu_secs();
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "-e"])
        .args(["videotestsrc", "is-live=true", "pattern=smpte", &format!("num-buffers={frames}")])
        .args(["!", "video/x-raw,width=1280,height=720,framerate=30/1", "!", "queue", "!", "videoconvert"])
        .args([
            "!",
            "video/x-raw,format=I420",
            "!",
            "x264enc",
            "bitrate=3000",
            "speed-preset=veryfast",
            "tune=zerolatency",
        ])
        .args(["key-int-max=60", "!", "h264parse", "!", "queue", "!", "mp4mux", "name=mux", "!", "filesink"])
        .arg(format!("location={}", file.display()))
        .args(["audiotestsrc", "is-live=true", "wave=sine", "freq=440", "volume=0.3", "samplesperbuffer=1600"])
        .arg(format!("num-buffers={frames}"))
        .args(["!", "audio/x-raw,rate=48000,channels=2", "!", "audioconvert", "!", "audioresample"])
        .args(["!", "avenc_aac", "bitrate=128000", "!", "aacparse", "!", "queue", "!", "mux."])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    (children_cpu_secs() - before, discover(&file).duration_secs)
}

/// ffmpeg, libx264 + aac, same pattern, size, rate, bitrates and GOP, in real time: (CPU, file duration).
fn run_ffmpeg(secs: u64, dir: &std::path::Path) -> (f64, f64) {
    let file = dir.join("ffmpeg.mp4");
    let before = children_cpu_secs();
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-re", "-f", "lavfi", "-i", "smptebars=size=1280x720:rate=30"])
        .args(["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-b:v",
            "3000k",
        ])
        .args(["-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    (children_cpu_secs() - before, discover(&file).duration_secs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn pipeline_overhead(secs: u64) {
    let rounds: usize = std::env::var("EGRESS_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let dir = tempfile::tempdir().unwrap();
    println!("pipeline-overhead: {secs} s of 1280x720@30 H.264 + AAC, {rounds} rounds, CPU-seconds (user+system)");
    let (mut vs_gst, mut vs_ff) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        // Alternate the order so drift on a shared machine does not favour one side.
        let (e, g) = if round % 2 == 1 {
            let e = run_egress(secs);
            (e, run_gst_launch(secs, dir.path()))
        } else {
            let g = run_gst_launch(secs, dir.path());
            (run_egress(secs), g)
        };
        let f = run_ffmpeg(secs, dir.path());
        println!(
            "  round {round}: egress {:.2} s (node {:.2} s, file {:.2} s) | gst-launch {:.2} s (file {:.2} s) | ffmpeg {:.2} s (file {:.2} s) | egress/gst {:.3} egress/ffmpeg {:.3}",
            e.0, e.1, e.2, g.0, g.1, f.0, f.1, e.0 / g.0, e.0 / f.0
        );
        vs_gst.push(e.0 / g.0);
        vs_ff.push(e.0 / f.0);
    }
    println!("  median ratio egress / gst-launch = {:.3}; egress / ffmpeg = {:.3}", median(vs_gst), median(vs_ff));
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn control_plane(n: usize) {
    let mut node = Node::start(&[
        ("RUST_LOG", "info"),
        ("EGRESS_MONITOR_CPU_COST_TEST_CORES", "0"),
        ("EGRESS_HANDLER_LAUNCH_TIMEOUT_SECS", "120"),
        ("EGRESS_HANDLER_IPC_TIMEOUT_MS", "10000"),
        ("EGRESS_HANDLER_UNRESPONSIVE_AFTER_MISSED_PINGS", "10"),
    ]);
    let rss_idle = rss_kib(node.pid());
    let mut client = EgressClient::connect(node.api.clone()).await.unwrap();
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let info = client.start(test_request(&format!("cp{i}.mp4"), "240p15", true)).await.unwrap().into_inner();
        ids.push(info.egress_id);
    }
    let accepted = t0.elapsed();
    // All ACTIVE in the status store (reported by each handler over IPC), not just launched.
    let active = loop {
        let list = client.list(proto::ListRequest {}).await.unwrap().into_inner().items;
        let active = list.iter().filter(|i| status_of(i) == proto::Status::Active).count();
        if active == n || t0.elapsed() > Duration::from_secs(600) {
            break active;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let launch_all = t0.elapsed();
    let rss_busy = rss_kib(node.pid());
    let handler_pids: Vec<i32> = node
        .log_text()
        .lines()
        .filter(|l| l.contains("Handler launched."))
        .filter_map(|l| l.split("pid=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    let handlers_rss_mib = handler_pids.iter().map(|p| rss_kib(*p)).sum::<u64>() as f64 / 1024.0;
    let t1 = Instant::now();
    node.signal(SIGINT);
    let code = node.wait_exit(Duration::from_secs(600));
    let shutdown = t1.elapsed();
    let log = node.log_text();
    let results = log.lines().filter(|l| l.contains("Handler exited.")).count();
    let completed_or_killed =
        log.lines().filter(|l| l.contains("Handler exited.") && l.contains("killed_shutdown")).count();
    println!("control-plane: {n} concurrent no-pipeline egresses");
    println!(
        "  accepted all {n} starts in {:.2} s; all ACTIVE after {:.2} s ({active} ACTIVE in List)",
        accepted.as_secs_f64(),
        launch_all.as_secs_f64()
    );
    println!(
        "  node RSS idle {:.1} MiB, with {n} running {:.1} MiB",
        rss_idle as f64 / 1024.0,
        rss_busy as f64 / 1024.0
    );
    println!(
        "  handler RSS: {handlers_rss_mib:.0} MiB over {} processes ({:.1} MiB each, shared pages counted in each)",
        handler_pids.len(),
        handlers_rss_mib / handler_pids.len().max(1) as f64
    );
    println!(
        "  SIGINT → node exit {:.2} s (exit code {code:?}); results {results} ({completed_or_killed} killed_shutdown)",
        shutdown.as_secs_f64()
    );
    assert_eq!(results, n, "exactly one result per handler");
    assert_eq!(ids.len(), n);
}
