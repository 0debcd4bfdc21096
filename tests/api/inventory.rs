//! The inventory model (DESIGN §19): `total`, `held`, `sold`, `remaining`; operators change
//! `total` only, never below held + sold, audited; a database made by the first schema keeps
//! its numbers when migrated.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::migrate::Migrator;
use vestibule::inventory::{Database, Stock};

use crate::helpers::{temp_dir, ADMIN_TOKEN};
use crate::sales::{fast_worker, Db, SaleApp, TestDb};
use crate::{helpers::Backend, sales_matrix};

/// The first schema's migration alone, as a migrator (the same file, so the same checksum the
/// real migrator expects).
async fn first_schema(db: Db) -> Migrator {
    let dialect = match db {
        Db::Postgres => "postgres",
        Db::Sqlite => "sqlite",
    };
    let dir = temp_dir("first-schema");
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/inventory/migrations")
        .join(dialect)
        .join("0001_inventory.sql");
    std::fs::copy(&source, dir.join("0001_inventory.sql")).unwrap();
    Migrator::new(dir.as_path()).await.unwrap()
}

async fn a_database_made_by_the_first_schema_keeps_its_numbers(db: Db) {
    // Arrange: the first schema, with a sale under way (two confirmed orders, one rejected).
    let test_db = TestDb::create(db).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&if test_db.is_postgres() {
        test_db.url.clone()
    } else {
        format!("{}?mode=rwc", test_db.url)
    })
    .await
    .unwrap();
    first_schema(db).await.run(&pool).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO inventory VALUES ('sale', 'seat', 7), ('sale', 'scarf', 0), ('other', 'seat', 3);
         INSERT INTO reservations VALUES
           ('r1', 'sale', 'p', 'seat:2,scarf:1', 'confirmed', NULL, 1, 2),
           ('r2', 'sale', 'q', 'seat:1', 'confirmed', NULL, 1, 2),
           ('r3', 'sale', 'q', 'seat:9', 'rejected', 'sold_out', 1, 2);",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    // Act: the gateway starts on it (running the migrations).
    let database = Database::connect(&test_db.url).await.unwrap();

    // Assert: what remained remains; what was confirmed is held (a hold that never expires).
    let stock = |sku: &str, total, held| Stock {
        sku: sku.into(),
        total,
        held,
        sold: 0,
        remaining: total - held,
    };
    assert_eq!(
        database.inventory(&SaleApp::event()).await.unwrap(),
        vec![stock("scarf", 1, 1), stock("seat", 10, 3)]
    );
    let other = vestibule::event::EventId::parse("other").unwrap();
    assert_eq!(
        database.inventory(&other).await.unwrap(),
        vec![stock("seat", 3, 0)]
    );
    let rows: Vec<(String, String)> = test_db
        .rows()
        .await
        .into_iter()
        .map(|r| (r.id, r.state))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("r1".into(), "confirmed".into()),
            ("r2".into(), "confirmed".into()),
            ("r3".into(), "rejected".into())
        ]
    );
    let summary = database.applied(&SaleApp::event()).await.unwrap();
    assert_eq!(summary.units.get("seat"), Some(&3), "rows agree with held");
}

mod migrations {
    use crate::sales::Db;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_database_made_by_the_first_schema_keeps_its_numbers() {
        super::a_database_made_by_the_first_schema_keeps_its_numbers(Db::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_database_made_by_the_first_schema_keeps_its_numbers() {
        super::a_database_made_by_the_first_schema_keeps_its_numbers(Db::Sqlite).await;
    }
}

/// One SKU's line of the admin inventory.
async fn inventory(sale: &SaleApp, sku: &str) -> Value {
    let response = sale
        .app
        .http
        .get(sale.app.url("/admin/v1/events/sale/inventory"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["sku"] == sku)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Raising `total` while the workers confirm never oversells (the rows say so); lowering it
/// below held + sold is refused with 409 and changes nothing; every change is audited.
async fn an_operator_changing_total_while_the_worker_confirms_never_oversells(
    backend: Backend,
    db: Db,
) {
    // Arrange: 30 seats, 60 people wanting one each.
    let sale = SaleApp::spawn(backend, db).await;
    let (status, _) = sale
        .put_inventory(json!([{"sku": "seat", "total": 30}]))
        .await;
    assert_eq!(status, StatusCode::OK);
    let tokens = sale.admitted_many(60).await;
    sale.start_workers(2, fast_worker());

    // Act: the orders and the operator's raises (30 → 40 → 50) at the same time.
    let orders = async {
        let mut ids = Vec::new();
        for chunk in tokens.chunks(20) {
            let batch = futures::future::join_all(
                chunk
                    .iter()
                    .map(|token| sale.reserve_ok(token, "order", "seat", 1)),
            )
            .await;
            ids.extend(chunk.iter().zip(batch));
        }
        ids
    };
    let raises = async {
        for total in [40, 50] {
            let (status, body) = sale
                .put_inventory(json!([{"sku": "seat", "total": total}]))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    let (ids, ()) = tokio::join!(orders, raises);
    assert!(sale.drained(std::time::Duration::from_secs(60)).await);

    // Assert: confirmed units are exactly what is held, and never more than the total.
    let mut confirmed = 0;
    for (token, id) in &ids {
        if sale.settled(token, id).await["state"] == "confirmed" {
            confirmed += 1;
        }
    }
    let stock = inventory(&sale, "seat").await;
    assert_eq!(stock["total"], 50);
    assert_eq!(stock["held"], confirmed);
    assert_eq!(stock["sold"], 0);
    assert_eq!(stock["remaining"], 50 - confirmed);
    let summary = sale.database.applied(&SaleApp::event()).await.unwrap();
    assert_eq!(summary.units.get("seat").copied(), Some(confirmed));
    assert!((30..=50).contains(&confirmed), "{confirmed}");

    // Lowering below held + sold: 409, nothing changed.
    let (status, body) = sale
        .put_inventory(json!([{"sku": "seat", "total": 60}, {"sku": "belt", "total": 5}]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = sale
        .put_inventory(
            json!([{"sku": "belt", "total": 1}, {"sku": "seat", "total": confirmed - 1}]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "inventory_conflict");
    assert_eq!(
        inventory(&sale, "belt").await["total"],
        5,
        "belt kept its total"
    );
    assert_eq!(inventory(&sale, "seat").await["total"], 60);

    // Every change is in the audit, newest first, with who made it.
    let response = sale
        .app
        .http
        .get(sale.app.url("/admin/v1/events/sale/inventory/audit"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let audit: Value = response.json().await.unwrap();
    let changes: Vec<(String, Value, i64)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["by"].as_str().unwrap().starts_with("admin:"), "{e}");
            (
                e["sku"].as_str().unwrap().to_owned(),
                e["old_total"].clone(),
                e["new_total"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("belt".into(), Value::Null, 5),
            ("seat".into(), json!(50), 60),
            ("seat".into(), json!(40), 50),
            ("seat".into(), json!(30), 40),
            ("seat".into(), Value::Null, 30),
        ]
    );
}

sales_matrix!(an_operator_changing_total_while_the_worker_confirms_never_oversells);
