//! The sweeper: on every instance, evicts ghosts in bounded batches. Safe to run everywhere at
//! once: each batch is one atomic store step, and a person evicted by one instance is no longer
//! a candidate for another. It needs only the store and the metrics it refreshes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::event::EventState;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, SweepOutcome};

/// Who the audit trail names for a scheduled opening.
pub const SCHEDULER: &str = "scheduler";

/// Ghosts evicted per store call: bounds how long one call holds Redis.
pub const BATCH: u32 = 500;

/// Most batches per event per round, so one event's backlog cannot starve the others; the
/// rest waits for the next round.
const MAX_BATCHES_PER_ROUND: u32 = 20;

/// Runs rounds every `interval` until `stop` is cancelled.
pub async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = round(store.as_ref(), &metrics).await {
            tracing::warn!(error = %err, "sweep round failed; retrying next interval");
        }
    }
}

/// One round over every event: evict ghosts, then refresh the event's gauges from the store.
pub async fn round(store: &dyn Store, metrics: &Metrics) -> Result<(), StoreError> {
    for event in store.list_events().await? {
        let label = [event.as_str()];
        metrics.know_event(event.as_str());
        let mut exists = true;
        for _ in 0..MAX_BATCHES_PER_ROUND {
            match store.sweep(&event, BATCH).await? {
                SweepOutcome::Swept { evicted, .. } => {
                    metrics.evicted.with_label_values(&label).inc_by(evicted);
                    if evicted > 0 {
                        tracing::debug!(%event, evicted, "evicted ghosts");
                    }
                    if evicted < u64::from(BATCH) {
                        break;
                    }
                }
                SweepOutcome::NoEvent => {
                    exists = false;
                    break;
                }
            }
        }
        let mut config = match store.get_event(&event).await? {
            Some(config) if exists => config,
            _ => {
                metrics.forget_event(event.as_str());
                continue;
            }
        };
        let state_now = config.state_at(crate::clock::now_ms());
        if state_now != config.state {
            // The scripts already treat it as open (on the store's clock); make the stored
            // state say so too, with an audit entry. Several instances may race here: the
            // later writes change nothing and add no entry.
            config.state = state_now;
            let change = store.put_event(&event, &config, SCHEDULER).await?;
            tracing::info!(%event, version = change.version, "scheduled event opened");
        }
        let figures = store.figures(&event).await?;
        metrics
            .queue_waiting
            .with_label_values(&label)
            .set(figures.waiting as i64);
        metrics
            .active
            .with_label_values(&label)
            .set(figures.active as i64);
        metrics
            .max_active
            .with_label_values(&label)
            .set(config.max_active as i64);
        let open = state_now == EventState::Open;
        metrics.door_rate.with_label_values(&label).set(if open {
            config.admission_rate
        } else {
            0.0
        });
        metrics
            .outflow
            .with_label_values(&label)
            .set(figures.admitted_last_minute as f64 / 60.0);
    }
    Ok(())
}
