//! Test harness: isolated Redis servers, gateways on port 0, and typed API helpers.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use vestibule::admission::AdmissionKeys;
use vestibule::app::{AppState, Options, Parts, Stores};
use vestibule::inventory::Database;
use vestibule::store::memory::MemoryStore;
use vestibule::store::redis::RedisStore;
use vestibule::store::Store;
use vestibule::tickets::TicketKeys;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The sale backend's token in these tests.
pub const BACKEND_TOKEN: &str = "test-backend-token";

/// How often test gateways sweep.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Which store a test gateway uses.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Redis,
    /// A three-primary Redis Cluster: the same scripts, one slot per event.
    Cluster,
}

/// Writes each scenario once and runs it against every store: in-process, Redis, Redis Cluster.
#[macro_export]
macro_rules! on_every_store {
    ($($scenario:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::helpers::Backend::Memory).await;
                }
            )+
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::helpers::Backend::Redis).await;
                }
            )+
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::helpers::Backend::Cluster).await;
                }
            )+
        }
    };
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A free port whose cluster bus port (+10000) is free and valid too.
fn free_cluster_port() -> u16 {
    loop {
        let port = 20_000 + rand::random::<u16>() % 20_000;
        let free = |p: u16| StdListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vst-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A `redis-server` child of this test, on its own port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    cluster: bool,
    /// AOF with fsync on every write, so a restart keeps everything.
    durable: bool,
}

impl RedisServer {
    /// Starts a throwaway server with AOF on (fsync always), so a restart keeps every write.
    pub fn start() -> Self {
        Self::start_with(false, true)
    }

    /// Starts a throwaway server that keeps nothing on disk: for tests that never restart it
    /// and make many calls (an fsync per write would dominate their time).
    pub fn start_volatile() -> Self {
        Self::start_with(false, false)
    }

    fn start_with(cluster: bool, durable: bool) -> Self {
        let mut server = Self {
            port: if cluster {
                free_cluster_port()
            } else {
                free_port()
            },
            dir: temp_dir("redis"),
            child: None,
            cluster,
            durable,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendfsync", "always"])
            .args(["--appendonly", if self.durable { "yes" } else { "no" }])
            .args(["--cluster-enabled", if self.cluster { "yes" } else { "no" }])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a redis-cli command against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is installed");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// A Redis Cluster of three primaries (no replicas), each a child of this test.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(true, true))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { nodes }
    }

    pub fn url(&self) -> String {
        let others: Vec<String> = self.nodes[1..]
            .iter()
            .map(|n| format!("node=127.0.0.1:{}", n.port))
            .collect();
        format!(
            "redis-cluster://127.0.0.1:{}?{}",
            self.nodes[0].port,
            others.join("&")
        )
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A gateway running in this process on a free port.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub keys_dir: PathBuf,
    stop: CancellationToken,
    /// Keeps the test's own Redis alive as long as the app.
    pub redis: Option<RedisServer>,
    /// Keeps the test's own Redis Cluster alive as long as the app.
    pub cluster: Option<RedisCluster>,
}

impl TestApp {
    /// A gateway with its own store: a fresh in-process store or its own Redis server.
    pub async fn spawn(backend: Backend) -> Self {
        let keys_dir = temp_dir("keys");
        match backend {
            Backend::Memory => {
                Self::spawn_with(Stores::of(Arc::new(MemoryStore::default())), keys_dir, None).await
            }
            Backend::Redis => {
                let redis = RedisServer::start();
                let stores = connect_stores(&redis.url()).await;
                Self::spawn_with(stores, keys_dir, Some(redis)).await
            }
            Backend::Cluster => {
                let cluster = RedisCluster::start();
                let stores = connect_stores(&cluster.url()).await;
                let mut app = Self::spawn_with(stores, keys_dir, None).await;
                app.cluster = Some(cluster);
                app
            }
        }
    }

    /// Two gateways over one store and one keys directory.
    pub async fn spawn_pair(backend: Backend) -> (Self, Self) {
        let keys_dir = temp_dir("keys");
        let (mut redis, mut cluster) = (None, None);
        let url = match backend {
            Backend::Memory => None,
            Backend::Redis => Some(redis.insert(RedisServer::start()).url()),
            Backend::Cluster => Some(cluster.insert(RedisCluster::start()).url()),
        };
        let (first, second) = match url {
            Some(url) => (connect_stores(&url).await, connect_stores(&url).await),
            None => {
                let stores = Stores::of(Arc::new(MemoryStore::default()));
                (stores.clone(), stores)
            }
        };
        let mut a = Self::spawn_with(first, keys_dir.clone(), redis).await;
        a.cluster = cluster;
        let b = Self::spawn_with(second, keys_dir, None).await;
        (a, b)
    }

    /// A gateway over a given store and keys directory (two instances share both, and the
    /// inventory database kept beside the keys).
    pub async fn spawn_with(stores: Stores, keys_dir: PathBuf, redis: Option<RedisServer>) -> Self {
        Self::spawn_with_options(stores, keys_dir, redis, Options::default()).await
    }

    /// As [`Self::spawn_with`], with instance options (the admin token is always set).
    pub async fn spawn_with_options(
        stores: Stores,
        keys_dir: PathBuf,
        redis: Option<RedisServer>,
        options: Options,
    ) -> Self {
        // Every gateway has its inventory database: a SQLite file removed with the keys.
        let database_url = format!("sqlite://{}", keys_dir.join("inventory.db").display());
        let parts = Parts {
            stores,
            database: Arc::new(Database::connect(&database_url).await.expect("database")),
            worker_metrics: Arc::default(),
            tickets: TicketKeys::load_or_create(&keys_dir).expect("keys"),
            admissions: AdmissionKeys::load_or_create(&keys_dir).expect("admission keys"),
        };
        let options = Options {
            admin_token: Some(ADMIN_TOKEN.to_owned().into()),
            backend_token: Some(BACKEND_TOKEN.to_owned().into()),
            ..options
        };
        Self::spawn_state(AppState::new(parts, options), keys_dir, redis).await
    }

    /// A gateway over a state built by the caller (e.g. with its own database and workers).
    pub async fn spawn_state(
        state: AppState,
        keys_dir: PathBuf,
        redis: Option<RedisServer>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        tokio::spawn(vestibule::startup::run_gateway(
            state,
            listener,
            SWEEP_INTERVAL,
            stop.clone(),
        ));
        Self {
            addr,
            http: reqwest::Client::new(),
            keys_dir,
            stop,
            redis,
            cluster: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates or updates an event through the admin API; panics unless it succeeds.
    pub async fn put_event(&self, event: &str, valves: Value) -> Value {
        let response = self.admin_put(event, valves).await;
        assert!(response.0.is_success(), "admin PUT failed: {response:?}");
        response.1
    }

    pub async fn admin_put(&self, event: &str, valves: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .put(self.url(&format!("/admin/v1/events/{event}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&valves)
            .send()
            .await
            .expect("request");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// An open event whose ghosts are evicted after `ttl_secs`, with polls fast enough for it.
    pub async fn open_event(&self, event: &str, ttl_secs: u64) {
        self.put_event(
            event,
            json!({"state": "open", "heartbeat_ttl_secs": ttl_secs,
                   "fast_poll_ms": 250, "slow_poll_ms": (500 * ttl_secs).min(5000)}),
        )
        .await;
    }

    pub async fn figures(&self, event: &str) -> Value {
        let response = self
            .http
            .get(self.url(&format!("/admin/v1/events/{event}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.expect("json")["figures"].clone()
    }

    /// Joins an event; returns the status code and body.
    pub async fn join(&self, event: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(&format!("/v1/events/{event}/join")))
            .send()
            .await
            .expect("request");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Joins and returns the ticket, asserting a new place.
    pub async fn join_ok(&self, event: &str) -> Joined {
        let (status, body) = self.join(event).await;
        assert_eq!(status, StatusCode::CREATED, "join failed: {body}");
        Joined::from(&body)
    }

    pub async fn status(&self, ticket: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url("/v1/queue/status"))
            .bearer_auth(ticket)
            .send()
            .await
            .expect("request");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// The position of a waiting ticket holder; panics if they are not waiting.
    pub async fn position(&self, ticket: &str) -> u64 {
        let (status, body) = self.status(ticket).await;
        assert_eq!(status, StatusCode::OK, "status failed: {body}");
        body["position"].as_u64().expect("position")
    }

    /// Calls enter; returns the status code and body.
    pub async fn enter(&self, ticket: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/v1/queue/enter"))
            .bearer_auth(ticket)
            .send()
            .await
            .expect("request");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Redeems an admission token; returns the status code and body.
    pub async fn redeem(&self, admission_token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/v1/admissions/redeem"))
            .bearer_auth(BACKEND_TOKEN)
            .json(&json!({ "admission_token": admission_token }))
            .send()
            .await
            .expect("request");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn leave(&self, ticket: &str) -> StatusCode {
        self.http
            .post(self.url("/v1/queue/leave"))
            .bearer_auth(ticket)
            .send()
            .await
            .expect("request")
            .status()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.keys_dir);
    }
}

pub async fn connect(url: &str) -> Arc<dyn Store> {
    Arc::new(RedisStore::connect(url).await.expect("redis store"))
}

/// Both views of a new connection to the Redis at `url`.
pub async fn connect_stores(url: &str) -> Stores {
    Stores::of(Arc::new(
        RedisStore::connect(url).await.expect("redis store"),
    ))
}

/// What a join answered.
#[derive(Clone, Debug)]
pub struct Joined {
    pub ticket: String,
    pub position: u64,
    pub seq: u64,
}

impl From<&Value> for Joined {
    fn from(body: &Value) -> Self {
        let ticket = body["ticket"].as_str().expect("ticket").to_owned();
        Self {
            seq: claims(&ticket)["seq"].as_u64().expect("seq claim"),
            position: body["position"].as_u64().expect("position"),
            ticket,
        }
    }
}

/// The claims of a JWT, read without verifying it.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn key_path(dir: &Path) -> PathBuf {
    dir.join("ticket-hmac.key")
}
