//! The start of a sale (DESIGN §18): the pre-queue, a draw anyone can check, passthrough, and a
//! room that is invisible below capacity.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{claims, eventually, Backend, TestApp, ADMIN_TOKEN};

fn now_secs() -> u64 {
    vestibule::clock::now_ms() / 1000
}

/// A scheduled event whose pre-queue is open and whose opening is an hour away.
async fn pre_queue_event(app: &TestApp, event: &str, extra: Value) {
    let mut valves = json!({
        "state": "scheduled",
        "prequeue_opens_at": now_secs() - 10,
        "opens_at": now_secs() + 3600,
        "admission_rate": 0,
        "max_active": 100000,
    });
    if let (Value::Object(valves), Value::Object(extra)) = (&mut valves, extra) {
        valves.extend(extra);
    }
    app.put_event(event, valves).await;
}

/// Moves the opening to the next second and waits until the draw is made.
async fn open_now(app: &TestApp, event: &str) -> Value {
    app.put_event(event, json!({"opens_at": now_secs() + 1}))
        .await;
    let shown = eventually(Duration::from_secs(10), || async {
        app.draw(event).await.1["drawn_at"].is_u64()
    })
    .await;
    let draw = app.draw(event).await.1;
    assert!(shown, "the draw is made once the event opens: {draw}");
    draw
}

/// The places the rule gives, recomputed here from the seed and the tickets' `jti`s:
/// ascending HMAC-SHA256(seed, jti).
fn expected_order(seed_hex: &str, tickets: &[String]) -> Vec<String> {
    let seed = hex::decode(seed_hex).unwrap();
    let mut keyed: Vec<(Vec<u8>, String)> = tickets
        .iter()
        .map(|ticket| {
            let jti = claims(ticket)["jti"].as_str().unwrap().to_owned();
            let mut mac = Hmac::<Sha256>::new_from_slice(&seed).unwrap();
            mac.update(jti.as_bytes());
            (mac.finalize().into_bytes().to_vec(), ticket.clone())
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, ticket)| ticket).collect()
}

async fn join_many(apps: &[&TestApp], event: &str, count: usize) -> Vec<Value> {
    stream::iter(0..count)
        .map(|i| async move {
            let (status, body) = apps[i % apps.len()].join(event).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body
        })
        .buffer_unordered(32)
        .collect()
        .await
}

async fn positions(app: &TestApp, tickets: &[String]) -> Vec<Option<u64>> {
    stream::iter(tickets)
        .map(|ticket| async move {
            let (status, body) = app.status(ticket).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["position"].as_u64()
        })
        .buffered(32)
        .collect()
        .await
}

async fn everyone_in_the_pre_queue_is_placed_in_the_order_the_seed_gives(backend: Backend) {
    const PEOPLE: usize = 2000;
    let (a, b) = TestApp::spawn_pair(backend).await;
    pre_queue_event(&a, "sale", json!({})).await;
    let (status, before) = b.draw("sale").await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert!(
        before["seed"].is_null(),
        "no seed before the opening: {before}"
    );
    let commitment = before["commitment"].as_str().unwrap().to_owned();

    // Joins over two gateways: in the pre-queue, nobody has a position.
    let joined = join_many(&[&a, &b], "sale", PEOPLE).await;
    for body in &joined {
        assert_eq!(body["state"], "pre_queue", "{body}");
        assert!(body["position"].is_null(), "{body}");
    }
    let tickets: Vec<String> = joined
        .iter()
        .map(|body| body["ticket"].as_str().unwrap().to_owned())
        .collect();
    let (_, status) = a.status(&tickets[0]).await;
    assert_eq!(
        (status["state"].as_str(), status["position"].as_u64()),
        (Some("pre_queue"), None)
    );
    assert_eq!(a.enter(&tickets[0]).await.0, StatusCode::TOO_EARLY);
    assert_eq!(a.draw("sale").await.1["count"], PEOPLE);

    let draw = open_now(&b, "sale").await;
    let seed = draw["seed"].as_str().unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(hex::decode(seed).unwrap())),
        commitment,
        "the seed is the one committed to before the opening"
    );
    // Later arrivals queue FIFO behind everyone drawn.
    let mut later = Vec::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        later.push(app.join_ok("sale").await);
    }

    let order = expected_order(seed, &tickets);
    let seen = positions(&a, &order).await;
    let places: Vec<Option<u64>> = (1..=PEOPLE as u64).map(Some).collect();
    assert_eq!(seen, places, "places are ascending HMAC-SHA256(seed, jti)");
    for (i, person) in later.iter().enumerate() {
        assert_eq!(
            person.position,
            (PEOPLE + i + 1) as u64,
            "FIFO behind the draw"
        );
    }

    // The operators' check, from what is published, agrees.
    let checked = a.admin_cli(&["draw", "sale"]).await;
    assert!(checked.status.success(), "{checked:?}");

    // The operators' export gives the same places.
    let export = a.draw_entries("sale", 0, 10_000).await;
    let exported: Vec<String> = export["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["jti"].as_str().unwrap().to_owned())
        .collect();
    let jtis: Vec<String> = order
        .iter()
        .map(|t| claims(t)["jti"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(exported, jtis);
    assert_eq!(export["entries"][0]["place"], 1);
}

async fn ghosts_of_the_pre_queue_are_evicted_and_get_no_place(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    pre_queue_event(
        &app,
        "sale",
        json!({"heartbeat_ttl_secs": 1, "fast_poll_ms": 250, "slow_poll_ms": 500}),
    )
    .await;
    let joined = join_many(&[&app], "sale", 6).await;
    let tickets: Vec<String> = joined
        .iter()
        .map(|body| body["ticket"].as_str().unwrap().to_owned())
        .collect();
    let (live, ghosts) = tickets.split_at(4);
    let evicted = eventually(Duration::from_secs(10), || async {
        for ticket in live {
            let (status, body) = app.status(ticket).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(
                body["position"].is_null(),
                "no position before the draw: {body}"
            );
        }
        app.draw("sale").await.1["count"] == 4
    })
    .await;
    assert!(evicted, "the two ghosts leave the draw");
    for ghost in ghosts {
        let (status, body) = app.status(ghost).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::GONE, Some("evicted"))
        );
    }

    // The live ones stop polling while the event opens: a long heartbeat keeps them.
    app.put_event("sale", json!({"heartbeat_ttl_secs": 300}))
        .await;
    let draw = open_now(&app, "sale").await;
    assert_eq!(draw["count"], 4);
    let order = expected_order(draw["seed"].as_str().unwrap(), live);
    assert_eq!(
        positions(&app, &order).await,
        [Some(1), Some(2), Some(3), Some(4)]
    );
    assert_eq!(
        app.draw_entries("sale", 0, 100).await["entries"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

async fn random_order_hides_positions_and_admits_in_the_draws_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    pre_queue_event(&app, "sale", json!({"queueing": "random"})).await;
    let mut tickets: Vec<String> = join_many(&[&app], "sale", 8)
        .await
        .iter()
        .map(|body| body["ticket"].as_str().unwrap().to_owned())
        .collect();
    let draw = open_now(&app, "sale").await;
    assert!(
        draw["seed"].is_null(),
        "in random order the seed waits for the close: {draw}"
    );
    // Later arrivals are placed by the same rule, among the others.
    for body in join_many(&[&app], "sale", 8).await {
        assert!(body["position"].is_null(), "{body}");
        tickets.push(body["ticket"].as_str().unwrap().to_owned());
    }
    app.put_event("sale", json!({"admission_rate": 1000, "max_active": 5}))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut admitted = Vec::new();
    for ticket in &tickets {
        let (_, body) = app.status(ticket).await;
        assert!(
            body["position"].is_null() && body["eta_seconds"].is_null(),
            "{body}"
        );
        if body["ready_for_entry"] == true {
            assert_eq!(app.enter(ticket).await.0, StatusCode::OK);
            admitted.push(ticket.clone());
        }
    }
    assert_eq!(admitted.len(), 5, "max_active 5");

    app.put_event("sale", json!({"state": "closed"})).await;
    let seed = app.draw("sale").await.1["seed"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut first: Vec<String> = expected_order(&seed, &tickets)[..5].to_vec();
    first.sort();
    admitted.sort();
    assert_eq!(admitted, first, "the five let in are the draw's first five");
}

async fn passthrough_lets_everyone_in_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "quiet",
        json!({"state": "open", "queueing": "passthrough", "admission_rate": 0, "max_active": 1}),
    )
    .await;
    for _ in 0..5 {
        let (status, body) = app.join("quiet").await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            (body["state"].as_str(), body["ready_for_entry"].as_bool()),
            (Some("ready"), Some(true)),
            "{body}"
        );
        let (status, entered) = app.enter(body["ticket"].as_str().unwrap()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "passthrough ignores the rate and max_active: {entered}"
        );
    }
}

async fn below_capacity_the_room_is_invisible(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event(
        "sale",
        json!({"state": "open", "admission_rate": 1, "max_active": 10}),
    )
    .await;
    let (_, first) = app.join("sale").await;
    assert_eq!(
        first["state"], "ready",
        "nobody waits and the door has room: {first}"
    );
    let (_, second) = app.join("sale").await;
    assert_eq!(second["state"], "waiting", "someone waits ahead: {second}");
    assert_eq!(
        app.enter(first["ticket"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    // A shut door stays shut, room or not.
    app.put_event("shut", json!({"state": "open", "admission_rate": 0}))
        .await;
    assert_eq!(app.join("shut").await.1["state"], "waiting");
}

async fn the_draw_refuses_what_it_should(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_event("plain", json!({"state": "open"})).await;
    assert_eq!(
        app.draw("plain").await.0,
        StatusCode::NOT_FOUND,
        "no pre-queue, no draw"
    );
    assert_eq!(app.draw("nope").await.0, StatusCode::NOT_FOUND);
    for (valves, field) in [
        (
            json!({"prequeue_opens_at": now_secs()}),
            "prequeue_opens_at",
        ),
        (
            json!({"opens_at": now_secs() + 60, "prequeue_opens_at": now_secs() + 60}),
            "prequeue_opens_at",
        ),
        (json!({"queueing": "lottery"}), "queueing"),
    ] {
        let (status, body) = app.admin_put("plain", valves).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{body}"
        );
    }
    pre_queue_event(&app, "sale", json!({})).await;
    app.join_ok_pre_queue("sale").await;
    // The export is the operators' and says nothing before the opening.
    let response = app
        .http
        .get(app.url("/admin/v1/events/sale/draw/entries"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Garbage paging is refused with the API's JSON error; a huge limit is clamped.
    for query in ["offset=-1", "limit=abc", "offset=99999999999999999999999"] {
        let response = app
            .http
            .get(app.url(&format!("/admin/v1/events/sale/draw/entries?{query}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{query}");
    }
    assert_eq!(app.draw_entries("sale", 0, u64::MAX).await["drawn"], false);
    let early = app.admin_cli(&["draw", "sale"]).await;
    assert!(
        !early.status.success(),
        "nothing to check before the opening"
    );
    let export = app.draw_entries("sale", 0, 10).await;
    assert_eq!(
        (
            export["drawn"].as_bool(),
            export["entries"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );
    // Changing the pre-queue's times never changes the committed seed.
    let commitment = app.draw("sale").await.1["commitment"].clone();
    app.put_event("sale", json!({"prequeue_opens_at": now_secs() - 5}))
        .await;
    assert_eq!(app.draw("sale").await.1["commitment"], commitment);
}

crate::on_every_store!(
    everyone_in_the_pre_queue_is_placed_in_the_order_the_seed_gives,
    ghosts_of_the_pre_queue_are_evicted_and_get_no_place,
    random_order_hides_positions_and_admits_in_the_draws_order,
    passthrough_lets_everyone_in_at_once,
    below_capacity_the_room_is_invisible,
    the_draw_refuses_what_it_should,
);

impl TestApp {
    /// `vestibule admin <args>` against this gateway.
    async fn admin_cli(&self, args: &[&str]) -> std::process::Output {
        let url = format!("http://{}", self.addr);
        tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .args(["admin", "--url", &url, "--token", ADMIN_TOKEN])
            .args(args)
            .env_remove("VESTIBULE_URL")
            .env_remove("VESTIBULE_ADMIN_TOKEN")
            .output()
            .await
            .expect("the vestibule binary runs")
    }

    async fn draw(&self, event: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(&format!("/v1/events/{event}/draw")))
            .send()
            .await
            .expect("request");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn draw_entries(&self, event: &str, offset: u64, limit: u64) -> Value {
        let response = self
            .http
            .get(self.url(&format!(
                "/admin/v1/events/{event}/draw/entries?offset={offset}&limit={limit}"
            )))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }

    async fn join_ok_pre_queue(&self, event: &str) -> String {
        let (status, body) = self.join(event).await;
        assert_eq!(
            (status, body["state"].as_str()),
            (StatusCode::CREATED, Some("pre_queue")),
            "{body}"
        );
        body["ticket"].as_str().unwrap().to_owned()
    }
}

/// README's Python check of the draw, run as a reader would paste it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_python_check_of_the_draw_passes() {
    let app = TestApp::spawn(Backend::Memory).await;
    pre_queue_event(&app, "sale", json!({})).await;
    join_many(&[&app], "sale", 50).await;
    open_now(&app, "sale").await;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("How to check the draw").unwrap()..];
    let start = section.find("```python\n").unwrap() + "```python\n".len();
    let script = &section[start..start + section[start..].find("```").unwrap()];
    let script = script.replace(
        r#"base, token, event = "http://localhost:8080", "…", "sale""#,
        &format!(
            r#"base, token, event = "http://{}", "{ADMIN_TOKEN}", "sale""#,
            app.addr
        ),
    );
    assert!(
        script.contains(&app.addr.to_string()),
        "the README's first line changed"
    );
    let output = tokio::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
