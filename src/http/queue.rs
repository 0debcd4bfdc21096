//! The public queue API: join, status, leave.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody};
use super::extract::{bearer, parse_json, BearerOrQuery, ClientIp};
use crate::app::AppState;
use crate::event::{EventId, Identity, Tier};
use crate::metrics::UNKNOWN_EVENT;
use crate::store::{Gone, JoinOutcome, LeaveOutcome, Origin, Person, Presence, StatusOutcome};
use crate::tickets::TicketClaims;

/// Body of a join; may be empty.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The caller's own id for the person; only for events with `identity: user_id`.
    user_id: Option<String>,
    /// An HS256 JWT minted by the sale site (`sub`, `ev`, `exp`); for events with
    /// `identity: signed`, whose people come only from these tokens.
    enqueue_token: Option<String>,
}

/// Answer of a join: the ticket, and the same fields as a status answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JoinResponse {
    ticket: String,
    user_id: String,
    #[serde(flatten)]
    status: StatusResponse,
}

/// Answer of a status poll (and each event of the status stream).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusResponse {
    #[schema(value_type = String)]
    event_id: EventId,
    /// `pre_queue` (no position until the draw at `opens_at`), `waiting`, `ready` (inside the
    /// door's window: may enter now) or `admitted`.
    state: &'static str,
    /// `null` in the pre-queue and in random order (`queueing: random`).
    position: Option<u64>,
    /// `null` in the pre-queue and in random order.
    ahead: Option<u64>,
    /// Only in the pre-queue: when the event opens and the draw gives everyone a place (unix s).
    #[serde(skip_serializing_if = "Option::is_none")]
    opens_at: Option<u64>,
    /// Expected wait from the measured outflow; `null` while unknown (door shut, nobody let in).
    eta_seconds: Option<u64>,
    ready_for_entry: bool,
    /// `vip`, `fast` or `slow`; `null` once admitted.
    tier: Option<Tier>,
    poll_after_ms: u32,
    /// Unix seconds; only once admitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    admission_expires_at: Option<u64>,
}

/// How often an admitted person's page needs to look again: nothing changes until expiry.
const ADMITTED_POLL_MS: u32 = 5000;

impl StatusResponse {
    fn new(event_id: EventId, presence: Presence) -> Self {
        match presence {
            Presence::Waiting(s) => Self {
                event_id,
                state: if s.ready { "ready" } else { "waiting" },
                // In random order the position (and an ETA, which would tell it) stays hidden.
                position: s.shown.then_some(s.position),
                ahead: s.shown.then(|| s.position - 1),
                opens_at: None,
                eta_seconds: s.eta_secs.filter(|_| s.shown),
                ready_for_entry: s.ready,
                tier: Some(s.tier),
                poll_after_ms: s.poll_after_ms,
                admission_expires_at: None,
            },
            Presence::PreQueue {
                opens_at,
                poll_after_ms,
            } => Self {
                event_id,
                state: "pre_queue",
                position: None,
                ahead: None,
                opens_at: Some(opens_at),
                eta_seconds: None,
                ready_for_entry: false,
                tier: None,
                poll_after_ms,
                admission_expires_at: None,
            },
            Presence::Admitted { expires_at_ms } => Self {
                event_id,
                state: "admitted",
                position: Some(0),
                ahead: Some(0),
                opens_at: None,
                eta_seconds: Some(0),
                // Entering again hands out the same admission token.
                ready_for_entry: true,
                tier: None,
                poll_after_ms: ADMITTED_POLL_MS,
                admission_expires_at: (expires_at_ms > 0).then_some(expires_at_ms / 1000),
            },
        }
    }
}

/// `POST /v1/events/{event_id}/join`: 201 with a new place, 200 with the one already held.
#[utoipa::path(post, path = "/v1/events/{event_id}/join", tag = "queue",
    params(("event_id" = String, Path, description = "The event")),
    request_body(content = JoinRequest, description = "Optional. `user_id` only where the event's identity is `user_id`; `enqueue_token` where it is `signed`. A valid ticket in `Authorization: Bearer` resumes its place."),
    responses(
        (status = 201, description = "A new place", body = JoinResponse),
        (status = 200, description = "The place already held (same ticket)", body = JoinResponse),
        (status = 400, description = "Malformed JSON (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "A presented ticket is invalid or for another event (`invalid_ticket`), or the enqueue token of an `identity: signed` event is missing, forged, expired or another event's (`invalid_enqueue_token`)", body = ErrorBody),
        (status = 403, description = "`event_closed`, or `event_not_open` (scheduled/paused, Retry-After)", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, naming the field", body = ErrorBody),
        (status = 429, description = "`rate_limited` (per client), with Retry-After", body = ErrorBody),
        (status = 503, description = "`queue_full` or `unavailable`, with Retry-After", body = ErrorBody),
    ))]
///
/// Who the person is: the holder of a valid ticket for this event (resuming), else the body's
/// `user_id` where the event allows it, else a fresh anonymous id.
pub async fn join(
    State(app): State<AppState>,
    Path(raw_event): Path<String>,
    client: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&raw_event).map_err(|_| ApiError::EventNotFound)?;
    let request: JoinRequest = if body.is_empty() {
        JoinRequest::default()
    } else {
        parse_json(&body)?
    };
    let person = person_for(&app, &event, &headers, request).await?;
    if let Some(limiter) = &app.join_limiter {
        if let Err(not_until) = limiter.check_key(&client.limit_key()) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            // The event is not known to exist yet: never a label a client could choose.
            app.metrics.reject(UNKNOWN_EVENT, "rate_limited");
            return Err(ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            });
        }
    }

    let refused = match app.store.join(&event, &person).await? {
        JoinOutcome::Placed {
            place,
            presence,
            created,
        } => Ok((place, presence, created)),
        JoinOutcome::NoEvent => Err(ApiError::EventNotFound),
        JoinOutcome::ClaimRefused if person.origin == Origin::Signed => Err(
            ApiError::InvalidEnqueueToken("this event takes no enqueue tokens".into()),
        ),
        JoinOutcome::ClaimRefused => Err(ApiError::invalid_field(
            "user_id",
            "this event names people itself; send no user_id",
        )),
        JoinOutcome::TokenRequired => Err(ApiError::InvalidEnqueueToken(
            "this event admits people only with an enqueue token from the sale site".into(),
        )),
        JoinOutcome::NotOpen(state) if state == "closed" => Err(ApiError::EventClosed),
        JoinOutcome::NotOpen(state) => Err(ApiError::EventNotOpen(state)),
        JoinOutcome::Full => Err(ApiError::QueueFull),
    };
    let (place, presence, created) = refused.inspect_err(|err| {
        let label = match err {
            ApiError::EventNotFound => UNKNOWN_EVENT,
            _ => event.as_str(),
        };
        app.metrics.reject(label, err.code());
    })?;
    if created {
        app.metrics.joins.with_label_values(&[event.as_str()]).inc();
    }
    let ticket = app.tickets.issue(&event, &person.id, &place);
    let status = StatusResponse::new(event, presence);
    let body = JoinResponse {
        ticket,
        user_id: person.id,
        status,
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, no_store(), Json(body)).into_response())
}

async fn person_for(
    app: &AppState,
    event: &EventId,
    headers: &HeaderMap,
    request: JoinRequest,
) -> Result<Person, ApiError> {
    if let Some(token) = bearer(headers) {
        let (ticket_event, claims) = verify(app, &token)?;
        if &ticket_event != event {
            return Err(ApiError::InvalidTicket(
                "this ticket is for another event".into(),
            ));
        }
        return Ok(Person {
            id: claims.sub,
            origin: Origin::Made,
        });
    }
    if let Some(token) = request.enqueue_token {
        return signed_person(app, event, &token).await;
    }
    if let Some(user_id) = request.user_id {
        let valid = (1..=64).contains(&user_id.len())
            && user_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b));
        if !valid {
            return Err(ApiError::invalid_field(
                "user_id",
                "must be 1 to 64 of letters, digits and . _ : @ -",
            ));
        }
        return Ok(Person {
            id: user_id,
            origin: Origin::Named,
        });
    }
    Ok(Person {
        id: anonymous_id(),
        origin: Origin::Made,
    })
}

/// The person an enqueue token names, checked against the event's keys as the store has them
/// now (one read: a rotated key is in force at once on every gateway).
async fn signed_person(app: &AppState, event: &EventId, token: &str) -> Result<Person, ApiError> {
    let config = app
        .store
        .get_event(event)
        .await?
        .ok_or(ApiError::EventNotFound)?;
    let keys: Vec<Vec<u8>> = [&config.enqueue_key, &config.enqueue_key_previous]
        .into_iter()
        .flatten()
        .filter_map(|key| key.bytes())
        .collect();
    if config.identity != Identity::Signed || keys.is_empty() {
        return Err(ApiError::InvalidEnqueueToken(
            "this event takes no enqueue tokens".into(),
        ));
    }
    let now = crate::clock::now_ms() / 1000;
    let sub = crate::tickets::verify_enqueue_token(token, event, &keys, now)
        .map_err(ApiError::InvalidEnqueueToken)?;
    Ok(Person {
        id: sub,
        origin: Origin::Signed,
    })
}

/// 96 random bits, base64url: unguessable, and short, since every waiting person's id is
/// stored three times.
fn anonymous_id() -> String {
    use base64::Engine;
    let bytes: [u8; 12] = rand::random();
    format!(
        "a.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub(super) fn verify(app: &AppState, token: &str) -> Result<(EventId, TicketClaims), ApiError> {
    app.tickets
        .verify(token)
        .map_err(|e| ApiError::InvalidTicket(e.to_string()))
}

#[utoipa::path(get, path = "/v1/queue/status", tag = "queue",
    params(("ticket" = Option<String>, Query, description = "The ticket, for plain pages; else `Authorization: Bearer`")),
    responses(
        (status = 200, description = "Where the person stands", body = StatusResponse),
        (status = 401, description = "Missing, forged or expired ticket (`invalid_ticket`)", body = ErrorBody),
        (status = 410, description = "`evicted`, `left` or `admission_expired`", body = ErrorBody),
        (status = 503, description = "Store unreachable (`unavailable`), with Retry-After", body = ErrorBody),
    ))]
/// `GET /v1/queue/status`: refreshes the heartbeat, peeks at the door and answers the exact
/// position, in one store round trip.
pub async fn status(
    State(app): State<AppState>,
    BearerOrQuery(token): BearerOrQuery,
) -> Result<Response, ApiError> {
    let (event, claims) = verify(&app, &token)?;
    let body = current_status(&app, event, &claims).await?;
    Ok((no_store(), Json(body)).into_response())
}

async fn current_status(
    app: &AppState,
    event: EventId,
    claims: &TicketClaims,
) -> Result<StatusResponse, ApiError> {
    // The event comes from a ticket we signed: a bounded label.
    app.metrics
        .status_polls
        .with_label_values(&[event.as_str()])
        .inc();
    match app.store.status(&event, &claims.sub, claims.seq).await? {
        StatusOutcome::Present(presence) => Ok(StatusResponse::new(event, presence)),
        StatusOutcome::Gone(gone) => Err(gone_error(gone)),
        StatusOutcome::Unknown => Err(no_place()),
        StatusOutcome::Superseded => Err(superseded()),
    }
}

/// Bounds on how often a stream asks the store: often enough to show a turn within a couple
/// of seconds, never more than a polling page would.
const STREAM_MIN_POLL: Duration = Duration::from_millis(1000);
const STREAM_MAX_POLL: Duration = Duration::from_millis(5000);

#[utoipa::path(get, path = "/v1/queue/stream", tag = "queue",
    params(("ticket" = Option<String>, Query, description = "The ticket (EventSource cannot send headers)")),
    responses(
        (status = 200, description = "`text/event-stream`: `status` events carrying the status object on every change; a final `error` event when the place is gone", content_type = "text/event-stream", body = StatusResponse),
        (status = 401, description = "Missing, forged or expired ticket (`invalid_ticket`)", body = ErrorBody),
        (status = 410, description = "`evicted`, `left` or `admission_expired`", body = ErrorBody),
        (status = 503, description = "Store unreachable (`unavailable`), with Retry-After", body = ErrorBody),
    ))]
/// `GET /v1/queue/stream`: Server-Sent Events (`status`) carrying the status object whenever it
/// changes, refreshing the heartbeat while the connection is open. A final `error` event carries
/// the error object when the place is gone; `unavailable` errors are sent and the stream goes on.
pub async fn stream(
    State(app): State<AppState>,
    BearerOrQuery(token): BearerOrQuery,
) -> Result<Response, ApiError> {
    let (event, claims) = verify(&app, &token)?;
    // A bad ticket or a gone place gets a plain error answer, not a stream.
    let first = current_status(&app, event.clone(), &claims).await?;
    struct Cursor {
        app: AppState,
        event: EventId,
        claims: TicketClaims,
        pending: Option<Result<StatusResponse, ApiError>>,
        last: Option<String>,
        poll: Duration,
        done: bool,
    }
    let cursor = Cursor {
        app,
        event,
        claims,
        pending: Some(Ok(first)),
        last: None,
        poll: STREAM_MIN_POLL,
        done: false,
    };
    let events = futures::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        loop {
            let answer = match c.pending.take() {
                Some(answer) => answer,
                None => {
                    tokio::time::sleep(c.poll).await;
                    current_status(&c.app, c.event.clone(), &c.claims).await
                }
            };
            let (name, data) = match answer {
                Ok(body) => {
                    c.poll = Duration::from_millis(body.poll_after_ms.into())
                        .clamp(STREAM_MIN_POLL, STREAM_MAX_POLL);
                    ("status", serde_json::to_string(&body).unwrap_or_default())
                }
                Err(err) => {
                    c.done = !matches!(err, ApiError::Unavailable);
                    let body = serde_json::to_string(&err.body()).unwrap_or_default();
                    ("error", body)
                }
            };
            if c.last.as_deref() != Some(data.as_str()) || c.done {
                c.last = Some(data.clone());
                let event = SseEvent::default().event(name).data(data);
                return Some((Ok::<_, Infallible>(event), c));
            }
        }
    });
    let sse = Sse::new(events).keep_alive(KeepAlive::default());
    Ok((no_store(), sse).into_response())
}

#[utoipa::path(post, path = "/v1/queue/leave", tag = "queue",
    responses(
        (status = 204, description = "Out of the queue (leaving twice is fine)"),
        (status = 401, description = "`invalid_ticket`", body = ErrorBody),
        (status = 410, description = "`evicted` before leaving", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
/// `POST /v1/queue/leave`: 204 once the person is out of the queue (leaving twice is fine).
pub async fn leave(
    State(app): State<AppState>,
    BearerOrQuery(token): BearerOrQuery,
) -> Result<StatusCode, ApiError> {
    let (event, claims) = verify(&app, &token)?;
    match app.store.leave(&event, &claims.sub, claims.seq).await? {
        LeaveOutcome::Left { now } => {
            if now {
                app.metrics.left.with_label_values(&[event.as_str()]).inc();
            }
            Ok(StatusCode::NO_CONTENT)
        }
        LeaveOutcome::Evicted => Err(ApiError::Evicted),
        LeaveOutcome::Unknown => Err(no_place()),
        LeaveOutcome::Superseded => Err(superseded()),
    }
}

pub(super) fn gone_error(gone: Gone) -> ApiError {
    match gone {
        Gone::Evicted => ApiError::Evicted,
        Gone::Left => ApiError::Left,
        Gone::AdmissionExpired => ApiError::AdmissionExpired,
    }
}

pub(super) fn no_place() -> ApiError {
    ApiError::InvalidTicket("no place in the queue matches this ticket".into())
}

pub(super) fn superseded() -> ApiError {
    ApiError::InvalidTicket("this ticket was replaced by a newer join".into())
}

/// Positions change every second: never cache them.
pub(super) fn no_store() -> [(header::HeaderName, &'static str); 1] {
    [(header::CACHE_CONTROL, "no-store")]
}
