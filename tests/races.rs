//! Randomized races against the real node: stop during start, kills during stop, shutdown during kills, crashes
//! during drain, many egresses at once. Afterwards every launched handler has exactly one result and every
//! egress exactly one final status. The seed is printed; set EGRESS_RACE_SEED to replay one.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("EGRESS_RACE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        eprintln!("EGRESS_RACE_SEED={seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    /// Stop right after start: lands while queued, launching or starting.
    StopAtOnce,
    /// Stop after a delay.
    StopAfter(u64),
    /// SIGKILL the handler from outside after a delay.
    KillAfter(u64),
    /// Stop, then SIGKILL the handler while it finalizes.
    StopThenKill(u64),
    /// The handler aborts by itself (fault injection).
    Crash,
    /// Grows past the memory limit, so the Monitor's Kill(Memory) races with a Stop.
    HogThenStop(u64),
    /// Ends by itself after its duration.
    Natural,
}

fn pick(rng: &mut Rng) -> Action {
    match rng.below(7) {
        0 => Action::StopAtOnce,
        1 => Action::StopAfter(rng.below(1500)),
        2 => Action::KillAfter(200 + rng.below(1500)),
        3 => Action::StopThenKill(300 + rng.below(1000)),
        4 => Action::Crash,
        5 => Action::HogThenStop(rng.below(800)),
        _ => Action::Natural,
    }
}

fn launch(node: &Node, i: usize, action: Action, real_pipeline: bool, rng: &mut Rng) -> String {
    let file = format!("r{i}.mp4");
    let duration = format!("{}", 1 + rng.below(3));
    let crash = format!("{:.2}", 0.2 + rng.below(200) as f64 / 100.0);
    let mut args = vec!["--source", "test", "--file", &file, "--preset", "240p15"];
    if !real_pipeline {
        args.push("--fault-no-pipeline");
    }
    match action {
        Action::Natural => args.extend(["--duration", &duration]),
        Action::Crash => args.extend(["--fault-crash-after", &crash]),
        Action::HogThenStop(_) => args.extend(["--fault-alloc-bytes", "120000000"]),
        _ => {}
    }
    node.start_egress(&args)
}

/// Carries out `action` on a running egress (in its own thread).
fn act(api: String, log: std::path::PathBuf, id: String, action: Action) {
    // A Stop refused while the Reporter restarts (the API answers "unavailable") is sent again, as a client would.
    let stop = |id: &str| {
        for _ in 0..50 {
            let out = std::process::Command::new(BIN).args(["stop", id]).env("EGRESS_API", &api).output();
            if out.is_ok_and(|o| o.status.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let handler_pid = |id: &str| -> Option<i32> {
        let text = std::fs::read_to_string(&log).ok()?;
        text.lines()
            .find(|l| l.contains("Handler launched.") && l.contains(id))?
            .split("pid=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let sleep = |ms: u64| std::thread::sleep(Duration::from_millis(ms));
    match action {
        Action::StopAtOnce => stop(&id),
        Action::StopAfter(ms) | Action::HogThenStop(ms) => {
            sleep(ms);
            stop(&id);
        }
        Action::KillAfter(ms) => {
            sleep(ms);
            if let Some(pid) = handler_pid(&id) {
                kill(pid, SIGKILL);
            }
        }
        Action::StopThenKill(ms) => {
            sleep(ms);
            stop(&id);
            sleep(50);
            if let Some(pid) = handler_pid(&id) {
                kill(pid, SIGKILL);
            }
        }
        Action::Crash | Action::Natural => {}
    }
}

/// egress id → how many times a line with `marker` names it.
fn count_lines(log: &str, marker: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in log.lines().filter(|l| l.contains(marker)) {
        if let Some(id) = line.split("egress_id=").nth(1).and_then(|s| s.split_whitespace().next()) {
            *counts.entry(id.trim_matches('"').to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn assert_exactly_once(log: &str, ids: &[String]) {
    let launched = count_lines(log, "Handler launched.");
    let exited = count_lines(log, "Handler exited.");
    let ended = count_lines(log, "Egress ended.");
    for (id, n) in &launched {
        assert_eq!(*n, 1, "{id} launched {n} times");
        assert_eq!(exited.get(id), Some(&1), "{id}: launched once, exited {:?} times", exited.get(id));
    }
    for id in exited.keys() {
        assert!(launched.contains_key(id), "{id} exited without launch");
    }
    for id in ids {
        assert_eq!(ended.get(id), Some(&1), "{id}: final status logged {:?} times", ended.get(id));
    }
}

/// A memory limit that hogs cross, fast sampling and short graces, so the races happen within seconds.
const RACE_ENV: [(&str, &str); 4] = [
    ("EGRESS_MONITOR_MAX_MEMORY_BYTES", "300000000"),
    ("EGRESS_MONITOR_SAMPLE_INTERVAL_MS", "200"),
    ("EGRESS_HANDLER_STOP_GRACE_SECS", "3"),
    ("EGRESS_HANDLER_TERM_GRACE_SECS", "1"),
];

/// Starts `count` egresses (every `real_every`-th with a real pipeline), each with a random action carried out
/// by its own thread.
fn start_racing(
    node: &Node,
    rng: &mut Rng,
    count: usize,
    real_every: usize,
) -> (Vec<String>, Vec<std::thread::JoinHandle<()>>) {
    let mut ids = Vec::new();
    let mut threads = Vec::new();
    for i in 0..count {
        let action = pick(rng);
        let id = launch(node, i, action, i % real_every == 0, rng);
        ids.push(id.clone());
        let (api, log) = (node.api.clone(), node.log.clone());
        threads.push(std::thread::spawn(move || act(api, log, id, action)));
    }
    (ids, threads)
}

#[test]
fn many_egresses_racing_stops_kills_and_crashes_each_get_one_result() {
    let mut rng = Rng::seeded();
    let node = Node::start(&RACE_ENV);
    let (ids, threads) = start_racing(&node, &mut rng, 40, 8);
    // While the actions run, the Reporter and the Monitor crash and are restarted: no status and no result may
    // be lost on the way.
    std::thread::sleep(Duration::from_millis(rng.below(500)));
    for actor in ["reporter", "monitor"] {
        assert_eq!(http(&node.http, "POST", &format!("/debug/crash/{actor}")).0, 202);
    }
    for t in threads {
        t.join().unwrap();
    }
    for id in &ids {
        let info = node.wait_final(id, Duration::from_secs(60));
        assert!(["COMPLETE", "FAILED", "ABORTED"].contains(&info["status"].as_str().unwrap()), "{info}");
    }
    let log = node.log_text();
    assert_exactly_once(&log, &ids);
    let text = eventually(Duration::from_secs(5), "egress_active back to 0", || {
        let m = node.metrics();
        (metric_sum(&m, "egress_active") == 0.0).then_some(m)
    });
    for line in text.lines().filter(|l| l.starts_with("egress_handler_results_total{") && !l.ends_with(" 0")) {
        eprintln!("{line}");
    }
    let launched = count_lines(&log, "Handler launched.").len() as f64;
    assert_eq!(metric_sum(&text, "egress_handler_started_total"), launched);
    assert_eq!(metric_sum(&text, "egress_handler_results_total"), launched);
}

#[test]
fn shutdown_during_kills_and_crashes_during_drain_each_get_one_result() {
    let mut rng = Rng::seeded();
    let mut env = RACE_ENV.to_vec();
    env.push(("EGRESS_NODE_DRAIN_TIMEOUT_SECS", "1"));
    let mut node = Node::start(&env);
    let (ids, threads) = start_racing(&node, &mut rng, 16, 4);
    std::thread::sleep(Duration::from_millis(300 + rng.below(700)));
    node.signal(SIGTERM);
    assert_eq!(node.wait_exit(Duration::from_secs(30)), Some(0), "node must exit 0 after draining");
    for t in threads {
        t.join().unwrap();
    }
    assert_exactly_once(&node.log_text(), &ids);
}
