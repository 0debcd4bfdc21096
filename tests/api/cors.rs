//! CORS: a page on a listed origin may call the public API from the browser; any other origin,
//! and every origin when none is listed, gets no `Access-Control-Allow-Origin` (the browser
//! then refuses the answer). The admin API and the backend calls never answer CORS. The same
//! from a real browser on another origin: `tests/browser.rs`.

use std::sync::Arc;

use reqwest::{header, Method, StatusCode};
use vestibule::app::{Options, Stores};
use vestibule::http::cors::parse_origin;
use vestibule::store::memory::MemoryStore;

use crate::helpers::{temp_dir, TestApp, ADMIN_TOKEN};

const SHOP: &str = "https://shop.example";

async fn gateway(origins: &[&str]) -> TestApp {
    let options = Options {
        cors_origins: origins.iter().map(|o| parse_origin(o).unwrap()).collect(),
        ..Options::default()
    };
    let stores = Stores::of(Arc::new(MemoryStore::default()));
    let app = TestApp::spawn_with_options(stores, temp_dir("cors"), None, options).await;
    app.put_event("sale", serde_json::json!({"state": "open"}))
        .await;
    app
}

/// A browser's preflight for a POST with a bearer token and a JSON body.
async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, app.url(path))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn allowed_origin(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_listed_origin_passes_preflight_and_reads_the_answers() {
    let app = gateway(&[SHOP, "http://127.0.0.1:3000"]).await;

    let response = preflight(&app, "/v1/events/sale/join", SHOP).await;
    assert!(response.status().is_success());
    assert_eq!(
        allowed_origin(&response),
        Some(SHOP),
        "exactly the origin, never *"
    );
    let headers = response.headers();
    let allowed_headers = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed_headers.contains("authorization"));
    assert!(allowed_headers.contains("content-type"));
    assert!(headers[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(
        !headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        "no cookies: the API takes bearer tokens"
    );

    // The real calls: join, then poll with the ticket; the answers name the origin and let
    // the page read Retry-After and X-Request-Id.
    let joined = app
        .http
        .post(app.url("/v1/events/sale/join"))
        .header(header::ORIGIN, SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), StatusCode::CREATED);
    assert_eq!(allowed_origin(&joined), Some(SHOP));
    let exposed = joined.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after") && exposed.contains("x-request-id"));
    let ticket = joined.json::<serde_json::Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        "/v1/queue/status",
        "/v1/events/sale/page",
        "/.well-known/jwks.json",
    ] {
        let response = app
            .http
            .get(app.url(path))
            .header(header::ORIGIN, "http://127.0.0.1:3000")
            .bearer_auth(&ticket)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            allowed_origin(&response),
            Some("http://127.0.0.1:3000"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_origin_not_listed_gets_no_cors_headers() {
    let app = gateway(&[SHOP]).await;
    // Look-alikes of the listed origin: another scheme, a subdomain, a suffix, a port.
    for origin in [
        "http://shop.example",
        "https://evil.shop.example",
        "https://shop.example.evil",
        "https://shop.example:8443",
        "null",
    ] {
        let response = preflight(&app, "/v1/events/sale/join", origin).await;
        assert_eq!(allowed_origin(&response), None, "{origin}");
        let response = app
            .http
            .post(app.url("/v1/events/sale/join"))
            .header(header::ORIGIN, origin)
            .send()
            .await
            .unwrap();
        assert_eq!(allowed_origin(&response), None, "{origin}");
    }
}

#[tokio::test]
async fn nothing_is_allowed_by_default() {
    let app = gateway(&[]).await;
    let response = preflight(&app, "/v1/events/sale/join", SHOP).await;
    assert_eq!(allowed_origin(&response), None);
    let response = app
        .http
        .get(app.url("/v1/events/sale/page"))
        .header(header::ORIGIN, SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "same-origin use is unchanged"
    );
    assert_eq!(allowed_origin(&response), None);
}

#[tokio::test]
async fn the_admin_api_and_the_backend_calls_never_answer_cors() {
    let app = gateway(&[SHOP]).await;
    for path in [
        "/admin/v1/events",
        "/admin/v1/events/sale",
        "/v1/admissions/redeem",
        "/metrics",
    ] {
        let response = preflight(&app, path, SHOP).await;
        assert_eq!(allowed_origin(&response), None, "{path}");
    }
    let response = app
        .http
        .get(app.url("/admin/v1/events/sale"))
        .header(header::ORIGIN, SHOP)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&response), None);
}
