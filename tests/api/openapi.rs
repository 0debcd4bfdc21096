//! `/openapi.json` covers every route with its errors, and every route it documents exists.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

/// Every route of the API (DESIGN.md), with its method.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/events/{event_id}/join"),
    ("get", "/v1/queue/status"),
    ("get", "/v1/queue/stream"),
    ("post", "/v1/queue/enter"),
    ("post", "/v1/queue/leave"),
    ("post", "/v1/admissions/redeem"),
    ("get", "/v1/admissions/check"),
    ("get", "/.well-known/jwks.json"),
    ("put", "/admin/v1/events/{event_id}"),
    ("get", "/admin/v1/events/{event_id}"),
    ("get", "/admin/v1/events"),
    ("get", "/admin/v1/events/{event_id}/audit"),
    ("get", "/v1/events/{event_id}/draw"),
    ("get", "/admin/v1/events/{event_id}/draw/entries"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/wait/{event_id}"),
    ("get", "/v1/events/{event_id}/page"),
    ("get", "/admin/ui"),
    ("post", "/v1/reservations"),
    ("get", "/v1/reservations/{reservation_id}"),
    ("put", "/admin/v1/events/{event_id}/inventory"),
    ("get", "/admin/v1/events/{event_id}/inventory"),
    ("get", "/admin/v1/events/{event_id}/inventory/audit"),
    ("post", "/v1/reservations/{reservation_id}/complete"),
    ("post", "/v1/reservations/{reservation_id}/cancel"),
];

/// Routes that cannot fail on bad input (nothing to document but success).
const NO_CLIENT_ERRORS: &[&str] = &[
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/.well-known/jwks.json",
    "/wait/{event_id}",
    "/admin/ui",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route_and_only_real_ones() {
    let app = TestApp::spawn(Backend::Memory).await;
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();

    let mut documented = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            documented.push((method.clone(), path.clone()));
            let codes: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
            if !NO_CLIENT_ERRORS.contains(&path.as_str()) {
                assert!(
                    codes
                        .iter()
                        .any(|c| c.starts_with('4') || c.starts_with('5')),
                    "{method} {path} documents no error: {codes:?}"
                );
            }
            // The route exists: the router answers something other than "no such route".
            let url = app.url(
                &path
                    .replace("{event_id}", "sale")
                    .replace("{reservation_id}", "r1"),
            );
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app.http.request(method.clone(), url).send().await.unwrap();
            assert_ne!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            if response.status() == StatusCode::NOT_FOUND {
                let body: Value = response.json().await.unwrap();
                assert_ne!(
                    body["error"]["code"], "not_found",
                    "{method} {path} is not routed"
                );
            }
        }
    }
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    documented.sort();
    assert_eq!(documented, expected);
    assert!(doc["components"]["securitySchemes"]["admin_token"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}
