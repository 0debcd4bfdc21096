//! Worker benchmark (ignored by default; numbers in BENCHMARKS.md, section "Worker"):
//!
//! ```sh
//! cargo test --release --test api worker_bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Against its own `redis-server` (AOF on; fsync `always` as the tests, then `everysec` as
//! docker-compose.yml) and a fresh PostgreSQL database on 127.0.0.1:5432:
//! - throughput: N reservations of one unit of one hot SKU are recorded first, then 1 or 4
//!   workers drain them; confirmed per second = N / time until the last result is written;
//! - latency: reservations arrive at a steady rate while the workers run; for each, the time
//!   from being recorded `pending` (the 202) to its result written back, both on the store's
//!   clock (`at` and `settled` of its hash).

use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::prelude::*;
use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use vestibule::config::WorkerArgs;
use vestibule::event::{EventConfig, EventId, EventState};
use vestibule::inventory::Database;
use vestibule::store::redis::RedisStore;
use vestibule::store::reservations::{Item, NewReservation, Queued, Reservations};
use vestibule::store::Store;
use vestibule::worker::metrics::WorkerMetrics;

use crate::sales::{Db, TestDb};

/// A `redis-server` child with AOF on and the given fsync policy, killed on drop.
struct BenchRedis {
    port: u16,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl BenchRedis {
    fn start(appendfsync: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = crate::helpers::temp_dir("bench-redis");
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", appendfsync])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for BenchRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Bench {
    redis: BenchRedis,
    db: TestDb,
    store: Arc<RedisStore>,
    database: Arc<Database>,
    event: EventId,
}

impl Bench {
    async fn new(stock: i64, appendfsync: &str) -> Self {
        let redis = BenchRedis::start(appendfsync);
        let db = TestDb::create(Db::Postgres).await;
        let store = Arc::new(RedisStore::connect(&redis.url()).await.unwrap());
        let database = Arc::new(Database::connect(&db.url).await.unwrap());
        let event = EventId::parse("bench").unwrap();
        let config = EventConfig {
            state: EventState::Open,
            ..EventConfig::default()
        };
        store.put_event(&event, &config, "bench").await.unwrap();
        database
            .set_totals(&event, &[("seat".to_owned(), stock)], "bench")
            .await
            .unwrap();
        Self {
            redis,
            db,
            store,
            database,
            event,
        }
    }

    /// Records reservation `i` (person `p<i>`, one seat), as the gateway would.
    async fn reserve(&self, i: usize) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let new = NewReservation {
            id: id.clone(),
            person: format!("p{i}"),
            idempotency_key: "k".into(),
            admission: format!("a{i}"),
            body_hash: "h".into(),
            items: vec![Item {
                sku: "seat".into(),
                quantity: 1,
            }],
        };
        self.store.reserve(&self.event, &new).await.unwrap();
        id
    }

    fn start(&self, workers: u32) -> CancellationToken {
        self.start_with(WorkerArgs {
            consumers: workers,
            ..WorkerArgs::default()
        })
    }

    fn start_with(&self, settings: WorkerArgs) -> CancellationToken {
        let stop = CancellationToken::new();
        vestibule::worker::spawn(
            self.store.clone(),
            self.store.clone(),
            self.database.clone(),
            settings,
            Arc::new(WorkerMetrics::new()),
            stop.clone(),
        );
        stop
    }

    async fn drained(&self) -> bool {
        let b = self.store.backlog(&self.event).await.unwrap();
        b.lag == 0 && b.pending == 0
    }
}

async fn throughput(workers: u32, n: usize, fsync: &str) -> f64 {
    throughput_with(workers, 200, n, fsync).await
}

async fn throughput_with(workers: u32, batch: u32, n: usize, fsync: &str) -> f64 {
    let bench = Bench::new(n as i64, fsync).await;
    futures::stream::iter(0..n)
        .map(|i| bench.reserve(i))
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await;
    let started = Instant::now();
    let stop = bench.start_with(WorkerArgs {
        consumers: workers,
        batch,
        ..WorkerArgs::default()
    });
    while !bench.drained().await {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    let summary = bench.database.applied(&bench.event).await.unwrap();
    assert_eq!(summary.confirmed, n as u64);
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "throughput (appendfsync {fsync}): {workers} worker(s), batches of {batch}, {n} reservations: {:.2} s, {rate:.0} confirmed/s",
        elapsed.as_secs_f64()
    );
    let _ = (&bench.redis, &bench.db);
    rate
}

async fn latency(workers: u32, per_second: u64, seconds: u64, fsync: &str) -> (f64, f64) {
    let n = (per_second * seconds) as usize;
    let bench = Bench::new(n as i64, fsync).await;
    let stop = bench.start(workers);
    let mut ids = Vec::with_capacity(n);
    let tick = Duration::from_millis(10);
    let per_tick = (per_second / 100) as usize;
    let mut ticker = tokio::time::interval(tick);
    let mut i = 0;
    while i < n {
        ticker.tick().await;
        let batch: Vec<_> = (i..(i + per_tick).min(n))
            .map(|j| bench.reserve(j))
            .collect();
        ids.extend(futures::future::join_all(batch).await);
        i += per_tick;
    }
    while !bench.drained().await {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    let client = Builder::from_config(Config::from_url(&bench.redis.url()).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let mut millis = Vec::with_capacity(n);
    for id in &ids {
        let (at, settled): (u64, u64) = client
            .hmget(
                format!("vst:{{ev:bench}}:rsv:r:{id}"),
                vec!["at", "settled"],
            )
            .await
            .unwrap();
        millis.push(settled.saturating_sub(at) as f64);
    }
    millis.sort_by(f64::total_cmp);
    let pick = |q: f64| millis[((millis.len() - 1) as f64 * q).round() as usize];
    let (median, p99) = (pick(0.5), pick(0.99));
    println!(
        "latency (appendfsync {fsync}): {workers} worker(s), {per_second}/s for {seconds} s: 202 -> result median {median:.0} ms, p99 {p99:.0} ms, max {:.0} ms",
        millis[millis.len() - 1]
    );
    (median, p99)
}

/// The database alone: batches of `batch` one-seat reservations applied back to back.
async fn database_only(n: usize, batch: usize) -> f64 {
    let bench = Bench::new(n as i64, "always").await;
    let lanes: Vec<Vec<Queued>> = (0..n)
        .map(|i| {
            vec![Queued {
                id: format!("r{i}"),
                person: format!("p{i}"),
                items: vec![Item {
                    sku: "seat".into(),
                    quantity: 1,
                }],
                work_id: String::new(),
                created_ms: 0,
            }]
        })
        .collect();
    let started = Instant::now();
    for chunk in lanes.chunks(batch) {
        bench
            .database
            .apply_batch(&bench.event, chunk, None)
            .await
            .unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!("database only: batches of {batch}: {rate:.0} confirmed/s");
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
async fn worker_bench() {
    println!(
        "{}",
        json!({"nproc": std::thread::available_parallelism().map_or(0, |n| n.get())})
    );
    database_only(20_000, 200).await;
    if std::env::var("BENCH_BATCHES").is_ok() {
        // The batch size lever alone.
        for batch in [50, 200, 500, 1000] {
            for workers in [1, 4] {
                throughput_with(workers, batch, 20_000, "everysec").await;
            }
        }
        return;
    }
    // `always` is what the tests run (every write on disk before the answer); `everysec` is
    // what docker-compose.yml runs.
    for fsync in ["always", "everysec"] {
        for workers in [1, 4] {
            throughput(workers, 20_000, fsync).await;
        }
        for workers in [1, 4] {
            latency(workers, 2000, 5, fsync).await;
        }
    }
}
