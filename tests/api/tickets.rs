//! Tickets: only ours, only unexpired, only for their event.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{key_path, Backend, TestApp};

fn sign(app: &TestApp, claims: serde_json::Value) -> String {
    use base64::Engine;
    let encoded = std::fs::read_to_string(key_path(&app.keys_dir)).unwrap();
    let secret = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap()
}

async fn bad_tickets_answer_401_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.open_event("sale", 300).await;
    app.open_event("other", 300).await;
    let person = app.join_ok("sale").await;
    let claims = crate::helpers::claims(&person.ticket);

    let mut tampered = person.ticket.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let now = jsonwebtoken::get_current_timestamp();
    let expired = sign(
        &app,
        json!({"ev": "sale", "sub": claims["sub"], "seq": 1, "iat": now - 100, "exp": now - 10, "jti": "sale:1"}),
    );
    let forged_seq = sign(
        &app,
        json!({"ev": "sale", "sub": "somebody-else", "seq": 1, "iat": now, "exp": now + 60, "jti": "sale:1"}),
    );
    for bad in [
        tampered.as_str(),
        expired.as_str(),
        forged_seq.as_str(),
        "garbage",
        "a.b.c",
        "",
    ] {
        let (status, body) = app.status(bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "ticket {bad:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_ticket");
        assert_eq!(app.leave(bad).await, StatusCode::UNAUTHORIZED);
    }
    let missing = app
        .http
        .get(app.url("/v1/queue/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);

    // A real ticket for another event does not resume a place here.
    let wrong_event = app
        .http
        .post(app.url("/v1/events/other/join"))
        .bearer_auth(&person.ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_event.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(app.figures("other").await["joined_total"], 0);
    assert_eq!(
        app.position(&person.ticket).await,
        1,
        "the real ticket still works"
    );
    // The query form serves plain pages.
    let by_query = app
        .http
        .get(app.url(&format!("/v1/queue/status?ticket={}", person.ticket)))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), StatusCode::OK);
}

crate::on_every_store!(bad_tickets_answer_401_and_change_nothing);
