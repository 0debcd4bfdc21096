//! The inventory database: stock per event and SKU, and the reservations applied against it.
//! The gateway's admin inventory API reads and sets the stock; the worker applies reservations
//! (both use it, so it belongs to neither). PostgreSQL in production, SQLite as the embedded
//! default, through sqlx's `Any` driver so the conditional writes are written once; each
//! dialect has its own migrations (`src/inventory/migrations/`), run at start.
//!
//! A batch of reservations is applied in one database transaction (one commit, one fsync, for
//! up to a few hundred reservations), and every reservation inside it is atomic on its own: its
//! conditional decrements and its row either all count or none does (see [`apply_one`]). The
//! row's primary key is the reservation id, so a redelivered entry changes nothing.
//!
//! The model (DESIGN §19): per SKU, `total` (set by operators, audited), `held` (units of
//! confirmed reservations) and `sold` (units of completed ones); `remaining = total - held -
//! sold` is derived, never stored. Operators write only `total`, the worker only `held` and
//! `sold`, each with a conditional `UPDATE`, so neither can overwrite the other's change.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Row};

use crate::event::EventId;
use crate::store::reservations::{encode_items, Item, Queued, ReservationState};

static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("src/inventory/migrations/postgres");
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("src/inventory/migrations/sqlite");

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or the transaction could not complete: retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A statement failed (a constraint, a trigger, a bad value): retrying may not help.
    #[error("database error: {0}")]
    Statement(String),
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Database(db) => Self::Statement(db.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Postgres,
    Sqlite,
}

/// The final state of an applied reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `Confirmed` or `Rejected`.
    pub state: ReservationState,
    /// Why it was rejected: `sold_out` or `invalid_sku`.
    pub reason: Option<String>,
    /// When a confirmed reservation's hold ends by itself (unix ms); `None`: never.
    pub hold_expires_at_ms: Option<i64>,
}

/// What became of one reservation of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Committed (now, or by an earlier delivery: the same outcome).
    Done(Outcome),
    /// Its own statements failed; the rest of the batch went on.
    Failed(String),
    /// Not tried: an older reservation of the same person failed first.
    Blocked,
}

/// One SKU's stock: `remaining = total - held - sold`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Stock {
    /// The SKU.
    pub sku: String,
    /// Units for sale, set by operators.
    pub total: i64,
    /// Units of confirmed reservations not yet completed (holds).
    pub held: i64,
    /// Units of completed reservations.
    pub sold: i64,
    /// Units nobody holds nor bought.
    pub remaining: i64,
}

/// One change an operator made to a SKU's `total`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StockChange {
    /// The SKU.
    pub sku: String,
    /// When (unix ms).
    pub at_ms: i64,
    /// Who (the operator's token id).
    pub by: String,
    /// The total before (none when the SKU was created).
    pub old_total: Option<i64>,
    /// The total after.
    pub new_total: i64,
}

/// Why a change of totals was refused.
#[derive(Debug, thiserror::Error)]
pub enum TotalsError {
    /// The new total is below what is held and sold.
    #[error("{sku}: total cannot go below held ({held}) + sold ({sold})")]
    BelowCommitted {
        /// The SKU refused.
        sku: String,
        /// Its held units.
        held: i64,
        /// Its sold units.
        sold: i64,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What an attempt to end a hold found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldEnd {
    /// This call ended it (its event).
    Ended {
        /// The reservation's event.
        event: String,
    },
    /// It had already ended the same way (a repeated call).
    Already {
        /// The reservation's event.
        event: String,
    },
    /// It ended another way first, or was never a hold (`rejected`).
    Over {
        /// The reservation's event.
        event: String,
        /// How it ended.
        state: ReservationState,
    },
    /// No such applied reservation (or not this person's).
    NotFound,
}

/// A pool on PostgreSQL or SQLite.
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
}

/// Connects the database (running its migrations).
pub async fn connect_database(url: &SecretString) -> anyhow::Result<Arc<Database>> {
    let shown = crate::config::redacted(url);
    Ok(Arc::new(
        Database::connect(url.expose_secret())
            .await
            .with_context(|| format!("connecting to the database at …{shown}"))?,
    ))
}

impl Database {
    /// Connects to `postgres://…` or `sqlite://…` (the file is created when missing) and runs
    /// the dialect's migrations.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, url.to_owned())
        } else if url.starts_with("sqlite:") {
            // Create the file when missing unless the URL says otherwise.
            let url = if url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else {
            return Err(DbError::Unavailable(format!(
                "unsupported database URL (postgres:// or sqlite://): {url}"
            )));
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            // SQLite has one writer anyway: one connection per process avoids busy upgrades
            // between our own connections; other processes wait on the busy timeout.
            .max_connections(if dialect == Dialect::Sqlite { 1 } else { 8 })
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        if dialect == Dialect::Sqlite {
            // WAL lets readers (the inventory GET) run beside the worker's writes.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let migrator = match dialect {
            Dialect::Postgres => &POSTGRES,
            Dialect::Sqlite => &SQLITE,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| DbError::Unavailable(format!("migrations: {e}")))?;
        Ok(Self { pool, dialect })
    }

    /// Succeeds when the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Sets the `total` of each SKU listed (others are left as they are), in one transaction
    /// with an audit entry per change made `by` an operator. Never below what is held and
    /// sold: the check is the `UPDATE`'s own condition, so it cannot race the worker (which
    /// moves units between `held` and `sold` and never writes `total`). Nothing changes when
    /// any SKU is refused.
    pub async fn set_totals(
        &self,
        event: &EventId,
        items: &[(String, i64)],
        by: &str,
    ) -> Result<(), TotalsError> {
        let now = crate::clock::now_ms() as i64;
        let mut tx = self.pool.begin().await.map_err(DbError::from)?;
        for (sku, total) in items {
            let created = sqlx::query(
                "INSERT INTO inventory (event, sku, total) VALUES ($1, $2, $3) \
                 ON CONFLICT (event, sku) DO NOTHING",
            )
            .bind(event.as_str())
            .bind(sku.as_str())
            .bind(*total)
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?
            .rows_affected()
                == 1;
            let old = if created {
                None
            } else {
                // Lock the row first (a write takes SQLite's write lock too), so the total
                // read for the audit is the one the update replaces.
                sqlx::query("UPDATE inventory SET total = total WHERE event = $1 AND sku = $2")
                    .bind(event.as_str())
                    .bind(sku.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(DbError::from)?;
                let row = sqlx::query(
                    "SELECT total, held, sold FROM inventory WHERE event = $1 AND sku = $2",
                )
                .bind(event.as_str())
                .bind(sku.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(DbError::from)?;
                let (old, held, sold): (i64, i64, i64) = (
                    row.try_get(0).map_err(DbError::from)?,
                    row.try_get(1).map_err(DbError::from)?,
                    row.try_get(2).map_err(DbError::from)?,
                );
                let changed = sqlx::query(
                    "UPDATE inventory SET total = $1 \
                     WHERE event = $2 AND sku = $3 AND held + sold <= $4",
                )
                .bind(*total)
                .bind(event.as_str())
                .bind(sku.as_str())
                .bind(*total)
                .execute(&mut *tx)
                .await
                .map_err(DbError::from)?
                .rows_affected();
                if changed == 0 {
                    return Err(TotalsError::BelowCommitted {
                        sku: sku.clone(),
                        held,
                        sold,
                    });
                }
                if old == *total {
                    continue;
                }
                Some(old)
            };
            sqlx::query(
                "INSERT INTO inventory_audit (event, sku, at_ms, actor, old_total, new_total) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(event.as_str())
            .bind(sku.as_str())
            .bind(now)
            .bind(by)
            .bind(old)
            .bind(*total)
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?;
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }

    /// Every SKU of an event, by SKU.
    pub async fn inventory(&self, event: &EventId) -> Result<Vec<Stock>, DbError> {
        let rows = sqlx::query(
            "SELECT sku, total, held, sold FROM inventory WHERE event = $1 ORDER BY sku",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (total, held, sold) = (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
                Ok(Stock {
                    sku: r.try_get(0)?,
                    total,
                    held,
                    sold,
                    remaining: total - held - sold,
                })
            })
            .collect()
    }

    /// The newest `limit` changes operators made to an event's inventory, newest first.
    pub async fn inventory_audit(
        &self,
        event: &EventId,
        limit: i64,
    ) -> Result<Vec<StockChange>, DbError> {
        let rows = sqlx::query(
            "SELECT sku, at_ms, actor, old_total, new_total FROM inventory_audit \
             WHERE event = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(event.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StockChange {
                    sku: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    by: r.try_get(2)?,
                    old_total: r.try_get(3)?,
                    new_total: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// The outcome of a reservation already applied, if any.
    pub async fn outcome(&self, id: &str) -> Result<Option<Outcome>, DbError> {
        let mut conn = self.pool.acquire().await?;
        existing(&mut conn, id).await
    }

    /// Counts of applied reservations of an event by state, and confirmed units by SKU: what
    /// the inventory must agree with.
    pub async fn applied(&self, event: &EventId) -> Result<AppliedSummary, DbError> {
        let rows = sqlx::query("SELECT state, reason, items FROM reservations WHERE event = $1")
            .bind(event.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut summary = AppliedSummary::default();
        for row in rows {
            let state: String = row.try_get(0)?;
            let reason: Option<String> = row.try_get(1)?;
            let items: String = row.try_get(2)?;
            if state == "confirmed" {
                summary.confirmed += 1;
                for item in crate::store::reservations::decode_items(&items).unwrap_or_default() {
                    *summary.units.entry(item.sku).or_default() += i64::from(item.quantity);
                }
            } else {
                *summary
                    .rejected
                    .entry(reason.unwrap_or_default())
                    .or_default() += 1;
            }
        }
        Ok(summary)
    }

    /// Ends a hold the way `how` says (`Completed` by the backend, `Released` by a cancel), if
    /// it is still a hold: one conditional row update (`… WHERE state = 'confirmed' AND` not
    /// past its time) decides, so a complete racing expiry or another call has one winner, and
    /// the units move (held → sold, or held → remaining) in the same transaction, exactly once.
    /// `owner`: only the reservation of that person of that event may be ended (a cancel by
    /// its maker); `None`: any (the backend).
    pub async fn end_hold(
        &self,
        id: &str,
        how: ReservationState,
        owner: Option<(&EventId, &str)>,
    ) -> Result<HoldEnd, DbError> {
        let (event, person) = owner.map_or(("", ""), |(e, p)| (e.as_str(), p));
        let now = crate::clock::now_ms() as i64;
        let mut tx = self.pool.begin().await?;
        let won = sqlx::query(
            "UPDATE reservations SET state = $1, ended_at_ms = $2, synced = FALSE \
             WHERE id = $3 AND state = 'confirmed' \
             AND (hold_expires_at_ms IS NULL OR hold_expires_at_ms > $4) \
             AND ($5 = '' OR (person = $6 AND event = $7)) \
             RETURNING event, items",
        )
        .bind(how.as_str())
        .bind(now)
        .bind(id)
        .bind(now)
        .bind(person)
        .bind(person)
        .bind(event)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = won {
            let event: String = row.try_get(0)?;
            let items: String = row.try_get(1)?;
            move_units(&mut tx, &event, &items, how).await?;
            tx.commit().await?;
            return Ok(HoldEnd::Ended { event });
        }
        let row = sqlx::query("SELECT event, person, state FROM reservations WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.rollback().await?;
        let Some(row) = row else {
            return Ok(HoldEnd::NotFound);
        };
        let (event, maker, state): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if owner.is_some_and(|(e, p)| e.as_str() != event || p != maker) {
            return Ok(HoldEnd::NotFound);
        }
        Ok(match state.as_str() {
            s if s == how.as_str() => HoldEnd::Already { event },
            // Past its time but not yet expired by a worker: it lost all the same.
            "confirmed" => HoldEnd::Over {
                event,
                state: ReservationState::Expired,
            },
            other => HoldEnd::Over {
                event,
                state: ReservationState::parse(other)
                    .ok_or_else(|| DbError::Statement(format!("state {other} of {id}")))?,
            },
        })
    }

    /// Expires up to `limit` holds of an event past their time (by `now`), returning their
    /// units, in one transaction; answers how many. Safe on every worker at once: each row
    /// changes only from `confirmed`, and on PostgreSQL rows another worker is expiring are
    /// skipped rather than waited for.
    pub async fn expire_holds(
        &self,
        event: &EventId,
        now: i64,
        limit: i64,
    ) -> Result<usize, DbError> {
        let skip = if self.dialect == Dialect::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE reservations SET state = 'expired', ended_at_ms = $1, synced = FALSE \
             WHERE id IN (SELECT id FROM reservations WHERE event = $2 AND state = 'confirmed' \
             AND hold_expires_at_ms <= $3 ORDER BY hold_expires_at_ms LIMIT $4{skip}) \
             AND state = 'confirmed' RETURNING items"
        );
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(event.as_str())
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut units: HashMap<String, i64> = HashMap::new();
        for row in &rows {
            let items: String = row.try_get(0)?;
            for item in crate::store::reservations::decode_items(&items).unwrap_or_default() {
                *units.entry(item.sku).or_default() += i64::from(item.quantity);
            }
        }
        // In SKU order, as every writer takes inventory rows, so no two deadlock.
        let mut units: Vec<(String, i64)> = units.into_iter().collect();
        units.sort();
        for (sku, q) in units {
            release(&mut tx, event.as_str(), &sku, q).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Up to `limit` holds of an event that ended in the database and are not yet shown in the
    /// store: `(id, state)`.
    pub async fn unsynced(
        &self,
        event: &EventId,
        limit: i64,
    ) -> Result<Vec<(String, ReservationState)>, DbError> {
        let rows = sqlx::query(
            "SELECT id, state FROM reservations WHERE event = $1 AND NOT synced LIMIT $2",
        )
        .bind(event.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get(1)?;
                Ok((
                    r.try_get(0)?,
                    ReservationState::parse(&state)
                        .ok_or_else(|| DbError::Statement(format!("state {state}")))?,
                ))
            })
            .collect()
    }

    /// Records that these ended holds are shown in the store.
    pub async fn mark_synced(&self, ids: &[String]) -> Result<(), DbError> {
        for chunk in ids.chunks(500) {
            let placeholders = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("UPDATE reservations SET synced = TRUE WHERE id IN ({placeholders})");
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Applies `lanes` in one transaction. A lane is one person's reservations, oldest first:
    /// a reservation whose elder failed is not tried (`Blocked`), so a person's reservations
    /// take effect in the order they were made. Answers one result per reservation, in order.
    /// `Err` means nothing was committed (the database is unreachable or the commit failed).
    /// Confirmed reservations hold their units until `hold_until` (unix ms; `None`: forever).
    ///
    /// Fast path: no savepoints. If any statement fails, the transaction is rolled back and the
    /// batch runs again with a savepoint around each reservation, so one poison reservation
    /// costs its own work, not its neighbours'.
    pub async fn apply_batch(
        &self,
        event: &EventId,
        lanes: &[Vec<Queued>],
        hold_until: Option<i64>,
    ) -> Result<Vec<Vec<Applied>>, DbError> {
        let mut conn = self.pool.acquire().await?;
        match self
            .apply_in_tx(&mut conn, event, lanes, hold_until, false)
            .await
        {
            Ok(results) => Ok(results),
            Err(DbError::Statement(cause)) => {
                tracing::debug!(%cause, "a statement failed; applying the batch with savepoints");
                self.apply_in_tx(&mut conn, event, lanes, hold_until, true)
                    .await
            }
            Err(err) => Err(err),
        }
    }

    async fn apply_in_tx(
        &self,
        conn: &mut AnyConnection,
        event: &EventId,
        lanes: &[Vec<Queued>],
        hold_until: Option<i64>,
        careful: bool,
    ) -> Result<Vec<Vec<Applied>>, DbError> {
        let mut tx = conn.begin().await?;
        let known = known_skus(&mut tx, event, lanes, self.dialect).await?;
        let results = if careful {
            apply_careful(&mut tx, event, lanes, hold_until).await?
        } else {
            // Any failure here rolls the whole transaction back (dropping `tx`).
            apply_fast(&mut tx, event, lanes, &known, hold_until).await?
        };
        tx.commit().await?;
        Ok(results)
    }
}

/// One savepoint per reservation: a reservation whose statements fail is rolled back alone
/// and the rest of its person's lane is not tried.
async fn apply_careful(
    tx: &mut AnyConnection,
    event: &EventId,
    lanes: &[Vec<Queued>],
    hold_until: Option<i64>,
) -> Result<Vec<Vec<Applied>>, DbError> {
    let mut results = Vec::with_capacity(lanes.len());
    for lane in lanes {
        let mut lane_results = Vec::with_capacity(lane.len());
        let mut blocked = false;
        for reservation in lane {
            if blocked {
                lane_results.push(Applied::Blocked);
                continue;
            }
            let mut savepoint = tx.begin().await?;
            let applied = match apply_one(&mut savepoint, event, reservation, hold_until).await {
                Ok(outcome) => {
                    savepoint.commit().await?;
                    Applied::Done(outcome)
                }
                Err(DbError::Statement(cause)) => {
                    savepoint.rollback().await?;
                    Applied::Failed(cause)
                }
                Err(err) => return Err(err),
            };
            blocked = matches!(applied, Applied::Failed(_));
            lane_results.push(applied);
        }
        results.push(lane_results);
    }
    Ok(results)
}

/// A reservation decided by [`apply_fast`], before its row is written.
struct Decided<'a> {
    reservation: &'a Queued,
    reason: Option<&'static str>,
    taken: Vec<&'a Item>,
}

/// The fast path: the same effects as [`apply_one`] for each reservation in lane order, with
/// fewer round trips. Each item is still one conditional decrement (taken back if a later item
/// of the same reservation does not fit), but:
/// - SKUs are classified once per batch (`known`: rows that exist, locked on PostgreSQL), so a
///   rejection needs no extra query;
/// - once a decrement of `q` units of a SKU failed, no later reservation of `q` or more units
///   of it is tried in this transaction (we hold its row: it cannot grow, except by our own
///   take-backs, which reset this);
/// - the rows of the whole batch are written by one `INSERT … ON CONFLICT (id) DO NOTHING
///   RETURNING id`; a reservation whose row already existed (a redelivery) gets its taken
///   units back and answers the earlier outcome.
async fn apply_fast(
    tx: &mut AnyConnection,
    event: &EventId,
    lanes: &[Vec<Queued>],
    known: &HashSet<String>,
    hold_until: Option<i64>,
) -> Result<Vec<Vec<Applied>>, DbError> {
    let mut short: HashMap<&str, u32> = HashMap::new();
    let mut decided: Vec<Decided> = Vec::new();
    for reservation in lanes.iter().flatten() {
        let mut items: Vec<&Item> = reservation.items.iter().collect();
        items.sort_by(|a, b| a.sku.cmp(&b.sku));
        let mut taken = Vec::with_capacity(items.len());
        let mut reason = None;
        for item in items {
            if !known.contains(&item.sku) {
                reason = Some("invalid_sku");
                break;
            }
            if short
                .get(item.sku.as_str())
                .is_some_and(|&q| item.quantity >= q)
            {
                reason = Some("sold_out");
                break;
            }
            if !take(tx, event, item).await? {
                let q = short.entry(item.sku.as_str()).or_insert(item.quantity);
                *q = (*q).min(item.quantity);
                reason = Some("sold_out");
                break;
            }
            taken.push(item);
        }
        if reason.is_some() {
            put_back(tx, event, &taken).await?;
            for item in &taken {
                short.remove(item.sku.as_str());
            }
            taken.clear();
        }
        decided.push(Decided {
            reservation,
            reason,
            taken,
        });
    }

    let mut inserted: HashSet<String> = HashSet::new();
    for chunk in decided.chunks(500) {
        inserted.extend(insert_rows(tx, event, chunk, hold_until).await?);
    }
    let mut outcomes: HashMap<&str, Outcome> = HashMap::new();
    for d in &decided {
        let id = d.reservation.id.as_str();
        let outcome = if inserted.contains(id) {
            Outcome {
                state: if d.reason.is_some() {
                    ReservationState::Rejected
                } else {
                    ReservationState::Confirmed
                },
                reason: d.reason.map(str::to_owned),
                hold_expires_at_ms: hold_until.filter(|_| d.reason.is_none()),
            }
        } else {
            put_back(tx, event, &d.taken).await?;
            existing(tx, id)
                .await?
                .ok_or_else(|| DbError::Statement(format!("reservation {id} vanished")))?
        };
        outcomes.insert(id, outcome);
    }
    Ok(lanes
        .iter()
        .map(|lane| {
            lane.iter()
                .map(|r| match outcomes.get(r.id.as_str()) {
                    Some(outcome) => Applied::Done(outcome.clone()),
                    None => Applied::Blocked,
                })
                .collect()
        })
        .collect())
}

/// The conditional decrement of one item; true if it fitted.
async fn take(conn: &mut AnyConnection, event: &EventId, item: &Item) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE inventory SET held = held + $1 \
         WHERE event = $2 AND sku = $3 AND total - held - sold >= $4",
    )
    .bind(i64::from(item.quantity))
    .bind(event.as_str())
    .bind(item.sku.as_str())
    .bind(i64::from(item.quantity))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Writes the rows of decided reservations; answers the ids actually inserted (the others
/// existed already).
async fn insert_rows(
    conn: &mut AnyConnection,
    event: &EventId,
    decided: &[Decided<'_>],
    hold_until: Option<i64>,
) -> Result<Vec<String>, DbError> {
    if decided.is_empty() {
        return Ok(Vec::new());
    }
    let values = (0..decided.len())
        .map(|i| {
            let b = i * 9;
            let list = (1..=9)
                .map(|k| format!("${}", b + k))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({list})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO reservations \
         (id, event, person, items, state, reason, created_at_ms, applied_at_ms, \
          hold_expires_at_ms) \
         VALUES {values} ON CONFLICT (id) DO NOTHING RETURNING id"
    );
    let now = crate::clock::now_ms() as i64;
    let mut query = sqlx::query(&sql);
    for d in decided {
        let state = if d.reason.is_some() {
            ReservationState::Rejected
        } else {
            ReservationState::Confirmed
        };
        query = query
            .bind(d.reservation.id.as_str())
            .bind(event.as_str())
            .bind(d.reservation.person.as_str())
            .bind(encode_items(&d.reservation.items))
            .bind(state.as_str())
            .bind(d.reason)
            .bind(d.reservation.created_ms as i64)
            .bind(now)
            .bind(hold_until.filter(|_| d.reason.is_none()));
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(DbError::from))
        .collect()
}

/// What the reservations table says of an event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedSummary {
    /// Confirmed reservations.
    pub confirmed: u64,
    /// Rejected reservations by reason.
    pub rejected: HashMap<String, u64>,
    /// Confirmed units by SKU.
    pub units: HashMap<String, i64>,
}

/// The batch's SKUs that exist for the event. On PostgreSQL their rows are locked too, in SKU
/// order, before any is touched, so two workers' batches over the same SKUs queue behind each
/// other instead of deadlocking (and no row can vanish under us). SQLite has one writer.
async fn known_skus(
    conn: &mut AnyConnection,
    event: &EventId,
    lanes: &[Vec<Queued>],
    dialect: Dialect,
) -> Result<HashSet<String>, DbError> {
    let skus: BTreeSet<&str> = lanes
        .iter()
        .flatten()
        .flat_map(|r| r.items.iter().map(|i| i.sku.as_str()))
        .collect();
    let lock = if dialect == Dialect::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let mut known = HashSet::new();
    for chunk in skus.into_iter().collect::<Vec<_>>().chunks(500) {
        let placeholders = (2..chunk.len() + 2)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT sku FROM inventory WHERE event = $1 AND sku IN ({placeholders}) \
             ORDER BY sku{lock}"
        );
        let mut query = sqlx::query(&sql).bind(event.as_str());
        for sku in chunk {
            query = query.bind(*sku);
        }
        for row in query.fetch_all(&mut *conn).await? {
            known.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(known)
}

/// Applies one reservation on a connection inside a transaction (or savepoint):
/// 1. the conditional decrement of every item, in SKU order
///    (`… SET held = held + q WHERE … AND total - held - sold >= q`);
/// 2. if one cannot be applied, the items already taken are put back (we still hold their
///    rows, so this is exact) and the reservation is rejected: `invalid_sku` when the SKU has
///    no inventory row for the event, else `sold_out`;
/// 3. the reservation row, `ON CONFLICT (id) DO NOTHING`: if the row already exists an earlier
///    delivery applied it, so this delivery's decrements are put back and the earlier outcome
///    is answered. Effects are idempotent.
async fn apply_one(
    conn: &mut AnyConnection,
    event: &EventId,
    reservation: &Queued,
    hold_until: Option<i64>,
) -> Result<Outcome, DbError> {
    let mut items: Vec<&Item> = reservation.items.iter().collect();
    items.sort_by(|a, b| a.sku.cmp(&b.sku));
    let mut taken: Vec<&Item> = Vec::with_capacity(items.len());
    let mut reason = None;
    for item in items {
        if !take(conn, event, item).await? {
            let known = sqlx::query("SELECT 1 FROM inventory WHERE event = $1 AND sku = $2")
                .bind(event.as_str())
                .bind(item.sku.as_str())
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
            reason = Some(if known { "sold_out" } else { "invalid_sku" });
            break;
        }
        taken.push(item);
    }
    if reason.is_some() {
        put_back(conn, event, &taken).await?;
    }
    let state = if reason.is_some() {
        ReservationState::Rejected
    } else {
        ReservationState::Confirmed
    };
    let inserted = sqlx::query(
        "INSERT INTO reservations \
         (id, event, person, items, state, reason, created_at_ms, applied_at_ms, \
          hold_expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
    )
    .bind(reservation.id.as_str())
    .bind(event.as_str())
    .bind(reservation.person.as_str())
    .bind(encode_items(&reservation.items))
    .bind(state.as_str())
    .bind(reason)
    .bind(reservation.created_ms as i64)
    .bind(crate::clock::now_ms() as i64)
    .bind(hold_until.filter(|_| reason.is_none()))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Outcome {
            state,
            reason: reason.map(str::to_owned),
            hold_expires_at_ms: hold_until.filter(|_| reason.is_none()),
        });
    }
    if reason.is_none() {
        put_back(conn, event, &taken).await?;
    }
    existing(conn, &reservation.id)
        .await?
        .ok_or_else(|| DbError::Statement(format!("reservation {} vanished", reservation.id)))
}

/// Moves a reservation's units out of `held`: to `sold` when completed, back to `remaining`
/// otherwise; items in SKU order.
async fn move_units(
    conn: &mut AnyConnection,
    event: &str,
    items: &str,
    how: ReservationState,
) -> Result<(), DbError> {
    let mut items = crate::store::reservations::decode_items(items).unwrap_or_default();
    items.sort_by(|a, b| a.sku.cmp(&b.sku));
    for item in items {
        let q = i64::from(item.quantity);
        if how == ReservationState::Completed {
            sqlx::query(
                "UPDATE inventory SET held = held - $1, sold = sold + $2 \
                 WHERE event = $3 AND sku = $4",
            )
            .bind(q)
            .bind(q)
            .bind(event)
            .bind(item.sku.as_str())
            .execute(&mut *conn)
            .await?;
        } else {
            release(conn, event, &item.sku, q).await?;
        }
    }
    Ok(())
}

/// Gives `q` held units of a SKU back to `remaining`.
async fn release(conn: &mut AnyConnection, event: &str, sku: &str, q: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE inventory SET held = held - $1 WHERE event = $2 AND sku = $3")
        .bind(q)
        .bind(event)
        .bind(sku)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn put_back(
    conn: &mut AnyConnection,
    event: &EventId,
    items: &[&Item],
) -> Result<(), DbError> {
    for item in items {
        sqlx::query("UPDATE inventory SET held = held - $1 WHERE event = $2 AND sku = $3")
            .bind(i64::from(item.quantity))
            .bind(event.as_str())
            .bind(item.sku.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn existing(conn: &mut AnyConnection, id: &str) -> Result<Option<Outcome>, DbError> {
    let row =
        sqlx::query("SELECT state, reason, hold_expires_at_ms FROM reservations WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let state: String = row.try_get(0)?;
    Ok(Some(Outcome {
        state: ReservationState::parse(&state)
            .ok_or_else(|| DbError::Statement(format!("state {state} of {id}")))?,
        reason: row.try_get(1)?,
        hold_expires_at_ms: row.try_get(2)?,
    }))
}
