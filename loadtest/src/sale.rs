//! A simulated sale: prepare the event, let a crowd arrive, collect figures and check the truth.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::{Admin, Api, Endpoint};
use crate::eviction;
use crate::orders::Orders;
use crate::person::{self, Ctx, Event, Fate, Outcome, Report, Shopping};
use crate::report::{Outcomes, Probe, SaleReport};
use crate::stats::Stats;
use crate::truth::{Ledger, Timing};

/// How people arrive over the arrival window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Curve {
    /// Most at the opening: density falling as e^(-4t/window) (about 63% in the first quarter).
    Flash,
    /// Evenly over the window.
    Uniform,
}

/// The options of a simulated sale.
#[derive(Clone, Debug, clap::Args)]
pub struct SaleArgs {
    /// The running gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,

    /// The event to join. Its queue must be empty at the start: the truth checks count only
    /// this crowd.
    #[arg(long, default_value = "demo")]
    pub event: String,

    /// How many people arrive.
    #[arg(long, default_value_t = 2000)]
    pub people: usize,

    /// Over how many seconds they arrive.
    #[arg(long, default_value_t = 10.0)]
    pub arrive_secs: f64,

    /// The arrival curve.
    #[arg(long, value_enum, default_value = "flash")]
    pub curve: Curve,

    /// How long everybody still there keeps polling after the last arrival (s).
    #[arg(long, default_value_t = 15.0)]
    pub hold_secs: f64,

    /// Share of people who close the tab: they stop polling and must be evicted.
    #[arg(long, default_value_t = 0.2)]
    pub ghost_share: f64,

    /// Share of people who leave (`POST /v1/queue/leave`).
    #[arg(long, default_value_t = 0.05)]
    pub leave_share: f64,

    /// Ghosts and leavers act at a random moment within this many seconds of joining.
    #[arg(long, default_value_t = 5.0)]
    pub act_within_secs: f64,

    /// Most requests in flight at once (and so connections).
    #[arg(long, default_value_t = 256)]
    pub connections: usize,

    /// The admin token: when given, the event is created or updated (state open and the
    /// valves below), checked to be empty, and its queue length is charted.
    #[arg(long, env = "VESTIBULE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// The event's heartbeat TTL: set with --admin-token, else it must match the event's.
    #[arg(long, default_value_t = 10)]
    pub heartbeat_ttl_secs: u64,

    /// `fast_poll_ms` set with --admin-token.
    #[arg(long, default_value_t = 1000)]
    pub fast_poll_ms: u64,

    /// `slow_poll_ms` set with --admin-token (at most heartbeat_ttl_secs * 500).
    #[arg(long, default_value_t = 2000)]
    pub slow_poll_ms: u64,

    /// The gateway's sweep interval (`VESTIBULE_SWEEP_INTERVAL_MS`).
    #[arg(long, default_value_t = 1000)]
    pub sweep_interval_ms: u64,

    /// Time a sweep round may take beyond its interval before a ghost still counted is a
    /// violation. A round evicts at most 10 000 ghosts per event (the sweeper's batch size
    /// times its batches per round): a crowd whose ghosts expire faster needs more slack.
    #[arg(long, default_value_t = 1000)]
    pub eviction_slack_ms: u64,

    /// People shown `ready_for_entry` call enter (`425` or `429`: wait and poll again); the
    /// ledger learns who was let in, and the door's window order is checked.
    #[arg(long)]
    pub enter: bool,

    /// Admitted people order one unit of a sku and read the reservation until it is settled
    /// (implies --enter). With --admin-token the stock is put first and the inventory checked
    /// at the end.
    #[arg(long)]
    pub reserve: bool,

    /// The door's `admission_rate` (people/s): set with --admin-token; without it, only shown
    /// next to the measured rate.
    #[arg(long)]
    pub admission_rate: Option<f64>,

    /// The door's `max_active`, set with --admin-token. Nobody redeems an admission in this
    /// tool, so it bounds how many get in during a run.
    #[arg(long)]
    pub max_active: Option<u64>,

    /// The skus ordered, comma-separated; person i orders one unit of the (i mod n)-th.
    #[arg(long, value_delimiter = ',', default_value = "ticket")]
    pub skus: Vec<String>,

    /// The stock of each sku, put with --admin-token before the run (the event must have no
    /// other orders in flight).
    #[arg(long, default_value_t = 100)]
    pub stock: u64,

    /// How long an order may stay pending after its `202` before it counts as lost (s).
    #[arg(long, default_value_t = 10.0)]
    pub reserve_grace_secs: f64,

    /// How often a pending order is read (ms).
    #[arg(long, default_value_t = 200)]
    pub reservation_poll_ms: u64,

    /// Seed of the fates (who closes the tab, who leaves, when).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Draw queue length and latency over time as SVG to this file.
    #[arg(long)]
    pub chart: Option<PathBuf>,

    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl SaleArgs {
    fn validate(&self) -> anyhow::Result<()> {
        let share = |s: f64| (0.0..=1.0).contains(&s);
        anyhow::ensure!(
            share(self.ghost_share)
                && share(self.leave_share)
                && self.ghost_share + self.leave_share <= 1.0,
            "--ghost-share and --leave-share must be shares of 1 at most together"
        );
        anyhow::ensure!(self.people > 0, "--people must be at least 1");
        anyhow::ensure!(
            !self.reserve || !self.skus.is_empty(),
            "--reserve needs at least one sku in --skus"
        );
        for (name, v) in [
            ("--arrive-secs", self.arrive_secs),
            ("--hold-secs", self.hold_secs),
            ("--act-within-secs", self.act_within_secs),
            ("--reserve-grace-secs", self.reserve_grace_secs),
        ] {
            anyhow::ensure!(v.is_finite() && v >= 0.0, "{name} must be 0 or more");
        }
        Ok(())
    }
}

/// When person `i` of `n` arrives, as an offset into a window of `window` seconds.
pub fn arrival(curve: Curve, i: usize, n: usize, window: f64) -> Duration {
    let u = (i as f64 + 0.5) / n.max(1) as f64;
    let t = match curve {
        Curve::Uniform => u * window,
        Curve::Flash => {
            // Inverse of the truncated exponential CDF with mean window / 4.
            let tau = window / 4.0;
            if tau <= 0.0 {
                0.0
            } else {
                -tau * (1.0 - u * (1.0 - (-window / tau).exp())).ln()
            }
        }
    };
    Duration::from_secs_f64(t.clamp(0.0, window))
}

fn fates(args: &SaleArgs) -> Vec<Fate> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    (0..args.people)
        .map(|_| {
            let r: f64 = rng.random();
            let after = Duration::from_secs_f64(rng.random::<f64>() * args.act_within_secs);
            if r < args.ghost_share {
                Fate::CloseTab(after)
            } else if r < args.ghost_share + args.leave_share {
                Fate::Leave(after)
            } else {
                Fate::Stay
            }
        })
        .collect()
}

/// Runs a sale against a running gateway and returns its report. Does not print.
pub async fn run(args: &SaleArgs) -> anyhow::Result<SaleReport> {
    args.validate()?;
    let api = Api::new(&args.target, &args.event, args.connections)?;
    let admin = match &args.admin_token {
        Some(token) => Some(Admin::new(&args.target, &args.event, token)?),
        None => None,
    };
    let (ttl_secs, door_rate) = match &admin {
        Some(admin) => prepare(admin, args).await?,
        None => (args.heartbeat_ttl_secs, args.admission_rate),
    };
    let enter = args.enter || args.reserve;
    // The stock is known only when this run put it.
    let stock = match (&admin, args.reserve) {
        (Some(admin), true) => {
            admin
                .put_inventory(&args.skus, args.stock)
                .await
                .context("putting the stock")?;
            Some(args.stock)
        }
        _ => None,
    };
    let grace = Duration::from_secs_f64(args.reserve_grace_secs);
    let timing = Timing {
        heartbeat_ttl: Duration::from_secs(ttl_secs),
        sweep_interval: Duration::from_millis(args.sweep_interval_ms),
        slack: Duration::from_millis(args.eviction_slack_ms),
    };

    let start = Instant::now();
    let arrive = Duration::from_secs_f64(args.arrive_secs);
    let end = start + arrive + Duration::from_secs_f64(args.hold_secs);
    let (tx, rx) = mpsc::unbounded_channel();
    let bar = progress_bar(args, end - start);
    let collector = tokio::spawn(collect(
        rx,
        Ledger::new(timing, args.people, start),
        Stats::new(start),
        Orders::default(),
        bar.clone(),
    ));
    let sampler = admin
        .clone()
        .map(|admin| tokio::spawn(sample_server(admin, tx.clone(), end)));

    let ctx = Arc::new(Ctx {
        api: api.clone(),
        reports: tx.clone(),
        end,
        enter,
        shopping: args.reserve.then(|| Shopping {
            skus: args.skus.iter().map(|s| Arc::from(s.as_str())).collect(),
            poll: Duration::from_millis(args.reservation_poll_ms.max(1)),
            grace,
            run: rand::random(),
        }),
    });
    let fates = fates(args);
    let mut crowd = JoinSet::new();
    for (id, fate) in fates.iter().copied().enumerate() {
        let at = start + arrival(args.curve, id, args.people, args.arrive_secs);
        tokio::time::sleep_until(at.into()).await;
        let ctx = ctx.clone();
        crowd.spawn(async move { (id, person::visit(id, fate, ctx).await) });
    }
    let mut outcomes: BTreeMap<Outcome, u64> = BTreeMap::new();
    let mut ghosts = Vec::new();
    let mut settled = Vec::new();
    while let Some(joined) = crowd.join_next().await {
        let (id, visit) = joined.context("a person's task failed")?;
        *outcomes.entry(visit.outcome).or_default() += 1;
        if let (Outcome::ClosedTab, Some(ticket)) = (visit.outcome, visit.ticket) {
            ghosts.push((id, ticket));
        }
        if let (Outcome::Bought | Outcome::TurnedAway, Some(order)) = (visit.outcome, visit.order) {
            settled.push((id, order));
        }
    }
    let elapsed = start.elapsed();
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    // Every settled order read once more: it must not have changed.
    reread_orders(&api, &tx, settled).await;
    drop(ctx);
    drop(tx);
    let (mut ledger, stats, orders) = collector.await.context("the collector failed")?;
    bar.finish_and_clear();
    // Before the probe: it marks the ghosts it finds evicted as gone.
    let eviction = admin
        .is_some()
        .then(|| eviction::report(ledger.heartbeat_expiries(), stats.evictions()));

    let probe = probe_ghosts(&api, &mut ledger, &ghosts).await;
    ledger.check_all();
    let orders = if args.reserve {
        let inventory = match (&admin, stock) {
            (Some(admin), Some(_)) => {
                Some(admin.inventory().await.context("reading the inventory")?)
            }
            _ => None,
        };
        let now = Instant::now();
        Some(orders.finish(&mut ledger, now, grace, &args.skus, stock, inventory))
    } else {
        None
    };
    let server = match &admin {
        Some(admin) => admin.get_event().await.ok().map(|e| e["figures"].clone()),
        None => None,
    };
    Ok(SaleReport::new(
        args,
        ttl_secs,
        elapsed,
        &stats,
        Outcomes::from(&outcomes),
        enter.then(|| stats.door(door_rate)),
        orders,
        ledger.tally().clone(),
        probe,
        eviction,
        server,
    ))
}

/// Reads every order answered `202` once more, reporting to the collector.
async fn reread_orders(
    api: &Api,
    tx: &mpsc::UnboundedSender<Event>,
    orders: Vec<(usize, (Arc<str>, String))>,
) {
    let mut reads = JoinSet::new();
    for (id, (admission, reservation)) in orders {
        let (api, tx) = (api.clone(), tx.clone());
        reads.spawn(async move {
            let (exchange, shown) = api.reservation(&admission, &reservation).await;
            let _ = tx.send(Event::Person(Report::Reservation(id, exchange, shown)));
        });
    }
    while reads.join_next().await.is_some() {}
}

/// Opens the event with the requested valves and checks its queue is empty; returns the
/// heartbeat TTL and the admission rate the event really has.
async fn prepare(admin: &Admin, args: &SaleArgs) -> anyhow::Result<(u64, Option<f64>)> {
    let mut valves = json!({
        "state": "open",
        "heartbeat_ttl_secs": args.heartbeat_ttl_secs,
        "fast_poll_ms": args.fast_poll_ms,
        "slow_poll_ms": args.slow_poll_ms,
    });
    if let Some(rate) = args.admission_rate {
        valves["admission_rate"] = json!(rate);
    }
    if let Some(max_active) = args.max_active {
        valves["max_active"] = json!(max_active);
    }
    let config = admin
        .put_event(&valves)
        .await
        .context("preparing the event")?;
    let waiting = admin.get_event().await?["figures"]["waiting"]
        .as_u64()
        .unwrap_or(0);
    anyhow::ensure!(
        waiting == 0,
        "event {} already has {waiting} people waiting; the truth checks count only this crowd: \
         use a fresh --event, or wait for them to be evicted",
        args.event
    );
    let ttl = config["heartbeat_ttl_secs"]
        .as_u64()
        .context("the event's configuration has no heartbeat_ttl_secs")?;
    Ok((ttl, config["admission_rate"].as_f64()))
}

/// Reads the server's queue length and evictions every [`eviction::SAMPLE`] until `end`.
async fn sample_server(admin: Admin, tx: mpsc::UnboundedSender<Event>, end: Instant) {
    let mut tick = tokio::time::interval(eviction::SAMPLE);
    while Instant::now() < end {
        tick.tick().await;
        if let Ok(event) = admin.get_event().await {
            let figure = |name: &str| event["figures"][name].as_u64();
            if let (Some(waiting), Some(evicted)) = (figure("waiting"), figure("evicted_total")) {
                let _ = tx.send(Event::Server(Instant::now(), waiting, evicted));
            }
        }
    }
}

/// The single owner of the ledger and the figures: applies reports in the order they were
/// sent, checks ripe answers twice a second, and draws the progress bar.
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Event>,
    mut ledger: Ledger,
    mut stats: Stats,
    mut orders: Orders,
    bar: ProgressBar,
) -> (Ledger, Stats, Orders) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut statuses: u64 = 0;
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(Event::Person(report)) => {
                    if matches!(report, Report::Status(..)) {
                        statuses += 1;
                    }
                    apply(&mut ledger, &mut stats, &mut orders, report);
                }
                Some(Event::Server(at, waiting, evicted)) => stats.sample_server(at, waiting, evicted),
                None => break,
            },
            _ = tick.tick() => {
                ledger.check_ripe();
                stats.sample_alive(Instant::now(), ledger.alive());
                let t = ledger.tally();
                bar.set_position(start.elapsed().as_millis() as u64);
                bar.set_message(format!(
                    "alive {} | status answers {statuses} | checked {} exact, {} bounded | violations {}",
                    ledger.alive(), t.exact_checked, t.bounded_checked, t.violations
                ));
            }
        }
    }
    (ledger, stats, orders)
}

fn apply(ledger: &mut Ledger, stats: &mut Stats, orders: &mut Orders, report: Report) {
    match report {
        Report::JoinStarted(id) => ledger.join_started(id),
        Report::Join(id, exchange, placed) => {
            stats.record(Endpoint::Join, &exchange);
            match placed {
                Some((seq, position)) => ledger.joined(id, &exchange, seq, position),
                None => ledger.join_failed(id, &exchange),
            }
        }
        Report::Status(id, exchange, standing) => {
            stats.record(Endpoint::Status, &exchange);
            match standing {
                Some(s) if s.admitted => ledger.status_admitted(id, &exchange),
                Some(s) => ledger.status_ok(id, &exchange, s.position, s.ready_for_entry),
                None => {
                    ledger.status_failed(id, &exchange);
                }
            }
        }
        Report::EnterStarted(id, at) => ledger.enter_started(id, at),
        Report::Enter(id, exchange, waited) => {
            stats.enter(&exchange, waited);
            ledger.enter_done(id, &exchange);
        }
        Report::Reserve(id, sku, exchange, shown) => {
            stats.record(Endpoint::Reserve, &exchange);
            orders.posted(id, &sku, &exchange, shown.as_ref());
        }
        Report::Reservation(id, exchange, shown) => {
            stats.record(Endpoint::Reservation, &exchange);
            orders.read(id, &exchange, shown.as_ref());
        }
        Report::Stopped(id) => ledger.stopped(id),
        Report::LeaveStarted(id, at) => ledger.leave_started(id, at),
        Report::Leave(id, exchange) => {
            stats.record(Endpoint::Leave, &exchange);
            ledger.leave_done(id, &exchange);
        }
        Report::Late(by) => stats.late_poll(by),
    }
}

/// Asks every ghost past its eviction deadline for its status once: each must answer
/// `410 evicted`. (A ghost still waiting gets its heartbeat refreshed by this, which no
/// longer matters: the run is over.)
async fn probe_ghosts(api: &Api, ledger: &mut Ledger, ghosts: &[(usize, Arc<str>)]) -> Probe {
    let now = Instant::now();
    let due: Vec<(usize, Arc<str>)> = ghosts
        .iter()
        .filter(|(id, _)| ledger.eviction_deadline(*id).is_some_and(|d| d < now))
        .cloned()
        .collect();
    let mut probes = JoinSet::new();
    for (id, ticket) in due {
        let api = api.clone();
        probes.spawn(async move { (id, api.status(&ticket).await) });
    }
    let mut probe = Probe::default();
    while let Some(Ok((id, (exchange, standing)))) = probes.join_next().await {
        probe.asked += 1;
        match (standing, exchange.code.as_deref()) {
            (Some(s), _) => ledger.ghost_not_evicted(id, &exchange, s.position),
            (None, Some("evicted")) => probe.evicted += 1,
            _ => probe.other += 1,
        }
    }
    probe
}

fn progress_bar(args: &SaleArgs, total: Duration) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.as_millis() as u64);
    let style = ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_crowd_arrives_mostly_at_the_opening_and_within_the_window() {
        let n = 1000;
        let at: Vec<f64> = (0..n)
            .map(|i| arrival(Curve::Flash, i, n, 10.0).as_secs_f64())
            .collect();
        assert!(at.windows(2).all(|w| w[0] <= w[1]));
        assert!(at.iter().all(|&t| (0.0..=10.0).contains(&t)));
        let first_quarter = at.iter().filter(|&&t| t < 2.5).count();
        assert!((600..700).contains(&first_quarter), "{first_quarter}");
        let uniform_first_quarter = (0..n)
            .filter(|&i| arrival(Curve::Uniform, i, n, 10.0).as_secs_f64() < 2.5)
            .count();
        assert_eq!(uniform_first_quarter, 250);
    }
}
