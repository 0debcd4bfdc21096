//! The waiting-room page in a real browser: each test starts a gateway in this process, sets
//! up events through the admin API and runs one scenario of `tests/browser/run.mjs`, which
//! drives Chromium with playwright-core and asks this harness, step by step, to act on the
//! gateway (open the door, cut the network, read figures).
//!
//! Needs Chromium and the scripts' node modules; without them the tests FAIL, saying how to
//! install them (`bash .ci/run` does). `VESTIBULE_SCREENSHOTS=docs` writes the README's
//! screenshots.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, Uri};
use axum::response::Html;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use vestibule::admission::AdmissionKeys;
use vestibule::app::{AppState, Options, Parts, Stores};
use vestibule::inventory::Database;
use vestibule::store::memory::MemoryStore;
use vestibule::tickets::TicketKeys;

const ADMIN_TOKEN: &str = "browser-test-admin";
const BACKEND_TOKEN: &str = "browser-test-backend";

/// One browser at a time: two Chromiums on a small machine make every timing flaky.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> String {
    std::env::var("VESTIBULE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Fails (never skips) when the browser or the scripts' modules are missing: a skipped browser
/// test would let a broken page pass.
fn require_browser() {
    let chromium = chromium();
    assert!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium}. Run `bash .ci/run`, or install it with \
         `apt-get install -y chromium` (VESTIBULE_CHROMIUM names another binary)."
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "`node` is not on PATH. Install Node.js 18 or later, then run `bash .ci/run`."
    );
    assert!(
        scripts_dir().join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules is missing. Run `npm ci --prefix tests/browser` \
         (or `bash .ci/run`)."
    );
}

// === impl Gateway ===

/// A gateway in its own runtime, so that stopping it cuts every connection at once, open
/// status streams included, as a crash or a network cut would.
struct Gateway {
    runtime: Option<Runtime>,
    stop: CancellationToken,
    addr: SocketAddr,
}

impl Gateway {
    /// Starts a gateway over `stores` and the keys in `keys` (its inventory database beside
    /// them), on `port` (0: any free port).
    /// `origins` may call the public API from their pages (CORS).
    fn start(stores: Stores, keys: &Path, port: u16, origins: &[String]) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                // The restarted gateway takes the same port while old connections linger.
                socket.set_reuseaddr(true)?;
                socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
                socket.listen(1024)
            })
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let database_url = format!("sqlite://{}", keys.join("inventory.db").display());
        let parts = Parts {
            stores,
            database: Arc::new(runtime.block_on(Database::connect(&database_url)).unwrap()),
            worker_metrics: Arc::default(),
            tickets: TicketKeys::load_or_create(keys).unwrap(),
            admissions: AdmissionKeys::load_or_create(keys).unwrap(),
        };
        let options = Options {
            admin_token: Some(ADMIN_TOKEN.to_owned().into()),
            cors_origins: origins
                .iter()
                .map(|o| vestibule::http::cors::parse_origin(o).unwrap())
                .collect(),
            backend_token: Some(BACKEND_TOKEN.to_owned().into()),
            ..Options::default()
        };
        let state = AppState::new(parts, options);
        let stop = CancellationToken::new();
        runtime.spawn(vestibule::startup::run_gateway(
            state,
            listener,
            Duration::from_millis(200),
            stop.clone(),
        ));
        Self {
            runtime: Some(runtime),
            stop,
            addr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops at once: every task, listener and connection of this gateway is dropped.
    fn kill(&mut self) {
        self.stop.cancel();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

// === impl Harness ===

/// One test's world: a store, keys, a gateway, a sale site to land on, and an HTTP client.
struct Harness {
    /// Runs the sale site and this test's own HTTP calls.
    rt: Runtime,
    http: reqwest::Client,
    stores: Stores,
    keys: PathBuf,
    gateway: Gateway,
    shop: SocketAddr,
    /// What the sale site received: request targets and Referer headers.
    shop_log: Arc<Mutex<Vec<String>>>,
}

impl Harness {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let keys = std::env::temp_dir().join(format!("vst-browser-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&keys).unwrap();
        let stores = Stores::of(Arc::new(MemoryStore::default()));
        let shop_log = Arc::new(Mutex::new(Vec::new()));
        let shop = rt.block_on(shop(shop_log.clone()));
        // The sale's site is another origin (another port), allowed to call the API.
        let gateway = Gateway::start(stores.clone(), &keys, 0, &[format!("http://{shop}")]);
        Self {
            rt,
            http: reqwest::Client::new(),
            stores,
            keys,
            gateway,
            shop,
            shop_log,
        }
    }

    fn shop_url(&self) -> String {
        format!("http://{}/shop", self.shop)
    }

    fn admin_put(&self, event: &str, valves: Value) {
        let url = format!("{}/admin/v1/events/{event}", self.gateway.url());
        let response = self.rt.block_on(async {
            let response = self
                .http
                .put(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&valves)
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        });
        assert!(response.0.is_success(), "admin PUT {event}: {response:?}");
    }

    fn figures(&self, event: &str) -> Value {
        let url = format!("{}/admin/v1/events/{event}", self.gateway.url());
        self.rt.block_on(async {
            let body: Value = self
                .http
                .get(url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["figures"].clone()
        })
    }

    /// Joins through the API, as someone without a browser; returns the ticket.
    fn join(&self, event: &str) -> String {
        let url = format!("{}/v1/events/{event}/join", self.gateway.url());
        self.rt.block_on(async {
            let body: Value = self
                .http
                .post(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["ticket"].as_str().expect("a ticket").to_owned()
        })
    }

    /// Enters through the API as soon as the door lets this ticket in.
    fn enter_when_ready(&self, ticket: &str) {
        let url = format!("{}/v1/queue/enter", self.gateway.url());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.rt.block_on(async {
                self.http
                    .post(&url)
                    .bearer_auth(ticket)
                    .send()
                    .await
                    .unwrap()
                    .status()
            });
            if status == StatusCode::OK {
                return;
            }
            assert_eq!(status, StatusCode::TOO_EARLY, "enter answered {status}");
            assert!(Instant::now() < deadline, "the door never let them in");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn jwks(&self) -> Value {
        let url = format!("{}/.well-known/jwks.json", self.gateway.url());
        self.rt.block_on(async {
            self.http
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    fn redeem(&self, token: &str) -> StatusCode {
        let url = format!("{}/v1/admissions/redeem", self.gateway.url());
        self.rt.block_on(async {
            self.http
                .post(url)
                .bearer_auth(BACKEND_TOKEN)
                .json(&json!({ "admission_token": token }))
                .send()
                .await
                .unwrap()
                .status()
        })
    }

    /// Runs a scenario of `run.mjs`, answering its steps with `on_step`; returns its result.
    fn run(&mut self, scenario: &str, mut on_step: impl FnMut(&mut Self, &Value)) -> Value {
        let mut command = Command::new("node");
        command
            .arg(scripts_dir().join("run.mjs"))
            .arg(scenario)
            .current_dir(scripts_dir())
            .env("VESTIBULE_URL", self.gateway.url())
            .env("SHOP_URL", self.shop_url())
            .env("CHROMIUM", chromium())
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("LANGUAGES", vestibule::event::PAGE_LANGUAGES.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Ok(dir) = std::env::var("VESTIBULE_SCREENSHOTS") {
            command.env(
                "SCREENSHOTS",
                Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
            );
        }
        let mut child = command.spawn().expect("node starts");
        let mut stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut result = None;
        for line in stdout.lines() {
            let line = line.unwrap();
            let Some(message) = line.strip_prefix("@@ ") else {
                continue;
            };
            let message: Value = serde_json::from_str(message).unwrap();
            if message.get("result").is_some() {
                result = Some(message["result"].clone());
                continue;
            }
            on_step(self, &message);
            if message["step"] == "join" {
                self.join(message["event"].as_str().unwrap());
            }
            let reply = if message["step"] == "figures" {
                let event = message["event"].as_str().unwrap();
                json!({ "ok": true, "figures": self.figures(event) })
            } else {
                json!({ "ok": true })
            };
            // The script may have failed meanwhile; its exit status says so below.
            let _ = writeln!(stdin, "{reply}");
        }
        let status = child.wait().unwrap();
        let log = log.join().unwrap();
        assert!(
            status.success(),
            "scenario {scenario} failed ({status}):\n{log}"
        );
        result.unwrap_or_else(|| panic!("scenario {scenario} gave no result:\n{log}"))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.keys);
    }
}

/// The sale's own frontend on its own origin: joins the queue and polls its status through the
/// public API (CORS), showing what it got. `?gateway=` names the gateway.
const FRONTEND: &str = r#"<!doctype html><html lang="en"><title>Sale frontend</title>
<h1>Sale frontend</h1><p id="out">starting</p>
<script>
const gateway = new URLSearchParams(location.search).get('gateway');
const out = document.getElementById('out');
(async () => {
  try {
    const joined = await (await fetch(`${gateway}/v1/events/cors/join`, { method: 'POST' })).json();
    const polls = [];
    for (let i = 0; i < 2; i++) {
      const status = await fetch(`${gateway}/v1/queue/status`,
        { headers: { Authorization: `Bearer ${joined.ticket}` } });
      polls.push(`${status.status}:${(await status.json()).position}:${status.headers.get('x-request-id') ? 'id' : 'no-id'}`);
    }
    out.textContent = `joined ${joined.position}; polled ${polls.join(',')}`;
  } catch (err) {
    out.textContent = `refused: ${err.name}`;
  }
})();
</script>"#;

/// A stand-in for the sale's site: a landing page and a frontend, and a log of every request
/// the landing page receives.
async fn shop(log: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    let app = axum::Router::new()
        .route("/frontend", axum::routing::get(|| async { Html(FRONTEND) }))
        .route(
        "/shop",
        axum::routing::get(move |uri: Uri, headers: HeaderMap| {
            let log = log.clone();
            async move {
                let referer = headers
                    .get(header::REFERER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                log.lock().unwrap().push(format!("{uri} referer={referer}"));
                Html("<!doctype html><html lang=\"en\"><title>Sale</title><h1>Welcome to the sale</h1>")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Verifies an admission token without our JWT library, as a sale backend would.
fn verify_admission(token: &str, jwks: &Value) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {token}");
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).unwrap();
    let header: Value = serde_json::from_slice(&decode(parts[0])).unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is in the JWKS");
    let x: [u8; 32] = decode(jwk["x"].as_str().unwrap()).try_into().unwrap();
    let key = VerifyingKey::from_bytes(&x).unwrap();
    let signature = Signature::from_slice(&decode(parts[2])).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the signature verifies");
    serde_json::from_slice(&decode(parts[1])).unwrap()
}

/// Valves that let pages follow changes within about a second.
fn quick(mut valves: Value) -> Value {
    let defaults = json!({"state": "open", "fast_poll_ms": 250, "slow_poll_ms": 1000,
                          "heartbeat_ttl_secs": 120});
    for (k, v) in defaults.as_object().unwrap() {
        valves
            .as_object_mut()
            .unwrap()
            .entry(k)
            .or_insert(v.clone());
    }
    valves
}

#[test]
fn the_page_follows_the_door_and_lands_on_the_sale_with_a_verifiable_token() {
    require_browser();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Harness::new();
    h.admin_put(
        "door",
        quick(json!({"admission_rate": 0, "title": "Spring sale",
                     "message": "Tickets go on sale at noon.", "redirect_url": h.shop_url()})),
    );
    let ahead = [h.join("door"), h.join("door")];

    let result = h.run("door", |h, step| match step["step"].as_str() {
        Some("let_one_in") => {
            // Open the door for one, then shut it: the page must stay at position 2.
            h.admin_put("door", json!({"admission_rate": 1}));
            h.enter_when_ready(&ahead[0]);
            h.admin_put("door", json!({"admission_rate": 0}));
        }
        Some("open_door") => {
            // Half a person per second: slow enough that the page shows each position.
            h.admin_put("door", json!({"admission_rate": 0.5}));
            h.enter_when_ready(&ahead[1]);
        }
        other => panic!("unexpected step {other:?}"),
    });

    let positions: Vec<u64> = result["positions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str()?.parse().ok())
        .collect();
    assert_eq!(positions.first(), Some(&3), "seen: {positions:?}");
    assert!(
        positions.windows(2).all(|w| w[1] <= w[0]),
        "seen: {positions:?}"
    );
    assert!(positions.contains(&2), "seen: {positions:?}");

    let token = result["token"].as_str().unwrap();
    let claims = verify_admission(token, &h.jwks());
    assert_eq!(claims["ev"], "door");
    assert_eq!(
        h.redeem(token),
        StatusCode::OK,
        "the sale can redeem it once"
    );
    let log = h.shop_log.lock().unwrap().clone();
    assert!(!log.is_empty(), "the page landed on the sale");
    assert!(
        log.iter().all(|request| !request.contains(token)),
        "the token never reaches the sale's server through the URL or Referer: {log:?}"
    );
}

#[test]
fn the_page_counts_down_in_the_pre_queue_then_shows_the_drawn_place_then_lands() {
    require_browser();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Harness::new();
    let now = vestibule::clock::now_ms() / 1000;
    h.admin_put(
        "prequeue",
        quick(json!({"state": "scheduled", "prequeue_opens_at": now - 10,
                     "opens_at": now + 3600, "admission_rate": 0,
                     "redirect_url": h.shop_url()})),
    );
    // Two others in the draw beside the page.
    let others = [h.join("prequeue"), h.join("prequeue")];
    let result = h.run("pre_queue", |h, step| match step["step"].as_str() {
        Some("open") => {
            let now = vestibule::clock::now_ms() / 1000;
            h.admin_put("prequeue", json!({"opens_at": now + 1}));
        }
        Some("open_door") => {
            h.admin_put("prequeue", json!({"admission_rate": 50}));
            for ticket in &others {
                h.enter_when_ready(ticket);
            }
        }
        other => panic!("unexpected step {other:?}"),
    });
    assert!(result["position"]
        .as_u64()
        .is_some_and(|p| (1..=3).contains(&p)));
}

#[test]
fn two_people_see_their_own_positions_and_only_the_leave_link_gives_a_place_up() {
    require_browser();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Harness::new();
    h.admin_put("pair", quick(json!({"admission_rate": 0})));

    h.run("two_people", |h, step| {
        if step["step"] == "open_door" {
            h.admin_put("pair", json!({"admission_rate": 20}));
        }
    });
}

#[test]
fn the_page_says_when_the_connection_is_lost_and_recovers_when_the_gateway_is_back() {
    require_browser();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Harness::new();
    h.admin_put("cut", quick(json!({"admission_rate": 0})));
    let ahead = h.join("cut");

    h.run("network_cut", |h, step| match step["step"].as_str() {
        Some("cut") => h.gateway.kill(),
        Some("restore") => {
            // Same port, same store, same keys: a restarted instance.
            let port = h.gateway.addr.port();
            let origins = [format!("http://{}", h.shop)];
            h.gateway = Gateway::start(h.stores.clone(), &h.keys, port, &origins);
        }
        Some("advance") => {
            h.admin_put("cut", json!({"admission_rate": 20}));
            h.enter_when_ready(&ahead);
        }
        other => panic!("unexpected step {other:?}"),
    });
}

#[test]
fn the_page_speaks_the_events_language_or_the_browsers_and_names_every_state() {
    require_browser();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Harness::new();
    h.admin_put(
        "fr-event",
        quick(json!({"admission_rate": 0, "language": "fr"})),
    );
    // A door so slow that the wait is known but nobody gets in during the test; someone ahead,
    // since a lone person below capacity is let in at once.
    h.admin_put("plain", quick(json!({"admission_rate": 0.001})));
    h.join("plain");
    h.admin_put("paused", quick(json!({"state": "paused"})));
    h.admin_put("closed", quick(json!({"state": "closed"})));

    h.run("words", |h, step| {
        if step["step"] == "pause" {
            h.admin_put("plain", json!({"state": "paused"}));
        }
    });
}

#[test]
fn a_sale_frontend_on_a_listed_origin_joins_and_polls_and_another_origin_is_refused() {
    require_browser();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Harness::new();
    h.admin_put("cors", quick(json!({"admission_rate": 0})));
    let result = h.run("cross_origin", |_, _| {});
    assert_eq!(result["listed"], "joined 1; polled 200:1:id,200:1:id");
    assert_eq!(result["unlisted"], "refused: TypeError");
    // CORS guards reading answers, not sending: the other origin's bodiless POST (a "simple"
    // request, no preflight) still joined, but its page never saw the ticket, and its polls,
    // which carry a bearer token and so need a preflight, were never sent.
    assert_eq!(h.figures("cors")["waiting"], 2);
}

#[test]
fn the_page_speaks_each_of_its_languages_with_no_missing_text_and_passes_axe() {
    require_browser();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Harness::new();
    for lang in vestibule::event::PAGE_LANGUAGES {
        let event = format!("lang-{lang}");
        h.admin_put(
            &event,
            quick(json!({"admission_rate": 0.001, "language": lang})),
        );
        // Two people ahead, so the page shows a number (3) to format.
        h.join(&event);
        h.join(&event);
    }
    h.admin_put("lang-browser", quick(json!({"admission_rate": 0.001})));
    // Someone ahead: a lone person below capacity is let in at once.
    h.join("lang-browser");
    let result = h.run("languages", |_, _| {});
    assert_eq!(
        result["checked"],
        json!(vestibule::event::PAGE_LANGUAGES),
        "every language was checked"
    );
}

#[test]
fn the_console_lists_events_charts_them_turns_every_valve_and_shows_stock_and_audit() {
    require_browser();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Harness::new();
    h.admin_put("ops", quick(json!({"admission_rate": 0})));
    h.admin_put("other", quick(json!({"state": "paused"})));
    h.join("ops");
    h.join("ops");

    h.run("operator", |_, _| {});
}
