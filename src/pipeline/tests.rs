//! Real pipelines writing real files into a tempdir, checked with `gst-discoverer-1.0`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::*;
use crate::request::{Container, FaultInjection, Preset};

const EOS_TIMEOUT: Duration = Duration::from_secs(10);

fn preset(name: &str) -> Preset {
    Preset::by_name(name).expect("known preset")
}

fn request(source: Source, outputs: Vec<Output>, preset_name: &str, secs: Option<f64>) -> EgressRequest {
    EgressRequest {
        source,
        outputs,
        preset: preset(preset_name),
        duration: secs.map(Duration::from_secs_f64),
        fault: FaultInjection::default(),
    }
}

fn file(path: PathBuf) -> Output {
    let container = match path.extension().and_then(|e| e.to_str()) {
        Some("mp4") => Container::Mp4,
        Some("webm") => Container::Webm,
        _ => Container::Ogg,
    };
    Output::File { path, container }
}

/// Runs `req` to its end with a stop channel that never fires; returns the result and the stages sent.
async fn run_to_end(req: &EgressRequest) -> (Result<Report, PipelineError>, Vec<Stage>) {
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = tokio::time::timeout(Duration::from_secs(60), run(req, stop_rx, tx, EOS_TIMEOUT))
        .await
        .expect("run finished within 60 s");
    let mut stages = Vec::new();
    while let Ok(s) = rx.try_recv() {
        stages.push(s);
    }
    (result, stages)
}

/// What `gst-discoverer-1.0` says about a file.
#[derive(Debug)]
struct Discovered {
    duration: Duration,
    /// Lines such as `video #1: H.264 (High Profile)`, trimmed.
    streams: Vec<String>,
}

impl Discovered {
    fn has(&self, kind: &str, codec: &str) -> bool {
        self.streams.iter().any(|s| s.starts_with(kind) && s.contains(codec))
    }
}

fn discover(path: &Path) -> Discovered {
    let out = Command::new("gst-discoverer-1.0").arg(path).output().expect("gst-discoverer-1.0 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("An error was encountered"), "{} is not playable:\n{text}", path.display());
    let duration = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Duration: "))
        .and_then(parse_clock)
        .unwrap_or_else(|| panic!("no duration for {}:\n{text}", path.display()));
    let streams = text
        .lines()
        .map(str::trim)
        .filter(|l| ["video #", "audio #"].iter().any(|k| l.starts_with(k)))
        .map(String::from)
        .collect();
    Discovered { duration, streams }
}

/// `0:00:03.000000000` → 3 s.
fn parse_clock(s: &str) -> Option<Duration> {
    let mut parts = s.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let sec: f64 = parts.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(h * 3600.0 + m * 60.0 + sec))
}

fn assert_near(actual: Duration, expected_secs: f64, what: &str) {
    let got = actual.as_secs_f64();
    assert!((got - expected_secs).abs() <= 0.5, "{what}: {got:.3} s, expected {expected_secs} ± 0.5 s");
}

#[tokio::test]
async fn mp4_of_three_seconds_is_h264_aac_and_three_seconds_long() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/out.mp4");
    let req = request(Source::Test, vec![file(path.clone())], "360p30", Some(3.0));

    let (result, stages) = run_to_end(&req).await;

    let report = result.expect("pipeline succeeds");
    assert_eq!(stages, [Stage::Active, Stage::Ending]);
    let d = discover(&path);
    assert_near(d.duration, 3.0, "file duration");
    assert_near(report.duration, 3.0, "reported duration");
    assert!(d.has("video", "H.264"), "{:?}", d.streams);
    assert!(!d.has("video", "4:4:4"), "x264 must get I420: {:?}", d.streams);
    assert!(d.has("audio", "MPEG-4 AAC"), "{:?}", d.streams);
    assert_eq!(report.size_bytes, std::fs::metadata(&path).unwrap().len());
    assert!(report.size_bytes > 10_000);
}

#[tokio::test]
async fn webm_is_vp8_and_opus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.webm");
    let req = request(Source::Test, vec![file(path.clone())], "240p15", Some(2.0));

    let (result, _) = run_to_end(&req).await;

    result.expect("pipeline succeeds");
    let d = discover(&path);
    assert_near(d.duration, 2.0, "file duration");
    assert!(d.has("video", "VP8"), "{:?}", d.streams);
    assert!(d.has("audio", "Opus"), "{:?}", d.streams);
}

#[tokio::test]
async fn ogg_is_opus_audio_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.ogg");
    let req = request(Source::Test, vec![file(path.clone())], "240p15", Some(2.0));

    let (result, _) = run_to_end(&req).await;

    result.expect("pipeline succeeds");
    let d = discover(&path);
    assert_near(d.duration, 2.0, "file duration");
    assert!(d.has("audio", "Opus"), "{:?}", d.streams);
    assert!(!d.streams.iter().any(|s| s.starts_with("video")), "{:?}", d.streams);
}

#[tokio::test]
async fn stop_before_duration_still_finalizes_the_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stopped.mp4");
    let req = request(Source::Test, vec![file(path.clone())], "240p15", Some(60.0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel();

    let handle = tokio::spawn(async move { run(&req, stop_rx, tx, EOS_TIMEOUT).await });
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("active within 20 s");
    assert_eq!(first, Some(Stage::Active));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_tx.send(true).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(20), handle).await.expect("ends after stop").unwrap();

    let report = report.expect("stopped pipeline succeeds");
    assert_eq!(rx.recv().await, Some(Stage::Ending));
    assert!(report.duration < Duration::from_secs(5), "{report:?}");
    let d = discover(&path);
    assert_near(d.duration, report.duration.as_secs_f64(), "file duration vs reported");
    assert!(d.has("video", "H.264") && d.has("audio", "AAC"), "{:?}", d.streams);
}

#[tokio::test]
async fn unwritable_output_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let req = request(Source::Test, vec![file(blocker.join("out.mp4"))], "240p15", Some(1.0));

    let (result, stages) = run_to_end(&req).await;

    assert!(matches!(result, Err(PipelineError::CreateDir { .. })), "{result:?}");
    assert!(stages.is_empty());
}

#[tokio::test]
async fn unopenable_output_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taken.mp4");
    std::fs::create_dir(&path).unwrap();
    let req = request(Source::Test, vec![file(path)], "240p15", Some(1.0));

    let (result, _) = run_to_end(&req).await;

    let err = result.expect_err("filesink cannot open a directory");
    assert!(matches!(err, PipelineError::StateChange(_)), "{err:?}");
    assert!(err.to_string().contains("taken.mp4"), "the reason names the file: {err}");
}

#[tokio::test]
async fn eos_not_reached_in_time_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(Source::Test, vec![file(dir.path().join("a.mp4"))], "240p15", Some(1.0));
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (tx, _rx) = mpsc::unbounded_channel();

    // No time at all for EOS to travel from the sources to the file.
    let result = run(&req, stop_rx, tx, Duration::ZERO).await;

    assert!(matches!(result, Err(PipelineError::EosTimeout(_))), "{result:?}");
}

#[tokio::test]
async fn stop_before_start_ends_without_active() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never.mp4");
    let req = request(Source::Test, vec![file(path)], "240p15", Some(30.0));
    let (_stop_tx, stop_rx) = watch::channel(true);
    let (tx, mut rx) = mpsc::unbounded_channel();

    let result =
        tokio::time::timeout(Duration::from_secs(20), run(&req, stop_rx, tx, EOS_TIMEOUT)).await.expect("ends");

    result.expect("pipeline ends cleanly");
    assert_eq!(rx.recv().await, Some(Stage::Ending));
    assert_eq!(rx.recv().await, None);
}

#[tokio::test]
async fn web_source_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let req =
        request(Source::Web("https://example.com".into()), vec![file(dir.path().join("a.mp4"))], "240p15", Some(1.0));
    let (result, _) = run_to_end(&req).await;
    assert!(matches!(result, Err(PipelineError::Unsupported(_))), "{result:?}");
}

#[tokio::test]
async fn several_outputs_share_one_encode() {
    let dir = tempfile::tempdir().unwrap();
    let (mp4, mp4b, webm, ogg) =
        (dir.path().join("a.mp4"), dir.path().join("b.mp4"), dir.path().join("c.webm"), dir.path().join("d.ogg"));
    let (segments, images) = (dir.path().join("hls"), dir.path().join("img"));
    let outputs = vec![
        file(mp4.clone()),
        file(mp4b.clone()),
        file(webm.clone()),
        file(ogg.clone()),
        Output::Segments { dir: segments.clone() },
        Output::Images { dir: images.clone() },
    ];
    let req = request(Source::Test, outputs, "240p15", Some(3.0));

    let (result, _) = run_to_end(&req).await;

    let report = result.expect("pipeline succeeds");
    for path in [&mp4, &mp4b, &webm, &ogg] {
        assert_near(discover(path).duration, 3.0, &path.display().to_string());
    }
    let playlist = std::fs::read_to_string(segments.join("playlist.m3u8")).expect("playlist written");
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    assert!(playlist.contains("segment00000.ts"), "{playlist}");
    let seg = discover(&segments.join("segment00000.ts"));
    assert!(seg.has("video", "H.264") && seg.has("audio", "AAC"), "{:?}", seg.streams);
    assert!(images.join("img00000.jpg").is_file(), "first image written");
    let files: u64 = [&mp4, &mp4b, &webm, &ogg].iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert!(report.size_bytes > files, "segments and images counted too: {} vs {files}", report.size_bytes);
}

#[tokio::test]
async fn url_source_is_transcoded_and_a_missing_video_is_filled() {
    let dir = tempfile::tempdir().unwrap();
    let ogg = dir.path().join("in.ogg");
    run_to_end(&request(Source::Test, vec![file(ogg.clone())], "240p15", Some(2.0))).await.0.expect("input recorded");
    let out = dir.path().join("out.mp4");
    let uri = format!("file://{}", ogg.display());
    // No duration: the pipeline must end by itself when the URI ends.
    let req = request(Source::Url(uri), vec![file(out.clone())], "240p15", None);

    let (result, stages) = run_to_end(&req).await;

    result.expect("pipeline succeeds");
    assert_eq!(stages, [Stage::Active, Stage::Ending]);
    let d = discover(&out);
    assert_near(d.duration, 2.0, "transcoded duration");
    assert!(d.has("video", "H.264") && d.has("audio", "AAC"), "{:?}", d.streams);
}

#[tokio::test]
async fn stream_errors_do_not_leak_the_stream_key() {
    // Nothing listens on port 9 of localhost, so the RTMP connection fails.
    let url = "rtmp://127.0.0.1:9/live/supersecretkey".to_string();
    let req = request(Source::Test, vec![Output::Stream { url }], "240p15", Some(10.0));

    let (result, _) = run_to_end(&req).await;

    let err = result.expect_err("connection refused").to_string();
    assert!(!err.contains("supersecretkey"), "{err}");
}

#[test]
fn redactor_hides_urls_and_their_parts() {
    let req = request(
        Source::Url("https://user:hunter22@cdn.example.com/v.mp4?token=abcdef".into()),
        vec![Output::Stream { url: "rtmp://live.example.com/app/streamkey123".into() }],
        "240p15",
        None,
    );
    let r = Redactor::new(&req);
    let text = r.redact("cannot open rtmp://live.example.com/app/streamkey123; key streamkey123; pw hunter22; abcdef");
    for secret in ["streamkey123", "hunter22", "abcdef"] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(text.contains("rtmp://live.example.com/app/****"), "{text}");
}
