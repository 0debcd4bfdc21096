//! Admission proof: tokens verified offline through JWKS (checked here with an independent
//! Ed25519 implementation), rotation, redeem exactly once, and the status stream.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, temp_dir, Backend, TestApp};

/// Verifies a JWT against a JWKS the way a sale backend would, without our JWT library:
/// find the key by `kid`, check the Ed25519 signature over `header.payload`, check `exp`.
fn verify_with_jwks(token: &str, jwks: &Value) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err("not a JWT".into());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "EdDSA" {
        return Err(format!("alg {}", header["alg"]));
    }
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == header["kid"]))
        .ok_or("unknown kid")?;
    let x: [u8; 32] = decode(jwk["x"].as_str().ok_or("no x")?)?
        .try_into()
        .map_err(|_| "bad key length")?;
    let key = VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
    let signature = Signature::from_slice(&decode(signature)?).map_err(|e| e.to_string())?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    key.verify(signed.as_bytes(), &signature)
        .map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_slice(&decode(payload)?).map_err(|e| e.to_string())?;
    if claims["exp"].as_u64().ok_or("no exp")? <= jsonwebtoken::get_current_timestamp() {
        return Err("expired".into());
    }
    Ok(claims)
}

async fn jwks(app: &TestApp) -> Value {
    app.http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Joins and enters at once on an event with an open door; returns the admission token.
async fn admitted(app: &TestApp) -> String {
    let person = app.join_ok("sale").await;
    let ok = eventually(Duration::from_secs(5), || async {
        app.enter(&person.ticket).await.0 == StatusCode::OK
    })
    .await;
    assert!(ok, "the door never let the person in");
    app.enter(&person.ticket).await.1["admission_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn open_door(app: &TestApp) {
    app.put_event(
        "sale",
        json!({"state": "open", "admission_rate": 1000, "max_active": 1000}),
    )
    .await;
}

async fn admission_tokens_verify_offline_with_jwks_across_a_key_rotation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    open_door(&app).await;
    let old_token = admitted(&app).await;
    let claims = verify_with_jwks(&old_token, &jwks(&app).await).unwrap();
    assert_eq!(claims["ev"], "sale");
    assert!(claims["jti"].is_string() && claims["sub"].is_string());

    let new_kid = vestibule::admission::rotate(&app.keys_dir).unwrap();
    let rotated = eventually(Duration::from_secs(5), || async {
        jwks(&app).await["keys"].as_array().unwrap().len() == 2
    })
    .await;
    assert!(rotated, "the new key was not picked up without a restart");
    let new_token = admitted(&app).await;
    let header = jsonwebtoken::decode_header(&new_token).unwrap();
    assert_eq!(
        header.kid,
        Some(new_kid),
        "new admissions are signed with the new key"
    );
    let keys = jwks(&app).await;
    assert!(
        verify_with_jwks(&old_token, &keys).is_ok(),
        "old tokens still verify"
    );
    assert!(verify_with_jwks(&new_token, &keys).is_ok());
    assert_eq!(app.redeem(&old_token).await.0, StatusCode::OK);

    // A token from a key this deployment never had is refused, offline and by redeem.
    let stranger_dir = temp_dir("stranger");
    let stranger = vestibule::admission::AdmissionKeys::load_or_create(&stranger_dir).unwrap();
    let forged = stranger.issue(
        &vestibule::event::EventId::parse("sale").unwrap(),
        "mallory",
        &vestibule::store::Admission {
            id: "forged".into(),
            expires_at_ms: (jsonwebtoken::get_current_timestamp() + 600) * 1000,
            new: true,
        },
    );
    assert!(verify_with_jwks(&forged, &keys).is_err());
    let (status, body) = app.redeem(&forged).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    let mut tampered = new_token.clone();
    tampered.insert(tampered.find('.').unwrap() + 2, 'x');
    assert_eq!(app.redeem(&tampered).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.redeem("garbage").await.0, StatusCode::UNAUTHORIZED);
}

async fn of_a_hundred_concurrent_redeems_exactly_one_wins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    open_door(&app).await;
    let token = admitted(&app).await;
    let redeems = (0..100).map(|_| app.redeem(&token));
    let answers = futures::future::join_all(redeems).await;
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let conflicts = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && b["error"]["code"] == "already_redeemed")
        .count();
    assert_eq!((ok, conflicts), (1, 99));
    assert_eq!(app.figures("sale").await["redeemed_total"], 1);
}

async fn the_stream_sends_the_status_when_it_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event("sale", json!({"state": "open", "admission_rate": 0}))
        .await;
    let first = app.join_ok("sale").await;
    let second = app.join_ok("sale").await;
    let response = app
        .http
        .get(app.url(&format!("/v1/queue/stream?ticket={}", second.ticket)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut reader = SseReader {
        bytes: Box::pin(response.bytes_stream()),
        buffer: String::new(),
    };
    let mut events: Vec<Value> = Vec::new();
    events.push(reader.next_data().await);
    assert_eq!(
        (events[0]["position"].as_u64(), events[0]["state"].as_str()),
        (Some(2), Some("waiting"))
    );
    assert_eq!(app.leave(&first.ticket).await, StatusCode::NO_CONTENT);
    events.push(reader.next_data().await);
    assert_eq!(events[1]["position"], 1);
    app.put_event("sale", json!({"admission_rate": 1000})).await;
    events.push(reader.next_data().await);
    assert_eq!(
        (
            events[2]["state"].as_str(),
            events[2]["ready_for_entry"].as_bool()
        ),
        (Some("ready"), Some(true))
    );

    // The stream kept the heartbeat alive: the person is still waiting, not evicted.
    let (status, _) = app.status(&second.ticket).await;
    assert_eq!(status, StatusCode::OK);
    let bad = app
        .http
        .get(app.url("/v1/queue/stream?ticket=garbage"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
}

/// Reads Server-Sent Events from a response body.
struct SseReader {
    bytes: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    /// The JSON `data` of the next event.
    async fn next_data(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                    return serde_json::from_str(data.trim()).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.bytes.next())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

crate::on_every_store!(
    admission_tokens_verify_offline_with_jwks_across_a_key_rotation,
    of_a_hundred_concurrent_redeems_exactly_one_wins,
    the_stream_sends_the_status_when_it_changes,
);
