//! The domain form of a start request, and its validation at the edge: a bad request gets an error that names
//! the field and the reason, and nothing is queued or launched.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::proto;

/// The longest recording a request may ask for (one week); longer ones are almost surely a unit mistake.
const MAX_DURATION_SECS: f64 = 7.0 * 24.0 * 3600.0;

/// A request that failed validation: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct RequestError {
    pub field: String,
    pub reason: String,
}

impl RequestError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// The identity of one egress, e.g. `EG_3f2a9c1d7b4e`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EgressId(String);

impl EgressId {
    pub fn new() -> Self {
        Self(format!("EG_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for EgressId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<String> for EgressId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Display for EgressId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `type` label of an egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EgressType {
    Test,
    Url,
    Web,
    RoomComposite,
}

impl EgressType {
    pub const ALL: [EgressType; 4] = [Self::Test, Self::Url, Self::Web, Self::RoomComposite];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Url => "url",
            Self::Web => "web",
            Self::RoomComposite => "room_composite",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Where the media comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Test pattern and a sine tone.
    Test,
    /// Any URI GStreamer can open.
    Url(String),
    /// A web page rendered by Chromium.
    Web(String),
}

impl Source {
    pub fn egress_type(&self) -> EgressType {
        match self {
            Self::Test => EgressType::Test,
            Self::Url(_) => EgressType::Url,
            Self::Web(_) => EgressType::Web,
        }
    }

    fn parse(s: &str) -> Result<Self, RequestError> {
        let err = |reason: &str| RequestError::new("source", reason);
        if s == "test" {
            return Ok(Self::Test);
        }
        if let Some(uri) = s.strip_prefix("url:") {
            let scheme =
                uri_scheme(uri).ok_or_else(|| err("url: needs a URI with a scheme, e.g. url:file:///a.mp4"))?;
            const SCHEMES: [&str; 7] = ["file", "http", "https", "rtmp", "rtmps", "srt", "rtsp"];
            if !SCHEMES.contains(&scheme.as_str()) {
                return Err(err(&format!(
                    "unsupported URI scheme {scheme:?} (expected one of {})",
                    SCHEMES.join(", ")
                )));
            }
            return Ok(Self::Url(uri.to_string()));
        }
        if let Some(url) = s.strip_prefix("web:") {
            match uri_scheme(url).as_deref() {
                Some("http" | "https" | "file") => return Ok(Self::Web(url.to_string())),
                _ => return Err(err("web: needs an http(s) or file URL")),
            }
        }
        if s.is_empty() {
            return Err(err("is required (test, url:<URI> or web:<URL>)"));
        }
        Err(err(&format!("unknown source {:?} (expected test, url:<URI> or web:<URL>)", redact_url(s))))
    }
}

/// The container a file output is written in, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// H.264 + AAC.
    Mp4,
    /// VP8 + Opus.
    Webm,
    /// Opus only.
    Ogg,
}

impl Container {
    fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "mp4" => Some(Self::Mp4),
            "webm" => Some(Self::Webm),
            "ogg" | "opus" => Some(Self::Ogg),
            _ => None,
        }
    }

    pub fn has_video(self) -> bool {
        !matches!(self, Self::Ogg)
    }
}

/// One output of an egress. Paths are absolute and below the output root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    File {
        path: PathBuf,
        container: Container,
    },
    /// rtmp(s):// or srt:// URL; may contain a secret stream key.
    Stream {
        url: String,
    },
    Segments {
        dir: PathBuf,
    },
    Images {
        dir: PathBuf,
    },
}

impl Output {
    /// How the output is shown in logs, API answers and errors: stream keys are redacted.
    pub fn display(&self) -> String {
        match self {
            Self::File { path, .. } => format!("file:{}", path.display()),
            Self::Stream { url } => format!("stream:{}", redact_url(url)),
            Self::Segments { dir } => format!("segments:{}", dir.display()),
            Self::Images { dir } => format!("images:{}", dir.display()),
        }
    }
}

/// Encoding settings chosen by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub video_bitrate_kbps: u32,
    pub audio_bitrate_kbps: u32,
}

impl Preset {
    pub const DEFAULT: &'static str = "720p30";
    pub const ALL: [Preset; 5] = [
        Preset {
            name: "1080p30",
            width: 1920,
            height: 1080,
            fps: 30,
            video_bitrate_kbps: 4500,
            audio_bitrate_kbps: 128,
        },
        Preset { name: "720p30", width: 1280, height: 720, fps: 30, video_bitrate_kbps: 3000, audio_bitrate_kbps: 128 },
        Preset { name: "480p30", width: 854, height: 480, fps: 30, video_bitrate_kbps: 1500, audio_bitrate_kbps: 96 },
        Preset { name: "360p30", width: 640, height: 360, fps: 30, video_bitrate_kbps: 800, audio_bitrate_kbps: 96 },
        Preset { name: "240p15", width: 320, height: 240, fps: 15, video_bitrate_kbps: 300, audio_bitrate_kbps: 64 },
    ];

    pub fn by_name(name: &str) -> Option<Preset> {
        let name = if name.is_empty() { Self::DEFAULT } else { name };
        Self::ALL.into_iter().find(|p| p.name == name)
    }
}

/// Test-only behaviour of the real handler (see `proto::FaultInjection`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultInjection {
    pub hang_before_ready: bool,
    pub stop_answering_after: Option<Duration>,
    pub burn_cpu_cores: u32,
    pub alloc_bytes: u64,
    pub crash_after: Option<Duration>,
    pub no_pipeline: bool,
}

impl FaultInjection {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A validated start request.
#[derive(Debug, Clone, PartialEq)]
pub struct EgressRequest {
    pub source: Source,
    pub outputs: Vec<Output>,
    pub preset: Preset,
    /// None: a live source runs until stopped.
    pub duration: Option<Duration>,
    pub fault: FaultInjection,
}

/// What validation needs to know about the node.
#[derive(Debug, Clone)]
pub struct Limits<'a> {
    /// Every file, segment and image output must resolve below this directory.
    pub output_root: &'a Path,
    /// `debug.fault_injection` of the node.
    pub fault_injection: bool,
}

impl EgressRequest {
    /// Validates an API request. The first problem found is returned, naming its field.
    pub fn from_proto(req: &proto::StartRequest, limits: &Limits<'_>) -> Result<Self, RequestError> {
        let source = Source::parse(req.source.trim())?;
        let preset = Preset::by_name(&req.preset).ok_or_else(|| {
            let names: Vec<_> = Preset::ALL.iter().map(|p| p.name).collect();
            RequestError::new(
                "preset",
                format!("unknown preset {:?} (expected one of {})", req.preset, names.join(", ")),
            )
        })?;
        let duration = match req.duration_secs {
            None => None,
            Some(d) if !d.is_finite() || d <= 0.0 => {
                return Err(RequestError::new(
                    "duration_secs",
                    format!("must be a positive number of seconds, got {d}"),
                ))
            }
            Some(d) if d > MAX_DURATION_SECS => {
                return Err(RequestError::new(
                    "duration_secs",
                    format!("must be at most {MAX_DURATION_SECS} s, got {d}"),
                ))
            }
            Some(d) => Some(Duration::from_secs_f64(d)),
        };
        if req.outputs.is_empty() {
            return Err(RequestError::new(
                "outputs",
                "at least one output is required (file, stream, segments or images)",
            ));
        }
        let outputs = req
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| parse_output(i, o, limits.output_root))
            .collect::<Result<Vec<_>, _>>()?;
        let fault = parse_fault(req.fault.as_ref(), limits.fault_injection)?;
        Ok(Self { source, outputs, preset, duration, fault })
    }

    pub fn egress_type(&self) -> EgressType {
        self.source.egress_type()
    }

    /// The outputs as shown to users, stream keys redacted.
    pub fn outputs_display(&self) -> Vec<String> {
        self.outputs.iter().map(Output::display).collect()
    }
}

fn parse_output(index: usize, output: &proto::Output, root: &Path) -> Result<Output, RequestError> {
    use proto::output::Kind;
    let field = |name: &str| format!("outputs[{index}].{name}");
    match &output.kind {
        None => Err(RequestError::new(format!("outputs[{index}]"), "is empty (set file, stream, segments or images)")),
        Some(Kind::File(p)) => {
            let path = resolve_below(root, p).map_err(|reason| RequestError::new(field("file"), reason))?;
            let container = Container::from_path(&path).ok_or_else(|| {
                RequestError::new(field("file"), format!("unknown extension in {p:?} (expected .mp4, .webm or .ogg)"))
            })?;
            Ok(Output::File { path, container })
        }
        Some(Kind::Stream(url)) => {
            match uri_scheme(url).as_deref() {
                Some("rtmp" | "rtmps" | "srt") if url_host(url).is_some() => {}
                _ => {
                    return Err(RequestError::new(
                        field("stream"),
                        format!("{:?} is not an rtmp://, rtmps:// or srt:// URL with a host", redact_url(url)),
                    ))
                }
            }
            Ok(Output::Stream { url: url.clone() })
        }
        Some(Kind::Segments(p)) => {
            let dir = resolve_below(root, p).map_err(|reason| RequestError::new(field("segments"), reason))?;
            Ok(Output::Segments { dir })
        }
        Some(Kind::Images(p)) => {
            let dir = resolve_below(root, p).map_err(|reason| RequestError::new(field("images"), reason))?;
            Ok(Output::Images { dir })
        }
    }
}

fn parse_fault(fault: Option<&proto::FaultInjection>, allowed: bool) -> Result<FaultInjection, RequestError> {
    let Some(f) = fault else {
        return Ok(FaultInjection::default());
    };
    let secs = |name: &str, v: f64| -> Result<Option<Duration>, RequestError> {
        if !v.is_finite() || v < 0.0 {
            return Err(RequestError::new(format!("fault.{name}"), "must be zero or a positive number of seconds"));
        }
        Ok((v > 0.0).then(|| Duration::from_secs_f64(v)))
    };
    let parsed = FaultInjection {
        hang_before_ready: f.hang_before_ready,
        stop_answering_after: secs("stop_answering_after_secs", f.stop_answering_after_secs)?,
        burn_cpu_cores: f.burn_cpu_cores,
        alloc_bytes: f.alloc_bytes,
        crash_after: secs("crash_after_secs", f.crash_after_secs)?,
        no_pipeline: f.no_pipeline,
    };
    if !parsed.is_empty() && !allowed {
        return Err(RequestError::new(
            "fault",
            "fault injection is disabled on this node (set debug.fault_injection: true)",
        ));
    }
    if parsed.burn_cpu_cores > 64 {
        return Err(RequestError::new("fault.burn_cpu_cores", "must be at most 64"));
    }
    Ok(parsed)
}

/// Resolves a user-given output path below `root`, refusing anything that could escape it.
fn resolve_below(root: &Path, given: &str) -> Result<PathBuf, String> {
    if given.trim().is_empty() {
        return Err("is empty".into());
    }
    if given.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    let path = Path::new(given);
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{given:?} contains '..'; outputs must stay below the output root"));
    }
    let rel = if path.is_absolute() {
        path.strip_prefix(root)
            .map_err(|_| format!("{given:?} is outside the output root {}", root.display()))?
            .to_path_buf()
    } else {
        path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
    };
    if rel.as_os_str().is_empty() {
        return Err(format!("{given:?} names the output root itself"));
    }
    Ok(root.join(rel))
}

fn uri_scheme(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let ok = !scheme.is_empty()
        && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (ok && (scheme == "file" || !rest.is_empty())).then(|| scheme.to_ascii_lowercase())
}

fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then_some(host)
}

/// Hides secrets in a URL: the whole userinfo (`****@host`), every path segment after the first (an RTMP stream
/// key lives there: `rtmp://host/app/****`), a lone path segment of a stream URL (`rtmp://host/****`) and every
/// query value (`srt://host:9000?streamid=****`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL; it may still be a bare key, so show only its length.
        return if url.len() > 16 { format!("<{} chars>", url.len()) } else { url.to_string() };
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let mut parts = before_query.splitn(2, '/');
    let authority = parts.next().unwrap_or_default();
    let path = parts.next();
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("****@{host}"),
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}");
    if let Some(path) = path {
        let segments: Vec<&str> = path.split('/').collect();
        let stream = matches!(scheme.to_ascii_lowercase().as_str(), "rtmp" | "rtmps" | "srt");
        out.push('/');
        match segments.as_slice() {
            [only] if stream && !only.is_empty() => out.push_str("****"),
            [first, ..] => {
                out.push_str(first);
                if segments.len() > 1 {
                    out.push_str("/****");
                }
            }
            [] => {}
        }
    }
    if let Some(query) = query {
        let redacted: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) => format!("{k}=****"),
                None => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&redacted.join("&"));
    }
    out
}

#[cfg(test)]
mod tests;
