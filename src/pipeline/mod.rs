//! The GStreamer pipeline of one egress: built element by element from the request, run until its duration,
//! a stop or the end of its source, then ended with EOS so every output is finalized.
//!
//! # Layout
//! - `source`: test pattern or URI → raw video and raw audio tees.
//! - `graph`: the pipeline under construction; one encoder per codec, teed to every output that needs it.
//! - `output`: muxer + sink per output, and the bytes each wrote.

mod graph;
mod output;
mod source;

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use gst::prelude::*;
use gstreamer as gst;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::request::{redact_url, EgressRequest, Output, Source};

/// How long setting the pipeline to NULL may take at the end.
const NULL_TIMEOUT: Duration = Duration::from_secs(5);

const WEB_UNSUPPORTED: &str = "web sources need Chromium; not built yet";

/// Why a pipeline could not be built, started or finished. No variant carries a secret: text that may quote a
/// URL passes through the request's redactor first.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("GStreamer element {0:?} is not installed")]
    MissingElement(&'static str),
    #[error("cannot build the pipeline: {0}")]
    Build(String),
    #[error("cannot create output directory {}: {source}", path.display())]
    CreateDir { path: std::path::PathBuf, source: std::io::Error },
    #[error("the pipeline did not start: {0}")]
    StateChange(String),
    /// An error posted on the bus; URLs and stream keys are redacted.
    #[error("pipeline error: {0}")]
    Runtime(String),
    #[error("outputs not finalized: no end-of-stream within {0:?}")]
    EosTimeout(Duration),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl From<gst::glib::BoolError> for PipelineError {
    fn from(e: gst::glib::BoolError) -> Self {
        Self::Build(e.message.to_string())
    }
}

/// Stages the handler reports upward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The pipeline is PLAYING and media reached the encoders.
    Active,
    /// End-of-stream is on its way: duration reached, stop asked, or the source ended.
    Ending,
}

/// What a finished pipeline produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub duration: Duration,
    pub size_bytes: u64,
}

/// Builds and runs the pipeline for `req` to its end; see the module doc. Sends `Stage::Active` once the pipeline
/// is PLAYING and data flows, `Stage::Ending` when it begins to finish. On `stop` turning true, or after
/// `req.duration` of running time, sends EOS and waits up to `eos_timeout` for it to reach every sink. The
/// pipeline is set to NULL on every exit path.
pub async fn run(
    req: &EgressRequest,
    stop: watch::Receiver<bool>,
    stages: mpsc::UnboundedSender<Stage>,
    eos_timeout: Duration,
) -> Result<Report, PipelineError> {
    if let Source::Web(_) = req.source {
        return Err(PipelineError::Unsupported(WEB_UNSUPPORTED.into()));
    }
    if req.outputs.is_empty() {
        return Err(PipelineError::Build("no outputs".into()));
    }
    gst::init().map_err(|e| PipelineError::Build(e.to_string()))?;
    let redactor = Redactor::new(req);
    for output in &req.outputs {
        output::prepare(output)?;
    }
    let pipeline = build(req).map_err(|e| redactor.error(e))?;
    let mut guard = NullOnDrop(Some(pipeline.clone()));

    let result = drive(&pipeline, req.duration, stop, &stages, eos_timeout, &redactor).await;

    // NULL can wait on streaming threads (a sink stuck in a network call), so not on the runtime thread, and
    // not for ever: the report (and the process exit after it) must not hang on one stuck element.
    if let Some(pipeline) = guard.0.take() {
        let null = tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null));
        if tokio::time::timeout(NULL_TIMEOUT, null).await.is_err() {
            tracing::warn!(timeout = ?NULL_TIMEOUT, "Pipeline did not reach NULL in time; going on without it.");
        }
    }
    let duration = result?;
    let size_bytes = req.outputs.iter().map(output::written_bytes).sum();
    Ok(Report { duration, size_bytes })
}

fn build(req: &EgressRequest) -> Result<gst::Pipeline, PipelineError> {
    let video = req.outputs.iter().any(output::needs_video);
    let audio = req.outputs.iter().any(output::needs_audio);
    let mut graph = graph::Graph::new(req.preset);
    match &req.source {
        Source::Test => source::test(&mut graph, video, audio)?,
        Source::Url(uri) => source::url(&mut graph, uri, video, audio)?,
        Source::Web(_) => return Err(PipelineError::Unsupported(WEB_UNSUPPORTED.into())),
    }
    for output in &req.outputs {
        output::add(&mut graph, output)?;
    }
    Ok(graph.pipeline)
}

/// Sets the pipeline to NULL if `run` is dropped mid-way (its future cancelled); the normal path takes it out.
struct NullOnDrop(Option<gst::Pipeline>);

impl Drop for NullOnDrop {
    fn drop(&mut self) {
        if let Some(pipeline) = self.0.take() {
            let _ = pipeline.set_state(gst::State::Null);
        }
    }
}

/// What a bus message means to the run loop.
#[derive(Debug)]
enum PipelineEvent {
    /// The pipeline itself reached PLAYING.
    Playing,
    /// The first buffer reached a raw tee (posted by a probe in `source`).
    FirstBuffer,
    /// Every sink has finished; outputs are finalized.
    Eos,
    /// An element failed; the text is not yet redacted.
    Error(String),
    /// An element complained but goes on; the text is not yet redacted.
    Warning(String),
    Other,
}

impl PipelineEvent {
    fn from_message(msg: &gst::Message, pipeline: &gst::Pipeline) -> Self {
        use gst::MessageView;
        match msg.view() {
            MessageView::StateChanged(s)
                if msg.src() == Some(pipeline.upcast_ref()) && s.current() == gst::State::Playing =>
            {
                Self::Playing
            }
            MessageView::Application(a) if a.structure().is_some_and(|s| s.name() == source::FIRST_BUFFER) => {
                Self::FirstBuffer
            }
            MessageView::Eos(_) => Self::Eos,
            MessageView::Error(e) => {
                let element = msg.src().map(|s| s.name().to_string()).unwrap_or_else(|| "pipeline".into());
                let debug = e.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                Self::Error(format!("{element}: {}{debug}", e.error()))
            }
            MessageView::Warning(w) => {
                let element = msg.src().map(|s| s.name().to_string()).unwrap_or_else(|| "pipeline".into());
                Self::Warning(format!("{element}: {}", w.error()))
            }
            _ => Self::Other,
        }
    }
}

/// Runs the bus loop; returns the running time at EOS.
async fn drive(
    pipeline: &gst::Pipeline,
    duration: Option<Duration>,
    mut stop: watch::Receiver<bool>,
    stages: &mpsc::UnboundedSender<Stage>,
    eos_timeout: Duration,
    redactor: &Redactor,
) -> Result<Duration, PipelineError> {
    let bus = pipeline.bus().ok_or_else(|| PipelineError::Build("pipeline without a bus".into()))?;
    let mut messages = bus.stream();
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The reason, if any, was posted on the bus, and the stream has it already.
        let mut reason = "state change to PLAYING failed".to_string();
        while let Some(Some(msg)) = messages.next().now_or_never() {
            if let PipelineEvent::Error(e) = PipelineEvent::from_message(&msg, pipeline) {
                reason = e;
                break;
            }
        }
        return Err(PipelineError::StateChange(redactor.redact(&reason)));
    }

    let mut playing = false;
    let mut flowing = false;
    let mut active_at: Option<Instant> = None;
    let mut end_at: Option<Instant> = None;
    let mut eos_deadline: Option<Instant> = None;
    let mut stop_open = true;
    let far = || Instant::now() + Duration::from_secs(365 * 24 * 3600);

    let begin_ending = |eos_deadline: &mut Option<Instant>, why: &str| {
        if eos_deadline.is_none() {
            tracing::info!(why, "Ending the pipeline.");
            let _ = stages.send(Stage::Ending);
            *eos_deadline = Some(Instant::now() + eos_timeout);
            pipeline.send_event(gst::event::Eos::new());
        }
    };
    if *stop.borrow_and_update() {
        begin_ending(&mut eos_deadline, "stop requested before start");
    }

    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else {
                    return Err(PipelineError::Runtime("bus closed".into()));
                };
                match PipelineEvent::from_message(&msg, pipeline) {
                    PipelineEvent::Playing => playing = true,
                    PipelineEvent::FirstBuffer => flowing = true,
                    PipelineEvent::Eos => {
                        if eos_deadline.is_none() {
                            let _ = stages.send(Stage::Ending);
                        }
                        let ran = pipeline
                            .current_running_time()
                            .map(Duration::from)
                            .or_else(|| active_at.map(|t| t.elapsed()))
                            .unwrap_or_default();
                        return Ok(ran);
                    }
                    PipelineEvent::Error(e) => return Err(PipelineError::Runtime(redactor.redact(&e))),
                    PipelineEvent::Warning(w) => tracing::warn!(warning = %redactor.redact(&w), "Pipeline warning."),
                    PipelineEvent::Other => {}
                }
                if playing && flowing && active_at.is_none() {
                    active_at = Some(Instant::now());
                    // Stopped before it started: Ending was reported already; Active after it would confuse.
                    if eos_deadline.is_none() {
                        let _ = stages.send(Stage::Active);
                    }
                    if let Some(d) = duration {
                        // Count from running time zero: the first buffers were stamped before this message arrived.
                        let ran = pipeline.current_running_time().map(Duration::from).unwrap_or_default();
                        end_at = Some(Instant::now() + d.saturating_sub(ran));
                    }
                }
            }
            changed = stop.changed(), if stop_open && eos_deadline.is_none() => {
                match changed {
                    Ok(()) if *stop.borrow_and_update() => begin_ending(&mut eos_deadline, "stop requested"),
                    Ok(()) => {}
                    // The sender is gone: nobody can ask us to stop any more; the duration or the source ends us.
                    Err(_) => stop_open = false,
                }
            }
            _ = tokio::time::sleep_until(end_at.unwrap_or_else(far)), if end_at.is_some() && eos_deadline.is_none() => {
                begin_ending(&mut eos_deadline, "duration reached");
            }
            _ = tokio::time::sleep_until(eos_deadline.unwrap_or_else(far)), if eos_deadline.is_some() => {
                return Err(PipelineError::EosTimeout(eos_timeout));
            }
        }
    }
}

/// Removes the secrets of a request (stream URLs, URL sources) from text bound for errors and logs.
struct Redactor {
    /// (secret, replacement), longest first so a whole URL is replaced before its parts.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    fn new(req: &EgressRequest) -> Self {
        let mut urls: Vec<&str> = req
            .outputs
            .iter()
            .filter_map(|o| match o {
                Output::Stream { url } => Some(url.as_str()),
                _ => None,
            })
            .collect();
        if let Source::Url(uri) | Source::Web(uri) = &req.source {
            urls.push(uri);
        }
        let mut secrets = Vec::new();
        for url in urls {
            secrets.push((url.to_string(), redact_url(url)));
            secrets.extend(secret_parts(url).into_iter().map(|s| (s, "****".to_string())));
        }
        secrets.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |t, (secret, with)| t.replace(secret, with))
    }

    fn error(&self, e: PipelineError) -> PipelineError {
        match e {
            PipelineError::Build(m) => PipelineError::Build(self.redact(&m)),
            PipelineError::Runtime(m) => PipelineError::Runtime(self.redact(&m)),
            PipelineError::StateChange(m) => PipelineError::StateChange(self.redact(&m)),
            PipelineError::Unsupported(m) => PipelineError::Unsupported(self.redact(&m)),
            other => other,
        }
    }
}

/// The parts of a URL `redact_url` hides, for when an element quotes them apart from the URL (a stream key in
/// a path, a password, query values). Parts shorter than 4 characters are left: replacing them would mangle
/// unrelated text.
fn secret_parts(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return vec![url.to_string()];
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    let mut parts = Vec::new();
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if let Some((_, password)) = userinfo.split_once(':') {
            parts.push(password.to_string());
        }
    }
    if let Some((_, key)) = path.split_once('/') {
        parts.push(key.to_string());
    }
    parts.extend(query.split('&').filter_map(|kv| kv.split_once('=')).map(|(_, v)| v.to_string()));
    parts.retain(|p| p.len() >= 4);
    parts
}

#[cfg(test)]
mod tests;
