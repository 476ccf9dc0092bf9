//! Node configuration: one serde tree read from YAML (or embedded defaults), overridden key by key by
//! `EGRESS_<SECTION>_<KEY>` environment variables, then validated with errors that name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::request::EgressType;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid config key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The whole node configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The gRPC API used by backends and the CLI.
    pub api: ApiConfig,
    /// The HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`.
    pub metrics: MetricsConfig,
    /// Where outputs and per-egress private directories live; how the node shuts down.
    pub node: NodeConfig,
    /// Admission and overload protection.
    pub monitor: MonitorConfig,
    /// Handler child processes: deadlines and grace periods.
    pub handler: HandlerConfig,
    /// The request queue.
    pub queue: QueueConfig,
    /// Test-only switches.
    pub debug: DebugConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the gRPC API listens on.
    pub listen: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:7980".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the HTTP server for `/metrics`, `/healthz` and `/readyz`.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9464".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Root directory of every file, segment and image output; requests cannot write outside it.
    pub output_root: PathBuf,
    /// Directory holding one private (0700) directory per running egress, with its IPC socket.
    /// Empty: `<system temp dir>/egress-<uid>`.
    pub runtime_dir: PathBuf,
    /// On SIGTERM, how long running egresses may go on before they are ended with `killed_shutdown`.
    pub drain_timeout_secs: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self { output_root: PathBuf::from("./recordings"), runtime_dir: PathBuf::new(), drain_timeout_secs: 30 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// How often /proc is sampled.
    pub sample_interval_ms: u64,
    /// CPU cores this node may use; 0 = the CPUs available to the process (cgroup quota included).
    pub cpus: f64,
    /// Fraction of the cores admission may reserve: capacity = cpus × max_cpu_utilization.
    pub max_cpu_utilization: f64,
    /// Node CPU load (0–1) above which, held for `kill_cpu_after_secs`, the worst egress is killed.
    pub kill_cpu_threshold: f64,
    /// How long the node must stay above `kill_cpu_threshold` before a kill.
    pub kill_cpu_after_secs: u64,
    /// Total RSS of all handlers above which the largest one is killed; 0 = 90 % of physical memory or of the
    /// cgroup's memory limit, the lower.
    pub max_memory_bytes: u64,
    /// Admission cost of one `test` egress, in CPU cores.
    pub cpu_cost_test_cores: f64,
    /// Admission cost of one `url` egress, in CPU cores.
    pub cpu_cost_url_cores: f64,
    /// Admission cost of one `web` egress, in CPU cores.
    pub cpu_cost_web_cores: f64,
    /// Admission cost of one `room_composite` egress, in CPU cores.
    pub cpu_cost_room_composite_cores: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            sample_interval_ms: 1000,
            cpus: 0.0,
            max_cpu_utilization: 0.8,
            kill_cpu_threshold: 0.95,
            kill_cpu_after_secs: 10,
            max_memory_bytes: 0,
            cpu_cost_test_cores: 0.5,
            cpu_cost_url_cores: 1.0,
            cpu_cost_web_cores: 2.0,
            cpu_cost_room_composite_cores: 2.0,
        }
    }
}

impl MonitorConfig {
    pub fn cpu_cost_cores(&self, ty: EgressType) -> f64 {
        match ty {
            EgressType::Test => self.cpu_cost_test_cores,
            EgressType::Url => self.cpu_cost_url_cores,
            EgressType::Web => self.cpu_cost_web_cores,
            EgressType::RoomComposite => self.cpu_cost_room_composite_cores,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HandlerConfig {
    /// The handler program; empty = this same `egress` binary (`egress handler`).
    pub program: PathBuf,
    /// A handler that has not taken its request by then is killed as `launch_failed`.
    pub launch_timeout_secs: u64,
    /// A handler whose pipeline is not ACTIVE (media flowing) by then is killed as `launch_failed`.
    pub start_timeout_secs: u64,
    /// Deadline of every IPC call to a handler.
    pub ipc_timeout_ms: u64,
    /// How often a running handler is pinged.
    pub ping_interval_ms: u64,
    /// Consecutive missed pings after which the handler is SIGKILLed as `killed_unresponsive`.
    pub unresponsive_after_missed_pings: u32,
    /// After end-of-stream is asked for, how long the handler may take to finalize and exit before SIGTERM.
    pub stop_grace_secs: u64,
    /// After SIGTERM, how long before SIGKILL to the process group.
    pub term_grace_secs: u64,
    /// Inside the handler: how long the pipeline may take to drain after end-of-stream.
    pub eos_timeout_secs: u64,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        Self {
            program: PathBuf::new(),
            launch_timeout_secs: 10,
            start_timeout_secs: 30,
            ipc_timeout_ms: 2000,
            ping_interval_ms: 1000,
            unresponsive_after_missed_pings: 3,
            stop_grace_secs: 15,
            term_grace_secs: 5,
            eos_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// A queued request that waited this long without being admitted ends FAILED with a reason; 0 = no limit.
    pub max_wait_secs: u64,
    /// Redis URL of a shared durable queue; empty = the embedded in-memory queue (this node only).
    pub redis: String,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self { max_wait_secs: 600, redis: String::new() }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// Accept `fault` options in requests (hang, crash, burn CPU...). Never enable in production.
    pub fault_injection: bool,
}

impl Config {
    /// Embedded defaults, or `path` when given; then environment overrides; then validation.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let base = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                Self::from_yaml(&text).map_err(|message| ConfigError::Parse { path: path.to_path_buf(), message })?
            }
        };
        let config = base.with_env_overrides(std::env::vars())?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_yaml(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies `EGRESS_<SECTION>_<KEY>=value`; values are parsed as the type the key already has.
    /// Variables whose section is not a config section (e.g. the client's `EGRESS_API`) are ignored.
    pub fn with_env_overrides(&self, vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut tree = serde_json::to_value(self).expect("config serializes");
        let sections: Vec<String> = tree.as_object().expect("config is a map").keys().cloned().collect();
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix("EGRESS_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            let Some(section) = sections.iter().find(|s| rest.starts_with(&format!("{s}_"))) else {
                continue;
            };
            let key = &rest[section.len() + 1..];
            let env_err = |message: String| ConfigError::Env { var: var.clone(), message };
            let slot = tree[section.as_str()]
                .as_object_mut()
                .and_then(|m| m.get_mut(key))
                .ok_or_else(|| env_err(format!("{section} has no key {key:?}")))?;
            *slot = match slot {
                serde_json::Value::Bool(_) => match value.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => true.into(),
                    "0" | "false" | "no" | "off" => false.into(),
                    _ => return Err(env_err(format!("expected true or false, got {value:?}"))),
                },
                serde_json::Value::Number(n) if n.is_u64() => value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| env_err(format!("expected a whole number, got {value:?}")))?
                    .into(),
                serde_json::Value::Number(_) => value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .ok_or_else(|| env_err(format!("expected a number, got {value:?}")))?
                    .into(),
                _ => value.into(),
            };
        }
        serde_json::from_value(tree).map_err(|e| ConfigError::Env { var: "EGRESS_*".into(), message: e.to_string() })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| Err(ConfigError::Invalid { key, reason: reason.to_string() });
        if self.api.listen.parse::<SocketAddr>().is_err() {
            return invalid("api.listen", "must be an address like 127.0.0.1:7980");
        }
        if self.metrics.listen.parse::<SocketAddr>().is_err() {
            return invalid("metrics.listen", "must be an address like 127.0.0.1:9464");
        }
        if self.node.output_root.as_os_str().is_empty() {
            return invalid("node.output_root", "must not be empty");
        }
        let m = &self.monitor;
        if m.sample_interval_ms < 50 {
            return invalid("monitor.sample_interval_ms", "must be at least 50");
        }
        if !(m.cpus >= 0.0 && m.cpus.is_finite()) {
            return invalid("monitor.cpus", "must be 0 (detect) or a positive number");
        }
        if !(m.max_cpu_utilization > 0.0 && m.max_cpu_utilization <= 1.0) {
            return invalid("monitor.max_cpu_utilization", "must be in (0, 1]");
        }
        if !(m.kill_cpu_threshold > 0.0 && m.kill_cpu_threshold <= 1.0) {
            return invalid("monitor.kill_cpu_threshold", "must be in (0, 1]");
        }
        for (key, v) in [
            ("monitor.cpu_cost_test_cores", m.cpu_cost_test_cores),
            ("monitor.cpu_cost_url_cores", m.cpu_cost_url_cores),
            ("monitor.cpu_cost_web_cores", m.cpu_cost_web_cores),
            ("monitor.cpu_cost_room_composite_cores", m.cpu_cost_room_composite_cores),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return invalid(key, "must be zero or a positive number of cores");
            }
        }
        let h = &self.handler;
        for (key, v) in [
            ("handler.launch_timeout_secs", h.launch_timeout_secs),
            ("handler.start_timeout_secs", h.start_timeout_secs),
            ("handler.ipc_timeout_ms", h.ipc_timeout_ms),
            ("handler.ping_interval_ms", h.ping_interval_ms),
            ("handler.eos_timeout_secs", h.eos_timeout_secs),
        ] {
            if v == 0 {
                return invalid(key, "must be greater than 0");
            }
        }
        if h.unresponsive_after_missed_pings == 0 {
            return invalid("handler.unresponsive_after_missed_pings", "must be at least 1");
        }
        if !self.queue.redis.is_empty() {
            return invalid("queue.redis", "the Redis queue is not built yet; leave empty for the embedded queue");
        }
        Ok(())
    }

    /// CPU cores admission works against (`monitor.cpus`, or the online CPUs).
    pub fn cpus(&self) -> f64 {
        if self.monitor.cpus > 0.0 {
            self.monitor.cpus
        } else {
            std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0)
        }
    }

    pub fn runtime_dir(&self) -> PathBuf {
        if self.node.runtime_dir.as_os_str().is_empty() {
            std::env::temp_dir().join(format!("egress-{}", nix::unistd::getuid()))
        } else {
            self.node.runtime_dir.clone()
        }
    }
}

#[cfg(test)]
mod tests;
