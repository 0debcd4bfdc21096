//! Bad input gets a clear JSON error, the right status, and changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, ADMIN_TOKEN};

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON error body");
    (
        status,
        body["error"]["code"].as_str().expect("a code").to_owned(),
    )
}

async fn bad_input_gets_the_right_4xx_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.open_event("sale", 300).await;
    app.join_ok("sale").await;
    let join = || app.http.post(app.url("/v1/events/sale/join"));

    let cases = [
        (
            join().body("{not json").send().await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            join().body("{\"user_id\": ").send().await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            join().json(&json!({"colour": "red"})).send().await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            join().json(&json!({"user_id": 42})).send().await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            // On a client of its own: the gateway closes the connection after refusing the
            // body, and the shared pool could hand that dying connection to the next request.
            reqwest::Client::new()
                .post(app.url("/v1/events/sale/join"))
                .body(vec![b' '; 1 << 20])
                .send()
                .await
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            app.http
                .post(app.url("/v1/events/nope/join"))
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            "event_not_found",
        ),
        (
            app.http
                .post(app.url("/v1/events/bad%7Did/join"))
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            "event_not_found",
        ),
        (
            app.http
                .delete(app.url("/v1/queue/status"))
                .send()
                .await
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            app.http.get(app.url("/v1/nowhere")).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (response, status, code) in cases {
        assert_eq!(error_code(response).await, (status, code.to_owned()));
    }
    let figures = app.figures("sale").await;
    assert_eq!(
        (
            figures["joined_total"].as_u64(),
            figures["waiting"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

async fn the_admin_api_wants_its_token_and_valid_valves(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let put = |token: Option<&str>, body: Value| {
        let request = app.http.put(app.url("/admin/v1/events/sale")).json(&body);
        match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
        .send()
    };
    let open = json!({"state": "open"});
    assert_eq!(
        error_code(put(None, open.clone()).await.unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        error_code(put(Some("wrong"), open.clone()).await.unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = app
        .admin_put("sale", json!({"heartbeat_ttl_secs": 0}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("heartbeat_ttl_secs"))
    );
    let (status, body) = app.admin_put("sale", json!({"state": "sideways"})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("state"))
    );
    let (status, _) = app.admin_put("sale", json!({"max_queue_len": -1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let missing = app
        .http
        .get(app.url("/admin/v1/events/sale"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(missing).await,
        (StatusCode::NOT_FOUND, "event_not_found".to_owned()),
        "nothing was created"
    );

    let (status, body) = app.admin_put("sale", open.clone()).await;
    assert_eq!(
        (status, body["config"]["version"].as_u64()),
        (StatusCode::CREATED, Some(1))
    );
    let (status, body) = app.admin_put("sale", json!({"max_queue_len": 10})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["config"]["state"], "open",
        "an update keeps the other valves"
    );
    assert_eq!(body["config"]["version"], 2);
}

async fn every_error_carries_the_request_id_it_was_given_or_made(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let given = app
        .http
        .post(app.url("/v1/events/nope/join"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
    let body: Value = given.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "trace-me-42");

    let made = app
        .http
        .get(app.url("/v1/queue/status"))
        .send()
        .await
        .unwrap();
    let header = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = made.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], header.as_str());
    assert!(!header.is_empty());
}

crate::on_every_store!(
    every_error_carries_the_request_id_it_was_given_or_made,
    bad_input_gets_the_right_4xx_and_changes_nothing,
    the_admin_api_wants_its_token_and_valid_valves,
);
