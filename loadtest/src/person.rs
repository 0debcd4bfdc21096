//! One person of the crowd: a small state machine, one request per step.
//!
//! ```text
//! Arrive ──join──▶ Wait ──status every poll_after_ms──▶ Wait …
//!                   ├── closes the tab (fate) ──▶ Done(ClosedTab)   (stops polling: a ghost)
//!                   ├── leaves (fate) ──▶ Leave ──leave──▶ Done(Left)
//!                   ├── 410 / 401 ──▶ Done(Removed)
//!                   ├── ready_for_entry (--enter) ──▶ Enter ──enter──┬─ 200 ──▶ Done(Admitted)
//!                   │        ▲                                        │          or (--reserve) Reserve
//!                   │        └── Wait again after Retry-After ◀── 425 / 429
//!                   └── end of the run ──▶ Done(Stayed)
//! Reserve ──POST /v1/reservations (one unit, own Idempotency-Key; retried with the same key)
//!         ──GET /v1/reservations/{id} until settled, or a grace period ──▶ Done(Bought | Turned
//!           away | Unsettled | ReserveFailed)
//! ```
//!
//! Every request is reported to the collector with its timing, so the ledger ([`crate::truth`])
//! learns who left the queue by admission, and the orders ([`crate::orders`]) what became of
//! each reservation. Nobody enters after the end of the run; an admitted person finishes their
//! order, up to the grace period, even after it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::api::{Api, Entry, Exchange, Shown, Standing};

/// A poll that starts this much later than the server asked is reported as late: a sign that
/// the crowd itself, not the gateway, is the bottleneck.
const LATE: Duration = Duration::from_millis(200);

/// How long to wait before posting an order again after an outage.
const RETRY: Duration = Duration::from_millis(250);

/// What a person will do, drawn when they arrive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// Polls until the run ends (or, with `--enter`, until let in).
    Stay,
    /// Stops polling this long after joining, without leaving: a ghost.
    CloseTab(Duration),
    /// Leaves this long after joining.
    Leave(Duration),
}

/// How a person's visit ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Polled until the end of the run.
    Stayed,
    /// Closed the tab.
    ClosedTab,
    /// Left, answered 204.
    Left,
    /// Sent a leave that was not answered 204 (an outage, or evicted first).
    LeaveFailed,
    /// Told `410` (evicted or left) or `401` while waiting.
    Removed,
    /// The join was refused (4xx) or failed (5xx, no answer).
    NotPlaced,
    /// Let in by the door (no order placed).
    Admitted,
    /// Their order was confirmed.
    Bought,
    /// Their order was rejected.
    TurnedAway,
    /// Their order was still pending after the grace period.
    Unsettled,
    /// Their order was never accepted (no `202`).
    ReserveFailed,
}

/// What a person reports to the ledger and the figures, in the order it happened.
#[derive(Debug)]
pub enum Report {
    /// About to send a join (sent before the request leaves).
    JoinStarted(usize),
    /// A join's answer: the ticket's `seq` and the position when placed.
    Join(usize, Exchange, Option<(u64, u64)>),
    /// A status answer: what it showed when waiting (or admitted).
    Status(usize, Exchange, Option<Standing>),
    /// Stopped polling without leaving.
    Stopped(usize),
    /// About to send a leave; the instant was read before this report.
    LeaveStarted(usize, Instant),
    /// A leave's answer.
    Leave(usize, Exchange),
    /// About to send an enter; the instant was read before this report.
    EnterStarted(usize, Instant),
    /// An enter's answer; when admitted, the time since the join was answered.
    Enter(usize, Exchange, Option<Duration>),
    /// An order's post answered (the sku ordered).
    Reserve(usize, Arc<str>, Exchange, Option<Shown>),
    /// A read of the order answered.
    Reservation(usize, Exchange, Option<Shown>),
    /// A poll started late by this much.
    Late(Duration),
}

/// Everything the collector hears: people's reports and the server's figures.
#[derive(Debug)]
pub enum Event {
    /// From a person.
    Person(Report),
    /// The server's `waiting` and `evicted_total` figures at an instant.
    Server(Instant, u64, u64),
}

/// What admitted people order (`--reserve`).
pub struct Shopping {
    /// The skus; person `i` orders one unit of `skus[i % len]`.
    pub skus: Vec<Arc<str>>,
    /// How often an order is read until settled.
    pub poll: Duration,
    /// How long after its `202` an order may stay pending.
    pub grace: Duration,
    /// Makes `Idempotency-Key`s unique to this run.
    pub run: u64,
}

/// What every person shares.
pub struct Ctx {
    /// The gateway.
    pub api: Api,
    /// Where reports go.
    pub reports: UnboundedSender<Event>,
    /// When everybody stops waiting.
    pub end: Instant,
    /// `--enter`: people shown `ready_for_entry` enter.
    pub enter: bool,
    /// `--reserve`: admitted people order.
    pub shopping: Option<Shopping>,
}

impl Ctx {
    fn report(&self, report: Report) {
        // The collector outlives every person; a send can only fail at shutdown.
        let _ = self.reports.send(Event::Person(report));
    }
}

/// How a visit ended, with what a final check may need.
pub struct Visit {
    /// How it ended.
    pub outcome: Outcome,
    /// The queue ticket, if they got one.
    pub ticket: Option<Arc<str>>,
    /// The admission token and reservation id of an order answered `202`.
    pub order: Option<(Arc<str>, String)>,
}

struct Waiting {
    ticket: Arc<str>,
    joined: Instant,
    poll_every: Duration,
}

enum Phase {
    Arrive,
    Wait(Waiting, Instant),
    Enter(Waiting),
    Leave(Arc<str>),
    Reserve(Arc<str>),
    Done(Visit),
}

fn done(outcome: Outcome, ticket: Option<Arc<str>>) -> Phase {
    Phase::Done(Visit {
        outcome,
        ticket,
        order: None,
    })
}

/// Runs one person's visit.
pub async fn visit(id: usize, fate: Fate, ctx: Arc<Ctx>) -> Visit {
    let mut phase = Phase::Arrive;
    loop {
        phase = match phase {
            Phase::Done(visit) => return visit,
            Phase::Arrive => arrive(id, &ctx).await,
            Phase::Wait(w, next_poll) => wait(id, fate, &ctx, w, next_poll).await,
            Phase::Enter(w) => enter(id, &ctx, w).await,
            Phase::Leave(ticket) => leave(id, &ctx, ticket).await,
            Phase::Reserve(admission) => reserve(id, &ctx, admission).await,
        };
    }
}

async fn arrive(id: usize, ctx: &Ctx) -> Phase {
    ctx.report(Report::JoinStarted(id));
    let (exchange, placed) = ctx.api.join().await;
    let received = exchange.received;
    ctx.report(Report::Join(
        id,
        exchange,
        placed.as_ref().map(|p| (p.seq, p.position)),
    ));
    match placed {
        Some(p) => {
            let poll_every = Duration::from_millis(p.poll_after_ms);
            let w = Waiting {
                ticket: p.ticket,
                joined: received,
                poll_every,
            };
            Phase::Wait(w, received + poll_every)
        }
        None => done(Outcome::NotPlaced, None),
    }
}

async fn wait(id: usize, fate: Fate, ctx: &Ctx, mut w: Waiting, next_poll: Instant) -> Phase {
    let acts_at = match fate {
        Fate::Stay => ctx.end,
        Fate::CloseTab(after) | Fate::Leave(after) => (w.joined + after).min(ctx.end),
    };
    if next_poll >= acts_at {
        tokio::time::sleep_until(acts_at.into()).await;
        return match fate {
            Fate::Leave(_) if acts_at < ctx.end => Phase::Leave(w.ticket),
            Fate::CloseTab(_) if acts_at < ctx.end => {
                ctx.report(Report::Stopped(id));
                done(Outcome::ClosedTab, Some(w.ticket))
            }
            _ => {
                ctx.report(Report::Stopped(id));
                done(Outcome::Stayed, Some(w.ticket))
            }
        };
    }
    tokio::time::sleep_until(next_poll.into()).await;
    let late = Instant::now().saturating_duration_since(next_poll);
    if late > LATE {
        ctx.report(Report::Late(late));
    }
    let (exchange, standing) = ctx.api.status(&w.ticket).await;
    let received = exchange.received;
    let status = exchange.status;
    ctx.report(Report::Status(id, exchange, standing));
    match standing {
        Some(s) => {
            w.poll_every = Duration::from_millis(s.poll_after_ms);
            if ctx.enter && (s.ready_for_entry || s.admitted) {
                return Phase::Enter(w);
            }
            let next = received + w.poll_every;
            Phase::Wait(w, next)
        }
        None if status == 410 || status == 401 => done(Outcome::Removed, Some(w.ticket)),
        // An outage (5xx, no answer): a browser tries again at its usual pace.
        None => {
            let next = received + w.poll_every;
            Phase::Wait(w, next)
        }
    }
}

async fn enter(id: usize, ctx: &Ctx, w: Waiting) -> Phase {
    if Instant::now() >= ctx.end {
        ctx.report(Report::Stopped(id));
        return done(Outcome::Stayed, Some(w.ticket));
    }
    ctx.report(Report::EnterStarted(id, Instant::now()));
    let (exchange, entry) = ctx.api.enter(&w.ticket).await;
    let (received, status) = (exchange.received, exchange.status);
    let waited =
        matches!(entry, Entry::Admitted(_)).then(|| received.saturating_duration_since(w.joined));
    ctx.report(Report::Enter(id, exchange, waited));
    match entry {
        Entry::Admitted(admission) if ctx.shopping.is_some() => Phase::Reserve(admission),
        Entry::Admitted(_) => done(Outcome::Admitted, Some(w.ticket)),
        Entry::NotYet(after) => Phase::Wait(w, received + after),
        Entry::Refused if status == 410 || status == 401 => done(Outcome::Removed, Some(w.ticket)),
        // An outage: the admission may have happened; the next status tells.
        Entry::Refused => {
            let next = received + w.poll_every;
            Phase::Wait(w, next)
        }
    }
}

async fn leave(id: usize, ctx: &Ctx, ticket: Arc<str>) -> Phase {
    ctx.report(Report::LeaveStarted(id, Instant::now()));
    let exchange = ctx.api.leave(&ticket).await;
    let outcome = match exchange.status {
        204 => Outcome::Left,
        _ => Outcome::LeaveFailed,
    };
    ctx.report(Report::Leave(id, exchange));
    done(outcome, Some(ticket))
}

/// Posts one order (retrying with the same key after an outage or a `429`) and reads it until
/// it is settled or its grace period is over.
async fn reserve(id: usize, ctx: &Ctx, admission: Arc<str>) -> Phase {
    let Some(shop) = &ctx.shopping else {
        return done(Outcome::Admitted, None);
    };
    let sku = shop.skus[id % shop.skus.len()].clone();
    let key = format!("lt-{:x}-{id}", shop.run);
    let give_up = ctx.end.max(Instant::now()) + shop.grace;
    let mut shown = loop {
        let (exchange, shown, retry_after) = ctx.api.reserve(&admission, &key, &sku).await;
        let status = exchange.status;
        ctx.report(Report::Reserve(id, sku.clone(), exchange, shown.clone()));
        let pause = match (status, shown) {
            (202, Some(shown)) => break shown,
            (429, _) => retry_after.unwrap_or(Duration::from_secs(1)),
            (s, _) if s == crate::api::NO_ANSWER || s >= 500 => RETRY,
            _ => return done(Outcome::ReserveFailed, None),
        };
        if Instant::now() + pause >= give_up {
            return done(Outcome::ReserveFailed, None);
        }
        tokio::time::sleep(pause).await;
    };
    let deadline = Instant::now() + shop.grace;
    // The last read goes out at the deadline, so an order unsettled by then is surely lost.
    while shown.state == "pending" && Instant::now() < deadline {
        tokio::time::sleep_until((Instant::now() + shop.poll).min(deadline).into()).await;
        let (exchange, read) = ctx.api.reservation(&admission, &shown.id).await;
        ctx.report(Report::Reservation(id, exchange, read.clone()));
        if let Some(read) = read {
            shown = read;
        }
    }
    let outcome = match shown.state.as_str() {
        "confirmed" => Outcome::Bought,
        "rejected" => Outcome::TurnedAway,
        _ => Outcome::Unsettled,
    };
    Phase::Done(Visit {
        outcome,
        ticket: None,
        order: Some((admission, shown.id)),
    })
}
