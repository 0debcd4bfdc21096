//! Where a status request's time goes inside the gateway, without sockets: each piece is timed
//! alone, in this process, so the figures add up to what `wrk` sees minus the kernel's share.
//!
//! ```sh
//! cargo run --release -p vestibule-loadtest --example costs            # in-process store only
//! cargo run --release -p vestibule-loadtest --example costs -- redis://127.0.0.1:6379
//! ```
//!
//! The Redis part runs 64 calls at once (as 64 connections of wrk would) and compares the
//! status store call with one EVALSHA of `return 1` over the same kind of client.

#![allow(clippy::unwrap_used)] // a measuring tool: any failure is a bug to see at once

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, Request};
use axum::routing::get;
use axum::{Json, Router};
use fred::prelude::*;
use fred::types::scripts::Script;
use serde_json::json;
use tower::ServiceExt;
use vestibule::app::{AppState, Parts, Stores};
use vestibule::event::{EventConfig, EventId, EventState};
use vestibule::inventory::Database;
use vestibule::store::memory::MemoryStore;
use vestibule::store::redis::RedisStore;
use vestibule::store::{JoinOutcome, Person, Store};
use vestibule::tickets::TicketKeys;

const N: u32 = 200_000;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let redis_url = std::env::args().nth(1);
    let event = EventId::parse("costs").unwrap();

    let memory = Arc::new(MemoryStore::default());
    let (state, ticket, seq) = gateway(Stores::of(memory.clone()), &event).await;
    let keys = TicketKeys::from_secret(b"costs");
    let own_ticket = {
        let JoinOutcome::Placed { place, .. } = memory.join(&event, &person("q")).await.unwrap()
        else {
            unreachable!()
        };
        keys.issue(&event, "q", &place)
    };

    println!("one at a time, {N} times each, µs per call:");
    time("ticket verify (HMAC + JWT decode)", || {
        std::hint::black_box(keys.verify(&own_ticket).unwrap());
    });
    time("ticket issue", || {
        let place = vestibule::store::Place {
            seq: 7,
            issued_at: 1,
            expires_at: u64::MAX / 2,
        };
        std::hint::black_box(keys.issue(&event, "q", &place));
    });
    time_async("in-process store status (no HTTP)", || {
        let memory = memory.clone();
        let event = event.clone();
        async move {
            memory.status(&event, "p", seq).await.unwrap();
        }
    })
    .await;

    let bare = Router::new().route("/bare", get(|| async { Json(json!({"position": 1})) }));
    time_async("axum router, bare JSON handler", || {
        let app = bare.clone();
        async move { drain(app.oneshot(get_req("/bare", None)).await.unwrap()).await }
    })
    .await;
    let app = vestibule::http::app(state.clone());
    time_async("gateway router /healthz (all middleware)", || {
        let app = app.clone();
        async move { drain(app.oneshot(get_req("/healthz", None)).await.unwrap()).await }
    })
    .await;
    time_async("gateway router status, in-process store", || {
        let app = app.clone();
        let ticket = ticket.clone();
        async move {
            let response = app
                .oneshot(get_req("/v1/queue/status", Some(&ticket)))
                .await
                .unwrap();
            assert!(response.status().is_success());
            drain(response).await
        }
    })
    .await;

    println!("\n64 at once, in-process store, µs of wall time per call (throughput⁻¹):");
    concurrent("gateway router status, in-process store", || {
        let (app, ticket) = (app.clone(), ticket.clone());
        async move {
            let response = app
                .oneshot(get_req("/v1/queue/status", Some(&ticket)))
                .await
                .unwrap();
            drain(response).await
        }
    })
    .await;

    if let Some(url) = redis_url {
        redis_costs(&url, &event).await;
    }
}

async fn redis_costs(url: &str, event: &EventId) {
    let redis = Arc::new(RedisStore::connect(url).await.unwrap());
    let store: Arc<dyn Store> = redis.clone();
    let (state, ticket, seq) = gateway(Stores::of(redis), event).await;
    let client = Builder::from_config(Config::from_url(url).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let one = Script::from_lua("return 1");
    println!("\n64 at once against {url}, µs of wall time per call (throughput⁻¹):");
    concurrent("EVALSHA return 1 (fred)", || {
        let (client, one) = (client.clone(), one.clone());
        async move {
            let _: i64 = one
                .evalsha_with_reload(&client, vec!["vst:{costs}:k"], Vec::<Value>::new())
                .await
                .unwrap();
        }
    })
    .await;
    concurrent("store status (status.lua)", || {
        let (store, event) = (store.clone(), event.clone());
        async move {
            store.status(&event, "p", seq).await.unwrap();
        }
    })
    .await;
    let keys = TicketKeys::from_secret(b"costs");
    concurrent("ticket verify + store status", || {
        let (store, event, ticket) = (store.clone(), event.clone(), ticket.clone());
        let (_, claims) = keys.verify(&ticket).unwrap();
        async move {
            store.status(&event, &claims.sub, claims.seq).await.unwrap();
        }
    })
    .await;
    let app = vestibule::http::app(state);
    concurrent("gateway router status, Redis store", || {
        let (app, ticket) = (app.clone(), ticket.clone());
        async move {
            let response = app
                .oneshot(get_req("/v1/queue/status", Some(&ticket)))
                .await
                .unwrap();
            drain(response).await
        }
    })
    .await;
}

/// A gateway state over `stores` with an open event and one waiting person `p`.
async fn gateway(stores: Stores, event: &EventId) -> (AppState, String, u64) {
    let store = &stores.queue;
    let config = EventConfig {
        state: EventState::Open,
        heartbeat_ttl_secs: 3600,
        ..EventConfig::default()
    };
    store.put_event(event, &config, "costs").await.unwrap();
    let JoinOutcome::Placed { place, .. } = store.join(event, &person("p")).await.unwrap() else {
        panic!("join refused")
    };
    let tickets = TicketKeys::from_secret(b"costs");
    let ticket = tickets.issue(event, "p", &place);
    let keys_dir = std::env::temp_dir().join(format!("vst-costs-{}", std::process::id()));
    let admissions = vestibule::admission::AdmissionKeys::load_or_create(&keys_dir).unwrap();
    let database_url = format!("sqlite://{}", keys_dir.join("inventory.db").display());
    let parts = Parts {
        stores,
        database: Arc::new(Database::connect(&database_url).await.unwrap()),
        worker_metrics: Arc::default(),
        tickets,
        admissions,
    };
    let state = AppState::new(parts, Default::default());
    (state, ticket, place.seq)
}

fn person(id: &str) -> Person {
    Person {
        id: id.into(),
        origin: vestibule::store::Origin::Made,
    }
}

fn get_req(path: &str, ticket: Option<&str>) -> Request<Body> {
    let mut req = Request::get(path);
    if let Some(t) = ticket {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    req.body(Body::empty()).unwrap()
}

async fn drain(response: axum::response::Response) {
    std::hint::black_box(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap(),
    );
}

fn time(label: &str, mut f: impl FnMut()) {
    for _ in 0..N / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..N {
        f();
    }
    report(label, started, N);
}

async fn time_async<F, Fut>(label: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..N / 10 {
        f().await;
    }
    let started = Instant::now();
    for _ in 0..N {
        f().await;
    }
    report(label, started, N);
}

async fn concurrent<F, Fut>(label: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let total = N / 2;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        if tasks.len() >= 64 {
            tasks.join_next().await.unwrap().unwrap();
        }
        tasks.spawn(f());
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    report(label, started, total);
}

fn report(label: &str, started: Instant, n: u32) {
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("  {label:<45} {us:>8.2}");
}
