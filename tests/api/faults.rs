//! Redis stopped: 503 with Retry-After and `/readyz` fails; Redis back: recovery without restart.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{eventually, Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_and_the_gateway_recovers_when_it_returns() {
    let mut app = TestApp::spawn(Backend::Redis).await;
    app.open_event("sale", 300).await;
    let person = app.join_ok("sale").await;
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    app.redis.as_mut().unwrap().kill();

    for response in [
        app.http
            .get(app.url("/v1/queue/status"))
            .bearer_auth(&person.ticket)
            .send()
            .await
            .unwrap(),
        app.http
            .post(app.url("/v1/events/sale/join"))
            .send()
            .await
            .unwrap(),
        app.http.get(app.url("/readyz")).send().await.unwrap(),
    ] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
    }
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    app.redis.as_mut().unwrap().restart();

    let recovered = eventually(Duration::from_secs(15), || async {
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::OK
    })
    .await;
    assert!(recovered, "/readyz did not recover");
    assert_eq!(
        app.position(&person.ticket).await,
        1,
        "the place survived the restart (AOF)"
    );
    assert_eq!(app.join_ok("sale").await.position, 2);
}
