//! Reservations through the API: confirmed and rejected results, who may read them,
//! idempotency, per-person limits, bad input, and the inventory admin API.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, ADMIN_TOKEN};
use crate::sales::{fast_worker, Db, SaleApp};

async fn a_reservation_is_confirmed_and_only_its_maker_can_read_it(backend: Backend, db: Db) {
    let sale = SaleApp::spawn(backend, db).await;
    sale.put_inventory(json!([{"sku": "seat", "quantity": 10}]))
        .await;
    sale.start_workers(1, fast_worker());
    let alice = sale.admitted().await;
    let bob = sale.admitted().await;

    let (status, body) = sale.reserve(&alice, "order-1", "seat", 3).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "pending");
    let id = body["reservation_id"].as_str().unwrap().to_owned();

    let result = sale.settled(&alice, &id).await;
    assert_eq!(result["state"], "confirmed", "{result}");
    assert_eq!(result["reservation_id"], id.as_str());
    assert!(result.get("reason").is_none(), "{result}");
    assert_eq!(sale.remaining("seat").await, Some(7));
    // The in-process worker counts on the gateway's /metrics.
    let metrics = sale
        .app
        .http
        .get(sale.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vestibule_worker_confirmed_total{event=\"sale\"} 1"),
        "{metrics}"
    );

    let (status, body) = sale.reservation(&bob, &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "reservation_not_found");
    let (status, _) = sale.reservation(&alice, "not-an-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = sale.reservation("forged.token.here", &id).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_token");
}

async fn unknown_skus_and_sold_out_stock_are_rejected_with_their_reason(backend: Backend, db: Db) {
    let sale = SaleApp::spawn(backend, db).await;
    sale.put_inventory(json!([{"sku": "seat", "quantity": 2}, {"sku": "scarf", "quantity": 5}]))
        .await;
    sale.start_workers(1, fast_worker());
    let person = sale.admitted().await;

    let unknown = sale.reserve_ok(&person, "k1", "no-such-sku", 1).await;
    let too_many = sale.reserve_ok(&person, "k2", "seat", 3).await;
    let body = json!({"items": [{"sku": "scarf", "quantity": 1}, {"sku": "seat", "quantity": 3}]});
    let (status, answer) = sale
        .reserve_raw(Some(&person), Some("k3"), &body.to_string())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let mixed = answer["reservation_id"].as_str().unwrap().to_owned();

    let result = sale.settled(&person, &unknown).await;
    assert_eq!(
        (result["state"].as_str(), result["reason"].as_str()),
        (Some("rejected"), Some("invalid_sku"))
    );
    let result = sale.settled(&person, &too_many).await;
    assert_eq!(
        (result["state"].as_str(), result["reason"].as_str()),
        (Some("rejected"), Some("sold_out"))
    );
    let result = sale.settled(&person, &mixed).await;
    assert_eq!(
        (result["state"].as_str(), result["reason"].as_str()),
        (Some("rejected"), Some("sold_out"))
    );
    // All items or none: the scarf taken before the seat failed was put back.
    assert_eq!(sale.remaining("scarf").await, Some(5));
    assert_eq!(sale.remaining("seat").await, Some(2));
}

async fn the_same_idempotency_key_answers_the_same_reservation_and_another_body_conflicts(
    backend: Backend,
    db: Db,
) {
    let sale = SaleApp::spawn(backend, db).await;
    sale.put_inventory(json!([{"sku": "seat", "quantity": 10}]))
        .await;
    let alice = sale.admitted().await;
    let bob = sale.admitted().await;

    let first = sale.reserve_ok(&alice, "same-key", "seat", 2).await;
    // The same order, spelled differently, is the same body.
    let (status, body) = sale
        .reserve_raw(
            Some(&alice),
            Some("same-key"),
            r#"{ "items" : [ { "quantity": 2, "sku": "seat" } ] }"#,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["reservation_id"], first.as_str());

    let (status, body) = sale.reserve(&alice, "same-key", "seat", 3).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_conflict");

    // Keys belong to their person: Bob's "same-key" is another reservation.
    let bobs = sale.reserve_ok(&bob, "same-key", "seat", 3).await;
    assert_ne!(bobs, first);

    sale.start_workers(1, fast_worker());
    assert!(sale.drained(Duration::from_secs(10)).await);
    assert_eq!(sale.settled(&alice, &first).await["state"], "confirmed");
    assert_eq!(sale.remaining("seat").await, Some(5), "applied once each");
    // After the result, the key still answers the same reservation, now with its result.
    let (status, body) = sale.reserve(&alice, "same-key", "seat", 2).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["reservation_id"], first.as_str());
    assert_eq!(body["state"], "confirmed");
}

async fn a_person_with_five_pending_reservations_gets_429_until_one_completes(
    backend: Backend,
    db: Db,
) {
    let sale = SaleApp::spawn(backend, db).await;
    sale.put_inventory(json!([{"sku": "seat", "quantity": 100}]))
        .await;
    let person = sale.admitted().await;
    for i in 0..5 {
        sale.reserve_ok(&person, &format!("k{i}"), "seat", 1).await;
    }
    let response = sale
        .app
        .http
        .post(sale.app.url("/v1/reservations"))
        .bearer_auth(&person)
        .header("idempotency-key", "k5")
        .json(&json!({"items": [{"sku": "seat", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_reservations");

    sale.start_workers(1, fast_worker());
    assert!(sale.drained(Duration::from_secs(10)).await);
    sale.reserve_ok(&person, "k5", "seat", 1).await;
}

/// token, Idempotency-Key, body, then the status, code and field expected.
type Case<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    StatusCode,
    &'a str,
    Option<&'a str>,
);

async fn bad_input_gets_the_right_error_and_changes_nothing(backend: Backend, db: Db) {
    let sale = SaleApp::spawn(backend, db).await;
    sale.put_inventory(json!([{"sku": "seat", "quantity": 10}]))
        .await;
    let person = sale.admitted().await;
    let ticket = sale.app.join_ok("sale").await.ticket;
    let good = r#"{"items":[{"sku":"seat","quantity":1}]}"#;

    let cases: Vec<Case> = vec![
        (
            Some(&person),
            None,
            good,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            None,
        ),
        (
            Some(&person),
            Some(""),
            good,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            None,
        ),
        (
            Some(&person),
            Some("has space"),
            good,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            None,
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[{"sku":"seat","#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            None,
        ),
        (
            Some(&person),
            Some("k"),
            "",
            StatusCode::BAD_REQUEST,
            "invalid_request",
            None,
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[{"sku":"seat","quantity":0}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("items[0].quantity"),
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[{"sku":"seat","quantity":-1}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("items[0].quantity"),
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[{"sku":"seat","quantity":1.5}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("items[0].quantity"),
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[{"sku":"seat","quantity":11}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("items[0].quantity"),
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[{"sku":"seat","quantity":1,"colour":"red"}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("colour"),
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[],"note":"x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("note"),
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("items"),
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[{"sku":"a b","quantity":1}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("items[0].sku"),
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[{"sku":"seat","quantity":6},{"sku":"scarf","quantity":5}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("items"),
        ),
        (
            Some(&person),
            Some("k"),
            r#"{"items":[{"sku":"seat","quantity":1},{"sku":"seat","quantity":1}]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("items[1].sku"),
        ),
        (
            Some(&ticket),
            Some("k"),
            good,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            None,
        ),
        (
            None,
            Some("k"),
            good,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            None,
        ),
    ];
    for (token, key, body, status, code, field) in cases {
        let (got, answer) = sale.reserve_raw(token, key, body).await;
        assert_eq!(got, status, "{body} with key {key:?}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        }
    }

    // Nothing was recorded: the key "k" is still free, and no work was queued.
    assert_eq!(sale.backlog().await.lag, 0);
    let id = sale.reserve_ok(&person, "k", "seat", 1).await;
    assert_eq!(sale.backlog().await.lag, 1);
    sale.start_workers(1, fast_worker());
    assert_eq!(sale.settled(&person, &id).await["state"], "confirmed");
    assert_eq!(sale.remaining("seat").await, Some(9));
}

async fn inventory_is_set_by_operators_only_and_validated(backend: Backend, db: Db) {
    let sale = SaleApp::spawn(backend, db).await;
    let url = sale.app.url("/admin/v1/events/sale/inventory");
    let (status, body) = sale
        .put_inventory(
            json!([{"sku": "seat", "quantity": 100}, {"sku": "vip.pass", "quantity": 0}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["items"],
        json!([
            {"sku": "seat", "total": 100, "held": 0, "sold": 0, "remaining": 100},
            {"sku": "vip.pass", "total": 0, "held": 0, "sold": 0, "remaining": 0}
        ])
    );
    // A second PUT sets the SKUs it lists and leaves the others (`total`, the new name).
    sale.put_inventory(json!([{"sku": "seat", "total": 40}]))
        .await;
    assert_eq!(sale.remaining("seat").await, Some(40));
    assert_eq!(sale.remaining("vip.pass").await, Some(0));

    let unauthorised = sale
        .app
        .http
        .put(&url)
        .json(&json!({"items": [{"sku": "seat", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), StatusCode::UNAUTHORIZED);
    let unknown_event = sale
        .app
        .http
        .get(sale.app.url("/admin/v1/events/nope/inventory"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_event.status(), StatusCode::NOT_FOUND);

    for (items, field) in [
        (json!([{"sku": "seat", "total": -1}]), "items[0].total"),
        (json!([{"sku": "", "quantity": 1}]), "items[0].sku"),
        (json!([{"sku": "seat", "quantity": 1, "price": 5}]), "price"),
        (
            json!([{"sku": "seat", "quantity": 1}, {"sku": "seat", "quantity": 2}]),
            "items[1].sku",
        ),
        (json!([]), "items"),
        (json!([{"sku": "seat", "total": "many"}]), "items[0].total"),
    ] {
        let (status, body) = sale.put_inventory(items.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{items}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field");
        assert_eq!(body["error"]["field"], field, "{items}: {body}");
    }
    assert_eq!(sale.remaining("seat").await, Some(40), "nothing changed");
}

crate::sales_matrix!(
    a_reservation_is_confirmed_and_only_its_maker_can_read_it,
    unknown_skus_and_sold_out_stock_are_rejected_with_their_reason,
    the_same_idempotency_key_answers_the_same_reservation_and_another_body_conflicts,
    a_person_with_five_pending_reservations_gets_429_until_one_completes,
    bad_input_gets_the_right_error_and_changes_nothing,
    inventory_is_set_by_operators_only_and_validated,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reservation_key_carries_the_events_tag_and_a_ttl() {
    let sale = SaleApp::spawn(Backend::Redis, Db::Sqlite).await;
    sale.put_inventory(json!([{"sku": "seat", "quantity": 10}]))
        .await;
    let person = sale.admitted().await;
    let settled = sale.reserve_ok(&person, "k1", "seat", 1).await;
    sale.start_workers(1, fast_worker());
    sale.settled(&person, &settled).await;
    // A second order (its person's stream stays, empty) and a dead letter.
    let redis = sale.app.redis.as_ref().unwrap();
    sale.reserve_ok(&person, "k2", "seat", 1).await;
    redis.cli(&["XADD", "vst:{ev:sale}:rsv:work", "*", "junk", "1"]);
    assert!(sale.drained(Duration::from_secs(10)).await);

    let keys = redis.cli(&["--scan", "--pattern", "vst:{ev:sale}:rsv*"]);
    let keys: Vec<&str> = keys.lines().collect();
    for expected in ["rsv:work", "rsv:dead", "rsv:p:", "rsv:r:", "rsv:k:"] {
        assert!(
            keys.iter().any(|k| k.contains(expected)),
            "no {expected} key in {keys:?}"
        );
    }
    for key in &keys {
        let ttl: i64 = redis.cli(&["TTL", key]).parse().unwrap();
        assert!(ttl > 0, "{key} has no TTL");
    }
}
