//! One person of the crowd: a small state machine, one request per step.
//!
//! ```text
//! Arrive ──join──▶ Wait ──status every poll_after_ms──▶ Wait …
//!                   ├── closes the tab (fate) ──▶ Done(ClosedTab)   (stops polling: a ghost)
//!                   ├── leaves (fate) ──▶ Leave ──leave──▶ Done(Left)
//!                   ├── 410 / 401 ──▶ Done(Evicted | Refused)
//!                   └── end of the run ──▶ Done(Stayed)
//! ```
//!
//! Extension points for the later phases of a sale (not built: the gateway has no
//! `POST /v1/queue/enter` nor `POST /v1/reservations` yet). When it does, a status answer with
//! `ready_for_entry: true` moves a person (under `--enter`) from `Wait` to a new
//! `Enter { ticket }` phase calling enter (425 → back to `Wait` after `Retry-After`), then
//! (under `--reserve`) to `Reserve { admission_token, idempotency_key }`, and the ledger learns
//! that an admitted person no longer counts ahead of anyone. Today `ready_for_entry` is only
//! counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::api::{Api, Exchange};

/// A poll that starts this much later than the server asked is reported as late: a sign that
/// the crowd itself, not the gateway, is the bottleneck.
const LATE: Duration = Duration::from_millis(200);

/// What a person will do, drawn when they arrive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// Polls until the run ends.
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
}

/// What a person reports to the ledger and the figures, in the order it happened.
#[derive(Debug)]
pub enum Report {
    /// About to send a join (sent before the request leaves).
    JoinStarted(usize),
    /// A join's answer: the ticket's `seq` and the position when placed.
    Join(usize, Exchange, Option<(u64, u64)>),
    /// A status answer: the position when waiting.
    Status(usize, Exchange, Option<u64>),
    /// `ready_for_entry: true` was seen.
    Ready(usize),
    /// Stopped polling without leaving.
    Stopped(usize),
    /// About to send a leave; the instant was read before this report.
    LeaveStarted(usize, Instant),
    /// A leave's answer.
    Leave(usize, Exchange),
    /// A poll started late by this much.
    Late(Duration),
}

/// Everything the collector hears: people's reports and the server's figures.
#[derive(Debug)]
pub enum Event {
    /// From a person.
    Person(Report),
    /// The server's `waiting` figure at an instant.
    Server(Instant, u64),
}

/// What every person shares.
pub struct Ctx {
    /// The gateway.
    pub api: Api,
    /// Where reports go.
    pub reports: UnboundedSender<Event>,
    /// When everybody stops.
    pub end: Instant,
}

impl Ctx {
    fn report(&self, report: Report) {
        // The collector outlives every person; a send can only fail at shutdown.
        let _ = self.reports.send(Event::Person(report));
    }
}

enum Phase {
    Arrive,
    Wait {
        ticket: Arc<str>,
        joined: Instant,
        next_poll: Instant,
        poll_every: Duration,
    },
    Leave {
        ticket: Arc<str>,
    },
    Done(Outcome, Option<Arc<str>>),
}

/// Runs one person's visit; returns how it ended and their ticket, if they got one.
pub async fn visit(id: usize, fate: Fate, ctx: Arc<Ctx>) -> (Outcome, Option<Arc<str>>) {
    let mut phase = Phase::Arrive;
    loop {
        phase = match phase {
            Phase::Done(outcome, ticket) => return (outcome, ticket),
            Phase::Arrive => arrive(id, &ctx).await,
            Phase::Wait {
                ticket,
                joined,
                next_poll,
                poll_every,
            } => wait(id, fate, &ctx, ticket, joined, next_poll, poll_every).await,
            Phase::Leave { ticket } => leave(id, &ctx, ticket).await,
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
            Phase::Wait {
                ticket: p.ticket,
                joined: received,
                next_poll: received + poll_every,
                poll_every,
            }
        }
        None => Phase::Done(Outcome::NotPlaced, None),
    }
}

async fn wait(
    id: usize,
    fate: Fate,
    ctx: &Ctx,
    ticket: Arc<str>,
    joined: Instant,
    next_poll: Instant,
    poll_every: Duration,
) -> Phase {
    let acts_at = match fate {
        Fate::Stay => ctx.end,
        Fate::CloseTab(after) | Fate::Leave(after) => (joined + after).min(ctx.end),
    };
    if next_poll >= acts_at {
        tokio::time::sleep_until(acts_at.into()).await;
        return match fate {
            Fate::Leave(_) if acts_at < ctx.end => Phase::Leave { ticket },
            Fate::CloseTab(_) if acts_at < ctx.end => {
                ctx.report(Report::Stopped(id));
                Phase::Done(Outcome::ClosedTab, Some(ticket))
            }
            _ => {
                ctx.report(Report::Stopped(id));
                Phase::Done(Outcome::Stayed, Some(ticket))
            }
        };
    }
    tokio::time::sleep_until(next_poll.into()).await;
    let late = Instant::now().saturating_duration_since(next_poll);
    if late > LATE {
        ctx.report(Report::Late(late));
    }
    let (exchange, standing) = ctx.api.status(&ticket).await;
    let received = exchange.received;
    let status = exchange.status;
    ctx.report(Report::Status(id, exchange, standing.map(|s| s.position)));
    match standing {
        Some(s) => {
            if s.ready_for_entry {
                // Extension point: `--enter` moves to an Enter phase here.
                ctx.report(Report::Ready(id));
            }
            let poll_every = Duration::from_millis(s.poll_after_ms);
            Phase::Wait {
                ticket,
                joined,
                next_poll: received + poll_every,
                poll_every,
            }
        }
        None if status == 410 || status == 401 => Phase::Done(Outcome::Removed, Some(ticket)),
        // An outage (5xx, no answer): a browser tries again at its usual pace.
        None => Phase::Wait {
            ticket,
            joined,
            next_poll: received + poll_every,
            poll_every,
        },
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
    Phase::Done(outcome, Some(ticket))
}
