//! A tiny axum sale backend guarded by this crate, against a real gateway in process: only
//! people the waiting room let in get through; expired, foreign, tampered and other events'
//! admissions are refused; a key rotation is followed without a restart; known keys are not
//! fetched again.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Extension, Router};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use vestibule::admission::AdmissionKeys;
use vestibule::app::{AppState, Options, Parts, Stores};
use vestibule::event::EventId;
use vestibule::inventory::Database;
use vestibule::store::memory::MemoryStore;
use vestibule::store::Admission as StoreAdmission;
use vestibule::tickets::TicketKeys;
use vestibule_verify::{Admission, RequireAdmissionLayer, Verifier};

const ADMIN: &str = "verify-test-admin";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vst-verify-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A gateway (in-process store) with its keys in `keys`; stops when the test ends.
async fn gateway(keys: &Path) -> (SocketAddr, CancellationToken) {
    let database_url = format!("sqlite://{}", keys.join("inventory.db").display());
    let parts = Parts {
        stores: Stores::of(Arc::new(MemoryStore::default())),
        database: Arc::new(Database::connect(&database_url).await.unwrap()),
        worker_metrics: Arc::default(),
        tickets: TicketKeys::load_or_create(keys).unwrap(),
        admissions: AdmissionKeys::load_or_create(keys).unwrap(),
    };
    let options = Options {
        admin_token: Some(ADMIN.to_owned().into()),
        ..Options::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(vestibule::startup::run_gateway(
        AppState::new(parts, options),
        listener,
        Duration::from_millis(100),
        stop.clone(),
    ));
    (addr, stop)
}

/// The sale: `/checkout` behind the layer (people without an admission are sent to the
/// waiting room), `/api/order` taking the admission as an extractor (401 JSON without one).
fn sale(verifier: Verifier) -> Router {
    let pages = Router::new()
        .route(
            "/checkout",
            get(|a: Admission| async move { format!("checkout for {} at {}", a.subject, a.event) }),
        )
        .layer(RequireAdmissionLayer::new(verifier.clone()).redirect_to("/wait/sale"));
    let api = Router::new()
        .route(
            "/api/order",
            get(|a: Admission| async move { format!("order for {}", a.subject) }),
        )
        .layer(Extension(verifier));
    pages.merge(api)
}

struct World {
    gateway: SocketAddr,
    sale: SocketAddr,
    keys: PathBuf,
    http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
}

impl World {
    async fn new() -> Self {
        let keys = temp_dir("keys");
        let (gateway, stop) = gateway(&keys).await;
        let verifier =
            Verifier::new(format!("http://{gateway}/.well-known/jwks.json")).for_event("sale");
        let sale = serve(sale(verifier)).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let world = Self {
            gateway,
            sale,
            keys,
            http,
            _stop: stop.drop_guard(),
        };
        for event in ["sale", "other"] {
            let response = world
                .http
                .put(format!("http://{gateway}/admin/v1/events/{event}"))
                .bearer_auth(ADMIN)
                .json(&json!({"state": "open", "admission_rate": 1000, "max_active": 1000}))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
        world
    }

    /// Joins and enters `event` through the gateway; the admission token.
    async fn admitted(&self, event: &str) -> String {
        let joined: Value = self
            .http
            .post(format!("http://{}/v1/events/{event}/join", self.gateway))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ticket = joined["ticket"].as_str().unwrap();
        for _ in 0..100 {
            let response = self
                .http
                .post(format!("http://{}/v1/queue/enter", self.gateway))
                .bearer_auth(ticket)
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::OK {
                let body: Value = response.json().await.unwrap();
                return body["admission_token"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the door never let the person in");
    }

    /// GETs `path` on the sale with `token` as a bearer header (or the cookie).
    async fn sale_get(
        &self,
        path: &str,
        token: Option<&str>,
        as_cookie: bool,
    ) -> (StatusCode, String) {
        let mut request = self.http.get(format!("http://{}{path}", self.sale));
        match token {
            Some(token) if as_cookie => {
                request = request.header("cookie", format!("vestibule_admission={token}"))
            }
            Some(token) => request = request.bearer_auth(token),
            None => {}
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        (status, location.unwrap_or(body))
    }

    /// How many times the gateway served its JWKS.
    async fn jwks_fetches(&self) -> u64 {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.gateway))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with("vestibule_http_requests_total{")
                    && l.contains("route=\"/.well-known/jwks.json\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

fn signed(keys: &Path, event: &str, expires_in_secs: i64) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    AdmissionKeys::load_or_create(keys).unwrap().issue(
        &EventId::parse(event).unwrap(),
        "mallory",
        &StoreAdmission {
            id: "made-up".into(),
            expires_at_ms: ((now + expires_in_secs) * 1000) as u64,
            new: true,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_people_the_waiting_room_let_in_reach_the_sale() {
    let world = World::new().await;
    let token = world.admitted("sale").await;
    let subject = subject_of(&token);

    // Through, by header or by the cookie the gateway set; the handler knows the person.
    assert_eq!(
        world.sale_get("/checkout", Some(&token), false).await,
        (StatusCode::OK, format!("checkout for {subject} at sale"))
    );
    assert_eq!(
        world.sale_get("/api/order", Some(&token), true).await,
        (StatusCode::OK, format!("order for {subject}"))
    );

    // Refused: none, expired, foreign, another event's, tampered, not a JWT.
    let other = world.admitted("other").await;
    let mut tampered = token.clone();
    tampered.insert(tampered.find('.').unwrap() + 3, 'A');
    let refused = [
        ("none", None),
        ("expired", Some(signed(&world.keys, "sale", -5))),
        ("foreign", Some(signed(&temp_dir("stranger"), "sale", 600))),
        ("other event", Some(other)),
        ("tampered", Some(tampered)),
        ("garbage", Some("garbage".to_owned())),
    ];
    for (what, token) in &refused {
        let (status, location) = world.sale_get("/checkout", token.as_deref(), false).await;
        assert_eq!(
            (status, location.as_str()),
            (StatusCode::SEE_OTHER, "/wait/sale"),
            "{what}"
        );
        let (status, body) = world.sale_get("/api/order", token.as_deref(), true).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "invalid_token", "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_caches_the_keys_and_follows_a_rotation() {
    let world = World::new().await;
    let old = world.admitted("sale").await;
    assert_eq!(
        world.sale_get("/checkout", Some(&old), false).await.0,
        StatusCode::OK
    );
    let fetches = world.jwks_fetches().await;
    assert!(fetches >= 1);
    for _ in 0..20 {
        assert_eq!(
            world.sale_get("/checkout", Some(&old), false).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        world.jwks_fetches().await,
        fetches,
        "known keys are not fetched again"
    );

    // A new signing key: the gateway picks it up by itself, the sale follows without a restart.
    let new_kid = vestibule::admission::rotate(&world.keys).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let new = loop {
        let token = world.admitted("sale").await;
        if jsonwebtoken::decode_header(&token).unwrap().kid.as_deref() == Some(&new_kid) {
            break token;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never signed with the new key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.sale_get("/checkout", Some(&new), false).await.0 != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the sale never accepted the new key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        world.sale_get("/checkout", Some(&old), false).await.0,
        StatusCode::OK,
        "the old key still verifies"
    );
}

/// The `sub` claim of a JWT, read without this crate (which is what is tested).
fn subject_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

/// Runs one of the README's other-language checks; its exit status and output.
fn run_check(language: &str, jwks_url: &str, token: &str) -> (bool, String) {
    let connectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut command = match language {
        "python" => {
            // Debian's Python, where `apt-get install python3-jwt` puts PyJWT, before any other
            // python3 on PATH.
            let python = ["/usr/bin/python3", "python3"]
                .into_iter()
                .find(|p| Path::new(p).exists())
                .unwrap_or("python3");
            let mut command = std::process::Command::new(python);
            command.arg(connectors.join("verify.py"));
            command
        }
        _ => {
            // ES modules find packages beside the script only: run a copy next to the browser
            // tests' node_modules (where `npm ci --prefix tests/browser` put jose).
            let dir = temp_dir("node");
            std::fs::copy(connectors.join("verify.mjs"), dir.join("verify.mjs")).unwrap();
            let modules = connectors.join("../../tests/browser/node_modules");
            assert!(
                modules.join("jose").exists(),
                "jose is missing: run `npm ci --prefix tests/browser` (or `bash .ci/run`)"
            );
            std::os::unix::fs::symlink(modules, dir.join("node_modules")).unwrap();
            let mut command = std::process::Command::new("node");
            command.arg(dir.join("verify.mjs"));
            command
        }
    };
    let out = command
        .args([jwks_url, "sale", token])
        .output()
        .unwrap_or_else(|e| panic!("{language} runs (bash .ci/run installs it): {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("ModuleNotFoundError"),
        "PyJWT is missing: apt-get install -y python3-jwt (or bash .ci/run)"
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_and_node_checks_of_the_readme_pass_admissions_and_refuse_the_rest() {
    let world = World::new().await;
    let jwks_url = format!("http://{}/.well-known/jwks.json", world.gateway);
    let token = world.admitted("sale").await;
    let subject = subject_of(&token);
    let refused = [
        ("expired", signed(&world.keys, "sale", -5)),
        ("foreign", signed(&temp_dir("stranger"), "sale", 600)),
        ("other event", world.admitted("other").await),
    ];
    for language in ["python", "node"] {
        let (url, good) = (jwks_url.clone(), token.clone());
        let (ok, out) = tokio::task::spawn_blocking(move || run_check(language, &url, &good))
            .await
            .unwrap();
        assert!(ok, "{language}: {out}");
        assert!(out.contains(&subject), "{language}: {out}");
        for (what, bad) in &refused {
            let (url, bad) = (jwks_url.clone(), bad.clone());
            let (ok, out) = tokio::task::spawn_blocking(move || run_check(language, &url, &bad))
                .await
                .unwrap();
            assert!(!ok, "{language} accepted the {what} admission: {out}");
        }
    }
}
