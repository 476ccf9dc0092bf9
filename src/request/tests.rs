use std::path::Path;

use super::*;
use crate::proto::{self, output::Kind};

fn limits(fault_injection: bool) -> Limits<'static> {
    Limits { output_root: Path::new("/srv/rec"), fault_injection }
}

fn req(source: &str, outputs: Vec<Kind>) -> proto::StartRequest {
    proto::StartRequest {
        source: source.into(),
        duration_secs: Some(3.0),
        outputs: outputs.into_iter().map(|k| proto::Output { kind: Some(k) }).collect(),
        preset: String::new(),
        fault: None,
    }
}

fn field_of(r: Result<EgressRequest, RequestError>) -> String {
    r.expect_err("must be refused").field
}

#[test]
fn a_valid_test_request_resolves_its_file_below_the_root() {
    let r = EgressRequest::from_proto(&req("test", vec![Kind::File("a/b.mp4".into())]), &limits(false)).unwrap();
    assert_eq!(r.source, Source::Test);
    assert_eq!(r.outputs, vec![Output::File { path: "/srv/rec/a/b.mp4".into(), container: Container::Mp4 }]);
    assert_eq!(r.preset.name, Preset::DEFAULT);
    assert_eq!(r.duration, Some(Duration::from_secs(3)));
}

#[test]
fn bad_fields_are_named() {
    let l = limits(false);
    assert_eq!(field_of(EgressRequest::from_proto(&req("ftp:x", vec![Kind::File("a.mp4".into())]), &l)), "source");
    assert_eq!(
        field_of(EgressRequest::from_proto(&req("url:gopher://x/y", vec![Kind::File("a.mp4".into())]), &l)),
        "source"
    );
    assert_eq!(
        field_of(EgressRequest::from_proto(&req("test", vec![Kind::File("../x.mp4".into())]), &l)),
        "outputs[0].file"
    );
    assert_eq!(
        field_of(EgressRequest::from_proto(&req("test", vec![Kind::File("/etc/x.mp4".into())]), &l)),
        "outputs[0].file"
    );
    assert_eq!(
        field_of(EgressRequest::from_proto(&req("test", vec![Kind::File("x.avi".into())]), &l)),
        "outputs[0].file"
    );
    assert_eq!(
        field_of(EgressRequest::from_proto(&req("test", vec![Kind::Stream("http://x/y".into())]), &l)),
        "outputs[0].stream"
    );
    assert_eq!(field_of(EgressRequest::from_proto(&req("test", vec![]), &l)), "outputs");
    let mut r = req("test", vec![Kind::File("a.mp4".into())]);
    r.preset = "4k120".into();
    assert_eq!(field_of(EgressRequest::from_proto(&r, &l)), "preset");
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        r.preset.clear();
        r.duration_secs = Some(bad);
        assert_eq!(field_of(EgressRequest::from_proto(&r, &l)), "duration_secs", "duration {bad}");
    }
}

#[test]
fn fault_injection_is_refused_unless_enabled() {
    let mut r = req("test", vec![Kind::File("a.mp4".into())]);
    r.fault = Some(proto::FaultInjection { burn_cpu_cores: 1, ..Default::default() });
    assert_eq!(field_of(EgressRequest::from_proto(&r, &limits(false))), "fault");
    let ok = EgressRequest::from_proto(&r, &limits(true)).unwrap();
    assert_eq!(ok.fault.burn_cpu_cores, 1);
}

#[test]
fn stream_keys_never_show_in_errors_or_display() {
    let key = "sk_live_0123456789abcdef";
    let url = format!("rtmp://live.example.com/app/{key}");
    assert_eq!(redact_url(&url), "rtmp://live.example.com/app/****");
    assert!(!redact_url(&format!("srt://h:9000?streamid={key}&latency=200")).contains(key));
    assert!(!redact_url(&format!("rtmps://user:{key}@h/app")).contains(key));
    assert_eq!(redact_url(&format!("https://{key}@h/x")), "https://****@h/x");
    assert_eq!(redact_url(&format!("rtmp://h/{key}")), "rtmp://h/****");
    assert_eq!(redact_url(&format!("srt://h:9000/{key}")), "srt://h:9000/****");
    let out = Output::Stream { url: url.clone() };
    assert!(!out.display().contains(key));
    // An invalid stream URL carrying a key is refused without echoing it.
    let bad = format!("rtmp:///app/{key}");
    let err = EgressRequest::from_proto(&req("test", vec![Kind::Stream(bad)]), &limits(false)).unwrap_err();
    assert!(!err.to_string().contains(key), "{err}");
}
