//! `egress handler`: the child process that runs one egress. It serves the `Handler` IPC service on a unix socket
//! in its private directory, receives its request over that socket (never argv or env), runs the pipeline and
//! streams `STARTING → ACTIVE → ENDING → FINISHED` back. Exit code 0: completed; 3: pipeline error.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};
use tracing::{error, info, warn};

use crate::actors::process::EXIT_PIPELINE_ERROR;
use crate::ipc;
use crate::pipeline::{self, Stage};
use crate::proto::{self, handler_event::Kind, handler_server::Handler};
use crate::request::{EgressRequest, FaultInjection, Limits};

/// Exit code of a handler whose egress task panicked (a bug; counted as `process_error`).
const EXIT_PANIC: i32 = 70;

/// How long the handler waits for the node to read its final report before it exits anyway.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// Runs the handler until its egress ends; returns the process exit code.
pub fn main(dir: PathBuf, eos_timeout: Duration) -> i32 {
    // One thread: GStreamer runs its own threads, and a single-threaded runtime makes the "stop answering"
    // fault a faithful model of a hung child (one blocked call blocks all IPC).
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "Cannot build the runtime.");
            return 1;
        }
    };
    let code = rt.block_on(run(&dir, eos_timeout));
    // A blocking task stuck in GStreamer must not keep the process alive after its egress ended.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

struct Shared {
    stop: watch::Sender<bool>,
    run_started: AtomicBool,
    /// The pipeline has reported ACTIVE: from then on SIGTERM first asks for end-of-stream.
    active: AtomicBool,
    exit: mpsc::UnboundedSender<i32>,
    eos_timeout: Duration,
}

async fn run(dir: &Path, eos_timeout: Duration) -> i32 {
    use std::os::unix::fs::PermissionsExt;
    let socket = ipc::socket_path(dir);
    let _ = std::fs::remove_file(&socket);
    let listener = match tokio::net::UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            error!(socket = %socket.display(), error = %e, "Cannot listen on the IPC socket.");
            return 1;
        }
    };
    let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        stop: watch::channel(false).0,
        run_started: AtomicBool::new(false),
        active: AtomicBool::new(false),
        exit: exit_tx,
        eos_timeout,
    });

    let term_shared = shared.clone();
    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return;
        };
        while term.recv().await.is_some() {
            if *term_shared.stop.borrow() || !term_shared.active.load(Ordering::SeqCst) {
                warn!("SIGTERM with nothing to finalize, or after end-of-stream was asked for; exiting now.");
                std::process::exit(143);
            }
            info!("SIGTERM: ending the pipeline with end-of-stream.");
            term_shared.stop.send_replace(true);
        }
    });

    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let service = proto::handler_server::HandlerServer::new(HandlerService { shared: shared.clone() });
    let server = tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
        tokio_stream::wrappers::UnixListenerStream::new(listener),
        async {
            let _ = shutdown_rx.await;
        },
    ));
    let code = exit_rx.recv().await.unwrap_or(1);
    let _ = shutdown_tx.send(());
    // Graceful shutdown lets the final report reach the node; do not wait on a node that stopped reading.
    let _ = tokio::time::timeout(FINAL_FLUSH, server).await;
    let _ = std::fs::remove_file(&socket);
    code
}

struct HandlerService {
    shared: Arc<Shared>,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::HandlerEvent, Status>> + Send>>;

fn event(kind: Kind) -> proto::HandlerEvent {
    proto::HandlerEvent { kind: kind as i32, ..Default::default() }
}

#[tonic::async_trait]
impl Handler for HandlerService {
    async fn ping(&self, _request: Request<proto::PingRequest>) -> Result<Response<proto::PingReply>, Status> {
        Ok(Response::new(proto::PingReply { pid: std::process::id() }))
    }

    type RunStream = EventStream;

    async fn run(&self, request: Request<proto::HandlerRequest>) -> Result<Response<EventStream>, Status> {
        if self.shared.run_started.swap(true, Ordering::SeqCst) {
            return Err(Status::failed_precondition("this handler already runs an egress"));
        }
        let req = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.shared.clone();
        let worker = tokio::spawn(async move { run_egress(req, &shared, &tx).await });
        let shared = self.shared.clone();
        tokio::spawn(async move {
            // A panic in the egress still ends the process (its event stream closes with the panicking task).
            let code = worker.await.unwrap_or_else(|e| {
                error!(error = %e, "Egress task panicked.");
                EXIT_PANIC
            });
            let _ = shared.exit.send(code);
        });
        Ok(Response::new(Box::pin(futures::StreamExt::map(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
            Ok::<_, Status>,
        ))))
    }

    async fn stop(&self, _request: Request<proto::StopRequest>) -> Result<Response<proto::PingReply>, Status> {
        info!("Stop requested over IPC.");
        self.shared.stop.send_replace(true);
        if !self.shared.run_started.load(Ordering::SeqCst) {
            let _ = self.shared.exit.send(0);
        }
        Ok(Response::new(proto::PingReply { pid: std::process::id() }))
    }
}

/// Runs the egress to its end, sending events; returns the exit code.
async fn run_egress(
    req: proto::HandlerRequest,
    shared: &Shared,
    tx: &mpsc::UnboundedSender<proto::HandlerEvent>,
) -> i32 {
    let egress_id = req.egress_id.clone();
    let root = PathBuf::from(&req.output_root);
    let parsed = req.request.as_ref().ok_or_else(|| "no request".to_string()).and_then(|r| {
        EgressRequest::from_proto(r, &Limits { output_root: &root, fault_injection: true }).map_err(|e| e.to_string())
    });
    let request = match parsed {
        Ok(r) => r,
        Err(e) => {
            error!(egress_id, error = %e, "Request refused by the handler.");
            let _ = tx.send(event(Kind::Starting));
            let _ = tx.send(proto::HandlerEvent { kind: Kind::Finished as i32, error: e, ..Default::default() });
            return EXIT_PIPELINE_ERROR;
        }
    };
    if request.fault.hang_before_ready {
        warn!(egress_id, "Fault injection: hanging before ready.");
        std::future::pending::<()>().await;
    }
    info!(egress_id, outputs = ?request.outputs_display(), "Starting pipeline.");
    let _ = tx.send(event(Kind::Starting));

    let (stage_tx, mut stage_rx) = mpsc::unbounded_channel::<Stage>();
    let faults = Faults::new(request.fault.clone());
    let started = Instant::now();
    let run = async {
        if request.fault.no_pipeline {
            run_without_pipeline(&request, shared.stop.subscribe(), stage_tx).await
        } else {
            pipeline::run(&request, shared.stop.subscribe(), stage_tx, shared.eos_timeout)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let forward = async {
        while let Some(stage) = stage_rx.recv().await {
            match stage {
                Stage::Active => {
                    info!(egress_id, "Pipeline active.");
                    shared.active.store(true, Ordering::SeqCst);
                    faults.arm();
                    let _ = tx.send(event(Kind::Active));
                }
                Stage::Ending => {
                    let _ = tx.send(event(Kind::Ending));
                }
            }
        }
    };
    let (result, ()) = tokio::join!(run, forward);
    faults.disarm();
    let (error, duration_secs, size_bytes) = match &result {
        Ok(report) => (String::new(), report.duration.as_secs_f64(), report.size_bytes),
        Err(e) => (e.clone(), started.elapsed().as_secs_f64(), 0),
    };
    match &result {
        Ok(_) => info!(egress_id, duration_secs, size_bytes, "Egress finished."),
        Err(e) => error!(egress_id, error = %e, "Egress failed."),
    }
    let _ = tx.send(proto::HandlerEvent { kind: Kind::Finished as i32, error, duration_secs, size_bytes });
    if result.is_ok() {
        0
    } else {
        EXIT_PIPELINE_ERROR
    }
}

/// The `no_pipeline` mode: IPC and states without media, for control-plane benchmarks.
async fn run_without_pipeline(
    request: &EgressRequest,
    mut stop: watch::Receiver<bool>,
    stages: mpsc::UnboundedSender<Stage>,
) -> Result<pipeline::Report, String> {
    let started = Instant::now();
    let _ = stages.send(Stage::Active);
    let limit = request.duration.unwrap_or(Duration::MAX);
    let _ = tokio::time::timeout(limit, stop.wait_for(|s| *s)).await;
    let _ = stages.send(Stage::Ending);
    Ok(pipeline::Report { duration: started.elapsed(), size_bytes: 0 })
}

/// Test-only misbehaviour, armed when the pipeline becomes active.
struct Faults {
    fault: FaultInjection,
    stop: Arc<AtomicBool>,
    armed: AtomicBool,
}

impl Faults {
    fn new(fault: FaultInjection) -> Self {
        Self { fault, stop: Arc::new(AtomicBool::new(false)), armed: AtomicBool::new(false) }
    }

    fn arm(&self) {
        if self.armed.swap(true, Ordering::SeqCst) || self.fault.is_empty() {
            return;
        }
        let f = &self.fault;
        for _ in 0..f.burn_cpu_cores {
            let stop = self.stop.clone();
            std::thread::spawn(move || {
                let mut x: u64 = 1;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            });
        }
        if f.burn_cpu_cores > 0 {
            warn!(cores = f.burn_cpu_cores, "Fault injection: burning CPU.");
        }
        if f.alloc_bytes > 0 {
            let bytes = f.alloc_bytes as usize;
            let stop = self.stop.clone();
            warn!(bytes, "Fault injection: allocating memory.");
            std::thread::spawn(move || {
                let mut v = vec![0u8; bytes];
                // Touch every page so it is resident.
                for i in (0..v.len()).step_by(4096) {
                    v[i] = 1;
                }
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                drop(std::hint::black_box(v));
            });
        }
        if let Some(after) = f.crash_after {
            warn!(after_secs = after.as_secs_f64(), "Fault injection: will crash.");
            std::thread::spawn(move || {
                std::thread::sleep(after);
                std::process::abort();
            });
        }
        if let Some(after) = f.stop_answering_after {
            warn!(after_secs = after.as_secs_f64(), "Fault injection: will stop answering IPC.");
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                // Blocks the handler's only runtime thread: no IPC call is answered again.
                std::thread::sleep(Duration::from_secs(u32::MAX as u64));
            });
        }
    }

    fn disarm(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
