//! Test harness: starts the real `egress` binary as a node on free loopback ports with its own output and runtime
//! directories, drives it through the real CLI, scrapes its real `/metrics`, and checks outputs with
//! `gst-discoverer-1.0`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_egress");

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Node {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub api: String,
    pub http: String,
    pub output_root: PathBuf,
    pub log: PathBuf,
}

impl Node {
    /// A node with fault injection on, cheap admission costs and CPU kills disabled (tests that want them set
    /// them), plus `env` on top.
    pub fn start(env: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let output_root = dir.path().join("rec");
        let log = dir.path().join("node.log");
        let api_port = free_port();
        let http_port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env("EGRESS_API_LISTEN", format!("127.0.0.1:{api_port}"))
            .env("EGRESS_METRICS_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("EGRESS_NODE_OUTPUT_ROOT", &output_root)
            .env("EGRESS_NODE_RUNTIME_DIR", dir.path().join("run"))
            .env("EGRESS_DEBUG_FAULT_INJECTION", "true")
            .env("EGRESS_MONITOR_CPU_COST_TEST_CORES", "0.01")
            .env("EGRESS_MONITOR_KILL_CPU_AFTER_SECS", "100000")
            .env("EGRESS_NODE_DRAIN_TIMEOUT_SECS", "30")
            .env("RUST_LOG", "info,egress=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(dir.path().join("node.out")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn egress serve");
        let node = Node {
            child: Some(child),
            dir,
            api: format!("http://127.0.0.1:{api_port}"),
            http: format!("127.0.0.1:{http_port}"),
            output_root,
            log,
        };
        eventually(Duration::from_secs(20), "node /readyz", || (node.http_get("/readyz").0 == 200).then_some(()));
        node
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Runs the CLI against this node.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN).args(args).env("EGRESS_API", &self.api).output().expect("run egress cli")
    }

    /// `egress start …`; returns the id it printed.
    pub fn start_egress(&self, args: &[&str]) -> String {
        let mut all = vec!["start"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(out.status.success(), "start {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(id.starts_with("EG_"), "unexpected id {id:?}");
        id
    }

    pub fn info(&self, id: &str) -> serde_json::Value {
        let out = self.cli(&["get", id, "--json"]);
        assert!(out.status.success(), "get {id}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.info(id)["status"].as_str().unwrap().to_string()
    }

    pub fn wait_status(&self, id: &str, wanted: &[&str], timeout: Duration) -> serde_json::Value {
        eventually(timeout, &format!("{id} to reach {wanted:?}"), || {
            let info = self.info(id);
            wanted.contains(&info["status"].as_str().unwrap()).then_some(info)
        })
    }

    pub fn wait_final(&self, id: &str, timeout: Duration) -> serde_json::Value {
        self.wait_status(id, &["COMPLETE", "FAILED", "ABORTED"], timeout)
    }

    pub fn http_get(&self, path: &str) -> (u16, String) {
        http(&self.http, "GET", path)
    }

    pub fn metrics(&self) -> String {
        let (code, body) = self.http_get("/metrics");
        assert_eq!(code, 200);
        body
    }

    /// The value of one series, e.g. `metric("egress_handler_results_total", &[("type","test"),("result","completed")])`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics(), name, labels).unwrap_or(0.0)
    }

    pub fn result_count(&self, result: &str) -> f64 {
        self.metric("egress_handler_results_total", &[("type", "test"), ("result", result)])
    }

    pub fn started_count(&self) -> f64 {
        self.metric("egress_handler_started_total", &[("type", "test")])
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The pid of the running handler of `egress_id`, from the node's log.
    pub fn handler_pid(&self, id: &str) -> i32 {
        eventually(Duration::from_secs(15), "handler pid in the log", || {
            self.log_text()
                .lines()
                .find(|l| l.contains("Handler launched.") && l.contains(id))
                .and_then(|l| l.split("pid=").nth(1))
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
        })
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc_kill(self.pid(), sig) };
    }

    /// Waits for the node process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut().unwrap();
        let status = eventually(timeout, "node exit", || child.try_wait().unwrap());
        self.child = None;
        status.code()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- node log ----\n{}", self.log_text());
        }
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
pub const SIGINT: i32 = 2;

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: plain kill(2).
    unsafe { libc_kill(pid, sig) };
}

pub fn alive(pid: i32) -> bool {
    // Signal 0 checks existence; a zombie still counts, so look at /proc state too.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // SAFETY: plain kill(2) with signal 0.
    (unsafe { libc_kill(pid, 0) } == 0) && !state.contains(") Z ")
}

pub fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let code = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            return None;
        }
        let all = labels.iter().all(|(k, v)| rest.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

/// Sum of every series of a metric.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// What gst-discoverer-1.0 says of a file.
#[derive(Debug)]
pub struct Discovered {
    pub duration_secs: f64,
    pub text: String,
}

pub fn discover(path: &Path) -> Discovered {
    let out = Command::new("gst-discoverer-1.0").arg(path).output().expect("gst-discoverer-1.0");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !text.contains("An error was encountered"),
        "not playable: {}\n{text}",
        path.display()
    );
    let duration_secs = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Duration: "))
        .and_then(|d| {
            let p: Vec<f64> = d.split(':').filter_map(|x| x.parse().ok()).collect();
            (p.len() == 3).then(|| p[0] * 3600.0 + p[1] * 60.0 + p[2])
        })
        .unwrap_or_else(|| panic!("no duration in:\n{text}"));
    Discovered { duration_secs, text }
}
