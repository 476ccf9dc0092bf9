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

mod admission {
    use std::sync::Arc;
    use std::time::Duration;

    use ractor::Actor;

    use crate::actors::call;
    use crate::actors::monitor::{MonitorActor, MonitorMessage};
    use crate::config::Config;
    use crate::request::{EgressId, EgressType};

    async fn monitor(cpus: f64, utilization: f64, cost: f64) -> ractor::ActorRef<MonitorMessage> {
        let mut cfg = Config::default();
        cfg.monitor.cpus = cpus;
        cfg.monitor.max_cpu_utilization = utilization;
        cfg.monitor.cpu_cost_test_cores = cost;
        let (actor, _) = Actor::spawn(None, MonitorActor { cfg: Arc::new(cfg) }, ()).await.unwrap();
        actor
    }

    async fn admit(m: &ractor::ActorRef<MonitorMessage>, id: &EgressId) -> bool {
        call(m, "monitor", Duration::from_secs(1), |reply| MonitorMessage::Admit {
            egress: id.clone(),
            ty: EgressType::Test,
            reply,
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_burst_never_overshoots_capacity_and_released_cost_is_reusable() {
        // Capacity 2 × 0.75 = 1.5 cores; each test egress costs 0.5: exactly three fit.
        let m = monitor(2.0, 0.75, 0.5).await;
        let ids: Vec<EgressId> = (0..10).map(|_| EgressId::new()).collect();
        let answers = futures::future::join_all(ids.iter().map(|id| admit(&m, id))).await;
        assert_eq!(answers.iter().filter(|a| **a).count(), 3, "{answers:?}");
        let (reserved, capacity) = call(&m, "monitor", Duration::from_secs(1), MonitorMessage::Ledger).await.unwrap();
        assert!(reserved <= capacity + 1e-9, "{reserved} > {capacity}");
        assert!((reserved - 1.5).abs() < 1e-9);

        let admitted = ids.iter().zip(&answers).find(|(_, a)| **a).unwrap().0.clone();
        m.cast(MonitorMessage::Release(admitted)).unwrap();
        let refused: Vec<&EgressId> = ids.iter().zip(&answers).filter(|(_, a)| !**a).map(|(id, _)| id).collect();
        assert!(admit(&m, refused[0]).await, "released cost is admitted again");
        assert!(!admit(&m, refused[1]).await, "and nothing more");
        m.stop(None);
    }
}
