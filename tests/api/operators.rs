//! Operators: valves in force on every instance at once, pause/resume/close, scheduled opening,
//! the audit trail, and metrics that equal what happened.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, Backend, TestApp, ADMIN_TOKEN};

async fn a_valve_changed_through_one_instance_is_in_force_on_the_other_at_once(backend: Backend) {
    let (a, b) = TestApp::spawn_pair(backend).await;
    a.put_event(
        "sale",
        json!({"state": "open", "admission_rate": 1000, "max_active": 100}),
    )
    .await;
    let first = b.join_ok("sale").await;
    let second = b.join_ok("sale").await;

    a.put_event("sale", json!({"state": "paused"})).await;
    // No waiting: the very next call on B already sees the pause.
    let (status, body) = b.enter(&first.ticket).await;
    assert_eq!(
        status,
        StatusCode::TOO_EARLY,
        "pausing stops admissions at once: {body}"
    );
    let (status, body) = b.join("sale").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("event_not_open"))
    );

    a.put_event("sale", json!({"state": "open"})).await;
    assert_eq!(
        b.enter(&first.ticket).await.0,
        StatusCode::OK,
        "resuming restarts them"
    );

    a.put_event("sale", json!({"max_active": 1})).await;
    assert_eq!(
        b.enter(&second.ticket).await.0,
        StatusCode::TOO_EARLY,
        "max_active 1 is full"
    );

    a.put_event("sale", json!({"state": "closed"})).await;
    let (status, body) = b.join("sale").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("event_closed"))
    );
}

async fn a_scheduled_event_opens_by_itself_at_opens_at(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let opens_at = jsonwebtoken::get_current_timestamp() + 2;
    app.put_event("sale", json!({"state": "scheduled", "opens_at": opens_at}))
        .await;
    let (status, _) = app.join("sale").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not open before opens_at");
    let opened = eventually(Duration::from_secs(5), || async {
        app.join("sale").await.0 == StatusCode::CREATED
    })
    .await;
    assert!(opened, "the event did not open by itself");
    assert!(jsonwebtoken::get_current_timestamp() >= opens_at);
    // The sweeper records the opening, by the scheduler, in the stored state and the trail.
    let recorded = eventually(Duration::from_secs(10), || async {
        audit(&app, "sale").await[0]["by"] == "scheduler"
    })
    .await;
    assert!(recorded);
    let figures = app
        .http
        .get(app.url("/admin/v1/events/sale"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        figures.json::<Value>().await.unwrap()["config"]["state"],
        "open"
    );
}

async fn audit(app: &TestApp, event: &str) -> Vec<Value> {
    let response = app
        .http
        .get(app.url(&format!("/admin/v1/events/{event}/audit")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.unwrap()["entries"]
        .as_array()
        .unwrap()
        .clone()
}

async fn every_change_is_audited_with_who_when_and_old_to_new(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event("sale", json!({"state": "open"})).await;
    app.put_event("sale", json!({"admission_rate": 2.5})).await;
    app.put_event("sale", json!({"admission_rate": 2.5})).await; // no change: no entry
    let (status, _) = app.admin_put("sale", json!({"admission_rate": -1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY); // refused: no entry

    let entries = audit(&app, "sale").await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let newest = &entries[0];
    assert_eq!(
        newest["changes"],
        json!({"admission_rate": {"old": "1", "new": "2.5"}})
    );
    assert!(newest["by"].as_str().unwrap().starts_with("admin:"));
    assert!(
        !newest["by"].as_str().unwrap().contains(ADMIN_TOKEN),
        "never the token itself"
    );
    assert_eq!(newest["version"], 2);
    assert_eq!(
        entries[1]["changes"]["state"],
        json!({"old": null, "new": "open"})
    );
    let at = entries[1]["at_ms"].as_u64().unwrap();
    let now = jsonwebtoken::get_current_timestamp() * 1000;
    assert!(now.abs_diff(at) < 60_000, "recorded with the store's clock");

    let unauthorized = app
        .http
        .get(app.url("/admin/v1/events/sale/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    let listed = app
        .http
        .get(app.url("/admin/v1/events"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["events"][0]["event_id"], "sale");
}

/// The value of a metric line `name{labels} value` in the exposition text.
fn metric(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0.0, |v| v.parse().unwrap())
}

async fn after_a_mini_sale_the_metrics_equal_what_happened(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "sale",
        json!({"state": "open", "admission_rate": 1000, "max_active": 100,
               "heartbeat_ttl_secs": 1, "fast_poll_ms": 250, "slow_poll_ms": 500}),
    )
    .await;
    let mut people = Vec::new();
    for _ in 0..10 {
        people.push(app.join_ok("sale").await);
    }
    app.join("nope").await; // an unknown event: rejected under event "-"
    for p in &people[..4] {
        assert_eq!(app.enter(&p.ticket).await.0, StatusCode::OK);
        assert_eq!(app.enter(&p.ticket).await.0, StatusCode::OK); // the same admission: not counted twice
    }
    assert_eq!(app.leave(&people[4].ticket).await, StatusCode::NO_CONTENT);
    // people[5..7] keep polling, people[7..] become ghosts.
    let evicted = eventually(Duration::from_secs(6), || async {
        for p in &people[5..7] {
            app.status(&p.ticket).await;
        }
        app.figures("sale").await["evicted_total"] == 3
    })
    .await;
    assert!(evicted);
    // Gauges come from the sweeper's next round.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ev = "event=\"sale\"";
    assert_eq!(metric(&text, "vestibule_joins_total", ev), 10.0);
    assert_eq!(metric(&text, "vestibule_admitted_total", ev), 4.0);
    assert_eq!(metric(&text, "vestibule_left_total", ev), 1.0);
    assert_eq!(metric(&text, "vestibule_evicted_total", ev), 3.0);
    assert_eq!(metric(&text, "vestibule_queue_waiting", ev), 2.0);
    assert_eq!(metric(&text, "vestibule_active_sessions", ev), 4.0);
    assert_eq!(
        metric(&text, "vestibule_time_in_queue_seconds_count", ev),
        4.0
    );
    assert_eq!(metric(&text, "vestibule_door_rate", ev), 1000.0);
    assert_eq!(
        metric(
            &text,
            "vestibule_rejections_total",
            "event=\"-\",reason=\"event_not_found\""
        ),
        1.0
    );
    assert!(metric(&text, "vestibule_status_polls_total", ev) >= 2.0);
    assert!(text.contains("vestibule_http_requests_total{method=\"POST\",route=\"/v1/events/{event_id}/join\",status=\"201\"} 10"));
    assert!(
        !text.contains("event=\"nope\""),
        "a client's made-up event is never a label"
    );
}

/// Prometheus's advice: a family without samples is absent from `/metrics`, so a panel says
/// "No data" and an alert cannot tell "no errors" from "no gateway". Every family a known label
/// set exists for is there, at 0, before anything happened.
async fn a_fresh_gateway_exposes_every_family_at_zero(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let scrape = || async {
        let response = app.http.get(app.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    };
    let text = scrape().await;
    let mut zeros = vec![
        "vestibule_rejections_total{event=\"-\",reason=\"rate_limited\"}".to_owned(),
        "vestibule_rejections_total{event=\"-\",reason=\"event_not_found\"}".to_owned(),
    ];
    if !matches!(backend, Backend::Memory) {
        // The Redis store's calls, each script and command by name.
        for op in [
            "join",
            "status",
            "enter",
            "reserve",
            "sweep",
            "ping",
            "get_event",
        ] {
            zeros.push(format!("vestibule_store_errors_total{{op=\"{op}\"}}"));
            zeros.push(format!(
                "vestibule_store_call_duration_seconds_count{{op=\"{op}\"}}"
            ));
        }
    }
    for series in &zeros {
        assert!(
            text.contains(&format!("{series} 0\n")),
            "{series} is not at 0 on a fresh gateway:\n{text}"
        );
    }

    // An event's counters exist from the sweeper's first round over it.
    app.put_event("sale", json!({"state": "open"})).await;
    let known = eventually(Duration::from_secs(5), || async {
        scrape()
            .await
            .contains("vestibule_joins_total{event=\"sale\"} 0")
    })
    .await;
    assert!(known, "the event's counters never appeared");
    let text = scrape().await;
    let ev = "event=\"sale\"";
    for name in [
        "vestibule_admitted_total",
        "vestibule_left_total",
        "vestibule_redeemed_total",
        "vestibule_evicted_total",
        "vestibule_status_polls_total",
        "vestibule_time_in_queue_seconds_count",
    ] {
        assert!(
            text.contains(&format!("{name}{{{ev}}} 0\n")),
            "{name}: {text}"
        );
    }
    assert!(text.contains("vestibule_rejections_total{event=\"sale\",reason=\"queue_full\"} 0\n"));
}

crate::on_every_store!(
    a_fresh_gateway_exposes_every_family_at_zero,
    a_valve_changed_through_one_instance_is_in_force_on_the_other_at_once,
    a_scheduled_event_opens_by_itself_at_opens_at,
    every_change_is_audited_with_who_when_and_old_to_new,
    after_a_mini_sale_the_metrics_equal_what_happened,
);
