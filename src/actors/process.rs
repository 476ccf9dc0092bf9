//! ProcessActor: owns one `egress handler` child process from launch to exit, carries its own kill reason
//! (the first one wins) and, when the child has exited, counts exactly one result and sends the final status.
//!
//! Nothing here waits in a handler: the child's exit, the IPC connection, the `Run` event stream and every ping
//! run in tasks that report back as messages, each IPC call with a deadline.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::egresses::EgressesMessage;
use super::queue::QueuedRequest;
use super::reporter::StatusUpdate;
use super::PeersRx;
use crate::config::Config;
use crate::ipc::{self, Client, IpcError};
use crate::metrics;
use crate::outcome::{HandlerResult, KillReason, Status};
use crate::proto::{self, handler_event::Kind};
use crate::request::{EgressId, EgressType};

/// How long after SIGKILL the exit may take to be seen before the actor finishes without it.
const GIVE_UP_AFTER_SIGKILL: Duration = Duration::from_secs(5);

/// Exit code of a handler whose pipeline failed after it reported the error.
pub const EXIT_PIPELINE_ERROR: i32 = 3;

/// Environment variables a handler inherits; everything else (node config overrides may carry credentials) is
/// withheld from the child's `/proc/<pid>/environ`.
const INHERITED_ENV: [&str; 9] =
    ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "RUST_LOG", "RUST_BACKTRACE", "XDG_RUNTIME_DIR", "DISPLAY"];

pub struct ProcessActor {
    pub cfg: Arc<Config>,
    pub parent: ActorRef<EgressesMessage>,
    /// The node's actors, for the final status of an actor that dies without finishing.
    pub peers: PeersRx,
}

pub struct ProcessArgs {
    pub item: QueuedRequest,
    pub admitted_at: Instant,
}

/// How far the handler has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Spawned; waiting for its socket and its first event.
    Launching,
    /// It accepted the request and is building its pipeline.
    Starting,
    Active,
    Ending,
}

/// The handler's own final report.
#[derive(Debug, Clone)]
struct FinalReport {
    error: String,
    duration_secs: f64,
    size_bytes: u64,
}

pub struct ProcessState {
    egress: EgressId,
    ty: EgressType,
    dir: PathBuf,
    pgid: Option<i32>,
    client: Option<Client>,
    phase: Phase,
    admitted_at: Instant,
    kill_reason: Option<KillReason>,
    /// Stopped before it became active.
    aborted: bool,
    /// Why it never became ready (spawn failure or missed launch deadline).
    launch_failure: Option<String>,
    report: Option<FinalReport>,
    end_requested: bool,
    /// A Stop or graceful Kill arrived; carried out as soon as the handler is connected.
    end_wanted: bool,
    missed_pings: u32,
    ping_in_flight: bool,
    run_open: bool,
    exit: Option<Option<ExitStatus>>,
    finished: bool,
    tasks: Vec<JoinHandle<()>>,
    peers: PeersRx,
}

pub enum ProcessMessage {
    /// Launch the handler process for this request (sent to itself by `pre_start`).
    Spawn(Box<QueuedRequest>),
    /// Ask the pipeline to finish and finalize its outputs (API Stop).
    Stop,
    /// End this egress for `reason`; the first reason wins.
    Kill(KillReason),
    /// The IPC connection is up and answered a ping (sent by the run task before it sends `Run`).
    Connected(Client),
    /// An event from the handler's `Run` stream.
    Event(proto::HandlerEvent),
    /// The `Run` stream ended (the handler finished or died).
    RunEnded,
    /// The launch deadline has passed (the handler must have taken its request by then).
    LaunchDeadline,
    /// The start deadline has passed (the pipeline must be ACTIVE by then).
    StartDeadline,
    /// Time to ping the handler.
    PingTick,
    /// The outcome of one ping.
    PingResult(Result<(), DeadlineMissed>),
    /// The outcome of the IPC Stop call.
    StopAcked(Result<(), DeadlineMissed>),
    /// The end-of-stream grace has passed: SIGTERM the group.
    EscalateTerm,
    /// The SIGTERM grace has passed: SIGKILL the group.
    EscalateKill,
    /// The child process has exited (sent by the wait task); `None` when it could not even be spawned.
    ChildExited(Option<ExitStatus>),
    /// The `Run` stream did not close soon after the exit: finish without the report.
    FinishNow,
    /// Test-only (debug.fault_injection): make this actor fail, to prove a failed ProcessActor still yields
    /// exactly one result.
    Crash,
    /// SIGKILL was sent a while ago and the child still has not been reaped (e.g. stuck in the kernel):
    /// finish without its exit status rather than hold up the node.
    GiveUp,
}

/// An IPC call that missed its deadline (other failures mean the child is gone, which its exit tells).
#[derive(Debug)]
pub struct DeadlineMissed;

impl Actor for ProcessActor {
    type Msg = ProcessMessage;
    type State = ProcessState;
    type Arguments = ProcessArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ProcessArgs,
    ) -> Result<ProcessState, ActorProcessingErr> {
        let item = args.item;
        let ty = item.request.egress_type();
        let dir = self.cfg.runtime_dir().join(item.egress_id.as_str());
        let state = ProcessState {
            egress: item.egress_id.clone(),
            ty,
            dir: dir.clone(),
            pgid: None,
            client: None,
            phase: Phase::Launching,
            admitted_at: args.admitted_at,
            kill_reason: None,
            aborted: false,
            launch_failure: None,
            report: None,
            end_requested: false,
            end_wanted: false,
            missed_pings: 0,
            ping_in_flight: false,
            run_open: false,
            exit: None,
            finished: false,
            tasks: Vec::new(),
            peers: self.peers.clone(),
        };
        // Counted before anything can fail, so a launch failure is one started and one `launch_failed`.
        metrics::handler_started(ty);
        self.status(StatusUpdate::new(state.egress.clone(), Status::Starting));
        // The launch itself runs in this actor's own handler, not in the supervisor's `spawn_linked` call.
        let _ = myself.cast(ProcessMessage::Spawn(Box::new(item)));
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut ProcessState,
    ) -> Result<(), ActorProcessingErr> {
        for t in state.tasks.drain(..) {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut ProcessState,
    ) -> Result<(), ActorProcessingErr> {
        if state.finished {
            return Ok(());
        }
        match msg {
            ProcessMessage::Spawn(item) => self.spawn(&myself, state, *item).await,
            ProcessMessage::Stop => self.stop(&myself, state),
            ProcessMessage::Kill(reason) => self.kill(&myself, state, reason),
            ProcessMessage::Connected(client) => {
                state.client = Some(client);
                // `Run` follows at once: from here the final report may be on its way when the child exits.
                state.run_open = true;
                myself.send_interval(Duration::from_millis(self.cfg.handler.ping_interval_ms), || {
                    ProcessMessage::PingTick
                });
                if state.end_wanted {
                    self.request_end(&myself, state);
                }
            }
            ProcessMessage::Event(ev) => self.on_event(state, ev),
            ProcessMessage::RunEnded => {
                state.run_open = false;
                if state.exit.is_some() {
                    self.finish(&myself, state);
                } else if state.report.is_some() {
                    // It reported its end and is exiting; a backstop in case it never does.
                    myself.send_after(Duration::from_secs(self.cfg.handler.stop_grace_secs), || {
                        ProcessMessage::EscalateTerm
                    });
                } else {
                    // The stream broke without a report while the child lives on: end it through the usual graces.
                    self.request_end(&myself, state);
                }
            }
            ProcessMessage::LaunchDeadline => {
                if state.phase == Phase::Launching && state.exit.is_none() && state.kill_reason.is_none() {
                    let secs = self.cfg.handler.launch_timeout_secs;
                    warn!(egress_id = %state.egress, secs, "Handler not ready within its launch deadline; killing it.");
                    state.launch_failure.get_or_insert(format!("handler not ready within {secs} s"));
                    self.sigkill(&myself, state);
                }
            }
            ProcessMessage::StartDeadline => {
                if state.phase < Phase::Active && state.exit.is_none() && state.kill_reason.is_none() && !state.aborted
                {
                    let secs = self.cfg.handler.start_timeout_secs;
                    warn!(egress_id = %state.egress, secs, "No media within the start deadline; killing the handler.");
                    state.launch_failure.get_or_insert(format!("no media within {secs} s of launch"));
                    self.sigkill(&myself, state);
                }
            }
            ProcessMessage::PingTick => self.ping(&myself, state),
            ProcessMessage::PingResult(r) => {
                state.ping_in_flight = false;
                match r {
                    Ok(()) => state.missed_pings = 0,
                    Err(DeadlineMissed) => {
                        state.missed_pings += 1;
                        warn!(egress_id = %state.egress, missed = state.missed_pings, "Handler missed a ping deadline.");
                        if state.missed_pings >= self.cfg.handler.unresponsive_after_missed_pings {
                            self.kill(&myself, state, KillReason::Unresponsive);
                        }
                    }
                }
            }
            ProcessMessage::StopAcked(r) => {
                if r.is_err() {
                    warn!(egress_id = %state.egress, "Handler missed the deadline of its Stop call.");
                    self.kill(&myself, state, KillReason::Unresponsive);
                }
            }
            ProcessMessage::EscalateTerm => {
                if state.exit.is_none() {
                    warn!(egress_id = %state.egress, "Handler still running after its grace; sending SIGTERM.");
                    signal_group(state.pgid, Signal::SIGTERM);
                    myself.send_after(Duration::from_secs(self.cfg.handler.term_grace_secs), || {
                        ProcessMessage::EscalateKill
                    });
                }
            }
            ProcessMessage::EscalateKill => {
                if state.exit.is_none() {
                    warn!(egress_id = %state.egress, "Handler ignored SIGTERM; sending SIGKILL to its process group.");
                    self.sigkill(&myself, state);
                }
            }
            ProcessMessage::ChildExited(status) => {
                if state.exit.is_some() {
                    return Ok(());
                }
                state.exit = Some(status);
                // Nothing of this egress may outlive it: reap stragglers of its process group.
                signal_group(state.pgid, Signal::SIGKILL);
                if state.run_open && status.is_some() {
                    // The final report may still be in flight on the event stream; give it a moment.
                    myself.send_after(Duration::from_millis(1000), || ProcessMessage::FinishNow);
                } else {
                    self.finish(&myself, state);
                }
            }
            ProcessMessage::FinishNow => self.finish(&myself, state),
            ProcessMessage::Crash => return Err("crash requested (fault injection)".into()),
            ProcessMessage::GiveUp => {
                if state.exit.is_none() {
                    error!(egress_id = %state.egress, pgid = ?state.pgid, "Handler not reaped after SIGKILL; giving up on it.");
                    state.exit = Some(None);
                    self.finish(&myself, state);
                }
            }
        }
        Ok(())
    }
}

impl ProcessActor {
    fn status(&self, update: StatusUpdate) {
        let _ = self.parent.cast(EgressesMessage::Status(update));
    }

    async fn spawn_child(&self, dir: &std::path::Path) -> std::io::Result<tokio::process::Child> {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await?;
        let program = if self.cfg.handler.program.as_os_str().is_empty() {
            std::env::current_exe()?
        } else {
            self.cfg.handler.program.clone()
        };
        let mut cmd = std::process::Command::new(program);
        cmd.arg("handler").arg("--dir").arg(dir);
        cmd.arg("--eos-timeout-secs").arg(self.cfg.handler.eos_timeout_secs.to_string());
        cmd.env_clear();
        for key in INHERITED_ENV {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("GST_")) {
            cmd.env(k, v);
        }
        cmd.stdin(std::process::Stdio::null());
        // Own process group, so the whole group can be signalled without touching the node.
        cmd.process_group(0);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // The child dies with the node (the death signal is tied to the parent thread; the node spawns
                // from tokio worker threads, which live as long as the node).
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                if libc::getppid() == 1 {
                    // The node died between fork and prctl.
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        tokio::process::Command::from(cmd).kill_on_drop(false).spawn()
    }

    async fn spawn(&self, myself: &ActorRef<ProcessMessage>, state: &mut ProcessState, item: QueuedRequest) {
        let dir = state.dir.clone();
        match self.spawn_child(&dir).await {
            Err(e) => {
                warn!(egress_id = %state.egress, error = %e, "Handler could not be launched.");
                state.launch_failure = Some(format!("cannot launch handler: {e}"));
                let _ = myself.cast(ProcessMessage::ChildExited(None));
            }
            Ok(mut child) => {
                let pid = child.id().map(|p| p as i32);
                state.pgid = pid;
                info!(egress_id = %state.egress, pid, "Handler launched.");
                let _ = self.parent.cast(EgressesMessage::Launched { egress: state.egress.clone(), pgid: pid });
                let me = myself.clone();
                state.tasks.push(tokio::spawn(async move {
                    let status = child.wait().await.ok();
                    let _ = me.cast(ProcessMessage::ChildExited(status));
                }));
                state.tasks.push(self.spawn_run(myself.clone(), &dir, item));
                myself.send_after(Duration::from_secs(self.cfg.handler.launch_timeout_secs), || {
                    ProcessMessage::LaunchDeadline
                });
                myself.send_after(Duration::from_secs(self.cfg.handler.start_timeout_secs), || {
                    ProcessMessage::StartDeadline
                });
                if state.end_wanted || state.kill_reason.is_some() {
                    // Stopped or killed while the launch was still on its way.
                    self.request_end(myself, state);
                }
            }
        }
    }

    /// Dials the handler's socket until it answers a ping, reports `Connected`, then sends the request with `Run`
    /// and forwards the event stream. `Connected` always precedes the first event, so an egress past `Launching`
    /// always has a client to stop it with.
    fn spawn_run(
        &self,
        myself: ActorRef<ProcessMessage>,
        dir: &std::path::Path,
        item: QueuedRequest,
    ) -> JoinHandle<()> {
        let socket = ipc::socket_path(dir);
        let deadline = Duration::from_millis(self.cfg.handler.ipc_timeout_ms);
        let give_up = Instant::now() + Duration::from_secs(self.cfg.handler.launch_timeout_secs);
        let request = proto::HandlerRequest {
            egress_id: item.egress_id.to_string(),
            request: Some(item.raw),
            output_root: self.cfg.node.output_root.to_string_lossy().into_owned(),
        };
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(5);
            let mut client = loop {
                if let Ok(mut c) = ipc::connect(&socket).await {
                    if ipc::with_deadline("Ping", deadline, c.ping(proto::PingRequest {})).await.is_ok() {
                        break c;
                    }
                }
                if Instant::now() >= give_up {
                    // The launch deadline ends this egress.
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(100));
            };
            if myself.cast(ProcessMessage::Connected(client.clone())).is_err() {
                return;
            }
            let mut stream = match ipc::with_deadline("Run", deadline, client.run(request)).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(error = %e, "Run call failed.");
                    let _ = myself.cast(ProcessMessage::RunEnded);
                    return;
                }
            };
            // Events arrive when the pipeline changes state; their absence is watched by pings, not here.
            while let Ok(Some(ev)) = stream.message().await {
                if myself.cast(ProcessMessage::Event(ev)).is_err() {
                    return;
                }
            }
            let _ = myself.cast(ProcessMessage::RunEnded);
        })
    }

    fn on_event(&self, state: &mut ProcessState, ev: proto::HandlerEvent) {
        let kind = Kind::try_from(ev.kind).unwrap_or(Kind::Unspecified);
        match kind {
            Kind::Starting => {
                if state.phase == Phase::Launching {
                    state.phase = Phase::Starting;
                }
            }
            Kind::Active => {
                if state.phase < Phase::Active {
                    state.phase = Phase::Active;
                    let ttp = state.admitted_at.elapsed().as_secs_f64();
                    metrics::time_to_playing(ttp);
                    info!(egress_id = %state.egress, time_to_playing_secs = ttp, "Egress active.");
                    self.status(StatusUpdate::new(state.egress.clone(), Status::Active));
                }
            }
            Kind::Ending => {
                if state.phase < Phase::Ending {
                    state.phase = Phase::Ending;
                    self.status(StatusUpdate::new(state.egress.clone(), Status::Ending));
                }
            }
            Kind::Finished => {
                state.report =
                    Some(FinalReport { error: ev.error, duration_secs: ev.duration_secs, size_bytes: ev.size_bytes });
            }
            Kind::Unspecified => {}
        }
    }

    fn stop(&self, myself: &ActorRef<ProcessMessage>, state: &mut ProcessState) {
        if state.exit.is_some() {
            return;
        }
        if state.phase < Phase::Active && state.kill_reason.is_none() {
            info!(egress_id = %state.egress, "Stopped before it became active; aborting.");
            state.aborted = true;
        } else {
            info!(egress_id = %state.egress, "Stop requested.");
        }
        self.request_end(myself, state);
    }

    fn kill(&self, myself: &ActorRef<ProcessMessage>, state: &mut ProcessState, reason: KillReason) {
        // The outcome is settled once the child has exited or its launch has failed.
        if state.exit.is_some() || state.launch_failure.is_some() {
            debug!(egress_id = %state.egress, reason = ?reason, "Kill after the outcome was settled ignored.");
            return;
        }
        if let Some(first) = &state.kill_reason {
            debug!(egress_id = %state.egress, first = ?first, later = ?reason, "Later kill reason ignored; the first wins.");
        } else {
            info!(egress_id = %state.egress, reason = %reason.describe(), "Killing egress.");
            state.kill_reason = Some(reason.clone());
        }
        if reason.graceful() {
            self.request_end(myself, state);
        } else {
            self.sigkill(myself, state);
        }
    }

    /// End-of-stream over IPC so outputs are finalized, then SIGTERM and SIGKILL after their graces.
    fn request_end(&self, myself: &ActorRef<ProcessMessage>, state: &mut ProcessState) {
        state.end_wanted = true;
        if state.end_requested || state.exit.is_some() {
            return;
        }
        if state.pgid.is_none() {
            // Not spawned yet: `spawn` carries out the end right after (`end_wanted`).
            return;
        }
        if state.phase == Phase::Launching {
            // Before its first event a handler has no outputs to finalize: SIGTERM ends it at once.
            state.end_requested = true;
            signal_group(state.pgid, Signal::SIGTERM);
            myself.send_after(Duration::from_secs(self.cfg.handler.term_grace_secs), || ProcessMessage::EscalateKill);
            return;
        }
        // Otherwise `Connected` is on its way if not here yet, and carries out the end (`end_wanted`).
        let Some(mut client) = state.client.clone() else {
            return;
        };
        state.end_requested = true;
        let deadline = Duration::from_millis(self.cfg.handler.ipc_timeout_ms);
        let id = state.egress.to_string();
        let me = myself.clone();
        state.tasks.push(tokio::spawn(async move {
            let r = ipc::with_deadline("Stop", deadline, client.stop(proto::StopRequest { egress_id: id })).await;
            let ack = match r {
                Err(IpcError::Deadline { .. }) => Err(DeadlineMissed),
                _ => Ok(()),
            };
            let _ = me.cast(ProcessMessage::StopAcked(ack));
        }));
        myself.send_after(Duration::from_secs(self.cfg.handler.stop_grace_secs), || ProcessMessage::EscalateTerm);
    }

    /// SIGKILL to the group, and a last deadline for the exit to be seen.
    fn sigkill(&self, myself: &ActorRef<ProcessMessage>, state: &mut ProcessState) {
        if state.pgid.is_none() {
            return;
        }
        signal_group(state.pgid, Signal::SIGKILL);
        myself.send_after(GIVE_UP_AFTER_SIGKILL, || ProcessMessage::GiveUp);
    }

    fn ping(&self, myself: &ActorRef<ProcessMessage>, state: &mut ProcessState) {
        let Some(mut client) = state.client.clone() else {
            return;
        };
        if state.ping_in_flight || state.exit.is_some() {
            return;
        }
        state.ping_in_flight = true;
        let deadline = Duration::from_millis(self.cfg.handler.ipc_timeout_ms);
        let me = myself.clone();
        tokio::spawn(async move {
            let r = ipc::with_deadline("Ping", deadline, client.ping(proto::PingRequest {})).await;
            let r = match r {
                Err(IpcError::Deadline { .. }) => Err(DeadlineMissed),
                _ => Ok(()),
            };
            let _ = me.cast(ProcessMessage::PingResult(r));
        });
    }

    /// Computes the one result, counts it, sends the final status and stops. Runs once.
    fn finish(&self, myself: &ActorRef<ProcessMessage>, state: &mut ProcessState) {
        if state.finished {
            return;
        }
        state.finished = true;
        let exit = state.exit.flatten();
        let (result, error) = outcome(state, exit);
        metrics::handler_result(state.ty, result);
        if let Some(report) = &state.report {
            metrics::output_bytes(report.size_bytes);
        }
        info!(egress_id = %state.egress, result = result.as_str(), exit = ?exit, "Handler exited.");
        let mut update = StatusUpdate::new(state.egress.clone(), result.status());
        update.result = Some(result);
        update.error = Some(error);
        if let Some(report) = &state.report {
            update.duration_secs = Some(report.duration_secs);
            update.size_bytes = Some(report.size_bytes);
        }
        self.status(update);
        let dir = state.dir.clone();
        tokio::spawn(async move {
            let _ = tokio::fs::remove_dir_all(dir).await;
        });
        myself.stop(None);
    }
}

impl Drop for ProcessState {
    /// A ProcessActor that dies without finishing (a panic in a handler, or its supervisor gone, which takes
    /// its linked children with it) still kills its child, counts its one result, sends its final status and
    /// removes its directory.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        error!(egress_id = %self.egress, pgid = ?self.pgid, "ProcessActor ended without finishing; killing its handler.");
        signal_group(self.pgid, Signal::SIGKILL);
        metrics::handler_result(self.ty, HandlerResult::ProcessError);
        if let Some(peers) = self.peers.borrow().as_ref() {
            let mut update = StatusUpdate::new(self.egress.clone(), Status::Failed);
            update.result = Some(HandlerResult::ProcessError);
            update.error = Some("the node lost track of this handler".into());
            // The supervisor may be the one that died (taking this actor with it): then straight to the Reporter.
            if let Err(ractor::MessagingErr::SendErr(EgressesMessage::Status(update))) =
                peers.egresses.cast(EgressesMessage::Status(update))
            {
                let _ = peers.reporter.cast(super::reporter::ReporterMessage::Update(update));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The one result of a handler, and the error shown with it: the node's own kill reason if set, else a launch
/// failure, else an abort, else the handler's final report, else its exit status.
fn outcome(state: &ProcessState, exit: Option<ExitStatus>) -> (HandlerResult, String) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(reason) = &state.kill_reason {
        return (reason.result(), reason.describe());
    }
    if let Some(why) = &state.launch_failure {
        return (HandlerResult::LaunchFailed, why.clone());
    }
    if state.aborted {
        return (HandlerResult::Aborted, "stopped before it became active".into());
    }
    if let Some(report) = &state.report {
        return if report.error.is_empty() {
            (HandlerResult::Completed, String::new())
        } else {
            (HandlerResult::PipelineError, report.error.clone())
        };
    }
    let described = match exit {
        None => "handler exit status unknown".to_string(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("handler exited with code {c}"),
            (None, Some(sig)) => format!("handler killed by signal {sig}"),
            _ => "handler exited".into(),
        },
    };
    if state.phase == Phase::Launching {
        return (HandlerResult::LaunchFailed, format!("{described} before it was ready"));
    }
    match exit.and_then(|s| s.code()) {
        Some(0) => (HandlerResult::Completed, String::new()),
        Some(EXIT_PIPELINE_ERROR) => (HandlerResult::PipelineError, described),
        _ => (HandlerResult::ProcessError, described),
    }
}

/// Signals a handler's whole process group; a group that is already gone is fine.
pub fn signal_group(pgid: Option<i32>, signal: Signal) {
    if let Some(pgid) = pgid.filter(|p| *p > 1) {
        if let Err(e) = killpg(Pid::from_raw(pgid), signal) {
            if e != nix::errno::Errno::ESRCH {
                warn!(pgid, ?signal, error = %e, "Cannot signal handler process group.");
            }
        }
    }
}
