//! Why an egress ended and how that is counted: kill reasons, handler results and status values.

use crate::proto;

/// Why the node ended a handler. A ProcessActor keeps the first one it is given.
#[derive(Debug, Clone, PartialEq)]
pub enum KillReason {
    /// The node stayed above its CPU threshold and this egress used the most above its cost.
    Cpu { used_cores: f64, cost_cores: f64 },
    /// Handlers together went over the memory limit and this one was the largest.
    Memory { rss_bytes: u64, limit_bytes: u64 },
    /// The node is shutting down.
    Shutdown,
    /// The handler missed its IPC deadlines.
    Unresponsive,
}

impl KillReason {
    pub fn result(&self) -> HandlerResult {
        match self {
            Self::Cpu { .. } => HandlerResult::KilledCpu,
            Self::Memory { .. } => HandlerResult::KilledOom,
            Self::Shutdown => HandlerResult::KilledShutdown,
            Self::Unresponsive => HandlerResult::KilledUnresponsive,
        }
    }

    /// Whether the handler still gets an end-of-stream to finalize its files before signals.
    pub fn graceful(&self) -> bool {
        !matches!(self, Self::Unresponsive)
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Cpu { used_cores, cost_cores } => {
                format!("node CPU overloaded; this egress used {used_cores:.2} cores against a cost of {cost_cores:.2}")
            }
            Self::Memory { rss_bytes, limit_bytes } => {
                format!("handlers exceeded the memory limit of {limit_bytes} bytes; this one used {rss_bytes} bytes")
            }
            Self::Shutdown => "node shut down".into(),
            Self::Unresponsive => "handler stopped answering IPC".into(),
        }
    }
}

/// The one outcome of a launched handler (`result` label of `egress_handler_results_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandlerResult {
    Completed,
    PipelineError,
    ProcessError,
    LaunchFailed,
    Aborted,
    KilledCpu,
    KilledOom,
    KilledShutdown,
    KilledUnresponsive,
}

impl HandlerResult {
    pub const ALL: [HandlerResult; 9] = [
        Self::Completed,
        Self::PipelineError,
        Self::ProcessError,
        Self::LaunchFailed,
        Self::Aborted,
        Self::KilledCpu,
        Self::KilledOom,
        Self::KilledShutdown,
        Self::KilledUnresponsive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::PipelineError => "pipeline_error",
            Self::ProcessError => "process_error",
            Self::LaunchFailed => "launch_failed",
            Self::Aborted => "aborted",
            Self::KilledCpu => "killed_cpu",
            Self::KilledOom => "killed_oom",
            Self::KilledShutdown => "killed_shutdown",
            Self::KilledUnresponsive => "killed_unresponsive",
        }
    }

    /// The final status this result is reported with.
    pub fn status(self) -> Status {
        match self {
            Self::Completed => Status::Complete,
            Self::Aborted => Status::Aborted,
            _ => Status::Failed,
        }
    }
}

/// The status values of an egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Queued,
    Starting,
    Active,
    Ending,
    Complete,
    Failed,
    Aborted,
}

impl Status {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Failed | Self::Aborted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Starting => "STARTING",
            Self::Active => "ACTIVE",
            Self::Ending => "ENDING",
            Self::Complete => "COMPLETE",
            Self::Failed => "FAILED",
            Self::Aborted => "ABORTED",
        }
    }

    pub fn to_proto(self) -> proto::Status {
        match self {
            Self::Queued => proto::Status::Queued,
            Self::Starting => proto::Status::Starting,
            Self::Active => proto::Status::Active,
            Self::Ending => proto::Status::Ending,
            Self::Complete => proto::Status::Complete,
            Self::Failed => proto::Status::Failed,
            Self::Aborted => proto::Status::Aborted,
        }
    }

    pub fn from_proto(s: proto::Status) -> Option<Self> {
        Some(match s {
            proto::Status::Unspecified => return None,
            proto::Status::Queued => Self::Queued,
            proto::Status::Starting => Self::Starting,
            proto::Status::Active => Self::Active,
            proto::Status::Ending => Self::Ending,
            proto::Status::Complete => Self::Complete,
            proto::Status::Failed => Self::Failed,
            proto::Status::Aborted => Self::Aborted,
        })
    }
}
