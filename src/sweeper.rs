//! The sweeper: on every instance, evicts ghosts in bounded batches. Safe to run everywhere at
//! once: each batch is one atomic store step, and a person evicted by one instance is no longer
//! a candidate for another.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::http::AppState;
use crate::store::SweepOutcome;

/// Ghosts evicted per store call: bounds how long one call holds Redis.
pub const BATCH: u32 = 500;

/// Most batches per event per round, so one event's backlog cannot starve the others; the
/// rest waits for the next round.
const MAX_BATCHES_PER_ROUND: u32 = 20;

/// Runs rounds every `interval` until `stop` is cancelled.
pub async fn run(app: AppState, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = round(&app).await {
            tracing::warn!(error = %err, "sweep round failed; retrying next interval");
        }
    }
}

/// One round over every event.
pub async fn round(app: &AppState) -> Result<(), crate::store::StoreError> {
    if let Some(limiter) = &app.join_limiter {
        limiter.retain_recent();
    }
    for event in app.store.list_events().await? {
        let label = [event.as_str()];
        for _ in 0..MAX_BATCHES_PER_ROUND {
            match app.store.sweep(&event, BATCH).await? {
                SweepOutcome::Swept {
                    evicted,
                    waiting,
                    active,
                } => {
                    app.metrics
                        .active
                        .with_label_values(&label)
                        .set(active as i64);
                    app.metrics
                        .evicted
                        .with_label_values(&label)
                        .inc_by(evicted);
                    app.metrics
                        .queue_waiting
                        .with_label_values(&label)
                        .set(waiting as i64);
                    if evicted > 0 {
                        tracing::debug!(%event, evicted, waiting, "evicted ghosts");
                    }
                    if evicted < u64::from(BATCH) {
                        break;
                    }
                }
                SweepOutcome::NoEvent => {
                    let _ = app.metrics.queue_waiting.remove_label_values(&label);
                    let _ = app.metrics.active.remove_label_values(&label);
                    break;
                }
            }
        }
    }
    Ok(())
}
