//! The element graph under construction: raw tees fed by the source, encoders built once on first use, each
//! followed by a tee that every output of that codec branches from (a `queue` after every tee pad).

use gst::prelude::*;
use gstreamer as gst;

use super::PipelineError;
use crate::request::Preset;

/// Audio is normalized to this before any encoder: Opus only takes 48 kHz and AAC is happy with it.
const AUDIO_RATE: i32 = 48_000;
const AUDIO_CHANNELS: i32 = 2;

/// A compressed stream one or more outputs consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    H264,
    Aac,
    Vp8,
    Opus,
}

impl Codec {
    const ALL: [Codec; 4] = [Codec::H264, Codec::Aac, Codec::Vp8, Codec::Opus];

    fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or_default()
    }

    fn is_video(self) -> bool {
        matches!(self, Codec::H264 | Codec::Vp8)
    }
}

/// Where H.264 parameter sets (SPS/PPS) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ParamSets {
    /// In the container header only (mp4, webm).
    Header,
    /// Also before every key frame: a live viewer or segment can start at any key frame, and an SRT/RTMP
    /// connection may come up after the first one was sent.
    EveryKeyFrame,
}

/// Looks the factory up first so a missing plugin becomes `MissingElement` with its name rather than a vague
/// build error.
pub(super) fn make<'a>(factory: &'static str) -> Result<gst::element_factory::ElementBuilder<'a>, PipelineError> {
    gst::ElementFactory::find(factory).ok_or(PipelineError::MissingElement(factory))?;
    Ok(gst::ElementFactory::make(factory))
}

/// A queue after a tee pad. Bounded by time only: encoders differ in latency by far more buffers than by bytes.
pub(super) fn queue() -> Result<gst::Element, PipelineError> {
    Ok(make("queue")?
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", gst::ClockTime::from_seconds(3).nseconds())
        .build()?)
}

pub(super) fn raw_audio_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw").field("rate", AUDIO_RATE).field("channels", AUDIO_CHANNELS).build()
}

pub(super) fn raw_video_caps(preset: &Preset) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("width", preset.width as i32)
        .field("height", preset.height as i32)
        .field("framerate", gst::Fraction::new(preset.fps as i32, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

pub(super) struct Graph {
    pub pipeline: gst::Pipeline,
    pub preset: Preset,
    /// Tee of decoded video at the preset size and rate; None when no output needs video.
    pub raw_video: Option<gst::Element>,
    /// Tee of decoded audio at 48 kHz stereo; None when no output needs audio.
    pub raw_audio: Option<gst::Element>,
    /// One tee per codec, indexed by `Codec::index`, built on first use so each stream is encoded once.
    encoded: [Option<gst::Element>; 4],
}

impl Graph {
    pub fn new(preset: Preset) -> Self {
        Self {
            pipeline: gst::Pipeline::with_name("egress"),
            preset,
            raw_video: None,
            raw_audio: None,
            encoded: Default::default(),
        }
    }

    /// Adds `elements` to the pipeline and links them in order.
    pub fn chain(&self, elements: &[&gst::Element]) -> Result<(), PipelineError> {
        self.pipeline.add_many(elements.iter().copied())?;
        gst::Element::link_many(elements.iter().copied())?;
        Ok(())
    }

    /// A new tee branch: `tee → queue`, returning the queue to link on from.
    pub fn branch(&self, tee: &gst::Element) -> Result<gst::Element, PipelineError> {
        let queue = queue()?;
        self.pipeline.add(&queue)?;
        tee.link(&queue)?;
        Ok(queue)
    }

    /// Links a new branch of `codec`'s tee, through the parser the container needs, to `sink_pad`
    /// (a request pad of a muxer).
    pub fn feed(&mut self, codec: Codec, sink_pad: &gst::Pad, params: ParamSets) -> Result<(), PipelineError> {
        let tee = self.encoded(codec)?;
        let queue = self.branch(&tee)?;
        // A parser per branch, not one before the tee: mp4/flv want avc/raw, mpegts wants byte-stream/ADTS,
        // and each parser converts to what its own muxer asks for.
        let last = match codec {
            Codec::H264 => {
                let interval = if params == ParamSets::EveryKeyFrame { -1i32 } else { 0 };
                Some(make("h264parse")?.property("config-interval", interval).build()?)
            }
            Codec::Aac => Some(make("aacparse")?.build()?),
            Codec::Vp8 | Codec::Opus => None,
        };
        let last = match last {
            Some(parser) => {
                self.pipeline.add(&parser)?;
                queue.link(&parser)?;
                parser
            }
            None => queue,
        };
        let src = last.static_pad("src").ok_or_else(|| PipelineError::Build("element without a src pad".into()))?;
        src.link(sink_pad).map_err(|e| PipelineError::Build(format!("cannot link {codec:?} into muxer: {e}")))?;
        Ok(())
    }

    /// Requests `template` on `mux` and feeds `codec` into it.
    pub fn feed_mux(
        &mut self,
        codec: Codec,
        mux: &gst::Element,
        template: &str,
        params: ParamSets,
    ) -> Result<(), PipelineError> {
        let pad = mux
            .request_pad_simple(template)
            .ok_or_else(|| PipelineError::Build(format!("{} has no request pad {template}", mux.name())))?;
        self.feed(codec, &pad, params)
    }

    /// The tee carrying `codec`, building `raw tee → queue → convert → encoder → tee` the first time.
    fn encoded(&mut self, codec: Codec) -> Result<gst::Element, PipelineError> {
        if let Some(tee) = &self.encoded[codec.index()] {
            return Ok(tee.clone());
        }
        let raw = if codec.is_video() { &self.raw_video } else { &self.raw_audio };
        let raw = raw
            .clone()
            .ok_or_else(|| PipelineError::Build(format!("{codec:?} needed but the source has no such stream")))?;
        let p = self.preset;
        let mut chain = match codec {
            Codec::H264 => vec![
                make("videoconvert")?.build()?,
                // Without I420 x264enc picks 4:4:4, which browsers cannot play (DESIGN.md, known traps).
                make("capsfilter")?
                    .property("caps", gst::Caps::builder("video/x-raw").field("format", "I420").build())
                    .build()?,
                make("x264enc")?
                    .property("bitrate", p.video_bitrate_kbps)
                    .property_from_str("speed-preset", "veryfast")
                    .property_from_str("tune", "zerolatency")
                    .property("key-int-max", 2 * p.fps)
                    .build()?,
            ],
            Codec::Vp8 => vec![
                make("videoconvert")?.build()?,
                make("vp8enc")?
                    .property("deadline", 1i64)
                    .property("cpu-used", 8i32)
                    .property("target-bitrate", (p.video_bitrate_kbps * 1000) as i32)
                    .property("keyframe-max-dist", (2 * p.fps) as i32)
                    .build()?,
            ],
            Codec::Aac => vec![
                make("audioconvert")?.build()?,
                make("audioresample")?.build()?,
                aac_encoder(p.audio_bitrate_kbps)?,
            ],
            Codec::Opus => vec![
                make("audioconvert")?.build()?,
                make("audioresample")?.build()?,
                make("opusenc")?.property("bitrate", (p.audio_bitrate_kbps * 1000) as i32).build()?,
            ],
        };
        chain.push(make("tee")?.build()?);
        let queue = self.branch(&raw)?;
        let refs: Vec<&gst::Element> = chain.iter().collect();
        self.chain(&refs)?;
        queue.link(refs[0])?;
        let tee = chain.pop().expect("tee pushed above");
        self.encoded[codec.index()] = Some(tee.clone());
        Ok(tee)
    }
}

/// `avenc_aac`, or `voaacenc` where libav lacks it (`fdkaacenc` does not exist on Debian).
fn aac_encoder(kbps: u32) -> Result<gst::Element, PipelineError> {
    let bps = (kbps * 1000) as i32;
    let bps_text = bps.to_string();
    if let Ok(builder) = make("avenc_aac") {
        // Set from a string: the property's integer width follows libav's option type.
        let encoder = builder.property_from_str("bitrate", &bps_text).build()?;
        return Ok(encoder);
    }
    Ok(make("voaacenc")?.property("bitrate", bps).build()?)
}
