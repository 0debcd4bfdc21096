//! Who a client is, for the per-client join limit: the peer, or behind a trusted proxy the
//! first untrusted hop of `X-Forwarded-For`, however the proxy writes it; IPv6 by its /64.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use vestibule::app::{Options, Stores};
use vestibule::store::memory::MemoryStore;

use crate::helpers::{temp_dir, TestApp};

/// A gateway allowing 1 join/s per client (burst 2), trusting `proxies`.
async fn limited(proxies: &[&str]) -> TestApp {
    let options = Options {
        join_rate_per_client: 1,
        trusted_proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
        ..Options::default()
    };
    let app = TestApp::spawn_with_options(
        Stores::of(Arc::new(MemoryStore::default())),
        temp_dir("keys"),
        None,
        options,
    )
    .await;
    app.put_event("sale", json!({"state": "open"})).await;
    app
}

/// How many of `n` joins pass, each with the `X-Forwarded-For` `forwarded(i)`.
async fn passed(app: &TestApp, n: usize, forwarded: impl Fn(usize) -> String) -> usize {
    let mut passed = 0;
    for i in 0..n {
        let response = app
            .http
            .post(app.url("/v1/events/sale/join"))
            .header("x-forwarded-for", forwarded(i))
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::CREATED => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    passed
}

#[tokio::test]
async fn behind_a_trusted_proxy_no_way_of_writing_a_hop_escapes_the_limit() {
    let app = limited(&["127.0.0.1/32"]).await;
    // The attacker writes the left part; the proxy appends what it saw, in several spellings.
    for (name, nearest) in [
        ("ip:port", "1.2.3.4:5678"),
        ("[v6]:port", "[2001:db8::7]:443"),
        ("unknown", "unknown"),
    ] {
        let passed = passed(&app, 10, |i| format!("6.6.{i}.{i}, {nearest}")).await;
        assert!(
            passed <= 2,
            "{name}: {passed} of 10 joins passed a burst of 2"
        );
    }
    // Addresses rotated inside one IPv6 /64 are one client.
    let passed = passed(&app, 10, |i| format!("2001:db8:aa:bb::{i:x}")).await;
    assert!(passed <= 2, "one /64: {passed} of 10 passed");
    // Two real clients behind the proxy are two clients.
    assert_eq!(
        passed_one(&app, "5.5.5.5").await + passed_one(&app, "5.5.5.6").await,
        2
    );
}

async fn passed_one(app: &TestApp, client: &str) -> usize {
    passed(app, 1, |_| client.to_owned()).await
}

#[tokio::test]
async fn without_a_trusted_proxy_a_forwarded_header_changes_nothing() {
    let app = limited(&[]).await;
    let passed = passed(&app, 10, |i| format!("6.6.{i}.{i}")).await;
    assert!(passed <= 2, "{passed} of 10 spoofed joins passed");
}
