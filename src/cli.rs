//! The command line: `serve`, `handler` (internal), and the client commands `start / stop / get / list`, which
//! talk to a node's gRPC API like any backend would.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tonic::transport::Channel;

use crate::outcome::Status;
use crate::proto::{self, egress_client::EgressClient};

#[derive(Debug, Parser)]
#[command(
    name = "egress",
    version,
    about = "Media egress service: record and re-stream media, one GStreamer child per egress."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node. With no config it runs on embedded defaults (in-memory queue, ./recordings, loopback ports).
    Serve {
        /// YAML config file (see config.example.yaml); every key can also be set as EGRESS_<SECTION>_<KEY>.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Internal: the child process running one egress (started by the node).
    #[command(hide = true)]
    Handler {
        /// The egress' private directory, holding the IPC socket.
        #[arg(long)]
        dir: PathBuf,
        /// How long the pipeline may take to drain after end-of-stream.
        #[arg(long, default_value_t = 10)]
        eos_timeout_secs: u64,
    },
    /// Start an egress; prints its id.
    Start(StartArgs),
    /// Stop an egress (a queued one is withdrawn).
    Stop {
        #[command(flatten)]
        api: ApiArgs,
        egress_id: String,
    },
    /// Show an egress' status.
    Get {
        #[command(flatten)]
        api: ApiArgs,
        egress_id: String,
        /// Print the whole record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the egresses this node knows.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// Print JSON (an array of records).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The node's API.
    #[arg(long = "api", env = "EGRESS_API", default_value = "http://127.0.0.1:7980", global = true)]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// test | url:<URI> | web:<URL>
    #[arg(long)]
    pub source: String,
    /// Seconds to record; without it a live source runs until stopped.
    #[arg(long, allow_negative_numbers = true)]
    pub duration: Option<f64>,
    /// A file output (.mp4, .webm, .ogg), relative to the node's output root.
    #[arg(long)]
    pub file: Vec<String>,
    /// A stream output (rtmp://, rtmps://, srt://).
    #[arg(long)]
    pub stream: Vec<String>,
    /// An HLS segments directory.
    #[arg(long)]
    pub segments: Vec<String>,
    /// A JPEG snapshots directory.
    #[arg(long)]
    pub images: Vec<String>,
    /// Encoding preset (1080p30, 720p30, 480p30, 360p30, 240p15).
    #[arg(long, default_value = "")]
    pub preset: String,
    /// Block until the egress ends; exit 0 only if it is COMPLETE.
    #[arg(long)]
    pub wait: bool,
    /// Print JSON (with --wait: the final record).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub fault: FaultArgs,
}

/// Fault injection, accepted only by nodes running with `debug.fault_injection: true`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Fault injection (test nodes only)")]
pub struct FaultArgs {
    /// The handler never becomes ready.
    #[arg(long)]
    pub fault_hang_before_ready: bool,
    /// The handler stops answering IPC this many seconds after it is active.
    #[arg(long, default_value_t = 0.0)]
    pub fault_stop_answering_after: f64,
    /// The handler burns this many CPU cores while active.
    #[arg(long, default_value_t = 0)]
    pub fault_burn_cpu: u32,
    /// The handler allocates this many bytes while active.
    #[arg(long, default_value_t = 0)]
    pub fault_alloc_bytes: u64,
    /// The handler aborts this many seconds after it is active.
    #[arg(long, default_value_t = 0.0)]
    pub fault_crash_after: f64,
    /// The handler speaks IPC but runs no media pipeline.
    #[arg(long)]
    pub fault_no_pipeline: bool,
}

impl FaultArgs {
    fn to_proto(&self) -> Option<proto::FaultInjection> {
        let f = proto::FaultInjection {
            hang_before_ready: self.fault_hang_before_ready,
            stop_answering_after_secs: self.fault_stop_answering_after,
            burn_cpu_cores: self.fault_burn_cpu,
            alloc_bytes: self.fault_alloc_bytes,
            crash_after_secs: self.fault_crash_after,
            no_pipeline: self.fault_no_pipeline,
        };
        (f != proto::FaultInjection::default()).then_some(f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the node at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{0}")]
    Api(String),
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        Self::Api(format!("{:?}: {}", s.code(), s.message()))
    }
}

async fn client(api: &ApiArgs) -> Result<EgressClient<Channel>, ClientError> {
    let err = |message: String| ClientError::Connect { url: api.url.clone(), message };
    let endpoint = tonic::transport::Endpoint::from_shared(api.url.clone())
        .map_err(|e| err(e.to_string()))?
        .connect_timeout(std::time::Duration::from_secs(5));
    Ok(EgressClient::new(endpoint.connect().await.map_err(|e| err(e.to_string()))?))
}

pub fn status_name(info: &proto::EgressInfo) -> &'static str {
    proto::Status::try_from(info.status).ok().and_then(Status::from_proto).map(Status::as_str).unwrap_or("UNKNOWN")
}

pub fn info_json(info: &proto::EgressInfo) -> serde_json::Value {
    serde_json::json!({
        "egress_id": info.egress_id,
        "status": status_name(info),
        "type": info.r#type,
        "result": info.result,
        "error": info.error,
        "queued_at_ms": info.queued_at_ms,
        "started_at_ms": info.started_at_ms,
        "ended_at_ms": info.ended_at_ms,
        "duration_secs": info.duration_secs,
        "size_bytes": info.size_bytes,
        "outputs": info.outputs,
    })
}

/// Runs a client command; returns the process exit code.
pub async fn run_client(command: Command) -> Result<i32, ClientError> {
    match command {
        Command::Start(args) => start(args).await,
        Command::Stop { api, egress_id } => {
            let info = client(&api).await?.stop(proto::StopRequest { egress_id }).await?.into_inner();
            println!("{} {}", info.egress_id, status_name(&info));
            Ok(0)
        }
        Command::Get { api, egress_id, json } => {
            let info = client(&api).await?.get(proto::GetRequest { egress_id }).await?.into_inner();
            if json {
                println!("{}", info_json(&info));
            } else {
                println!("{}", status_name(&info));
            }
            Ok(0)
        }
        Command::List { api, json } => {
            let items = client(&api).await?.list(proto::ListRequest {}).await?.into_inner().items;
            if json {
                println!("{}", serde_json::Value::Array(items.iter().map(info_json).collect()));
            } else {
                for i in &items {
                    println!("{}\t{}\t{}\t{}", i.egress_id, status_name(i), i.r#type, i.result);
                }
            }
            Ok(0)
        }
        Command::Serve { .. } | Command::Handler { .. } => unreachable!("not a client command"),
    }
}

async fn start(args: StartArgs) -> Result<i32, ClientError> {
    use proto::output::Kind;
    let outputs = args
        .file
        .iter()
        .map(|f| Kind::File(f.clone()))
        .chain(args.stream.iter().map(|s| Kind::Stream(s.clone())))
        .chain(args.segments.iter().map(|s| Kind::Segments(s.clone())))
        .chain(args.images.iter().map(|s| Kind::Images(s.clone())))
        .map(|k| proto::Output { kind: Some(k) })
        .collect();
    let request = proto::StartRequest {
        source: args.source.clone(),
        duration_secs: args.duration,
        outputs,
        preset: args.preset.clone(),
        fault: args.fault.to_proto(),
    };
    let mut c = client(&args.api).await?;
    let info = c.start(request).await?.into_inner();
    if !args.wait {
        if args.json {
            println!("{}", info_json(&info));
        } else {
            println!("{}", info.egress_id);
        }
        return Ok(0);
    }
    if !args.json {
        println!("{}", info.egress_id);
    }
    let mut stream = c.watch(proto::GetRequest { egress_id: info.egress_id.clone() }).await?.into_inner();
    let mut last = info;
    while let Some(update) = stream.message().await? {
        last = update;
        let status = status_name(&last);
        if !args.json {
            eprintln!("{} {}", last.egress_id, status);
        }
        if matches!(status, "COMPLETE" | "FAILED" | "ABORTED") {
            break;
        }
    }
    if args.json {
        println!("{}", info_json(&last));
    } else if !last.error.is_empty() {
        eprintln!("{} {}: {} ({})", last.egress_id, status_name(&last), last.result, last.error);
    }
    Ok(if status_name(&last) == "COMPLETE" { 0 } else { 1 })
}
