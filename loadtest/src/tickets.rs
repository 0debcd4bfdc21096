//! `tickets`: join a pool of people as fast as allowed and write their tickets, one a line.
//! The benchmark fills Redis with it and rotates the tickets in its `wrk` status script.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::api::Api;

/// Options of `tickets`.
#[derive(Clone, Debug, clap::Args)]
pub struct TicketsArgs {
    /// The running gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,

    /// The (open) event to join.
    #[arg(long, default_value = "demo")]
    pub event: String,

    /// How many people join.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,

    /// Joins in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,

    /// Where the tickets go, one a line.
    #[arg(long)]
    pub out: PathBuf,
}

/// Joins `count` people; writes their tickets; returns how many joined.
pub async fn run(args: &TicketsArgs) -> anyhow::Result<usize> {
    let api = Api::new(&args.target, &args.event, args.concurrency)?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (api, next, count) = (api.clone(), next.clone(), args.count);
        workers.spawn(async move {
            let mut tickets = Vec::new();
            let mut errors: BTreeMap<(u16, String), u64> = BTreeMap::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                match api.join().await {
                    (_, Some(placed)) => tickets.push(placed.ticket),
                    (exchange, None) => {
                        let code = exchange.code.unwrap_or_default();
                        *errors.entry((exchange.status, code)).or_default() += 1;
                    }
                }
            }
            (tickets, errors)
        });
    }
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?,
    );
    let mut joined = 0;
    let mut errors: BTreeMap<(u16, String), u64> = BTreeMap::new();
    while let Some(done) = workers.join_next().await {
        let (tickets, errs) = done.context("a join worker failed")?;
        for ticket in tickets {
            writeln!(file, "{ticket}")?;
            joined += 1;
        }
        for (k, v) in errs {
            *errors.entry(k).or_default() += v;
        }
    }
    file.flush()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "joined {joined} of {} in {secs:.2} s ({:.0}/s), errors: {errors:?}; tickets in {}",
        args.count,
        joined as f64 / secs.max(1e-9),
        args.out.display()
    );
    Ok(joined)
}
