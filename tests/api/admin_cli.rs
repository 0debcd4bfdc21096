//! `vestibule admin …`: the real binary against a gateway in this process, checked through the
//! API itself, so the commands are tested for what they do, not for what they print.

use std::process::Output;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, ADMIN_TOKEN};

/// Runs `vestibule admin <args>` against `app` with the test token.
async fn admin(app: &TestApp, args: &[&str]) -> Output {
    let url = format!("http://{}", app.addr);
    let mut all = vec!["admin", "--url", &url, "--token", ADMIN_TOKEN];
    all.extend_from_slice(args);
    run(&all, &[]).await
}

/// Runs the binary with only the given `VESTIBULE_*` variables, so the caller's environment
/// cannot leak a URL or token into the test.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"));
    command
        .args(args)
        .env_remove("VESTIBULE_URL")
        .env_remove("VESTIBULE_ADMIN_TOKEN")
        .envs(env.iter().copied());
    command.output().await.expect("the vestibule binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "admin command failed\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// The event's valves as the API reports them.
async fn valves(app: &TestApp, event: &str) -> Value {
    let response = app
        .http
        .get(app.url(&format!("/admin/v1/events/{event}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.expect("json")["config"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_sale_from_create_to_close_without_curl() {
    let app = TestApp::spawn(Backend::Memory).await;

    let out = admin(
        &app,
        &[
            "create",
            "sale",
            "--state",
            "open",
            "--heartbeat-ttl-secs",
            "120",
            "--max-queue-len",
            "500",
        ],
    )
    .await;
    assert_ok(&out);
    assert!(stdout(&out).contains("created"), "{}", stdout(&out));
    let config = valves(&app, "sale").await;
    assert_eq!(
        (
            &config["state"],
            &config["heartbeat_ttl_secs"],
            &config["max_queue_len"]
        ),
        (&json!("open"), &json!(120), &json!(500))
    );
    app.join_ok("sale").await;

    assert_ok(&admin(&app, &["pause", "sale"]).await);
    assert_eq!(valves(&app, "sale").await["state"], "paused");
    assert_eq!(app.join("sale").await.0, StatusCode::FORBIDDEN);

    assert_ok(&admin(&app, &["resume", "sale"]).await);
    assert_eq!(valves(&app, "sale").await["state"], "open");
    app.join_ok("sale").await;

    let out = admin(&app, &["show", "sale"]).await;
    assert_ok(&out);
    let shown = stdout(&out);
    let line = |name: &str| {
        shown
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
    };
    assert_eq!(line("waiting"), Some(vec!["waiting", "2"]), "{shown}");
    assert_eq!(line("state"), Some(vec!["state", "open"]), "{shown}");
    assert_eq!(
        line("heartbeat_ttl_secs"),
        Some(vec!["heartbeat_ttl_secs", "120"]),
        "{shown}"
    );

    assert_ok(&admin(&app, &["close", "sale"]).await);
    assert_eq!(valves(&app, "sale").await["state"], "closed");

    // The trail, newest first: close, resume, pause, create; each by the admin token.
    let out = admin(&app, &["audit", "sale"]).await;
    assert_ok(&out);
    let trail = stdout(&out);
    let states: Vec<&str> = trail
        .lines()
        .filter_map(|l| l.trim().strip_prefix("state: "))
        .collect();
    assert_eq!(
        states,
        [
            "open -> closed",
            "paused -> open",
            "open -> paused",
            "- -> open"
        ],
        "{trail}"
    );
    assert_eq!(trail.matches(" by admin:").count(), 4, "{trail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_sends_numbers_as_numbers_and_words_as_strings() {
    let app = TestApp::spawn(Backend::Memory).await;
    app.put_event("sale", json!({"state": "open"})).await;

    let out = admin(
        &app,
        &["set", "sale", "max_queue_len=7", "identity=user_id"],
    )
    .await;

    assert_ok(&out);
    let config = valves(&app, "sale").await;
    assert_eq!(config["max_queue_len"], 7);
    assert_eq!(config["identity"], "user_id");
    assert_eq!(config["state"], "open", "valves not named are left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_json_prints_the_api_answer_for_scripts() {
    let app = TestApp::spawn(Backend::Memory).await;
    app.put_event("sale", json!({"state": "open"})).await;
    app.join_ok("sale").await;

    let out = admin(&app, &["show", "sale", "--json"]).await;

    assert_ok(&out);
    let answer: Value = serde_json::from_str(&stdout(&out)).expect("valid JSON on stdout");
    assert_eq!(answer["config"]["state"], "open");
    assert_eq!(answer["figures"]["waiting"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_exits_non_zero_and_says_unauthorized() {
    let app = TestApp::spawn(Backend::Memory).await;
    let url = format!("http://{}", app.addr);

    let out = run(
        &[
            "admin",
            "--url",
            &url,
            "--token",
            "not-the-token",
            "create",
            "sale",
        ],
        &[],
    )
    .await;

    assert!(!out.status.success());
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
    assert_eq!(
        app.admin_put("sale", json!({})).await.0,
        StatusCode::CREATED,
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_valve_exits_non_zero_naming_the_field_and_changes_nothing() {
    let app = TestApp::spawn(Backend::Memory).await;
    app.put_event("sale", json!({"state": "open"})).await;
    let before = valves(&app, "sale").await;

    let out_of_range = admin(&app, &["set", "sale", "heartbeat_ttl_secs=0"]).await;
    let unknown = admin(&app, &["set", "sale", "admision_rate=5"]).await;
    let not_a_number = admin(&app, &["set", "sale", "max_queue_len=many"]).await;

    for (out, field) in [
        (&out_of_range, "heartbeat_ttl_secs"),
        (&unknown, "admision_rate"),
        (&not_a_number, "max_queue_len"),
    ] {
        assert!(!out.status.success(), "{field}: {}", stdout(out));
        assert!(stderr(out).contains("invalid_field"), "{}", stderr(out));
        assert!(
            stderr(out).contains(&format!("field: {field}")),
            "{}",
            stderr(out)
        );
    }
    assert_eq!(valves(&app, "sale").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_an_unknown_event_fail_instead_of_creating_it() {
    let app = TestApp::spawn(Backend::Memory).await;

    let out = admin(&app, &["close", "salle"]).await;

    assert!(!out.status.success());
    assert!(stderr(&out).contains("event_not_found"), "{}", stderr(&out));
    let response = app
        .http
        .get(app.url("/admin/v1/events/salle"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_and_token_can_come_from_the_environment() {
    let app = TestApp::spawn(Backend::Memory).await;
    let url = format!("http://{}", app.addr);

    let out = run(
        &["admin", "create", "sale", "--state", "open"],
        &[
            ("VESTIBULE_URL", &url),
            ("VESTIBULE_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
    .await;

    assert_ok(&out);
    assert_eq!(valves(&app, "sale").await["state"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gateway_is_reported_with_its_address() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");

    let out = run(
        &["admin", "--url", &url, "--token", "t", "show", "sale"],
        &[],
    )
    .await;

    assert!(!out.status.success());
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
}
