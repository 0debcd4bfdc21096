//! CI smoke test of the load tool: a small crowd with ghosts and leavers, a 3 s heartbeat TTL,
//! against a real gateway started in this process (in-process store, and a real Redis); a
//! shorter sale where people enter and order against the gateway's in-process worker and a
//! SQLite file; then the same crowd against a gateway that never forgets anyone, and one whose
//! door lets every other person through, which the tool must catch.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use vestibule::admission::AdmissionKeys;
use vestibule::app::{AppState, Options, Parts, Stores};
use vestibule::config::WorkerArgs;
use vestibule::inventory::Database;
use vestibule::store::memory::MemoryStore;
use vestibule::store::redis::RedisStore;
use vestibule::store::reservations::Reservations;
use vestibule::store::Store;
use vestibule::tickets::TicketKeys;
use vestibule::worker::metrics::WorkerMetrics;
use vestibule_loadtest::report::SaleReport;
use vestibule_loadtest::sale::{self, Curve, SaleArgs};
use vestibule_loadtest::truth::ViolationKind;

const ADMIN_TOKEN: &str = "smoke-admin-token";
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
const PEOPLE: usize = 300;

/// 300 people in 2 s; a quarter close the tab and a tenth leave within 2 s of joining. A 3 s
/// TTL against 1 s polls leaves a busy CI machine 2 s before a polling person is (rightly)
/// evicted, and the 2 s eviction slack lets the sweeper run late under load without a false
/// violation; every ghost is past its eviction deadline (3 s + sweep + 2 s after its last poll,
/// so by 9.2 s) before the end at 10.5 s, leaving time for exact checks after it.
fn crowd(target: String, admin: bool) -> SaleArgs {
    SaleArgs {
        target,
        event: "smoke".into(),
        people: PEOPLE,
        arrive_secs: 2.0,
        curve: Curve::Flash,
        hold_secs: 8.5,
        ghost_share: 0.25,
        leave_share: 0.1,
        act_within_secs: 2.0,
        connections: 64,
        admin_token: admin.then(|| ADMIN_TOKEN.to_owned()),
        heartbeat_ttl_secs: 3,
        fast_poll_ms: 500,
        slow_poll_ms: 1000,
        sweep_interval_ms: SWEEP_INTERVAL.as_millis() as u64,
        eviction_slack_ms: 2000,
        enter: false,
        reserve: false,
        admission_rate: None,
        max_active: None,
        skus: vec!["ticket".into()],
        stock: 100,
        reserve_grace_secs: 5.0,
        reservation_poll_ms: 100,
        seed: 7,
        json: None,
        chart: None,
        quiet: true,
    }
}

async fn a_crowd_sees_only_true_positions(store: Arc<dyn Store>, sales: Arc<dyn Reservations>) {
    let gateway = Gateway::spawn(store, sales).await;
    let report = sale::run(&crowd(gateway.url(), true)).await.unwrap();
    let table = report.table();
    eprintln!("{table}");
    let truth = &report.truth;

    assert!(report.passed(), "truth violations:\n{table}");
    assert_eq!(report.outcomes.not_placed, 0, "{table}");
    assert_eq!(
        report.outcomes.removed, 0,
        "nobody polling is evicted\n{table}"
    );
    // The checks ran on many answers, exact ones included, before and after ghosts expired.
    assert!(
        truth.tally.exact_checked >= 800,
        "too few exact checks\n{table}"
    );
    assert!(truth.tally.bounded_checked > 0, "{table}");
    // Ghosts and leavers really happened, and every ghost past its deadline was evicted.
    assert!(report.outcomes.left >= 15, "{table}");
    assert!(truth.ghost_probe.asked >= 40, "{table}");
    assert_eq!(
        truth.ghost_probe.evicted, truth.ghost_probe.asked,
        "{table}"
    );
    let evicted = report.server_figures.as_ref().unwrap()["evicted_total"]
        .as_u64()
        .unwrap();
    assert!(evicted >= truth.ghost_probe.evicted, "{table}");
    // Evictions seen during the run are matched with ghosts whose heartbeat had expired.
    let eviction = truth
        .eviction
        .as_ref()
        .expect("measured with an admin token");
    assert!(eviction.matched > 0, "{table}");
    assert_eq!(eviction.matched, eviction.evicted, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_sees_only_true_positions_with_the_in_process_store() {
    let store = Arc::new(MemoryStore::default());
    a_crowd_sees_only_true_positions(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_sees_only_true_positions_with_redis() {
    let redis = RedisServer::start();
    let store = Arc::new(RedisStore::connect(&redis.url()).await.unwrap());
    a_crowd_sees_only_true_positions(store.clone(), store).await;
}

/// 200 people in 1.5 s, a door of 40/s, 2 skus of 40 each: about 150 stay long enough to be let
/// in, so some orders are turned away (sold out). Everyone still there stops at 5 s.
fn shoppers(target: String) -> SaleArgs {
    SaleArgs {
        people: 200,
        arrive_secs: 1.5,
        hold_secs: 3.5,
        ghost_share: 0.15,
        leave_share: 0.05,
        enter: true,
        reserve: true,
        admission_rate: Some(DOOR_RATE),
        max_active: Some(10_000),
        skus: vec!["red".into(), "blue".into()],
        stock: STOCK,
        ..crowd(target, true)
    }
}

const DOOR_RATE: f64 = 40.0;
const STOCK: u64 = 40;

async fn a_crowd_enters_and_buys_without_oversell(
    store: Arc<dyn Store>,
    sales: Arc<dyn Reservations>,
) {
    let gateway = Gateway::spawn(store, sales).await;
    let report = sale::run(&shoppers(gateway.url())).await.unwrap();
    let table = report.table();
    eprintln!("{table}");

    assert!(report.passed(), "truth violations:\n{table}");
    let door = report.door.as_ref().unwrap();
    let orders = report.orders.as_ref().unwrap();
    assert_eq!(report.outcomes.removed, 0, "{table}");
    // The door let many in, no faster than its rate allows (plus one second's credit).
    assert!(door.admitted >= 100, "{table}");
    assert_eq!(door.door_rate, Some(DOOR_RATE), "{table}");
    assert!(
        (door.admitted as f64) <= DOOR_RATE * (report.elapsed_secs + 1.0),
        "{table}"
    );
    assert!(door.wait_p50_ms.is_some(), "{table}");
    // Every admitted person ordered; every order settled; exactly the stock sold.
    assert_eq!(orders.posted, door.admitted, "{table}");
    assert_eq!(orders.accepted, orders.posted, "{table}");
    assert_eq!((orders.lost, orders.unanswered), (0, 0), "{table}");
    let rejected: u64 = orders.rejected.values().sum();
    assert_eq!(orders.confirmed + rejected, orders.accepted, "{table}");
    assert_eq!(orders.confirmed, 2 * STOCK, "{table}");
    assert!(
        orders.rejected.get("sold_out").copied().unwrap_or(0) > 0,
        "{table}"
    );
    let inventory = orders.inventory.as_ref().unwrap();
    assert_eq!(inventory.get("red"), Some(&0), "{table}");
    assert_eq!(inventory.get("blue"), Some(&0), "{table}");
    assert!(orders.confirm_p99_ms.is_some(), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_enters_and_buys_without_oversell_with_the_in_process_store() {
    let store = Arc::new(MemoryStore::default());
    a_crowd_enters_and_buys_without_oversell(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_enters_and_buys_without_oversell_with_redis() {
    let redis = RedisServer::start();
    let store = Arc::new(RedisStore::connect(&redis.url()).await.unwrap());
    a_crowd_enters_and_buys_without_oversell(store.clone(), store).await;
}

/// A gateway whose queue never forgets: position = 1 + everyone who ever joined ahead, as if
/// leave and the sweeper did nothing. The tool must report it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_never_forgets_anyone_is_caught() {
    let addr = spawn_fake_gateway(Door::Shut).await;
    let mut args = crowd(format!("http://{addr}"), false);
    args.people = 100;
    args.hold_secs = 5.0;
    let report: SaleReport = sale::run(&args).await.unwrap();
    let table = report.table();
    eprintln!("{table}");

    assert!(!report.passed(), "{table}");
    let kinds: Vec<ViolationKind> = report
        .truth
        .tally
        .first_violations
        .iter()
        .map(|v| v.kind)
        .collect();
    assert!(kinds.contains(&ViolationKind::PositionTooHigh), "{table}");
    assert!(report.truth.exactness_pct < 100.0, "{table}");
    assert!(report.truth.ghost_probe.asked > 0, "{table}");
    assert_eq!(report.truth.ghost_probe.evicted, 0, "{table}");
}

/// A gateway whose door lets every other person through (`ready_for_entry` for even sequences
/// only; enter answers `425`, so nobody leaves the queue and the positions stay right). The
/// tool must see the window out of order, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_that_lets_every_other_person_through_is_caught() {
    let addr = spawn_fake_gateway(Door::EveryOther).await;
    let mut args = crowd(format!("http://{addr}"), false);
    args.people = 60;
    args.arrive_secs = 0.5;
    args.hold_secs = 2.0;
    args.ghost_share = 0.0;
    args.leave_share = 0.0;
    args.enter = true;
    let report: SaleReport = sale::run(&args).await.unwrap();
    let table = report.table();
    eprintln!("{table}");

    let by_kind = &report.truth.tally.by_kind;
    assert!(
        by_kind
            .get(&ViolationKind::WindowOutOfOrder)
            .copied()
            .unwrap_or(0)
            >= 20,
        "{table}"
    );
    assert_eq!(by_kind.len(), 1, "only the window is wrong\n{table}");
    let door = report.door.as_ref().unwrap();
    assert_eq!(door.enters_ok, 0, "{table}");
    assert!(door.enters_not_ready > 0, "{table}");
}

// === harness ===

/// A gateway in this process, on a free port, stopped on drop.
struct Gateway {
    addr: SocketAddr,
    keys_dir: PathBuf,
    stop: CancellationToken,
}

impl Gateway {
    /// A gateway with reservations and an in-process worker on a SQLite file (like
    /// `vestibule run`).
    async fn spawn(store: Arc<dyn Store>, reservations: Arc<dyn Reservations>) -> Self {
        let keys_dir = temp_dir("keys");
        let db = format!("sqlite://{}", keys_dir.join("sales.db").display());
        let database = Arc::new(Database::connect(&db).await.unwrap());
        let metrics = Arc::new(WorkerMetrics::new());
        let parts = Parts {
            stores: Stores {
                queue: store.clone(),
                reservations: reservations.clone(),
            },
            database: database.clone(),
            worker_metrics: metrics.clone(),
            tickets: TicketKeys::load_or_create(&keys_dir).unwrap(),
            admissions: AdmissionKeys::load_or_create(&keys_dir).unwrap(),
        };
        let options = Options {
            admin_token: Some(ADMIN_TOKEN.to_owned().into()),
            ..Options::default()
        };
        let state = AppState::new(parts, options);
        let stop = CancellationToken::new();
        vestibule::worker::spawn(
            reservations,
            store,
            database,
            WorkerArgs::default(),
            metrics,
            stop.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(vestibule::startup::run_gateway(
            state,
            listener,
            SWEEP_INTERVAL,
            stop.clone(),
        ));
        Self {
            addr,
            keys_dir,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.keys_dir);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("vst-lt-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `redis-server` child on a free port, without persistence, killed on drop.
struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    fn start() -> Self {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the fake gateway's door does.
#[derive(Clone, Copy)]
enum Door {
    /// Never ready; no enter route.
    Shut,
    /// Ready for even sequences; enter always `425`.
    EveryOther,
}

/// A gateway whose queue never forgets: position = its sequence, whoever left.
async fn spawn_fake_gateway(door: Door) -> SocketAddr {
    let seq = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route(
            "/v1/events/{event}/join",
            post(move || {
                let seq = seq.fetch_add(1, Ordering::SeqCst) + 1;
                async move { (StatusCode::CREATED, Json(answer(Some(ticket(seq)), seq))) }
            }),
        )
        .route(
            "/v1/queue/status",
            get(move |headers: HeaderMap| async move {
                let seq = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .and_then(vestibule_loadtest::api::ticket_seq)
                    .unwrap();
                let mut body = answer(None, seq);
                if matches!(door, Door::EveryOther) {
                    body["ready_for_entry"] = json!(seq % 2 == 0);
                }
                Json(body)
            }),
        )
        .route("/v1/queue/leave", post(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/v1/queue/enter",
            post(|| async {
                let body = json!({"error": {"code": "not_ready", "message": "not yet"}});
                (StatusCode::TOO_EARLY, [("retry-after", "1")], Json(body))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn ticket(seq: u64) -> String {
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"ev": "smoke", "sub": format!("p{seq}"), "seq": seq}).to_string());
    format!("eyJhbGciOiJIUzI1NiJ9.{payload}.sig")
}

fn answer(ticket: Option<String>, position: u64) -> Value {
    json!({"ticket": ticket, "state": "waiting", "position": position,
           "ready_for_entry": false, "poll_after_ms": 250})
}
