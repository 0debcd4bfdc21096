//! Joining: strict FIFO from the join sequence, exact positions, idempotent rejoin.

use std::collections::BTreeSet;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{claims, Backend, Joined, TestApp};

async fn five_hundred_concurrent_joins_get_positions_one_to_five_hundred_in_sequence_order(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    app.open_event("sale", 300).await;

    let joins = (0..500).map(|_| app.join("sale"));
    let joined: Vec<Joined> = join_all(joins)
        .await
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            Joined::from(body)
        })
        .collect();

    let positions: BTreeSet<u64> = joined.iter().map(|j| j.position).collect();
    assert_eq!(
        positions,
        (1..=500).collect::<BTreeSet<_>>(),
        "each position once"
    );
    let mut by_seq = joined.clone();
    by_seq.sort_by_key(|j| j.seq);
    let order: Vec<u64> = by_seq.iter().map(|j| j.position).collect();
    assert_eq!(
        order,
        (1..=500).collect::<Vec<_>>(),
        "sequence order is position order"
    );
    // Asking again, everyone still stands exactly where the sequence put them.
    for j in joined.iter().step_by(50) {
        assert_eq!(app.position(&j.ticket).await, j.seq);
    }
}

async fn joining_again_with_a_ticket_returns_the_same_ticket_and_place(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.open_event("sale", 300).await;
    let first = app.join_ok("sale").await;
    let second = app.join_ok("sale").await;

    let response = app
        .http
        .post(app.url("/v1/events/sale/join"))
        .bearer_auth(&first.ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let again = Joined::from(&response.json::<serde_json::Value>().await.unwrap());
    assert_eq!(again.ticket, first.ticket);
    assert_eq!(again.position, 1);

    let third = app.join_ok("sale").await;
    assert_eq!(third.position, 3, "a newcomer never gets a used position");
    assert_eq!(second.position, 2);
}

async fn a_named_person_joining_twice_keeps_one_place(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event("named", json!({"state": "open", "identity": "user_id"}))
        .await;
    let join_as = |user: &'static str| {
        app.http
            .post(app.url("/v1/events/named/join"))
            .json(&json!({ "user_id": user }))
            .send()
    };
    let first = join_as("alice").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = Joined::from(&first.json::<serde_json::Value>().await.unwrap());
    let bob = join_as("bob").await.unwrap();
    let again = join_as("alice").await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again = Joined::from(&again.json::<serde_json::Value>().await.unwrap());
    assert_eq!((again.ticket, again.position), (first.ticket, 1));
    assert_eq!(
        Joined::from(&bob.json::<serde_json::Value>().await.unwrap()).position,
        2
    );
    assert_eq!(app.figures("named").await["joined_total"], 2);
}

async fn an_anonymous_event_refuses_a_caller_chosen_user_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.open_event("anon", 300).await;
    let response = app
        .http
        .post(app.url("/v1/events/anon/join"))
        .json(&json!({ "user_id": "alice" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "user_id");
    assert_eq!(app.figures("anon").await["joined_total"], 0);
}

async fn tickets_carry_event_person_sequence_and_lifetime(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.open_event("sale", 300).await;
    let (_, body) = app.join("sale").await;
    let claims = claims(body["ticket"].as_str().unwrap());
    assert_eq!(claims["ev"], "sale");
    assert_eq!(claims["sub"], body["user_id"]);
    assert_eq!(claims["seq"], 1);
    assert_eq!(claims["jti"], "sale:1");
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 86_400, "default ticket_ttl_secs");
}

async fn a_full_queue_answers_503_and_a_closed_event_403(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event("small", json!({"state": "open", "max_queue_len": 2}))
        .await;
    app.join_ok("small").await;
    app.join_ok("small").await;
    let (status, body) = app.join("small").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "queue_full");

    app.put_event("small", json!({"state": "paused"})).await;
    let (status, body) = app.join("small").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("event_not_open"))
    );
    app.put_event("small", json!({"state": "closed"})).await;
    let (status, body) = app.join("small").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("event_closed"))
    );
    assert_eq!(app.figures("small").await["waiting"], 2);
}

/// An admission that expires unused ends the place: the person joins again at the back, rather
/// than being handed the dead ticket for as long as the keys live.
async fn after_an_unused_admission_expires_joining_again_gives_a_new_place(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "named",
        json!({"state": "open", "identity": "user_id", "admission_rate": 1000,
               "admission_ttl_secs": 2}),
    )
    .await;
    let join = |user: &'static str| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.url("/v1/events/named/join"))
                .json(&json!({ "user_id": user }))
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, first) = join("carol").await;
    assert_eq!(status, StatusCode::CREATED);
    let ticket = first["ticket"].as_str().unwrap().to_owned();
    assert_eq!(app.enter(&ticket).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let (status, body) = app.status(&ticket).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("admission_expired"))
    );
    let (status, again) = join("carol").await;
    assert_eq!(status, StatusCode::CREATED, "a new place: {again}");
    assert_ne!(again["ticket"], first["ticket"]);
    assert_eq!(
        again["state"], "ready",
        "alone again, and the door has room"
    );
}

crate::on_every_store!(
    after_an_unused_admission_expires_joining_again_gives_a_new_place,
    five_hundred_concurrent_joins_get_positions_one_to_five_hundred_in_sequence_order,
    joining_again_with_a_ticket_returns_the_same_ticket_and_place,
    a_named_person_joining_twice_keeps_one_place,
    an_anonymous_event_refuses_a_caller_chosen_user_id,
    tickets_carry_event_person_sequence_and_lifetime,
    a_full_queue_answers_503_and_a_closed_event_403,
);
