//! Holds (DESIGN §19): a confirmed reservation holds its units until the sale backend
//! completes it, someone cancels it, or it expires; each end happens once, racing ends have one
//! winner, and units move exactly once.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{eventually, Backend, BACKEND_TOKEN};
use crate::sales::{fast_worker, Db, SaleApp};
use crate::sales_matrix;

/// Complete with the backend token (once, repeatable), cancel by the maker, and every attack
/// on both: no token, the wrong token, someone else's admission, unknown or malformed ids.
async fn a_hold_ends_once_by_the_backend_or_its_maker(backend: Backend, db: Db) {
    // Arrange: two confirmed holds of 2 seats each, of two people.
    let sale = SaleApp::spawn(backend, db).await;
    sale.put_inventory(json!([{"sku": "seat", "total": 10}]))
        .await;
    sale.start_workers(1, fast_worker());
    let (ann, bob) = (sale.admitted().await, sale.admitted().await);
    let a = sale.reserve_ok(&ann, "a", "seat", 2).await;
    let b = sale.reserve_ok(&bob, "b", "seat", 2).await;
    for (token, id) in [(&ann, &a), (&bob, &b)] {
        let body = sale.settled(token, id).await;
        assert_eq!(body["state"], "confirmed", "{body}");
        assert!(body["hold_expires_at"].as_u64().is_some(), "{body}");
    }
    assert_eq!(sale.stock("seat").await["held"], 4);

    // Attacks on complete: nothing changes.
    for token in [None, Some("wrong"), Some(ann.as_str())] {
        let (status, body) = sale.end_hold("complete", &a, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    for id in ["nope", &"0".repeat(32), &"x".repeat(5000)] {
        let (status, body) = sale.end_hold("complete", id, Some(BACKEND_TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    // Attacks on cancel: another person's admission, a forged token.
    let (status, _) = sale.end_hold("cancel", &a, Some(&bob)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = sale.end_hold("cancel", &a, Some("forged")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(sale.stock("seat").await["held"], 4, "nothing changed");

    // Act: the backend completes Ann's (twice), Bob cancels his (twice).
    for _ in 0..2 {
        let (status, body) = sale.end_hold("complete", &a, Some(BACKEND_TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "completed");
        let (status, body) = sale.end_hold("cancel", &b, Some(&bob)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "released");
    }

    // Assert: the other end loses with 409; units moved once; both views agree.
    let (status, body) = sale.end_hold("cancel", &a, Some(BACKEND_TOKEN)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "hold_ended");
    let (status, _) = sale.end_hold("complete", &b, Some(BACKEND_TOKEN)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let stock = sale.stock("seat").await;
    assert_eq!(
        (
            &stock["total"],
            &stock["held"],
            &stock["sold"],
            &stock["remaining"]
        ),
        (&json!(10), &json!(0), &json!(2), &json!(8))
    );
    assert_eq!(sale.reservation(&ann, &a).await.1["state"], "completed");
    assert_eq!(sale.reservation(&bob, &b).await.1["state"], "released");
}

/// Holds of one second; completes fired at each hold around its expiry, five per hold:
/// every hold ends exactly one way, completed (all its completes 200) or expired (all 409),
/// and the inventory and rows agree: sold = completed units, held = 0.
async fn completes_racing_expiry_end_each_hold_exactly_one_way(backend: Backend, db: Db) {
    const HOLDS: usize = 40;
    let sale = SaleApp::spawn(backend, db).await;
    sale.app
        .put_event("sale", json!({"hold_ttl_secs": 1}))
        .await;
    sale.put_inventory(json!([{"sku": "seat", "total": 100}]))
        .await;
    let tokens = sale.admitted_many(HOLDS).await;
    let mut ids = Vec::new();
    for token in &tokens {
        ids.push(sale.reserve_ok(token, "k", "seat", 1).await);
    }
    sale.start_workers(2, fast_worker());
    for (token, id) in tokens.iter().zip(&ids) {
        assert_eq!(sale.settled(token, id).await["state"], "confirmed");
    }

    // Act: 200 completes (five per hold), spread over the second the holds expire in.
    let answers: Vec<(usize, StatusCode)> = futures::stream::iter(0..HOLDS * 5)
        .map(|n| {
            let sale = &sale;
            let id = &ids[n % HOLDS];
            async move {
                tokio::time::sleep(Duration::from_millis((n as u64 * 7) % 1500)).await;
                (
                    n % HOLDS,
                    sale.end_hold("complete", id, Some(BACKEND_TOKEN)).await.0,
                )
            }
        })
        .buffer_unordered(200)
        .collect()
        .await;

    // Assert: every hold ended exactly one way.
    assert!(
        eventually(Duration::from_secs(30), || async {
            sale.stock("seat").await["held"] == 0
        })
        .await,
        "holds left: {}",
        sale.stock("seat").await
    );
    let mut completed = 0;
    for (i, (token, id)) in tokens.iter().zip(&ids).enumerate() {
        let statuses: Vec<StatusCode> = answers
            .iter()
            .filter(|(h, _)| *h == i)
            .map(|(_, s)| *s)
            .collect();
        let state = sale.reservation(token, id).await.1["state"].clone();
        if state == "completed" {
            completed += 1;
            // The winner and every repeat answer 200: no complete of it ever lost.
            assert!(
                statuses.iter().all(|s| *s == StatusCode::OK),
                "{id} completed, yet: {statuses:?}"
            );
        } else {
            assert!(
                eventually(Duration::from_secs(10), || async {
                    sale.reservation(token, id).await.1["state"] == "expired"
                })
                .await,
                "{id} ended neither way: {state}"
            );
            assert!(
                statuses.iter().all(|s| *s == StatusCode::CONFLICT),
                "{id} expired but a complete won: {statuses:?}"
            );
        }
    }
    let stock = sale.stock("seat").await;
    assert_eq!(stock["sold"], completed);
    assert_eq!(stock["remaining"], 100 - completed);
    let rows = sale.db.rows().await;
    assert_eq!(
        rows.iter().filter(|r| r.state == "completed").count() as i64,
        completed
    );
    assert_eq!(
        rows.iter().filter(|r| r.state == "expired").count() as i64,
        HOLDS as i64 - completed
    );
}

/// Redeem needs the backend token; once redeemed, the admission can no longer reserve (not
/// even with an idempotency key it used before), and nothing new is recorded.
async fn a_redeemed_admission_can_no_longer_reserve(backend: Backend, db: Db) {
    let sale = SaleApp::spawn(backend, db).await;
    sale.put_inventory(json!([{"sku": "seat", "total": 10}]))
        .await;
    let token = sale.admitted().await;
    sale.reserve_ok(&token, "before", "seat", 1).await;

    // Without the backend token (or with the admission itself as the bearer): 401.
    for bearer in [None, Some(token.as_str())] {
        let mut request = sale
            .app
            .http
            .post(sale.app.url("/v1/admissions/redeem"))
            .json(&json!({ "admission_token": token }));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    sale.reserve_ok(&token, "still", "seat", 1).await;

    let (status, body) = sale.app.redeem(&token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for key in ["after", "before"] {
        let (status, body) = sale.reserve(&token, key, "seat", 1).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "admission_redeemed");
    }
    let backlog = sale.backlog().await;
    assert_eq!(backlog.lag + backlog.pending, 2, "nothing new recorded");
}

sales_matrix!(
    a_redeemed_admission_can_no_longer_reserve,
    a_hold_ends_once_by_the_backend_or_its_maker,
    completes_racing_expiry_end_each_hold_exactly_one_way,
);
