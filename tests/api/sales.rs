//! Harness for reservations and the worker: a gateway with reservations enabled over either
//! store, a real database (a fresh PostgreSQL database or SQLite file per test), workers in
//! process or as `vestibule worker` children, and typed helpers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, Row as _};
use tokio_util::sync::CancellationToken;
use vestibule::admission::AdmissionKeys;
use vestibule::app::{AppState, Options, Parts, Stores};
use vestibule::config::WorkerArgs;
use vestibule::event::EventId;
use vestibule::inventory::Database;
use vestibule::store::memory::MemoryStore;
use vestibule::store::redis::RedisStore;
use vestibule::store::reservations::{Backlog, Reservations};
use vestibule::store::Store;
use vestibule::tickets::TicketKeys;
use vestibule::worker::metrics::WorkerMetrics;

use crate::helpers::{
    eventually, temp_dir, Backend, RedisServer, TestApp, ADMIN_TOKEN, BACKEND_TOKEN,
};

/// The server every test database is made on (trust auth; see `.ci/run`).
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which database a test uses.
#[derive(Clone, Copy, Debug)]
pub enum Db {
    Postgres,
    Sqlite,
}

/// Writes each scenario once and runs it against the pairs that matter: the embedded default
/// (in-process store, SQLite) and production (Redis, PostgreSQL), plus the two crossings.
#[macro_export]
macro_rules! sales_matrix {
    ($($scenario:ident),+ $(,)?) => {
        $crate::sales_matrix!(@pair memory_sqlite, Memory, Sqlite, $($scenario),+);
        $crate::sales_matrix!(@pair redis_postgres, Redis, Postgres, $($scenario),+);
        $crate::sales_matrix!(@pair cluster_postgres, Cluster, Postgres, $($scenario),+);
    };
    (full: $($scenario:ident),+ $(,)?) => {
        $crate::sales_matrix!($($scenario),+);
        $crate::sales_matrix!(@pair memory_postgres, Memory, Postgres, $($scenario),+);
        $crate::sales_matrix!(@pair redis_sqlite, Redis, Sqlite, $($scenario),+);
    };
    (@pair $module:ident, $backend:ident, $db:ident, $($scenario:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(
                        $crate::helpers::Backend::$backend,
                        $crate::sales::Db::$db,
                    )
                    .await;
                }
            )+
        }
    };
}

/// A database of this test's own, dropped (PostgreSQL) or deleted (SQLite) at the end.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    dir: Option<PathBuf>,
}

impl TestDb {
    pub async fn create(db: Db) -> Self {
        match db {
            Db::Postgres => {
                let name = format!("vst_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL)
                    .await
                    .expect("PostgreSQL at 127.0.0.1:5432 (see .ci/run)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .expect("create database");
                Self {
                    url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    pg_name: Some(name),
                    dir: None,
                }
            }
            Db::Sqlite => {
                let dir = temp_dir("sqlite");
                Self {
                    url: format!("sqlite://{}", dir.join("vestibule.db").display()),
                    pg_name: None,
                    dir: Some(dir),
                }
            }
        }
    }

    /// Runs SQL on the test's database as an operator would (triggers, deletes).
    pub async fn execute(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("connect");
        sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    }

    pub fn is_postgres(&self) -> bool {
        self.pg_name.is_some()
    }

    /// Every applied reservation: id, state, reason, applied at (ms), in the order applied.
    pub async fn rows(&self) -> Vec<Row> {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("connect");
        let rows = sqlx::query(
            "SELECT id, state, reason, applied_at_ms FROM reservations ORDER BY applied_at_ms, id",
        )
        .fetch_all(&mut conn)
        .await
        .expect("rows");
        rows.iter()
            .map(|r| Row {
                id: r.get(0),
                state: r.get(1),
                reason: r.get(2),
                applied_at_ms: r.get(3),
            })
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside async: a thread with its own runtime does the async cleanup.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut admin)
                                .await;
                    }
                });
            })
            .join();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A row of the reservations table.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub state: String,
    pub reason: Option<String>,
    pub applied_at_ms: i64,
}

/// Worker settings fast enough for tests: short backoffs and claim timeout.
pub fn fast_worker() -> WorkerArgs {
    WorkerArgs {
        batch: 50,
        max_deliveries: 3,
        retry_base_ms: 20,
        retry_max_ms: 200,
        // Debug builds on two cores can take a second over a batch: reclaiming a live
        // worker's entries is harmless (idempotent) but makes results arrive twice.
        claim_idle_ms: 3000,
        consumers: 1,
    }
}

/// A gateway with reservations, its store views and database, and in-process workers.
pub struct SaleApp {
    pub app: TestApp,
    pub db: TestDb,
    pub database: Arc<Database>,
    pub store: Arc<dyn Store>,
    pub reservations: Arc<dyn Reservations>,
    pub metrics: Arc<WorkerMetrics>,
    workers: CancellationToken,
}

impl SaleApp {
    /// A gateway over its own store and database, with an open `sale` event (the door open
    /// wide) and no workers yet.
    pub async fn spawn(backend: Backend, db: Db) -> Self {
        let db = TestDb::create(db).await;
        let mut cluster = None;
        let (stores, redis) = match backend {
            Backend::Cluster => {
                let url = cluster.insert(crate::helpers::RedisCluster::start()).url();
                let store = RedisStore::connect(&url).await.expect("redis cluster");
                (Stores::of(Arc::new(store)), None)
            }
            Backend::Memory => (Stores::of(Arc::new(MemoryStore::default())), None),
            Backend::Redis => {
                let redis = RedisServer::start();
                let store = RedisStore::connect(&redis.url()).await.expect("redis");
                (Stores::of(Arc::new(store)), Some(redis))
            }
        };
        let Stores {
            queue: store,
            reservations,
        } = stores.clone();
        let database = Arc::new(Database::connect(&db.url).await.expect("database"));
        let metrics = Arc::new(WorkerMetrics::new());
        let keys_dir = temp_dir("keys");
        let parts = Parts {
            stores,
            database: database.clone(),
            worker_metrics: metrics.clone(),
            tickets: TicketKeys::load_or_create(&keys_dir).expect("keys"),
            admissions: AdmissionKeys::load_or_create(&keys_dir).expect("admission keys"),
        };
        let options = Options {
            admin_token: Some(ADMIN_TOKEN.to_owned().into()),
            backend_token: Some(BACKEND_TOKEN.to_owned().into()),
            ..Options::default()
        };
        let state = AppState::new(parts, options);
        let mut app = TestApp::spawn_state(state, keys_dir, redis).await;
        app.cluster = cluster;
        app.put_event(
            "sale",
            json!({"state": "open", "admission_rate": 1000, "max_active": 100000}),
        )
        .await;
        Self {
            app,
            db,
            database,
            store,
            reservations,
            metrics,
            workers: CancellationToken::new(),
        }
    }

    /// Starts `count` in-process workers with `settings`; they stop when the app drops.
    pub fn start_workers(&self, count: u32, settings: WorkerArgs) {
        vestibule::worker::spawn(
            self.reservations.clone(),
            self.store.clone(),
            self.database.clone(),
            WorkerArgs {
                consumers: count,
                ..settings
            },
            self.metrics.clone(),
            self.workers.clone(),
        );
    }

    pub fn event() -> EventId {
        EventId::parse("sale").expect("event id")
    }

    /// Joins `sale` and enters once the door lets the person in; the admission token.
    pub async fn admitted(&self) -> String {
        let person = self.app.join_ok("sale").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.app.enter(&person.ticket).await;
            if status == StatusCode::OK {
                return body["admission_token"].as_str().expect("token").to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the door never let the person in: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `n` admission tokens, obtained concurrently.
    pub async fn admitted_many(&self, n: usize) -> Vec<String> {
        use futures::StreamExt;
        futures::stream::iter(0..n)
            .map(|_| self.admitted())
            .buffer_unordered(64)
            .collect()
            .await
    }

    pub async fn put_inventory(&self, items: Value) -> (StatusCode, Value) {
        let response = self
            .app
            .http
            .put(self.app.url("/admin/v1/events/sale/inventory"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "items": items }))
            .send()
            .await
            .expect("request");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// The remaining quantity of a SKU, read through the admin API.
    pub async fn remaining(&self, sku: &str) -> Option<i64> {
        let response = self
            .app
            .http
            .get(self.app.url("/admin/v1/events/sale/inventory"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["sku"] == sku)
            .and_then(|i| i["remaining"].as_i64())
    }

    /// Posts a reservation with a raw body; the status and JSON answer.
    pub async fn reserve_raw(
        &self,
        token: Option<&str>,
        key: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut request = self
            .app
            .http
            .post(self.app.url("/v1/reservations"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.expect("request");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Reserves `quantity` of `sku`; the status and answer.
    pub async fn reserve(
        &self,
        token: &str,
        key: &str,
        sku: &str,
        quantity: u32,
    ) -> (StatusCode, Value) {
        let body = json!({"items": [{"sku": sku, "quantity": quantity}]}).to_string();
        self.reserve_raw(Some(token), Some(key), &body).await
    }

    /// Reserves and asserts a 202; the reservation id.
    pub async fn reserve_ok(&self, token: &str, key: &str, sku: &str, quantity: u32) -> String {
        let (status, body) = self.reserve(token, key, sku, quantity).await;
        assert_eq!(status, StatusCode::ACCEPTED, "reserve failed: {body}");
        body["reservation_id"].as_str().expect("id").to_owned()
    }

    /// Reads a reservation; the status and answer.
    pub async fn reservation(&self, token: &str, id: &str) -> (StatusCode, Value) {
        let response = self
            .app
            .http
            .get(self.app.url(&format!("/v1/reservations/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Ends a hold: `POST /v1/reservations/{id}/{what}` (`complete` or `cancel`) with `token`.
    pub async fn end_hold(&self, what: &str, id: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self
            .app
            .http
            .post(self.app.url(&format!("/v1/reservations/{id}/{what}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// One SKU's stock as the admin API shows it: `{sku, total, held, sold, remaining}`.
    pub async fn stock(&self, sku: &str) -> Value {
        let response = self
            .app
            .http
            .get(self.app.url("/admin/v1/events/sale/inventory"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["sku"] == sku)
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub async fn backlog(&self) -> Backlog {
        self.reservations
            .backlog(&Self::event())
            .await
            .expect("backlog")
    }

    /// The backlog, or `None` while the store is unreachable (a Redis restart).
    pub async fn backlog_checked(&self) -> Option<Backlog> {
        self.reservations.backlog(&Self::event()).await.ok()
    }

    /// Waits until every reservation has left the work stream (settled or dead-lettered).
    pub async fn drained(&self, within: Duration) -> bool {
        eventually(within, || async {
            self.backlog_checked()
                .await
                .is_some_and(|b| b.lag == 0 && b.pending == 0)
        })
        .await
    }

    /// Waits until a reservation is no longer pending; its final answer.
    pub async fn settled(&self, token: &str, id: &str) -> Value {
        // Generous: a poison entry is retried with backoff, and CI machines are busy.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.reservation(token, id).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["state"] != "pending" {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "reservation {id} still pending: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SaleApp {
    fn drop(&mut self) {
        self.workers.cancel();
    }
}
