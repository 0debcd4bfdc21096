//! The waiting-room page over HTTP: the page fields an operator sets, the public endpoint that
//! shows them, and the hardened page and assets. The page's behaviour in a browser is tested
//! by `tests/browser.rs`.

use reqwest::header;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};

async fn page_info(app: &TestApp, event: &str, accept_language: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .get(app.url(&format!("/v1/events/{event}/page")))
        .header(header::ACCEPT_LANGUAGE, accept_language)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn page_fields_round_trip_and_the_page_endpoint_shows_nothing_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "sale",
        json!({"state": "open", "title": "Spring sale", "message": "Doors at noon.\nBe patient.",
               "redirect_url": "https://shop.example/enter?from=queue", "language": "de"}),
    )
    .await;

    let (status, body) = page_info(&app, "sale", "fr").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"event_id": "sale", "title": "Spring sale", "message": "Doors at noon.\nBe patient.",
               "redirect_url": "https://shop.example/enter?from=queue", "language": "de",
               "state": "open"}),
        "exactly the public face: no valves, no figures"
    );

    // "" clears a field; the language then follows the browser.
    app.put_event(
        "sale",
        json!({"language": "", "title": "", "state": "paused"}),
    )
    .await;
    let (_, body) = page_info(&app, "sale", "fr-CH, de;q=0.5").await;
    assert_eq!(body["language"], "fr");
    assert_eq!(body["title"], Value::Null);
    assert_eq!(body["state"], "paused");
    assert_eq!(body["message"], "Doors at noon.\nBe patient.", "untouched");

    let (status, body) = page_info(&app, "nope", "en").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "event_not_found");
}

async fn bad_page_fields_get_422_naming_the_field_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "sale",
        json!({"state": "open", "redirect_url": "https://shop.example/"}),
    )
    .await;
    let cases = [
        json!({"redirect_url": "javascript:alert(document.cookie)"}),
        json!({"redirect_url": "//shop.example/"}),
        json!({"redirect_url": "https://shop.example/#x"}),
        json!({"title": "x".repeat(121)}),
        json!({"message": "m".repeat(1001)}),
        json!({"language": "klingon"}),
        json!({"title": 5}),
    ];
    for valves in cases {
        let field = valves.as_object().unwrap().keys().next().unwrap().clone();
        let (status, body) = app.admin_put("sale", valves.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{valves}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field");
        assert_eq!(body["error"]["field"], field.as_str(), "{valves}");
    }
    let (_, body) = page_info(&app, "sale", "en").await;
    assert_eq!(body["redirect_url"], "https://shop.example/");
}

async fn the_page_and_its_assets_are_embedded_and_hardened(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = app.http.get(app.url("/wait/sale")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();

    // Every asset the shell links is served, with its own type and the same hardening.
    for (asset, kind) in [("wait.js", "text/javascript"), ("wait.css", "text/css")] {
        let start = html.find(&format!("/assets/{asset}?v=")).expect("linked");
        let link = &html[start..start + html[start..].find('"').unwrap()];
        let response = app.http.get(app.url(link)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{link}");
        let headers = response.headers();
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
        assert!(!response.text().await.unwrap().is_empty());
    }
}

crate::on_every_store!(
    page_fields_round_trip_and_the_page_endpoint_shows_nothing_else,
    bad_page_fields_get_422_naming_the_field_and_change_nothing,
    the_page_and_its_assets_are_embedded_and_hardened,
);
