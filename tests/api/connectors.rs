//! Connectors for the sale backend: `GET /v1/admissions/check` attacked on purpose (no token,
//! forged, expired, foreign, another event's, huge), and the nginx snippet
//! `deploy/connectors/nginx-auth-request.conf` run by a real nginx in front of a stand-in
//! backend: without an admission a redirect to the waiting room, with one through.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use vestibule::admission::AdmissionKeys;
use vestibule::event::EventId;
use vestibule::store::Admission;

use crate::helpers::{eventually, temp_dir, Backend, TestApp};

/// Joins `event` and enters at once (the door is wide open); returns the enter response.
async fn enter(app: &TestApp, event: &str) -> reqwest::Response {
    let person = app.join_ok(event).await;
    let ok = eventually(Duration::from_secs(5), || async {
        app.enter(&person.ticket).await.0 == StatusCode::OK
    })
    .await;
    assert!(ok, "the door never let the person in");
    app.http
        .post(app.url("/v1/queue/enter"))
        .bearer_auth(&person.ticket)
        .send()
        .await
        .unwrap()
}

async fn open(app: &TestApp, event: &str) {
    app.put_event(
        event,
        json!({"state": "open", "admission_rate": 1000, "max_active": 1000}),
    )
    .await;
}

/// An admission to `event` signed by the keys in `dir`, expiring `secs` from now (negative:
/// in the past).
fn signed(dir: &Path, event: &str, secs: i64) -> String {
    let keys = AdmissionKeys::load_or_create(dir).unwrap();
    let now = jsonwebtoken::get_current_timestamp() as i64;
    keys.issue(
        &EventId::parse(event).unwrap(),
        "mallory",
        &Admission {
            id: format!("made-{}", uuid::Uuid::new_v4().simple()),
            expires_at_ms: ((now + secs) * 1000) as u64,
            new: true,
        },
    )
}

async fn check(
    app: &TestApp,
    query: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let mut request = app
        .http
        .get(app.url(&format!("/v1/admissions/check{query}")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_an_admission_from_the_header_or_the_cookie_that_enter_sets() {
    let app = TestApp::spawn(Backend::Memory).await;
    open(&app, "sale").await;
    let entered = enter(&app, "sale").await;
    let cookie = entered.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = entered.json().await.unwrap();
    let token = body["admission_token"].as_str().unwrap();
    assert!(cookie.starts_with(&format!("vestibule_admission={token};")));
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }

    let bearer = format!("Bearer {token}");
    let in_cookie = format!("theme=dark; vestibule_admission={token}; lang=fr");
    for headers in [
        [("authorization", bearer.as_str())],
        [("cookie", in_cookie.as_str())],
    ] {
        for query in ["", "?event=sale"] {
            let (status, answer, body) = check(&app, query, &headers).await;
            assert_eq!(status, StatusCode::OK, "{headers:?} {query}: {body}");
            assert_eq!(answer["x-vestibule-event"], "sale");
            assert_eq!(
                answer["x-vestibule-admission"],
                body["admission_id"].as_str().unwrap()
            );
            assert_eq!(answer[header::CACHE_CONTROL], "no-store");
            assert_eq!(body["event_id"], "sale");
        }
    }

    // It changes nothing: checked many times, the admission still redeems once.
    assert_eq!(app.redeem(token).await.0, StatusCode::OK);
    assert_eq!(app.figures("sale").await["redeemed_total"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_missing_forged_expired_foreign_and_other_events_admissions() {
    let app = TestApp::spawn(Backend::Memory).await;
    open(&app, "sale").await;
    open(&app, "other").await;
    let genuine: Value = enter(&app, "sale").await.json().await.unwrap();
    let genuine = genuine["admission_token"].as_str().unwrap().to_owned();
    let other: Value = enter(&app, "other").await.json().await.unwrap();
    let other = other["admission_token"].as_str().unwrap().to_owned();

    // The payload swapped for another person's, the signature kept.
    let parts: Vec<&str> = genuine.split('.').collect();
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        r#"{"ev":"sale","sub":"mallory","jti":"x","exp":9999999999}"#,
    );
    let swapped = format!("{}.{payload}.{}", parts[0], parts[2]);
    let unsigned = format!(
        "{}.{payload}.",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"alg":"none","typ":"JWT"}"#
        )
    );
    let expired = signed(&app.keys_dir, "sale", -5);
    let foreign = signed(&temp_dir("stranger"), "sale", 600);
    let huge = "a".repeat(8 * 1024);
    let cases = [
        ("no token", vec![]),
        (
            "swapped payload",
            vec![("authorization", format!("Bearer {swapped}"))],
        ),
        (
            "alg none",
            vec![("authorization", format!("Bearer {unsigned}"))],
        ),
        (
            "expired",
            vec![("cookie", format!("vestibule_admission={expired}"))],
        ),
        (
            "foreign key",
            vec![("authorization", format!("Bearer {foreign}"))],
        ),
        (
            "a queue ticket",
            vec![(
                "authorization",
                format!("Bearer {}", app.join_ok("sale").await.ticket),
            )],
        ),
        (
            "huge",
            vec![("cookie", format!("vestibule_admission={huge}"))],
        ),
        (
            "empty cookie",
            vec![("cookie", "vestibule_admission=".to_owned())],
        ),
        (
            "cookie of another name",
            vec![("cookie", format!("admission={genuine}"))],
        ),
    ];
    for (what, headers) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, answer, body) = check(&app, "?event=sale", &headers).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token")),
            "{what}: {body}"
        );
        assert!(!answer.contains_key("x-vestibule-subject"), "{what}");
    }

    // A genuine admission to another event does not open this one.
    let (status, _, body) = check(
        &app,
        "?event=sale",
        &[("authorization", &format!("Bearer {other}"))],
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    // A proxy misconfigured with a bad event id hears about it, and the genuine token passes.
    let (status, _, body) = check(
        &app,
        "?event=no%20such",
        &[("authorization", &format!("Bearer {genuine}"))],
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, _, _) = check(
        &app,
        "?event=sale",
        &[("authorization", &format!("Bearer {genuine}"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Nothing the refusals did counts anywhere.
    assert_eq!(app.figures("sale").await["redeemed_total"], 0);
}

// === nginx in front of a backend ===

/// The stand-in sale backend: answers every path with what it was told about the person.
async fn backend(seen: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, uri: axum::http::Uri| {
            let seen = seen.clone();
            async move {
                let subject = headers
                    .get("x-vestibule-subject")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push(uri.to_string());
                format!("sale page {uri} for {subject}")
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// An nginx child running the snippet from `deploy/connectors/`, its upstreams pointed at
/// this test's gateway and backend; killed on drop.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(gateway: SocketAddr, backend: SocketAddr) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = temp_dir("nginx");
        let snippet = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/connectors/nginx-auth-request.conf"),
        )
        .unwrap();
        // Exactly the documented file, with only the addresses changed.
        let snippet = snippet
            .replace("server 127.0.0.1:8080;", &format!("server {gateway};"))
            .replace("server 127.0.0.1:9000;", &format!("server {backend};"))
            .replace("listen 8000;", &format!("listen 127.0.0.1:{port};"));
        std::fs::write(dir.join("vestibule.conf"), snippet).unwrap();
        let d = dir.display();
        let main = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               include {d}/vestibule.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let nginx = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|n| Command::new(n).arg("-v").output().is_ok())
            .expect("nginx is installed (apt-get install -y nginx; .ci/run does)");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: see {d}/error.log"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_the_snippet_sends_people_without_an_admission_to_the_waiting_room() {
    let app = TestApp::spawn(Backend::Memory).await;
    open(&app, "sale").await;
    open(&app, "other").await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let nginx = Nginx::start(app.addr, backend(seen.clone()).await);
    // A browser that follows nothing by itself, so the redirect itself is seen.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, cookie: Option<String>| {
        let mut request = browser.get(nginx.url(path));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send()
    };

    // No admission: to the waiting room, which nginx serves from the gateway on this origin.
    let response = get("/tickets/checkout", None).await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()[header::LOCATION],
        nginx.url("/wait/sale").as_str()
    );
    let page = get("/wait/sale", None).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("/assets/wait.js"));

    // Join and enter through nginx, as the page does; enter sets the cookie on this origin.
    let joined: Value = browser
        .post(nginx.url("/v1/events/sale/join"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = joined["ticket"].as_str().unwrap().to_owned();
    let mut entered = None;
    for _ in 0..50 {
        let response = browser
            .post(nginx.url("/v1/queue/enter"))
            .bearer_auth(&ticket)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            entered = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let entered = entered.expect("the door let the person in");
    let set_cookie = entered.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: Value = entered.json().await.unwrap();

    // With the cookie: through to the backend, which is told who the person is.
    let response = get("/tickets/checkout", Some(cookie.clone()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sub = crate::helpers::claims(body["admission_token"].as_str().unwrap())["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.text().await.unwrap(),
        format!("sale page /tickets/checkout for {sub}")
    );

    // Refused: forged, expired, foreign, another event's admission; a forged subject header.
    let other: Value = enter(&app, "other").await.json().await.unwrap();
    let refused = [
        cookie.replace("vestibule_admission=", "vestibule_admission=x"),
        format!("vestibule_admission={}", signed(&app.keys_dir, "sale", -5)),
        format!(
            "vestibule_admission={}",
            signed(&temp_dir("stranger"), "sale", 600)
        ),
        format!(
            "vestibule_admission={}",
            other["admission_token"].as_str().unwrap()
        ),
    ];
    for cookie in refused {
        let response = get("/tickets/checkout", Some(cookie.clone()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{cookie}");
        assert_eq!(
            response.headers()[header::LOCATION],
            nginx.url("/wait/sale").as_str()
        );
    }
    let spoofed = browser
        .get(nginx.url("/tickets/checkout"))
        .header("x-vestibule-subject", "someone")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::FOUND);
    assert_eq!(
        *seen.lock().unwrap(),
        ["/tickets/checkout"],
        "the backend saw only the admitted request"
    );
}
