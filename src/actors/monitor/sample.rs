//! Reading `/proc`: node CPU times and the CPU ticks and RSS of whole process groups. Blocking file reads; the
//! Monitor runs them in `spawn_blocking`.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Cumulative CPU times of the node, in ticks (first line of `/proc/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

impl CpuTimes {
    /// Fraction of all CPUs busy between `prev` and `self`, 0–1.
    pub fn load_since(&self, prev: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(prev.total);
        if total == 0 {
            return 0.0;
        }
        (self.busy.saturating_sub(prev.busy) as f64 / total as f64).clamp(0.0, 1.0)
    }

    pub fn parse(proc_stat: &str) -> Option<CpuTimes> {
        let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        if v.len() < 4 {
            return None;
        }
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let total: u64 = v.iter().take(8).sum();
        let idle = v[3] + v.get(4).copied().unwrap_or(0);
        Some(CpuTimes { busy: total - idle, total })
    }
}

/// CPU ticks (user + system) and resident bytes of all processes of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupUsage {
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct NodeSample {
    pub at: Instant,
    pub cpu: Option<CpuTimes>,
    pub clk_tck: f64,
    pub groups: HashMap<i32, GroupUsage>,
}

/// The fields of `/proc/<pid>/stat` the Monitor needs: (pgrp, utime + stime ticks, rss pages).
pub fn parse_pid_stat(stat: &str) -> Option<(i32, u64, u64)> {
    // The command name is in parentheses and may contain spaces or ')'; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): pgrp is field 5, utime 14, stime 15, rss 24.
    let pgrp = f.get(2)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let rss: i64 = f.get(21)?.parse().ok()?;
    Some((pgrp, utime + stime, rss.max(0) as u64))
}

/// Samples the node and every process whose group is in `pgids`.
pub fn take(pgids: &HashSet<i32>) -> NodeSample {
    let at = Instant::now();
    let cpu = std::fs::read_to_string("/proc/stat").ok().and_then(|s| CpuTimes::parse(&s));
    let clk_tck = sysconf(libc::_SC_CLK_TCK).unwrap_or(100) as f64;
    let page = sysconf(libc::_SC_PAGESIZE).unwrap_or(4096);
    let mut groups: HashMap<i32, GroupUsage> = HashMap::new();
    if !pgids.is_empty() {
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
                    continue;
                };
                // A process may exit between listing and reading: skip it.
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                let Some((pgrp, ticks, rss_pages)) = parse_pid_stat(&stat) else {
                    continue;
                };
                if pgids.contains(&pgrp) {
                    let g = groups.entry(pgrp).or_default();
                    g.cpu_ticks += ticks;
                    g.rss_bytes += rss_pages * page;
                }
            }
        }
    }
    NodeSample { at, cpu, clk_tck, groups }
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(name) };
    (v > 0).then_some(v as u64)
}

/// Physical memory from `/proc/meminfo`.
pub fn mem_total_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The memory limit of this process' cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`), if one is set: in a
/// container it, not the host's memory, is what the kernel's OOM killer enforces.
pub fn cgroup_memory_limit_bytes() -> Option<u64> {
    ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| parse_memory_limit(&text))
}

/// `max`, or v1's "unlimited" (a number near 2^63), mean no limit.
pub fn parse_memory_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v < 1 << 60).then_some(v)
}

/// The memory handlers may use together by default: 90 % of physical memory or of the cgroup limit, the lower.
pub fn default_memory_limit_bytes() -> u64 {
    let physical = mem_total_bytes().unwrap_or(u64::MAX);
    let limit = cgroup_memory_limit_bytes().map_or(physical, |c| c.min(physical));
    limit / 10 * 9
}
