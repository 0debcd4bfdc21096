//! The door: admission rate from the store's clock, max active, FIFO entry, the vip bypass.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, Joined, TestApp};

/// Calls enter for everyone not yet admitted, in queue order, alternating instances; returns
/// how many got a new admission.
async fn enter_all(
    apps: &[&TestApp],
    people: &[Joined],
    admitted: &mut BTreeMap<u64, String>,
) -> usize {
    let mut new = 0;
    for (i, person) in people.iter().enumerate() {
        if admitted.contains_key(&person.seq) {
            continue;
        }
        let (status, body) = apps[i % apps.len()].enter(&person.ticket).await;
        if status == StatusCode::OK {
            admitted.insert(
                person.seq,
                body["admission_token"].as_str().unwrap().to_owned(),
            );
            new += 1;
        } else {
            assert_eq!(status, StatusCode::TOO_EARLY, "{body}");
            // The window is a prefix of the queue: nobody behind a refused person is inside it.
            break;
        }
    }
    new
}

async fn the_door_admits_at_its_rate_with_two_instances_ticking_it(backend: Backend) {
    let (a, b) = TestApp::spawn_pair(backend).await;
    a.put_event(
        "sale",
        json!({"state": "open", "admission_rate": 0, "max_active": 1000}),
    )
    .await;
    let mut people = Vec::new();
    for i in 0..80 {
        people.push(if i % 2 == 0 {
            a.join_ok("sale").await
        } else {
            b.join_ok("sale").await
        });
    }

    let rate = 5.0;
    let opened = Instant::now();
    b.put_event("sale", json!({"admission_rate": rate})).await;
    let mut admitted = BTreeMap::new();
    while opened.elapsed() < Duration::from_secs(4) {
        // Both instances tick the door through status and enter calls (and their sweepers).
        enter_all(&[&a, &b], &people, &mut admitted).await;
        for p in people.iter().rev().take(5) {
            a.status(&p.ticket).await;
            b.status(&p.ticket).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The ETA of the last person follows the measured outflow (about `rate` per second).
    let (_, last) = b.status(&people[79].ticket).await;
    let eta = last["eta_seconds"]
        .as_f64()
        .expect("an ETA once people get in");
    let expected_eta = last["position"].as_f64().unwrap() / rate;
    assert!(
        eta >= expected_eta * 0.6 && eta <= expected_eta * 1.6,
        "eta {eta} s, expected about {expected_eta:.1} s: {last}"
    );
    a.put_event("sale", json!({"admission_rate": 0})).await;
    let open_secs = opened.elapsed().as_secs_f64();
    // The door is shut again: whoever it released before can still enter, nobody more.
    enter_all(&[&a, &b], &people, &mut admitted).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    enter_all(&[&a, &b], &people, &mut admitted).await;

    let expected = rate * open_secs;
    let got = admitted.len() as f64;
    assert!(
        (got - expected).abs() <= 1.5,
        "admitted {got} in {open_secs:.2} s at {rate}/s (expected about {expected:.1})"
    );
    let seqs: Vec<u64> = admitted.keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=admitted.len() as u64).collect::<Vec<_>>(),
        "admitted from the head, in order"
    );
    assert_eq!(
        a.figures("sale").await["admitted_total"].as_u64(),
        Some(admitted.len() as u64)
    );
}

async fn max_active_caps_live_admissions_until_one_is_redeemed_or_expires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "sale",
        json!({"state": "open", "admission_rate": 1000, "max_active": 5, "admission_ttl_secs": 2}),
    )
    .await;
    let mut people = Vec::new();
    for _ in 0..8 {
        people.push(app.join_ok("sale").await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut admitted = BTreeMap::new();
    assert_eq!(enter_all(&[&app], &people, &mut admitted).await, 5);
    let (status, body) = app.enter(&people[5].ticket).await;
    assert_eq!(status, StatusCode::TOO_EARLY, "the 6th waits: {body}");
    assert_eq!(app.figures("sale").await["active"], 5);

    let first_token = admitted[&1].clone();
    assert_eq!(app.redeem(&first_token).await.0, StatusCode::OK);
    assert_eq!(
        enter_all(&[&app], &people, &mut admitted).await,
        1,
        "a redeemed session frees one place"
    );
    assert_eq!(app.enter(&people[6].ticket).await.0, StatusCode::TOO_EARLY);

    // The four unredeemed admissions and the 6th's expire after 2 s: the rest get in.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(enter_all(&[&app], &people, &mut admitted).await, 2);
    let (status, body) = app.status(&people[1].ticket).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("admission_expired"))
    );
}

async fn ready_for_entry_marks_exactly_the_released_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "sale",
        json!({"state": "open", "admission_rate": 0, "max_active": 3}),
    )
    .await;
    let mut people = Vec::new();
    for _ in 0..6 {
        people.push(app.join_ok("sale").await);
    }
    let (_, body) = app.status(&people[0].ticket).await;
    assert_eq!(
        (body["state"].as_str(), body["ready_for_entry"].as_bool()),
        (Some("waiting"), Some(false))
    );
    assert!(
        body["eta_seconds"].is_null(),
        "a shut door gives no ETA: {body}"
    );
    assert_eq!(app.enter(&people[0].ticket).await.0, StatusCode::TOO_EARLY);

    app.put_event("sale", json!({"admission_rate": 1000})).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ready = Vec::new();
    for p in &people {
        let (_, body) = app.status(&p.ticket).await;
        ready.push(body["ready_for_entry"].as_bool().unwrap());
    }
    assert_eq!(
        ready,
        [true, true, true, false, false, false],
        "max_active 3 bounds the window"
    );

    app.put_event("sale", json!({"state": "paused"})).await;
    let (status, _) = app.enter(&people[0].ticket).await;
    assert_eq!(
        status,
        StatusCode::TOO_EARLY,
        "pausing stops admissions at once"
    );
    app.put_event("sale", json!({"state": "open"})).await;
    let (status, body) = app.enter(&people[0].ticket).await;
    assert_eq!(status, StatusCode::OK);
    let (again_status, again) = app.enter(&people[0].ticket).await;
    assert_eq!(again_status, StatusCode::OK);
    assert_eq!(
        again["admission_token"], body["admission_token"],
        "entering twice: the same admission"
    );
    let (_, status_body) = app.status(&people[0].ticket).await;
    assert_eq!(status_body["state"], "admitted");
    assert_eq!(app.position(&people[1].ticket).await, 1);
}

/// A whole simulated sale with joins, leaves and ghosts: whenever someone is admitted, everyone
/// still waiting ahead of them is already inside the window (ready), never behind them.
async fn nobody_is_admitted_ahead_of_someone_waiting_in_front(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "sale",
        json!({"state": "open", "admission_rate": 8, "max_active": 1000,
               "heartbeat_ttl_secs": 2, "fast_poll_ms": 250, "slow_poll_ms": 1000}),
    )
    .await;
    let mut people: Vec<Joined> = Vec::new();
    let mut gone: std::collections::BTreeSet<u64> = Default::default();
    let mut admitted = BTreeMap::new();
    let started = Instant::now();
    let mut round = 0u64;
    let mut checks = 0;
    while started.elapsed() < Duration::from_secs(5) {
        round += 1;
        for _ in 0..3 {
            people.push(app.join_ok("sale").await);
        }
        for person in people.clone() {
            if gone.contains(&person.seq) || admitted.contains_key(&person.seq) {
                continue;
            }
            match person.seq % 7 {
                // Ghosts stop polling after their first round.
                0 if round > 1 => continue,
                // Leavers leave in their third round.
                3 if round >= 3 => {
                    assert_eq!(app.leave(&person.ticket).await, StatusCode::NO_CONTENT);
                    gone.insert(person.seq);
                    continue;
                }
                _ => {}
            }
            let (status, body) = app.status(&person.ticket).await;
            if status == StatusCode::GONE {
                gone.insert(person.seq);
                continue;
            }
            if body["ready_for_entry"] != true {
                continue;
            }
            let (status, _) = app.enter(&person.ticket).await;
            assert_eq!(status, StatusCode::OK);
            admitted.insert(person.seq, ());
            // Everyone ahead still waiting must already be released.
            for ahead in people.iter().filter(|p| p.seq < person.seq) {
                if gone.contains(&ahead.seq) || admitted.contains_key(&ahead.seq) {
                    continue;
                }
                let (status, body) = app.status(&ahead.ticket).await;
                checks += 1;
                assert!(
                    status == StatusCode::GONE || body["ready_for_entry"] == true,
                    "seq {} admitted while seq {} waits outside the window: {body}",
                    person.seq,
                    ahead.seq
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        admitted.len() >= 10,
        "the sale admitted only {}",
        admitted.len()
    );
    assert!(checks >= 20, "only {checks} people ahead were checked");
}

async fn the_vip_bypass_never_raises_the_door_rate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "sale",
        json!({"state": "open", "admission_rate": 0, "max_active": 1000, "enter_rate": 1}),
    )
    .await;
    let mut people = Vec::new();
    for _ in 0..30 {
        people.push(app.join_ok("sale").await);
    }
    let rate = 2.0;
    let opened = Instant::now();
    app.put_event("sale", json!({"admission_rate": rate})).await;
    let mut admitted = 0;
    let mut limited = 0;
    while opened.elapsed() < Duration::from_secs(3) {
        // The top 10 hammer enter; the event's limiter (1/s) is exhausted at once, so only the
        // vip tier's bypass lets anyone through: still never faster than the door.
        for p in people.iter().take(12) {
            match app.enter(&p.ticket).await {
                (StatusCode::OK, body) if body["admission_id"].is_string() => admitted += 1,
                (StatusCode::TOO_MANY_REQUESTS, _) => limited += 1,
                (StatusCode::TOO_EARLY, _) => {}
                (status, body) => panic!("unexpected {status}: {body}"),
            }
        }
    }
    app.put_event("sale", json!({"admission_rate": 0})).await;
    let figures = app.figures("sale").await;
    let total = figures["admitted_total"].as_f64().unwrap();
    let released = rate * opened.elapsed().as_secs_f64();
    assert!(
        total <= released + 1.0,
        "admitted {total}, the door released {released:.1}"
    );
    assert!(
        total >= 4.0,
        "the vip tier got in through the exhausted limiter"
    );
    assert!(limited > 0, "people outside the vip tier were limited");
    assert!(admitted > 0);
}

async fn the_enter_rate_is_a_valve_in_force_on_every_instance(backend: Backend) {
    let (a, b) = TestApp::spawn_pair(backend).await;
    a.put_event(
        "sale",
        json!({"state": "open", "admission_rate": 1000, "max_active": 1000, "vip_size": 0,
               "fast_upto": 0, "enter_rate": 1}),
    )
    .await;
    let mut people = Vec::new();
    for _ in 0..40 {
        people.push(a.join_ok("sale").await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // One enter a second on B: of twenty at once, at most two get through.
    let mut admitted = 0;
    for p in &people[..20] {
        match b.enter(&p.ticket).await {
            (StatusCode::OK, _) => admitted += 1,
            (StatusCode::TOO_MANY_REQUESTS, body) => {
                assert_eq!(body["error"]["code"], "rate_limited")
            }
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    assert!(admitted <= 2, "{admitted} of 20 got past a limit of 1/s");

    // Lifted through A, the valve is in force on B within about a second.
    a.put_event("sale", json!({"enter_rate": 0})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for p in &people[20..] {
        let (status, body) = b.enter(&p.ticket).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

crate::on_every_store!(
    the_door_admits_at_its_rate_with_two_instances_ticking_it,
    max_active_caps_live_admissions_until_one_is_redeemed_or_expires,
    ready_for_entry_marks_exactly_the_released_window,
    nobody_is_admitted_ahead_of_someone_waiting_in_front,
    the_vip_bypass_never_raises_the_door_rate,
    the_enter_rate_is_a_valve_in_force_on_every_instance,
);
