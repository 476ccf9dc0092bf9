use std::sync::Arc;
use std::time::Duration;

use ractor::Actor;

use super::*;
use crate::actors::call;

#[tokio::test]
async fn a_final_status_is_never_overwritten_and_stale_updates_are_ignored() {
    let store = Arc::new(StatusStore::default());
    let (r, _) = Actor::spawn(None, ReporterActor { store: store.clone() }, ()).await.unwrap();
    let id = EgressId::new();
    let t = Duration::from_secs(1);
    call(&r, "reporter", t, |reply| {
        ReporterMessage::Queued(EgressRecord::queued(id.clone(), EgressType::Test, vec![]), reply)
    })
    .await
    .unwrap();
    let (_, mut changes) =
        call(&r, "reporter", t, |reply| ReporterMessage::Watch(id.clone(), reply)).await.unwrap().unwrap();
    for status in [Status::Starting, Status::Active, Status::Starting, Status::Ending] {
        r.cast(ReporterMessage::Update(StatusUpdate::new(id.clone(), status))).unwrap();
    }
    let mut done = StatusUpdate::new(id.clone(), Status::Complete);
    done.result = Some(HandlerResult::Completed);
    r.cast(ReporterMessage::Update(done)).unwrap();
    let mut late = StatusUpdate::new(id.clone(), Status::Failed);
    late.result = Some(HandlerResult::ProcessError);
    r.cast(ReporterMessage::Update(late)).unwrap();

    let rec = call(&r, "reporter", t, |reply| ReporterMessage::Get(id.clone(), reply)).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Complete);
    assert_eq!(rec.result, Some(HandlerResult::Completed));
    let mut seen = Vec::new();
    while let Ok(c) = changes.try_recv() {
        seen.push(c.status);
    }
    // The backward STARTING and the second final status never reached watchers.
    assert_eq!(seen, vec![Status::Starting, Status::Active, Status::Ending, Status::Complete]);

    // A new Reporter on the same store (a restart) still knows the egress.
    r.stop(None);
    let (r2, _) = Actor::spawn(None, ReporterActor { store }, ()).await.unwrap();
    let rec = call(&r2, "reporter", t, |reply| ReporterMessage::Get(id.clone(), reply)).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Complete);
    r2.stop(None);
}
