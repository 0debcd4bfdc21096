//! How long ghosts stay counted after their heartbeat expires: the eviction delay.
//!
//! The crowd knows when each ghost's heartbeat expires (its last poll's answer + the TTL: the
//! latest moment the server could have refreshed it, plus the TTL) and, reading the server's
//! `evicted_total` figure every [`SAMPLE`], when evictions happened. The sweeper evicts the
//! oldest heartbeat first, so the k-th ghost to expire is matched with the k-th eviction seen;
//! its delay is the time from its expiry to the sample that first counted it. A delay is thus
//! at most [`SAMPLE`] (plus an admin call) longer than the real one, never shorter; an eviction
//! counted before the crowd's expiry estimate (clock skew within one poll) is a delay of 0.

use std::time::{Duration, Instant};

use serde::Serialize;

/// How often the server's figures are read.
pub const SAMPLE: Duration = Duration::from_millis(250);

/// The eviction delays of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EvictionReport {
    /// Evictions the server counted for this event during the run.
    pub evicted: u64,
    /// Of those, matched with a ghost of the crowd (the rest: more evictions than ghosts had
    /// expired, which the position checks report as violations).
    pub matched: u64,
    /// From heartbeat expiry to eviction (ms).
    pub delay_p50_ms: Option<f64>,
    #[allow(missing_docs)]
    pub delay_p95_ms: Option<f64>,
    #[allow(missing_docs)]
    pub delay_max_ms: Option<f64>,
}

/// Matches expiries with the evictions seen in `samples` (instant, `evicted_total`), in time
/// order; the first sample is the baseline (earlier runs on the same event).
pub fn report(mut expiries: Vec<Instant>, samples: &[(Instant, u64)]) -> EvictionReport {
    expiries.sort_unstable();
    let Some(&(_, baseline)) = samples.first() else {
        return EvictionReport::default();
    };
    let mut delays = Vec::new();
    let mut evicted = 0;
    for &(at, total) in samples {
        evicted = evicted.max(total.saturating_sub(baseline));
        let upto = usize::try_from(evicted)
            .unwrap_or(usize::MAX)
            .min(expiries.len());
        for expiry in &expiries[delays.len()..upto] {
            delays.push(at.saturating_duration_since(*expiry));
        }
    }
    delays.sort_unstable();
    let ms = |q: f64| {
        let index = ((delays.len() as f64 - 1.0) * q).round() as usize;
        delays.get(index).map(|d| d.as_secs_f64() * 1000.0)
    };
    EvictionReport {
        evicted,
        matched: delays.len() as u64,
        delay_p50_ms: ms(0.50),
        delay_p95_ms: ms(0.95),
        delay_max_ms: delays.last().map(|d| d.as_secs_f64() * 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_eviction_is_matched_with_the_ghost_that_expired_first() {
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        // Three ghosts expire at 1000, 1100 and 5000 ms; the server had 7 evictions from an
        // earlier run, then evicts the first two by 1500 ms and nobody else.
        let expiries = vec![s(5000), s(1000), s(1100)];
        let samples = [(s(0), 7), (s(1250), 7), (s(1500), 9), (s(1750), 9)];
        let r = report(expiries, &samples);
        assert_eq!((r.evicted, r.matched), (2, 2));
        assert_eq!(r.delay_max_ms, Some(500.0));
        assert_eq!(r.delay_p50_ms, Some(500.0));
    }

    #[test]
    fn no_samples_no_figures() {
        let r = report(vec![Instant::now()], &[]);
        assert_eq!((r.evicted, r.matched, r.delay_max_ms), (0, 0, None));
    }
}
