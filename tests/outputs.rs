//! Outputs beyond files, through a real node: RTMP to a real nginx-rtmp server (recorded by it and checked),
//! together with a file from the same encode; HLS segments and JPEG snapshots.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// nginx with the RTMP module on a free loopback port, recording every stream it receives into `dir/rec`.
struct RtmpServer {
    child: Child,
    port: u16,
    rec: std::path::PathBuf,
}

impl RtmpServer {
    fn start(dir: &std::path::Path) -> RtmpServer {
        let port = free_port();
        let rec = dir.join("rtmp-rec");
        std::fs::create_dir_all(&rec).unwrap();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
                 user root;\ndaemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{\n\
                   live on; record all; record_path {rec}; record_unique off;\n\
                 }} }} }}\n",
                dir = dir.display(),
                rec = rec.display(),
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("nginx.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (Debian packages nginx + libnginx-mod-rtmp)");
        eventually(Duration::from_secs(10), "nginx-rtmp listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        RtmpServer { child, port, rec }
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rtmp_reaches_a_real_server_and_a_file_is_written_from_the_same_encode() {
    let node = Node::start(&[]);
    let server = RtmpServer::start(node.dir.path());
    let key = "sk_live_4f1e2d3c";
    let url = format!("rtmp://127.0.0.1:{}/live/{key}", server.port);
    let out = node.cli(&[
        "start",
        "--source",
        "test",
        "--duration",
        "3",
        "--stream",
        &url,
        "--file",
        "both.mp4",
        "--preset",
        "360p30",
        "--wait",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["result"], "completed", "{info}");
    let recorded = server.rec.join(format!("{key}.flv"));
    eventually(Duration::from_secs(10), "nginx to close its recording", || {
        std::fs::metadata(&recorded).ok().filter(|m| m.len() > 10_000).map(|_| ())
    });
    for file in [recorded, node.output_root.join("both.mp4")] {
        let d = discover(&file);
        assert!(d.text.contains("H.264") && d.text.contains("MPEG-4 AAC"), "{}: {}", file.display(), d.text);
        assert!((d.duration_secs - 3.0).abs() <= 0.6, "{}: {} s", file.display(), d.duration_secs);
    }
    assert!(!node.log_text().contains(key), "the stream key reached the node's log");
    assert!(!info.to_string().contains(key), "{info}");
}

#[test]
fn hls_segments_and_jpeg_snapshots_are_written() {
    let node = Node::start(&[]);
    let out = node.cli(&[
        "start",
        "--source",
        "test",
        "--duration",
        "6",
        "--segments",
        "hls",
        "--images",
        "snaps",
        "--preset",
        "240p15",
        "--wait",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hls = node.output_root.join("hls");
    let playlist = std::fs::read_to_string(hls.join("playlist.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let segments: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".ts")).collect();
    assert!(segments.len() >= 2, "{playlist}");
    let first = discover(&hls.join(segments[0]));
    assert!(first.text.contains("H.264") && first.text.contains("AAC"), "{}", first.text);
    let images: Vec<_> = std::fs::read_dir(node.output_root.join("snaps"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jpg"))
        .collect();
    assert!(!images.is_empty(), "no JPEG snapshot");
    let jpeg = std::fs::read(images[0].path()).unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "not a JPEG");
}
