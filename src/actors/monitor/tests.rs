use super::sample::{parse_memory_limit, parse_pid_stat, CpuTimes};

#[test]
fn pid_stat_fields_survive_odd_command_names() {
    // comm may hold spaces and parentheses; fields resume after the last ')'.
    let stat = "4242 (egress (h) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 123456789 2048 18446744073709551615";
    assert_eq!(parse_pid_stat(stat), Some((4242, 300, 2048)));
    assert_eq!(parse_pid_stat("garbage"), None);
}

#[test]
fn node_load_is_busy_share_of_elapsed_ticks() {
    let a = CpuTimes::parse("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4").unwrap();
    let b = CpuTimes::parse("cpu  200 0 200 900 0 0 0 0 0 0\n").unwrap();
    assert!((b.load_since(&a) - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(a.load_since(&a), 0.0);
}

#[test]
fn cgroup_memory_limits_parse_and_unlimited_is_none() {
    assert_eq!(parse_memory_limit("2147483648\n"), Some(2147483648));
    assert_eq!(parse_memory_limit("max\n"), None);
    assert_eq!(parse_memory_limit("9223372036854771712"), None);
}
