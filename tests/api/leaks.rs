//! No leaks: once an event's queue empties, every key of it has a TTL; closing the event
//! gives its definition one too.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{eventually, Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_queue_empties_no_key_of_the_event_is_left_without_a_ttl() {
    let app = TestApp::spawn(Backend::Redis).await;
    let redis = app.redis.as_ref().unwrap();
    app.open_event("sale", 1).await;
    let leaver = app.join_ok("sale").await;
    app.join_ok("sale").await; // becomes a ghost
    assert_eq!(app.leave(&leaver.ticket).await, StatusCode::NO_CONTENT);
    let emptied = eventually(Duration::from_secs(5), || async {
        app.figures("sale").await["waiting"] == 0
    })
    .await;
    assert!(emptied);

    let keys = redis.cli(&["--scan", "--pattern", "vst:{ev:sale}:*"]);
    let keys: Vec<&str> = keys.lines().collect();
    // Empty sorted sets (wait, hb) vanish by themselves; the rest must carry a TTL.
    assert!(keys.len() >= 4, "expected the event's keys, got {keys:?}");
    for key in &keys {
        let ttl: i64 = redis.cli(&["TTL", key]).parse().unwrap();
        if key.ends_with(":meta") || key.ends_with(":audit") {
            assert_eq!(
                ttl, -1,
                "an open event's definition and audit trail stay until it closes"
            );
        } else {
            assert!(ttl > 0, "{key} has no TTL");
        }
    }

    // Redis deletes emptied sorted sets; a later join re-creates them, and they get a TTL too.
    let late = app.join_ok("sale").await;
    for key in ["vst:{ev:sale}:wait", "vst:{ev:sale}:hb"] {
        let ttl: i64 = redis.cli(&["TTL", key]).parse().unwrap();
        assert!(ttl > 0, "{key} re-created without a TTL");
    }
    assert_eq!(app.leave(&late.ticket).await, StatusCode::NO_CONTENT);

    app.put_event("sale", json!({"state": "closed"})).await;
    for key in ["vst:{ev:sale}:meta", "vst:{ev:sale}:audit"] {
        let ttl: i64 = redis.cli(&["TTL", key]).parse().unwrap();
        assert!(
            ttl > 0,
            "{key}: a closed event's definition and trail drain away"
        );
    }
    // Every key of every event carries the event's hash tag (one slot per event).
    let all = redis.cli(&["--scan", "--pattern", "*"]);
    for key in all.lines() {
        assert!(
            key.starts_with("vst:{ev:") || key == "vst:events",
            "stray key {key}"
        );
    }
}
