//! Sources: each ends in the raw video and raw audio tees of the graph, at the preset size and rate, so the
//! encoders never care where media came from.

use gst::prelude::*;
use gstreamer as gst;

use super::graph::{make, raw_audio_caps, raw_video_caps, Graph};
use super::PipelineError;

/// Name of the application message posted once the first buffer reaches a raw tee.
pub(super) const FIRST_BUFFER: &str = "egress-first-buffer";

/// Test pattern and a 440 Hz sine tone, both live.
pub(super) fn test(graph: &mut Graph, video: bool, audio: bool) -> Result<(), PipelineError> {
    if video {
        let src = make("videotestsrc")?.property("is-live", true).property_from_str("pattern", "smpte").build()?;
        let caps = make("capsfilter")?.property("caps", raw_video_caps(&graph.preset)).build()?;
        let tee = raw_tee()?;
        graph.chain(&[&src, &caps, &tee])?;
        graph.raw_video = Some(tee);
    }
    if audio {
        let src = make("audiotestsrc")?
            .property("is-live", true)
            .property_from_str("wave", "sine")
            .property("freq", 440.0f64)
            .property("volume", 0.3f64)
            .build()?;
        let convert = make("audioconvert")?.build()?;
        let resample = make("audioresample")?.build()?;
        let caps = make("capsfilter")?.property("caps", raw_audio_caps()).build()?;
        let tee = raw_tee()?;
        graph.chain(&[&src, &convert, &resample, &caps, &tee])?;
        graph.raw_audio = Some(tee);
    }
    Ok(())
}

/// Any URI `uridecodebin` opens. Decoded streams are paced by `clocksync` so a file plays in real time like a
/// live source (durations and stop then mean the same for every source). A wanted stream the URI lacks is
/// filled with black or silence until the URI ends.
pub(super) fn url(graph: &mut Graph, uri: &str, video: bool, audio: bool) -> Result<(), PipelineError> {
    let decode = make("uridecodebin")?.property("uri", uri).build()?;
    graph.pipeline.add(&decode)?;

    let video_entry = if video {
        let convert = make("videoconvert")?.build()?;
        let scale = make("videoscale")?.build()?;
        let rate = make("videorate")?.build()?;
        let caps = make("capsfilter")?.property("caps", raw_video_caps(&graph.preset)).build()?;
        let sync = make("clocksync")?.build()?;
        let tee = raw_tee()?;
        graph.chain(&[&convert, &scale, &rate, &caps, &sync, &tee])?;
        graph.raw_video = Some(tee);
        Some(convert)
    } else {
        None
    };
    let audio_entry = if audio {
        let convert = make("audioconvert")?.build()?;
        let resample = make("audioresample")?.build()?;
        let caps = make("capsfilter")?.property("caps", raw_audio_caps()).build()?;
        let sync = make("clocksync")?.build()?;
        let tee = raw_tee()?;
        graph.chain(&[&convert, &resample, &caps, &sync, &tee])?;
        graph.raw_audio = Some(tee);
        Some(convert)
    } else {
        None
    };

    let pipeline = graph.pipeline.downgrade();
    let (v, a) = (video_entry.clone(), audio_entry.clone());
    decode.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline.upgrade() else {
            return;
        };
        let caps = pad.current_caps().or_else(|| pad.allowed_caps());
        let media = caps.as_ref().and_then(|c| c.structure(0)).map(|s| s.name().to_string()).unwrap_or_default();
        let entry = if media.starts_with("video/") {
            v.as_ref()
        } else if media.starts_with("audio/") {
            a.as_ref()
        } else {
            None
        };
        let target = entry.and_then(|e| e.static_pad("sink")).filter(|p| !p.is_linked());
        match target {
            Some(sink) => {
                if let Err(e) = pad.link(&sink) {
                    tracing::warn!(media, error = %e, "Cannot link decoded stream.");
                }
            }
            // Streams no output wants (a second video track, subtitles) are drained, or decodebin would stall.
            None => drain(&pipeline, pad),
        }
    });

    let pipeline = graph.pipeline.downgrade();
    let preset = graph.preset;
    decode.connect_no_more_pads(move |_| {
        let Some(pipeline) = pipeline.upgrade() else {
            return;
        };
        let fillers = [(&video_entry, true), (&audio_entry, false)];
        let missing: Vec<_> = fillers
            .iter()
            .filter_map(|(entry, is_video)| {
                let sink = entry.as_ref()?.static_pad("sink")?;
                (!sink.is_linked()).then_some((sink, *is_video))
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        // The decoded streams that do exist: when all of them end, the fillers must end too.
        let present: Vec<gst::Pad> = fillers
            .iter()
            .filter_map(|(entry, _)| entry.as_ref()?.static_pad("sink"))
            .filter(|p| p.is_linked())
            .collect();
        let mut filler_srcs = Vec::new();
        for (sink, is_video) in missing {
            match add_filler(&pipeline, &sink, is_video, &preset) {
                Ok(src) => filler_srcs.push(src),
                Err(e) => {
                    let msg =
                        format!("cannot fill the missing {} stream: {e}", if is_video { "video" } else { "audio" });
                    gst::element_error!(pipeline, gst::StreamError::Failed, ["{}", msg]);
                }
            }
        }
        end_fillers_with(&present, filler_srcs);
    });
    Ok(())
}

/// A tee that announces the first buffer through it, which is how `run` learns that data flows.
fn raw_tee() -> Result<gst::Element, PipelineError> {
    let tee = make("tee")?.build()?;
    let sink = tee.static_pad("sink").ok_or_else(|| PipelineError::Build("tee without a sink pad".into()))?;
    sink.add_probe(gst::PadProbeType::BUFFER, |pad, _| {
        if let Some(tee) = pad.parent_element() {
            let _ = tee.post_message(gst::message::Application::new(gst::Structure::new_empty(FIRST_BUFFER)));
        }
        gst::PadProbeReturn::Remove
    });
    Ok(tee)
}

fn drain(pipeline: &gst::Pipeline, pad: &gst::Pad) {
    let linked = (|| -> Result<(), PipelineError> {
        let sink = make("fakesink")?.property("sync", false).property("async", false).build()?;
        pipeline.add(&sink)?;
        sink.sync_state_with_parent()?;
        let sink_pad =
            sink.static_pad("sink").ok_or_else(|| PipelineError::Build("fakesink without sink pad".into()))?;
        pad.link(&sink_pad).map_err(|e| PipelineError::Build(e.to_string()))?;
        Ok(())
    })();
    if let Err(e) = linked {
        tracing::warn!(error = %e, "Cannot drain an unused decoded stream.");
    }
}

/// Black video or silence into `sink`, returning the source so it can be ended.
fn add_filler(
    pipeline: &gst::Pipeline,
    sink: &gst::Pad,
    video: bool,
    preset: &crate::request::Preset,
) -> Result<gst::Element, PipelineError> {
    let (src, caps) = if video {
        (make("videotestsrc")?.property_from_str("pattern", "black").build()?, raw_video_caps(preset))
    } else {
        (make("audiotestsrc")?.property_from_str("wave", "silence").build()?, raw_audio_caps())
    };
    let filter = make("capsfilter")?.property("caps", caps).build()?;
    pipeline.add_many([&src, &filter])?;
    src.link(&filter)?;
    let src_pad = filter.static_pad("src").ok_or_else(|| PipelineError::Build("capsfilter without src pad".into()))?;
    src_pad.link(sink).map_err(|e| PipelineError::Build(e.to_string()))?;
    filter.sync_state_with_parent()?;
    src.sync_state_with_parent()?;
    Ok(src)
}

/// Sends EOS to `fillers` once every pad of `present` has seen EOS; with nothing present they run until stopped.
fn end_fillers_with(present: &[gst::Pad], fillers: Vec<gst::Element>) {
    if present.is_empty() || fillers.is_empty() {
        return;
    }
    let remaining = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(present.len()));
    let fillers = std::sync::Arc::new(fillers);
    for pad in present {
        let (remaining, fillers) = (remaining.clone(), fillers.clone());
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            let is_eos = matches!(info.data, Some(gst::PadProbeData::Event(ref e)) if e.type_() == gst::EventType::Eos);
            if !is_eos {
                return gst::PadProbeReturn::Ok;
            }
            if remaining.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                for filler in fillers.iter() {
                    filler.send_event(gst::event::Eos::new());
                }
            }
            gst::PadProbeReturn::Remove
        });
    }
}
