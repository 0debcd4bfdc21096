//! Leaving and ghost eviction keep every position exact.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use vestibule::event::{EventConfig, EventId, EventState};
use vestibule::store::memory::MemoryStore;
use vestibule::store::Store;

use crate::helpers::{
    connect, eventually, Backend, Joined, RedisCluster, RedisServer, TestApp, SWEEP_INTERVAL,
};

async fn positions_close_up_when_people_leave(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.open_event("sale", 300).await;
    let mut people = Vec::new();
    for _ in 0..6 {
        people.push(app.join_ok("sale").await);
    }
    assert_eq!(app.leave(&people[1].ticket).await, StatusCode::NO_CONTENT);
    assert_eq!(app.leave(&people[4].ticket).await, StatusCode::NO_CONTENT);
    assert_eq!(
        app.leave(&people[4].ticket).await,
        StatusCode::NO_CONTENT,
        "leaving twice is fine"
    );

    let (status, body) = app.status(&people[1].ticket).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("left"))
    );
    for (expected, i) in [(1, 0), (2, 2), (3, 3), (4, 5)] {
        assert_eq!(app.position(&people[i].ticket).await, expected);
    }
    let figures = app.figures("sale").await;
    assert_eq!(
        (figures["waiting"].as_u64(), figures["left_total"].as_u64()),
        (Some(4), Some(2))
    );
}

/// People who stop polling are evicted within ttl + sweep interval, wherever they stand
/// (including the head), while the others keep polling; every remaining position is then
/// 1 + the live people ahead.
async fn ghosts_are_evicted_and_the_living_keep_exact_positions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ttl = Duration::from_secs(2);
    app.open_event("sale", ttl.as_secs()).await;
    let mut people: Vec<Joined> = Vec::new();
    for _ in 0..30 {
        people.push(app.join_ok("sale").await);
    }
    // The head, a run in the middle and the tail stop polling.
    let is_ghost = |i: usize| i < 3 || (10..15).contains(&i) || i == 29;
    let living: Vec<&Joined> = people
        .iter()
        .enumerate()
        .filter(|(i, _)| !is_ghost(*i))
        .map(|(_, p)| p)
        .collect();
    let ghosts: Vec<&Joined> = people
        .iter()
        .enumerate()
        .filter(|(i, _)| is_ghost(*i))
        .map(|(_, p)| p)
        .collect();

    let started = std::time::Instant::now();
    let deadline = ttl + SWEEP_INTERVAL + Duration::from_secs(2);
    let mut all_gone = false;
    while started.elapsed() < deadline && !all_gone {
        for p in &living {
            assert_eq!(
                app.status(&p.ticket).await.0,
                StatusCode::OK,
                "a polling person was evicted"
            );
        }
        all_gone = app.figures("sale").await["evicted_total"].as_u64() == Some(ghosts.len() as u64);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        all_gone,
        "ghosts not evicted within ttl + sweep interval (+2 s slack)"
    );
    assert!(started.elapsed() >= ttl, "nobody is evicted before the ttl");

    for (expected, p) in living.iter().enumerate() {
        assert_eq!(app.position(&p.ticket).await, expected as u64 + 1);
    }
    for ghost in &ghosts {
        let (status, body) = app.status(&ghost.ticket).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::GONE, Some("evicted"))
        );
    }
    let figures = app.figures("sale").await;
    assert_eq!(figures["waiting"].as_u64(), Some(living.len() as u64));
}

async fn an_evicted_person_who_joins_again_goes_to_the_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.open_event("sale", 1).await;
    let ghost = app.join_ok("sale").await;
    let second = app.join_ok("sale").await;
    // The second person keeps polling while the first goes quiet.
    let ok = eventually(Duration::from_secs(5), || async {
        app.status(&second.ticket).await;
        app.figures("sale").await["evicted_total"] == 1
    })
    .await;
    assert!(ok, "the ghost was not evicted");
    let response = app
        .http
        .post(app.url("/v1/events/sale/join"))
        .bearer_auth(&ghost.ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let rejoined = Joined::from(&response.json::<serde_json::Value>().await.unwrap());
    assert_eq!(rejoined.position, 2);
    assert_ne!(rejoined.ticket, ghost.ticket);
    let (status, _) = app.status(&ghost.ticket).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old ticket's place is gone"
    );
}

crate::on_every_store!(
    positions_close_up_when_people_leave,
    ghosts_are_evicted_and_the_living_keep_exact_positions,
    an_evicted_person_who_joins_again_goes_to_the_back,
);

/// Events are swept (and their reservations worked) only through the index of events, and a
/// sweep that finds no definition drops the id from it. So a sweep racing the creation of an
/// event must never drop it: here two sweepers hammer each event while it is being created.
async fn events_created_while_sweepers_run_stay_indexed(store: Arc<dyn Store>) {
    let ids: Arc<Vec<EventId>> = Arc::new(
        (0..100)
            .map(|i| EventId::parse(&format!("race-{i}")).unwrap())
            .collect(),
    );
    let current = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sweepers: Vec<_> = (0..2)
        .map(|_| {
            let (store, ids, current, done) =
                (store.clone(), ids.clone(), current.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    let id = &ids[current.load(Ordering::Relaxed).min(ids.len() - 1)];
                    store.sweep(id, 10).await.unwrap();
                }
            })
        })
        .collect();
    let config = EventConfig {
        state: EventState::Open,
        ..EventConfig::default()
    };
    for (i, id) in ids.iter().enumerate() {
        current.store(i, Ordering::Relaxed);
        store.put_event(id, &config, "test").await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for sweeper in sweepers {
        sweeper.await.unwrap();
    }
    let listed: BTreeSet<EventId> = store.list_events().await.unwrap().into_iter().collect();
    let dropped: Vec<&str> = ids
        .iter()
        .filter(|id| !listed.contains(*id))
        .map(EventId::as_str)
        .collect();
    assert!(dropped.is_empty(), "dropped from the index: {dropped:?}");
}

mod index_race {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory() {
        events_created_while_sweepers_run_stay_indexed(Arc::new(MemoryStore::default())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        let redis = RedisServer::start();
        events_created_while_sweepers_run_stay_indexed(connect(&redis.url()).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster() {
        let cluster = RedisCluster::start();
        events_created_while_sweepers_run_stay_indexed(connect(&cluster.url()).await).await;
    }
}
