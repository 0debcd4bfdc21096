//! The worker (DESIGN semantics 10): reads each event's work stream with a consumer group,
//! applies reservations to the database with conditional writes, writes results back, acks.
//!
//! - At-least-once delivery, idempotent effects: a redelivered entry finds its row (unique on
//!   the reservation id) and changes nothing, so crashes anywhere only cost time.
//! - A batch is one database transaction (see [`crate::inventory`]); results are written back after the
//!   commit, then the entries are acknowledged in the same store step.
//! - Failures: an entry whose own statements failed stays pending and is retried with backoff
//!   (`next_batch` takes it back after `base * 2^(deliveries-1)`); once it has been delivered
//!   `max_deliveries` times it goes to the dead-letter stream. When the database as a whole is
//!   unreachable nothing is dead-lettered (an outage is not the entries' fault): the worker
//!   backs off and the entries wait.
//! - A dead worker's entries are taken over by the others after `claim_idle_ms` (XAUTOCLAIM).
//!
//! Per-person order. Entries of one person can reach different workers, in different batches,
//! so delivery order alone proves nothing. Each person's pending reservations sit, oldest
//! first, in their own stream; a reservation leaves it only when settled. A worker applying a
//! person's entry first applies every older reservation still in that person's stream, in
//! order, in the same transaction ("help ahead"): an older reservation held by another worker
//! is then applied by whichever commits first, and the other finds its row and changes
//! nothing. We chose this over routing people to fixed workers (which ties the worker count
//! to the routing and stalls a person behind a dead worker) and over waiting for the head to be
//! settled elsewhere (which adds a retry delay to every person with two orders in flight).

pub mod config;
pub mod metrics;
pub mod process;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::WorkerArgs;
use crate::event::EventId;
use crate::inventory::{Applied, Database, DbError, Outcome};
use crate::store::reservations::{
    ClaimPolicy, Delivery, Queued, ReservationState, Reservations, Settlement,
};
use crate::store::Store;
use metrics::WorkerMetrics;

/// How long an idle worker waits before reading again.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// How often the list of events and the backlog gauges are refreshed.
const REFRESH: Duration = Duration::from_secs(1);

/// How often an idle worker looks for holds to expire or show (two database queries per
/// event): often enough for a one-second hold, rare enough that idle workers leave the
/// database alone. While there is such work it is done without waiting.
const HOLDS_EVERY: Duration = Duration::from_millis(200);

/// Longest pause after the store or the database failed as a whole.
const MAX_OUTAGE_BACKOFF: Duration = Duration::from_secs(5);

/// One consumer of every event's work stream.
pub struct Worker {
    /// The work streams.
    pub reservations: Arc<dyn Reservations>,
    /// Lists the events.
    pub store: Arc<dyn Store>,
    /// Inventory and applied reservations.
    pub database: Arc<Database>,
    /// This consumer's name in the group: unique per worker.
    pub consumer: String,
    /// Batch size, retries, claim timeout.
    pub settings: WorkerArgs,
    /// Where the worker counts.
    pub metrics: Arc<WorkerMetrics>,
}

/// A consumer name unique to this process and index: host, process id, a random suffix.
pub fn consumer_name(index: u32) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!(
        "{host}-{}-{:04x}-{index}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Why a step stopped early; its entries stay pending.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The database failed as a whole.
    #[error(transparent)]
    Database(#[from] DbError),
}

// === impl Worker ===

impl Worker {
    /// Runs until `stop` is cancelled (the current batch finishes first).
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(consumer = %self.consumer, "worker started");
        let mut events: Vec<EventId> = Vec::new();
        let mut refreshed: Option<Instant> = None;
        let mut holds_checked: Option<Instant> = None;
        let mut outage = Duration::ZERO;
        while !stop.is_cancelled() {
            if refreshed.is_none_or(|at| at.elapsed() >= REFRESH) {
                match self.store.list_events().await {
                    Ok(list) => events = list,
                    Err(err) => tracing::warn!(error = %err, "cannot list events"),
                }
                for event in &events {
                    self.observe_backlog(event).await;
                }
                refreshed = Some(Instant::now());
            }
            let mut busy = false;
            let mut failed = false;
            let holds_due = holds_checked.is_none_or(|at| at.elapsed() >= HOLDS_EVERY);
            let mut holds_left = false;
            for event in &events {
                let done = match self.step(event).await {
                    Ok(n) if holds_due => self.end_holds(event).await.map(|m| {
                        holds_left |= m > 0;
                        n + m
                    }),
                    other => other,
                };
                match done {
                    Ok(n) => busy |= n > 0,
                    Err(err) => {
                        tracing::warn!(%event, error = %err, "batch failed; entries stay pending");
                        failed = true;
                    }
                }
            }
            if holds_due && !holds_left {
                holds_checked = Some(Instant::now());
            }
            let pause = if failed {
                outage = (outage * 2).clamp(Duration::from_millis(50), MAX_OUTAGE_BACKOFF);
                outage
            } else {
                outage = Duration::ZERO;
                if busy {
                    continue;
                }
                IDLE_POLL
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(consumer = %self.consumer, "worker stopped");
    }

    async fn observe_backlog(&self, event: &EventId) {
        self.metrics.know_event(event.as_str());
        if let Ok(backlog) = self.reservations.backlog(event).await {
            let label = [event.as_str()];
            self.metrics
                .lag
                .with_label_values(&label)
                .set(backlog.lag as i64);
            self.metrics
                .pending
                .with_label_values(&label)
                .set(backlog.pending as i64);
        }
    }

    fn policy(&self) -> ClaimPolicy {
        self.settings.policy()
    }

    /// Reads one batch of an event and applies it; answers how many entries it read.
    pub async fn step(&self, event: &EventId) -> Result<usize, StepError> {
        let started = Instant::now();
        let deliveries = self
            .reservations
            .next_batch(
                event,
                &self.consumer,
                self.settings.batch as usize,
                self.policy(),
            )
            .await?;
        if deliveries.is_empty() {
            return Ok(0);
        }
        let mine = self.dead_letter_malformed(event, &deliveries).await?;
        let lanes = self.lanes(event, &mine).await?;
        let hold_ttl_secs = self
            .store
            .get_event(event)
            .await?
            .map_or(0, |config| config.hold_ttl_secs);
        let hold_until =
            (hold_ttl_secs > 0).then(|| now_ms() as i64 + i64::from(hold_ttl_secs) * 1000);
        let results = self.database.apply_batch(event, &lanes, hold_until).await?;
        let settlements = self.settlements(event, &mine, &lanes, results).await?;
        let written: HashSet<String> = self
            .reservations
            .settle(event, &settlements)
            .await?
            .into_iter()
            .collect();
        self.count_written(event, &lanes, &settlements, &written);
        self.metrics
            .batch_seconds
            .with_label_values(&[event.as_str()])
            .observe(started.elapsed().as_secs_f64());
        Ok(deliveries.len())
    }

    /// Expires the event's holds past their time (one database transaction returns their
    /// units), then shows every hold that ended in the database (expired here, completed or
    /// cancelled through the API) in the store, and only then marks it shown: a crash anywhere
    /// leaves either nothing done or a hold ended and not yet shown, which the next call (on
    /// any worker) finishes. Answers how many holds it touched.
    pub async fn end_holds(&self, event: &EventId) -> Result<usize, StepError> {
        let limit = i64::from(self.settings.batch);
        let expired = self
            .database
            .expire_holds(event, now_ms() as i64, limit)
            .await?;
        let ended = self.database.unsynced(event, limit).await?;
        for (id, state) in &ended {
            self.reservations.end_hold(event, id, *state).await?;
        }
        let ids: Vec<String> = ended.into_iter().map(|(id, _)| id).collect();
        self.database.mark_synced(&ids).await?;
        Ok(expired + ids.len())
    }

    /// Entries that cannot be decoded will never succeed: gives them up at once (dead-letter
    /// stream) and answers the others.
    async fn dead_letter_malformed<'d>(
        &self,
        event: &EventId,
        deliveries: &'d [Delivery],
    ) -> Result<Vec<&'d Delivery>, StepError> {
        let mut mine: Vec<&Delivery> = Vec::new();
        for delivery in deliveries {
            if delivery.entry.is_some() {
                mine.push(delivery);
            } else {
                tracing::error!(%event, work_id = %delivery.work_id, raw = ?delivery.raw, "malformed work entry");
                self.reservations
                    .dead_letter(event, delivery, "malformed work entry")
                    .await?;
                self.metrics
                    .dead_lettered
                    .with_label_values(&[event.as_str()])
                    .inc();
            }
        }
        Ok(mine)
    }

    /// Each person's lane: their pending reservations from the oldest up to the newest one
    /// delivered here (help ahead, see the module doc). Entries already settled through
    /// another delivery are acknowledged here and left out.
    async fn lanes(
        &self,
        event: &EventId,
        mine: &[&Delivery],
    ) -> Result<Vec<Vec<Queued>>, StepError> {
        let mut people: Vec<String> = Vec::new();
        for d in mine {
            let person = d
                .entry
                .as_ref()
                .map(|q| q.person.clone())
                .unwrap_or_default();
            if !people.contains(&person) {
                people.push(person);
            }
        }
        let chains = self.reservations.chains(event, &people).await?;
        let delivered: HashSet<&str> = mine
            .iter()
            .filter_map(|d| d.entry.as_ref().map(|q| q.id.as_str()))
            .collect();
        let mut lanes: Vec<Vec<Queued>> = Vec::new();
        let mut stale: Vec<String> = Vec::new();
        for chain in chains {
            if let Some(last) = chain
                .iter()
                .rposition(|q| delivered.contains(q.id.as_str()))
            {
                lanes.push(chain[..=last].to_vec());
            }
        }
        let in_lanes: HashSet<String> = lanes.iter().flatten().map(|q| q.id.clone()).collect();
        for d in mine {
            let Some(q) = &d.entry else { continue };
            if in_lanes.contains(q.id.as_str()) {
                continue;
            }
            // Not in its person's stream: settled through another delivery (acknowledge it),
            // unless the stream itself is gone while the reservation is still pending.
            match self.reservations.reservation(event, &q.id).await? {
                Some(r) if r.state == ReservationState::Pending => lanes.push(vec![q.clone()]),
                _ => stale.push(d.work_id.clone()),
            }
        }
        self.reservations.ack(event, &stale).await?;
        Ok(lanes)
    }

    /// What to write back from the database's results: every outcome committed, and for an
    /// entry that failed on its last delivery, what [`Self::give_up`] decides. An entry that
    /// failed with deliveries left stays pending for a retry.
    async fn settlements(
        &self,
        event: &EventId,
        mine: &[&Delivery],
        lanes: &[Vec<Queued>],
        results: Vec<Vec<Applied>>,
    ) -> Result<Vec<Settlement>, StepError> {
        let counts: HashMap<&str, u64> = mine
            .iter()
            .filter_map(|d| Some((d.entry.as_ref()?.id.as_str(), d.deliveries)))
            .collect();
        let mut settlements = Vec::new();
        for (lane, lane_results) in lanes.iter().zip(results) {
            for (q, applied) in lane.iter().zip(lane_results) {
                match applied {
                    Applied::Done(outcome) => {
                        settlements.push(settlement(q, outcome));
                    }
                    Applied::Failed(cause) => {
                        let Some(&n) = counts.get(q.id.as_str()) else {
                            // Another worker's entry, applied ahead: its owner decides.
                            continue;
                        };
                        if n < self.settings.max_deliveries {
                            tracing::warn!(%event, reservation = %q.id, deliveries = n, %cause, "reservation failed; will retry");
                            self.metrics
                                .retried
                                .with_label_values(&[event.as_str()])
                                .inc();
                            continue;
                        }
                        self.give_up(event, mine, q, &cause, &mut settlements)
                            .await?;
                    }
                    Applied::Blocked => {}
                }
            }
        }
        Ok(settlements)
    }

    /// Counts each result once: where it was `written`, not where it was (re)applied.
    fn count_written(
        &self,
        event: &EventId,
        lanes: &[Vec<Queued>],
        settlements: &[Settlement],
        written: &HashSet<String>,
    ) {
        let label = [event.as_str()];
        let now = now_ms();
        let created: HashMap<&str, u64> = lanes
            .iter()
            .flatten()
            .map(|q| (q.id.as_str(), q.created_ms))
            .collect();
        for s in settlements {
            if !written.contains(&s.id) {
                continue;
            }
            let created = created.get(s.id.as_str()).copied().unwrap_or(now);
            self.metrics
                .settle_seconds
                .with_label_values(&label)
                .observe(now.saturating_sub(created) as f64 / 1000.0);
            self.metrics.processed.with_label_values(&label).inc();
            match (s.state, &s.reason) {
                (ReservationState::Confirmed, _) => {
                    self.metrics.confirmed.with_label_values(&label).inc()
                }
                (_, reason) => self
                    .metrics
                    .rejected
                    .with_label_values(&[event.as_str(), reason.as_deref().unwrap_or("")])
                    .inc(),
            }
        }
    }

    /// An entry failed for the last time. If an earlier delivery did commit it (and only the
    /// write-back was lost), its outcome is written back instead; otherwise it goes to the
    /// dead-letter stream.
    async fn give_up(
        &self,
        event: &EventId,
        mine: &[&Delivery],
        q: &Queued,
        cause: &str,
        settlements: &mut Vec<Settlement>,
    ) -> Result<(), StepError> {
        if let Some(outcome) = self.database.outcome(&q.id).await? {
            settlements.push(settlement(q, outcome));
            return Ok(());
        }
        let Some(delivery) = mine
            .iter()
            .find(|d| d.entry.as_ref().is_some_and(|e| e.id == q.id))
        else {
            return Ok(());
        };
        tracing::error!(%event, reservation = %q.id, deliveries = delivery.deliveries, %cause, "giving up: dead-lettered");
        self.reservations
            .dead_letter(event, delivery, cause)
            .await?;
        self.metrics
            .dead_lettered
            .with_label_values(&[event.as_str()])
            .inc();
        self.metrics
            .rejected
            .with_label_values(&[event.as_str(), "failed"])
            .inc();
        Ok(())
    }
}

fn settlement(q: &Queued, outcome: Outcome) -> Settlement {
    Settlement {
        id: q.id.clone(),
        person: q.person.clone(),
        work_id: q.work_id.clone(),
        state: outcome.state,
        reason: outcome.reason,
        hold_expires_at_ms: outcome.hold_expires_at_ms.map(|ms| ms.max(0) as u64),
    }
}

/// Starts `settings.consumers` workers over the same stores and database; they stop with
/// `stop`. Answers their join handles.
pub fn spawn(
    reservations: Arc<dyn Reservations>,
    store: Arc<dyn Store>,
    database: Arc<Database>,
    settings: WorkerArgs,
    metrics: Arc<WorkerMetrics>,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..settings.consumers)
        .map(|index| {
            let worker = Worker {
                reservations: reservations.clone(),
                store: store.clone(),
                database: database.clone(),
                consumer: consumer_name(index),
                settings: settings.clone(),
                metrics: metrics.clone(),
            };
            tokio::spawn(worker.run(stop.clone()))
        })
        .collect()
}
