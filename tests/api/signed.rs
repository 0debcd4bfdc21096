//! One place per person (DESIGN §15): on an event with `identity: signed`, people come only
//! from enqueue tokens the sale site mints with the event's key.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{claims, Backend, TestApp, ADMIN_TOKEN};

const KEY: &[u8; 32] = b"the-sale-sites-enqueue-key-32-by";
const NEXT_KEY: &[u8; 32] = b"the-sale-sites-rotated-key-32-by";

fn b64(key: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn now() -> u64 {
    vestibule::clock::now_ms() / 1000
}

fn mint(key: &[u8], claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

fn token(key: &[u8], sub: &str) -> String {
    mint(
        key,
        json!({"sub": sub, "ev": "sale", "iat": now(), "exp": now() + 600}),
    )
}

async fn join_with(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url("/v1/events/sale/join"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn admin_get(app: &TestApp, path: &str) -> String {
    app.http
        .get(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn only_a_token_signed_with_the_events_key_gets_a_place(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "sale",
        json!({"state": "open", "identity": "signed", "enqueue_key": b64(KEY)}),
    )
    .await;

    let (status, first) = join_with(&app, json!({"enqueue_token": token(KEY, "buyer-1")})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(claims(first["ticket"].as_str().unwrap())["sub"], "buyer-1");
    // A fresh token for the same person: the same place, the same ticket.
    let (status, again) = join_with(&app, json!({"enqueue_token": token(KEY, "buyer-1")})).await;
    assert_eq!(
        (status, &again["ticket"]),
        (StatusCode::OK, &first["ticket"])
    );

    let exp = now() + 600;
    let refused = [
        ("no token", json!({})),
        (
            "forged",
            json!({"enqueue_token": token(b"an-attackers-own-key-of-32-bytes", "buyer-2")}),
        ),
        (
            "expired",
            json!({"enqueue_token": mint(KEY, json!({"sub": "buyer-2", "ev": "sale", "exp": now() - 5}))}),
        ),
        (
            "another event",
            json!({"enqueue_token": mint(KEY, json!({"sub": "buyer-2", "ev": "other", "exp": exp}))}),
        ),
        (
            "no expiry",
            json!({"enqueue_token": mint(KEY, json!({"sub": "buyer-2", "ev": "sale"}))}),
        ),
        (
            "a week ahead",
            json!({"enqueue_token": mint(KEY, json!({"sub": "buyer-2", "ev": "sale", "exp": now() + 7 * 86_400}))}),
        ),
        (
            "a long sub",
            json!({"enqueue_token": mint(KEY, json!({"sub": "x".repeat(129), "ev": "sale", "exp": exp}))}),
        ),
        ("unsigned", json!({"enqueue_token": unsigned("buyer-2")})),
        ("garbage", json!({"enqueue_token": "not.a.jwt"})),
        ("huge", json!({"enqueue_token": "a".repeat(10_000)})),
    ];
    for (what, body) in refused {
        let (status, answer) = join_with(&app, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_enqueue_token")),
            "{what}: {answer}"
        );
    }
    let (status, answer) = join_with(&app, json!({"user_id": "buyer-2"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(
        app.figures("sale").await["joined_total"],
        1,
        "nothing else took a place"
    );

    // The key is write-only: neither the event nor its audit trail shows it.
    let shown = admin_get(&app, "/admin/v1/events/sale").await;
    let audit = admin_get(&app, "/admin/v1/events/sale/audit").await;
    for text in [&shown, &audit] {
        assert!(!text.contains(&b64(KEY)), "the key leaked: {text}");
    }
    assert!(shown.contains(r#""enqueue_key_set":true"#), "{shown}");

    // Rotation: the new key signs from now on, the old one still works until cleared.
    app.put_event(
        "sale",
        json!({"enqueue_key": b64(NEXT_KEY), "enqueue_key_previous": b64(KEY)}),
    )
    .await;
    for (key, sub) in [(NEXT_KEY, "buyer-3"), (KEY, "buyer-4")] {
        let (status, body) = join_with(&app, json!({"enqueue_token": token(key, sub)})).await;
        assert_eq!(status, StatusCode::CREATED, "{sub}: {body}");
    }
    app.put_event("sale", json!({"enqueue_key_previous": ""}))
        .await;
    let (status, _) = join_with(&app, json!({"enqueue_token": token(KEY, "buyer-5")})).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the cleared key signs nothing"
    );

    // Keys that are too short or not base64url, and signed with no key, are refused.
    for valves in [
        json!({"enqueue_key": b64(b"short")}),
        json!({"enqueue_key": "not base64!"}),
        json!({"enqueue_key": ""}),
    ] {
        let (status, body) = app.admin_put("sale", valves).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
}

/// `alg: none`: a token anyone could write.
fn unsigned(sub: &str) -> String {
    let part = |v: Value| b64(v.to_string().as_bytes());
    format!(
        "{}.{}.",
        part(json!({"alg": "none", "typ": "JWT"})),
        part(json!({"sub": sub, "ev": "sale", "exp": now() + 600}))
    )
}

async fn many_fresh_tokens_for_one_person_give_one_place(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "sale",
        json!({"state": "open", "identity": "signed", "enqueue_key": b64(KEY)}),
    )
    .await;
    let joins = (0..40).map(|_| {
        let app = &app;
        async move { join_with(app, json!({"enqueue_token": token(KEY, "the-same-buyer")})).await }
    });
    let answers = futures::future::join_all(joins).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "one place per person");
    let tickets: std::collections::HashSet<&str> = answers
        .iter()
        .map(|(_, b)| b["ticket"].as_str().unwrap())
        .collect();
    assert_eq!(tickets.len(), 1);
    // A token is no good on an event that is not signed.
    app.put_event("plain", json!({"state": "open"})).await;
    let response = app
        .http
        .post(app.url("/v1/events/plain/join"))
        .json(&json!({"enqueue_token": token(KEY, "x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

crate::on_every_store!(
    only_a_token_signed_with_the_events_key_gets_a_place,
    many_fresh_tokens_for_one_person_give_one_place,
);

/// The README's two minting examples, run as pasted: their tokens get a place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_minting_examples_make_tokens_the_gateway_takes() {
    let app = TestApp::spawn(Backend::Memory).await;
    app.put_event(
        "sale",
        json!({"state": "open", "identity": "signed", "enqueue_key": b64(KEY)}),
    )
    .await;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("Minting a token, in Python").unwrap()..];
    let block = |fence: &str| {
        let start = section.find(fence).unwrap() + fence.len();
        section[start..start + section[start..].find("```").unwrap()].to_owned()
    };
    let python = block("```python\n")
        + &format!(
            "\nprint(enqueue_token({:?}, 'sale', 'py-buyer'))\n",
            b64(KEY)
        );
    let node = block("```js\n")
        + &format!(
            "\nconsole.log(enqueueToken({:?}, 'sale', 'node-buyer'));\n",
            b64(KEY)
        );
    for (program, flag, code) in [("python3", "-c", python), ("node", "-e", node)] {
        let output = tokio::process::Command::new(program)
            .args([flag, &code])
            .output()
            .await
            .expect("the interpreter runs");
        assert!(output.status.success(), "{program}: {output:?}");
        let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        let (status, body) = join_with(&app, json!({"enqueue_token": token})).await;
        assert_eq!(status, StatusCode::CREATED, "{program}'s token: {body}");
    }
}
