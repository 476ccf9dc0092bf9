use super::*;

#[test]
fn example_config_parses_validates_and_matches_the_defaults() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml")).unwrap();
    let cfg = Config::from_yaml(&text).unwrap();
    cfg.validate().unwrap();
    // The example documents the defaults; if one changes, the example must too.
    assert_eq!(cfg, Config::default());
}

#[test]
fn unknown_keys_are_refused() {
    let err = Config::from_yaml("api:\n  listne: 127.0.0.1:1\n").unwrap_err();
    assert!(err.contains("listne"), "{err}");
}

#[test]
fn env_overrides_every_kind_of_key() {
    let vars = [
        ("EGRESS_API_LISTEN", "127.0.0.1:7981"),
        ("EGRESS_MONITOR_MAX_CPU_UTILIZATION", "0.5"),
        ("EGRESS_NODE_DRAIN_TIMEOUT_SECS", "7"),
        ("EGRESS_DEBUG_FAULT_INJECTION", "true"),
        // The client's variable is not a config key and is ignored.
        ("EGRESS_API", "http://127.0.0.1:7980"),
        ("PATH", "/bin"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let cfg = Config::default().with_env_overrides(vars).unwrap();
    assert_eq!(cfg.api.listen, "127.0.0.1:7981");
    assert_eq!(cfg.monitor.max_cpu_utilization, 0.5);
    assert_eq!(cfg.node.drain_timeout_secs, 7);
    assert!(cfg.debug.fault_injection);
}

#[test]
fn bad_env_values_name_the_variable() {
    let err = Config::default()
        .with_env_overrides([("EGRESS_NODE_DRAIN_TIMEOUT_SECS".to_string(), "soon".to_string())])
        .unwrap_err();
    assert!(err.to_string().contains("EGRESS_NODE_DRAIN_TIMEOUT_SECS"), "{err}");
    let err = Config::default().with_env_overrides([("EGRESS_API_LISTN".to_string(), "x".to_string())]).unwrap_err();
    assert!(err.to_string().contains("listn"), "{err}");
}

#[test]
fn validation_names_the_key() {
    let mut cfg = Config::default();
    cfg.monitor.max_cpu_utilization = 1.5;
    assert!(cfg.validate().unwrap_err().to_string().contains("monitor.max_cpu_utilization"));
    let mut cfg = Config::default();
    cfg.api.listen = "localhost".into();
    assert!(cfg.validate().unwrap_err().to_string().contains("api.listen"));
}
