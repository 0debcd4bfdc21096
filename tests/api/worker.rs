//! The worker: zero oversell under concurrency, exactly-once results across a worker killed in
//! the middle of a batch and across a Redis restart, poison entries dead-lettered without
//! blocking anyone, and each person's reservations applied in the order they were made.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{eventually, Backend};
use crate::sales::{fast_worker, Db, SaleApp};

/// Reserves one unit of `sku` for each token, all at once; the ids answered, in token order.
async fn reserve_all(sale: &SaleApp, tokens: &[String], sku: &str) -> Vec<String> {
    futures::stream::iter(tokens.iter().enumerate())
        .map(
            |(i, token)| async move { sale.reserve_ok(token, &format!("order-{i}"), sku, 1).await },
        )
        .buffered(100)
        .collect()
        .await
}

/// Every reservation was applied exactly once and the store shows the database's result:
/// one row per id (no loss, no double), the same state through the API, and the inventory
/// equal to the stock less the confirmed units. Answers (confirmed, rejected by reason).
async fn assert_exactly_once(
    sale: &SaleApp,
    tokens: &[String],
    ids: &[String],
    sku: &str,
    stock: i64,
) -> (usize, HashMap<String, usize>) {
    let rows = sale.db.rows().await;
    let by_id: HashMap<&str, &crate::sales::Row> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();
    assert_eq!(rows.len(), ids.len(), "one row per reservation");
    assert_eq!(
        by_id.keys().copied().collect::<HashSet<_>>(),
        ids.iter().map(String::as_str).collect::<HashSet<_>>(),
        "the rows are exactly the reservations made"
    );
    let checks = futures::stream::iter(tokens.iter().zip(ids))
        .map(|(token, id)| async move { (id, sale.reservation(token, id).await) })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    for (id, (status, body)) in checks {
        assert_eq!(status, StatusCode::OK);
        let row = by_id[id.as_str()];
        assert_eq!(body["state"], row.state.as_str(), "{id}: {body}");
        assert_eq!(
            body["reason"].as_str(),
            row.reason.as_deref(),
            "{id}: {body}"
        );
    }
    let confirmed = rows.iter().filter(|r| r.state == "confirmed").count();
    let mut rejected = HashMap::new();
    for row in rows.iter().filter(|r| r.state == "rejected") {
        *rejected
            .entry(row.reason.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(
        sale.remaining(sku).await,
        Some(stock - confirmed as i64),
        "inventory matches the confirmed rows"
    );
    (confirmed, rejected)
}

async fn a_thousand_concurrent_reservations_for_100_seats_confirm_exactly_100(
    backend: Backend,
    db: Db,
) {
    let sale = SaleApp::spawn(backend, db).await;
    sale.put_inventory(json!([{"sku": "seat", "quantity": 100}]))
        .await;
    sale.start_workers(4, fast_worker());
    let tokens = sale.admitted_many(1000).await;

    // Watch the stock while the sale runs: it must never go below zero.
    let lowest = Arc::new(AtomicI64::new(i64::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (lowest, done) = (lowest.clone(), done.clone());
        let database = sale.database.clone();
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let stock = database.inventory(&SaleApp::event()).await.unwrap();
                lowest.fetch_min(stock[0].remaining, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let ids = reserve_all(&sale, &tokens, "seat").await;
    assert!(
        sale.drained(Duration::from_secs(60)).await,
        "the workers did not finish"
    );
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();

    let (confirmed, rejected) = assert_exactly_once(&sale, &tokens, &ids, "seat", 100).await;
    assert_eq!(confirmed, 100);
    assert_eq!(rejected, HashMap::from([("sold_out".to_owned(), 900)]));
    assert_eq!(sale.remaining("seat").await, Some(0));
    assert!(
        lowest.load(Ordering::Relaxed) >= 0,
        "the stock went negative"
    );
    let metrics = sale.metrics.render();
    assert!(
        metrics.contains("vestibule_worker_confirmed_total{event=\"sale\"} 100"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vestibule_worker_rejected_total{event=\"sale\",reason=\"sold_out\"} 900")
    );
    // What did not happen is a 0, not a missing series: a panel or an alert can tell them apart.
    for zero in [
        "vestibule_worker_dead_lettered_total{event=\"sale\"} 0",
        "vestibule_worker_rejected_total{event=\"sale\",reason=\"invalid_sku\"} 0",
    ] {
        assert!(metrics.contains(zero), "{zero} missing: {metrics}");
    }
    assert_eq!(sale.backlog().await.dead, 0);
}

async fn a_persons_reservations_are_applied_in_the_order_they_were_made(backend: Backend, db: Db) {
    let sale = SaleApp::spawn(backend, db).await;
    // One unit per person, of a SKU of their own: whichever of their two orders is applied
    // first gets it, so the outcome shows the order of application.
    let people = 30;
    let stock: Vec<_> = (0..people)
        .map(|i| json!({"sku": format!("p{i}"), "quantity": 1}))
        .collect();
    sale.put_inventory(json!(stock)).await;
    let tokens = sale.admitted_many(people).await;
    let sku = |i: usize| format!("p{i}");
    let mut firsts = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        firsts.push(sale.reserve_ok(token, "first", &sku(i), 1).await);
    }
    // Every first order is delivered to a consumer that never comes back, so the second
    // orders reach the live workers first: delivery order is the wrong order here.
    let taken = sale
        .reservations
        .next_batch(&SaleApp::event(), "ghost", 1000, fast_worker().policy())
        .await
        .unwrap();
    assert_eq!(taken.len(), people);
    let mut seconds = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        seconds.push(sale.reserve_ok(token, "second", &sku(i), 1).await);
    }
    sale.start_workers(
        4,
        vestibule::config::WorkerArgs {
            batch: 1,
            ..fast_worker()
        },
    );
    assert!(sale.drained(Duration::from_secs(60)).await);

    let rows = sale.db.rows().await;
    let at: HashMap<&str, &crate::sales::Row> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    for (first, second) in firsts.iter().zip(&seconds) {
        let (a, b) = (at[first.as_str()], at[second.as_str()]);
        assert_eq!(a.state, "confirmed", "the first order got the unit");
        assert_eq!(
            (b.state.as_str(), b.reason.as_deref()),
            ("rejected", Some("sold_out"))
        );
        assert!(a.applied_at_ms <= b.applied_at_ms);
    }
    for ((token, first), second) in tokens.iter().zip(&firsts).zip(&seconds) {
        assert_eq!(sale.settled(token, first).await["state"], "confirmed");
        assert_eq!(sale.settled(token, second).await["reason"], "sold_out");
    }
}

async fn a_poison_entry_is_dead_lettered_after_n_deliveries_and_blocks_nobody(
    backend: Backend,
    db: Db,
) {
    let sale = SaleApp::spawn(backend, db).await;
    sale.put_inventory(json!([{"sku": "seat", "quantity": 10}, {"sku": "poison", "quantity": 10}]))
        .await;
    // A database error that never clears, for one SKU only.
    if sale.db.is_postgres() {
        sale.db
            .execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'poisoned sku'; END $$; \
                 CREATE TRIGGER poison BEFORE UPDATE ON inventory FOR EACH ROW \
                 WHEN (NEW.sku = 'poison') EXECUTE FUNCTION refuse();",
            )
            .await;
    } else {
        sale.db
            .execute(
                "CREATE TRIGGER poison BEFORE UPDATE ON inventory WHEN NEW.sku = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned sku'); END;",
            )
            .await;
    }
    let tokens = sale.admitted_many(5).await;
    let poisoned = sale.reserve_ok(&tokens[0], "a", "poison", 1).await;
    // The same person's next order waits for the poisoned one only until it is given up.
    let after = sale.reserve_ok(&tokens[0], "b", "seat", 1).await;
    let mut others = Vec::new();
    for token in &tokens[1..] {
        others.push(sale.reserve_ok(token, "a", "seat", 1).await);
    }
    if let Some(redis) = &sale.app.redis {
        // An entry no gateway would write: given up at once.
        redis.cli(&["XADD", "vst:{ev:sale}:rsv:work", "*", "junk", "1"]);
    }
    sale.start_workers(2, fast_worker());

    let result = sale.settled(&tokens[0], &poisoned).await;
    assert_eq!(
        (result["state"].as_str(), result["reason"].as_str()),
        (Some("rejected"), Some("failed")),
        "{result}"
    );
    assert_eq!(sale.settled(&tokens[0], &after).await["state"], "confirmed");
    for (token, id) in tokens[1..].iter().zip(&others) {
        assert_eq!(sale.settled(token, id).await["state"], "confirmed");
    }
    assert!(sale.drained(Duration::from_secs(10)).await);

    let letters = sale
        .reservations
        .dead_letters(&SaleApp::event(), 10)
        .await
        .unwrap();
    let poison = letters
        .iter()
        .find(|l| l.reservation_id.as_deref() == Some(poisoned.as_str()))
        .expect("the poisoned entry is in the dead-letter stream");
    assert_eq!(poison.deliveries, fast_worker().max_deliveries);
    assert!(poison.error.contains("poisoned sku"), "{poison:?}");
    let expected = if sale.app.redis.is_some() { 2 } else { 1 };
    assert_eq!(letters.len(), expected, "{letters:?}");
    assert_eq!(sale.remaining("seat").await, Some(5));
    assert_eq!(sale.remaining("poison").await, Some(10));
    let metrics = sale.metrics.render();
    assert!(
        metrics.contains(&format!(
            "vestibule_worker_dead_lettered_total{{event=\"sale\"}} {expected}"
        )),
        "{metrics}"
    );
}

/// Every store and database pairing: this is the claim the sale rests on.
mod zero_oversell {
    use super::a_thousand_concurrent_reservations_for_100_seats_confirm_exactly_100;

    crate::sales_matrix!(full: a_thousand_concurrent_reservations_for_100_seats_confirm_exactly_100);
}
crate::sales_matrix!(
    a_persons_reservations_are_applied_in_the_order_they_were_made,
    a_poison_entry_is_dead_lettered_after_n_deliveries_and_blocks_nobody,
);

// === crashes (Redis only: a worker process and a Redis restart need a shared store) ===

async fn reservations_pending_across_a_redis_restart_are_all_applied_once(db: Db) {
    let mut sale = SaleApp::spawn(Backend::Redis, db).await;
    sale.put_inventory(json!([{"sku": "seat", "quantity": 200}]))
        .await;
    let tokens = sale.admitted_many(300).await;
    let ids = reserve_all(&sale, &tokens, "seat").await;

    // Restart with everything pending, then again while the workers are at it.
    sale.app.redis.as_mut().unwrap().restart();
    assert!(
        eventually(Duration::from_secs(15), || async {
            sale.backlog_checked().await.is_some_and(|b| b.lag == 300)
        })
        .await,
        "the reservations survived the restart (AOF)"
    );
    sale.start_workers(
        2,
        vestibule::config::WorkerArgs {
            batch: 20,
            ..fast_worker()
        },
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            sale.db.rows().await.len() >= 50
        })
        .await
    );
    sale.app.redis.as_mut().unwrap().restart();
    assert!(sale.drained(Duration::from_secs(60)).await);

    let (confirmed, rejected) = assert_exactly_once(&sale, &tokens, &ids, "seat", 200).await;
    assert_eq!(confirmed, 200);
    assert_eq!(rejected, HashMap::from([("sold_out".to_owned(), 100)]));
}

/// A `vestibule worker` child process, killed with SIGKILL on drop.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(redis_url: &str, database_url: &str, metrics: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .arg("worker")
            .env("VESTIBULE_REDIS_URL", redis_url)
            .env("VESTIBULE_DATABASE_URL", database_url)
            .env("VESTIBULE_WORKER_METRICS_LISTEN", metrics)
            .env("VESTIBULE_WORKER_BATCH", "40")
            .env("VESTIBULE_WORKER_CLAIM_IDLE_MS", "1000")
            .env("VESTIBULE_WORKER_RETRY_BASE_MS", "20")
            .env("VESTIBULE_WORKER_RETRY_MAX_MS", "200")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the vestibule binary");
        Self(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill(); // SIGKILL on unix: no cleanup, no rollback by us.
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn a_worker_killed_in_the_middle_of_a_batch_loses_and_doubles_nothing(db: Db) {
    let sale = SaleApp::spawn(Backend::Redis, db).await;
    sale.put_inventory(json!([{"sku": "seat", "quantity": 150}]))
        .await;
    let slow = if sale.db.is_postgres() {
        // Each decrement takes 3 ms, so a batch stays open long enough to be killed in.
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(0.003); RETURN NEW; END $$; \
         CREATE TRIGGER slow BEFORE UPDATE ON inventory FOR EACH ROW EXECUTE FUNCTION slow();"
    } else {
        // SQLite has no sleep: burn a few ms of CPU per decrement instead.
        "CREATE TRIGGER slow BEFORE UPDATE ON inventory BEGIN \
         SELECT count(*) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
         WHERE i < 20000) SELECT i FROM n); END;"
    };
    sale.db.execute(slow).await;
    let tokens = sale.admitted_many(400).await;
    let ids = reserve_all(&sale, &tokens, "seat").await;
    let redis_url = sale.app.redis.as_ref().unwrap().url();

    // Wait for a committed batch and another one in flight, then kill. The kill can still land
    // between two batches (the one seen in flight committed and was acknowledged just before):
    // then nothing is left with the dead worker, and another one is started and killed.
    let mut attempts = 0;
    let backlog = loop {
        attempts += 1;
        let mut worker = WorkerProcess::start(&redis_url, &sale.db.url, "127.0.0.1:0");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let applied = sale.db.rows().await.len();
            let pending = sale.backlog().await.pending;
            if applied > 0 && pending > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the worker never got going");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worker.kill();
        let backlog = sale.backlog().await;
        if backlog.pending > 0 {
            break backlog;
        }
        assert!(
            attempts < 5,
            "no kill left entries with the dead worker: {backlog:?}"
        );
    };
    let at_kill = sale.db.rows().await.len();
    assert!(at_kill < ids.len(), "killed before the end");

    // Another worker takes over the dead one's entries once they have been idle long enough.
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _second = WorkerProcess::start(&redis_url, &sale.db.url, &metrics_addr.to_string());
    assert!(
        sale.drained(Duration::from_secs(90)).await,
        "{:?}",
        sale.backlog().await
    );
    // `vestibule worker` serves its own metrics: it wrote every result the dead one had not.
    let metrics = sale
        .app
        .http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let processed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vestibule_worker_processed_total{event=\"sale\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert_eq!(processed, backlog.lag + backlog.pending, "{metrics}");

    let (confirmed, rejected) = assert_exactly_once(&sale, &tokens, &ids, "seat", 150).await;
    assert_eq!(confirmed, 150);
    assert_eq!(rejected, HashMap::from([("sold_out".to_owned(), 250)]));
    assert_eq!(sale.backlog().await.dead, 0);
}

mod crashes {
    use crate::sales::Db;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_reservations_pending_across_a_redis_restart_are_all_applied_once() {
        super::reservations_pending_across_a_redis_restart_are_all_applied_once(Db::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_reservations_pending_across_a_redis_restart_are_all_applied_once() {
        super::reservations_pending_across_a_redis_restart_are_all_applied_once(Db::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_worker_killed_in_the_middle_of_a_batch_loses_and_doubles_nothing() {
        super::a_worker_killed_in_the_middle_of_a_batch_loses_and_doubles_nothing(Db::Postgres)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_worker_killed_in_the_middle_of_a_batch_loses_and_doubles_nothing() {
        super::a_worker_killed_in_the_middle_of_a_batch_loses_and_doubles_nothing(Db::Sqlite).await;
    }
}

// === the database alone ===

async fn applying_the_same_batch_twice_changes_nothing(db: Db) {
    use vestibule::inventory::{Applied, Database};
    use vestibule::store::reservations::{Item, Queued};

    let test_db = crate::sales::TestDb::create(db).await;
    let database = Database::connect(&test_db.url).await.unwrap();
    let event = SaleApp::event();
    database
        .set_totals(&event, &[("seat".into(), 3), ("scarf".into(), 1)], "test")
        .await
        .unwrap();
    let order = |id: &str, person: &str, items: &[(&str, u32)]| Queued {
        id: id.into(),
        person: person.into(),
        items: items
            .iter()
            .map(|(sku, quantity)| Item {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
        work_id: format!("w-{id}"),
        created_ms: 1,
    };
    let lanes = vec![
        vec![
            order("r1", "a", &[("seat", 2)]),
            order("r2", "a", &[("seat", 2)]),
        ],
        vec![order("r3", "b", &[("seat", 1), ("scarf", 1)])],
        vec![order("r4", "c", &[("scarf", 1)])],
        vec![order("r5", "d", &[("nope", 1)])],
    ];
    let first = database.apply_batch(&event, &lanes, None).await.unwrap();
    let outcome = |a: &Applied| match a {
        Applied::Done(o) => (o.state.as_str().to_owned(), o.reason.clone()),
        other => panic!("not applied: {other:?}"),
    };
    let states: Vec<Vec<_>> = first
        .iter()
        .map(|lane| lane.iter().map(outcome).collect())
        .collect();
    let confirmed = ("confirmed".to_owned(), None);
    let rejected = |why: &str| ("rejected".to_owned(), Some(why.to_owned()));
    assert_eq!(
        states,
        vec![
            vec![confirmed.clone(), rejected("sold_out")],
            vec![confirmed.clone()],
            vec![rejected("sold_out")],
            vec![rejected("invalid_sku")],
        ]
    );
    let remaining = |stock: Vec<vestibule::inventory::Stock>| -> Vec<(String, i64, i64)> {
        stock
            .into_iter()
            .map(|s| (s.sku, s.held, s.remaining))
            .collect()
    };
    let stock = remaining(database.inventory(&event).await.unwrap());
    assert_eq!(stock, vec![("scarf".into(), 1, 0), ("seat".into(), 3, 0)]);

    // Redelivered (with stock added meanwhile): the same answers, no change.
    database
        .set_totals(&event, &[("scarf".into(), 6)], "test")
        .await
        .unwrap();
    let again = database.apply_batch(&event, &lanes, None).await.unwrap();
    assert_eq!(again, first);
    let stock = remaining(database.inventory(&event).await.unwrap());
    assert_eq!(stock, vec![("scarf".into(), 1, 5), ("seat".into(), 3, 0)]);
    assert_eq!(test_db.rows().await.len(), 5);
}

mod database {
    use crate::sales::Db;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_applying_the_same_batch_twice_changes_nothing() {
        super::applying_the_same_batch_twice_changes_nothing(Db::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_applying_the_same_batch_twice_changes_nothing() {
        super::applying_the_same_batch_twice_changes_nothing(Db::Sqlite).await;
    }
}
