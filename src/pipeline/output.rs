//! Outputs: a muxer and sink per output, fed from the encoded tees of the graph; and the accounting of the bytes
//! each output wrote, for the report.

use std::path::Path;

use gst::prelude::*;
use gstreamer as gst;

use super::graph::{make, Codec, Graph, ParamSets};
use super::PipelineError;
use crate::request::{Container, Output};

const SEGMENT_PATTERN: &str = "segment%05d.ts";
const PLAYLIST: &str = "playlist.m3u8";
const IMAGE_PATTERN: &str = "img%05d.jpg";
/// HLS target duration; key frames come every 2 s, so segments cut cleanly.
const SEGMENT_SECS: u32 = 2;
/// One image every this many seconds.
const IMAGE_INTERVAL_SECS: i32 = 5;

pub(super) fn needs_video(output: &Output) -> bool {
    match output {
        Output::File { container, .. } => container.has_video(),
        Output::Stream { .. } | Output::Segments { .. } | Output::Images { .. } => true,
    }
}

pub(super) fn needs_audio(output: &Output) -> bool {
    !matches!(output, Output::Images { .. })
}

/// Creates the directories an output writes into; done before the pipeline starts so a bad path fails fast.
pub(super) fn prepare(output: &Output) -> Result<(), PipelineError> {
    let dir = match output {
        Output::File { path, .. } => path.parent(),
        Output::Segments { dir } | Output::Images { dir } => Some(dir.as_path()),
        Output::Stream { .. } => None,
    };
    match dir {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| PipelineError::CreateDir { path: dir.to_path_buf(), source })
        }
        _ => Ok(()),
    }
}

/// Adds `output`'s muxer and sink to the graph and links the streams it needs.
pub(super) fn add(graph: &mut Graph, output: &Output) -> Result<(), PipelineError> {
    match output {
        Output::File { path, container } => {
            let (mux, video, audio) = match container {
                Container::Mp4 => (make("mp4mux")?.build()?, Some(Codec::H264), Codec::Aac),
                Container::Webm => (make("webmmux")?.build()?, Some(Codec::Vp8), Codec::Opus),
                Container::Ogg => (make("oggmux")?.build()?, None, Codec::Opus),
            };
            let sink = make("filesink")?.property("location", path_str(path)?).build()?;
            graph.chain(&[&mux, &sink])?;
            if let Some(video) = video {
                graph.feed_mux(video, &mux, "video_%u", ParamSets::Header)?;
            }
            graph.feed_mux(audio, &mux, "audio_%u", ParamSets::Header)?;
        }
        Output::Stream { url } => {
            let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
            match scheme.as_str() {
                "rtmp" | "rtmps" => {
                    let mux = make("flvmux")?.property("streamable", true).build()?;
                    let sink = make("rtmp2sink")?.property("location", url.as_str()).build()?;
                    graph.chain(&[&mux, &sink])?;
                    graph.feed_mux(Codec::H264, &mux, "video", ParamSets::EveryKeyFrame)?;
                    graph.feed_mux(Codec::Aac, &mux, "audio", ParamSets::EveryKeyFrame)?;
                }
                "srt" => {
                    let mux = make("mpegtsmux")?.build()?;
                    let sink = make("srtsink")?.property("uri", url.as_str()).build()?;
                    graph.chain(&[&mux, &sink])?;
                    graph.feed_mux(Codec::H264, &mux, "sink_%d", ParamSets::EveryKeyFrame)?;
                    graph.feed_mux(Codec::Aac, &mux, "sink_%d", ParamSets::EveryKeyFrame)?;
                }
                other => return Err(PipelineError::Unsupported(format!("stream scheme {other:?}"))),
            }
        }
        Output::Segments { dir } => {
            let sink = make("hlssink2")?
                .property("location", path_str(&dir.join(SEGMENT_PATTERN))?)
                .property("playlist-location", path_str(&dir.join(PLAYLIST))?)
                .property("target-duration", SEGMENT_SECS)
                // A recording keeps every segment and lists them all.
                .property("max-files", 0u32)
                .property("playlist-length", 0u32)
                .build()?;
            graph.pipeline.add(&sink)?;
            graph.feed_mux(Codec::H264, &sink, "video", ParamSets::EveryKeyFrame)?;
            graph.feed_mux(Codec::Aac, &sink, "audio", ParamSets::EveryKeyFrame)?;
        }
        Output::Images { dir } => {
            let raw =
                graph.raw_video.clone().ok_or_else(|| PipelineError::Build("images need a video stream".into()))?;
            let branch = graph.branch(&raw)?;
            let rate = make("videorate")?.build()?;
            let caps = make("capsfilter")?
                .property(
                    "caps",
                    gst::Caps::builder("video/x-raw")
                        .field("framerate", gst::Fraction::new(1, IMAGE_INTERVAL_SECS))
                        .build(),
                )
                .build()?;
            let convert = make("videoconvert")?.build()?;
            let enc = make("jpegenc")?.build()?;
            let sink = make("multifilesink")?.property("location", path_str(&dir.join(IMAGE_PATTERN))?).build()?;
            graph.chain(&[&rate, &caps, &convert, &enc, &sink])?;
            branch.link(&rate)?;
        }
    }
    Ok(())
}

/// Bytes `output` wrote: the file, or the files it names in its directory (not whatever else lives there).
pub(super) fn written_bytes(output: &Output) -> u64 {
    match output {
        Output::File { path, .. } => file_len(path),
        Output::Stream { .. } => 0,
        Output::Segments { dir } => {
            dir_bytes(dir, |name| name == PLAYLIST || (name.starts_with("segment") && name.ends_with(".ts")))
        }
        Output::Images { dir } => dir_bytes(dir, |name| name.starts_with("img") && name.ends_with(".jpg")),
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn dir_bytes(dir: &Path, ours: impl Fn(&str) -> bool) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(&ours))
        .map(|e| file_len(&e.path()))
        .sum()
}

fn path_str(path: &Path) -> Result<String, PipelineError> {
    path.to_str()
        .map(String::from)
        .ok_or_else(|| PipelineError::Build(format!("output path {} is not UTF-8", path.display())))
}
