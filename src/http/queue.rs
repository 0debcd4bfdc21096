//! The public queue API: join, status, leave.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{parse_json, BearerOrQuery, ClientIp};
use super::AppState;
use crate::event::{EventId, Tier};
use crate::store::{JoinOutcome, LeaveOutcome, Person, PersonState, Standing, StatusOutcome};
use crate::tickets::TicketClaims;

/// Body of a join; may be empty.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The caller's own id for the person; only for events with `identity: user_id`.
    user_id: Option<String>,
}

/// Answer of a join.
#[derive(Debug, Serialize)]
pub struct JoinResponse {
    ticket: String,
    event_id: EventId,
    user_id: String,
    state: &'static str,
    position: u64,
    ahead: u64,
    tier: Tier,
    poll_after_ms: u32,
}

/// Answer of a status poll.
#[derive(Debug, Serialize)]
pub struct StatusResponse {
    event_id: EventId,
    state: &'static str,
    position: u64,
    ahead: u64,
    /// Unknown until the door measures an outflow.
    eta_seconds: Option<u64>,
    ready_for_entry: bool,
    tier: Tier,
    poll_after_ms: u32,
}

/// `POST /v1/events/{event_id}/join`: 201 with a new place, 200 with the one already held.
///
/// Who the person is: the holder of a valid ticket for this event (resuming), else the body's
/// `user_id` where the event allows it, else a fresh anonymous id.
pub async fn join(
    State(app): State<AppState>,
    Path(raw_event): Path<String>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&raw_event).map_err(|_| ApiError::EventNotFound)?;
    let request: JoinRequest = if body.is_empty() {
        JoinRequest::default()
    } else {
        parse_json(&body)?
    };
    let person = person_for(&app, &event, &headers, request)?;
    if let Some(limiter) = &app.join_limiter {
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })?;
    }

    let (place, standing, created) = match app.store.join(&event, &person).await? {
        JoinOutcome::Placed {
            place,
            standing,
            created,
        } => (place, standing, created),
        JoinOutcome::NoEvent => return Err(ApiError::EventNotFound),
        JoinOutcome::ClaimRefused => {
            return Err(ApiError::invalid_field(
                "user_id",
                "this event names people itself; send no user_id",
            ))
        }
        JoinOutcome::NotOpen(state) if state == "closed" => return Err(ApiError::EventClosed),
        JoinOutcome::NotOpen(state) => return Err(ApiError::EventNotOpen(state)),
        JoinOutcome::Full => return Err(ApiError::QueueFull),
    };
    let body = JoinResponse {
        ticket: app.tickets.issue(&event, &person.id, &place),
        event_id: event,
        user_id: person.id,
        state: "waiting",
        position: standing.position,
        ahead: standing.position - 1,
        tier: standing.tier,
        poll_after_ms: standing.poll_after_ms,
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, no_store(), Json(body)).into_response())
}

fn person_for(
    app: &AppState,
    event: &EventId,
    headers: &HeaderMap,
    request: JoinRequest,
) -> Result<Person, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = presented {
        let (ticket_event, claims) = verify(app, token)?;
        if &ticket_event != event {
            return Err(ApiError::InvalidTicket(
                "this ticket is for another event".into(),
            ));
        }
        return Ok(Person {
            id: claims.sub,
            claimed: false,
        });
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
            claimed: true,
        });
    }
    Ok(Person {
        id: anonymous_id(),
        claimed: false,
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

fn verify(app: &AppState, token: &str) -> Result<(EventId, TicketClaims), ApiError> {
    app.tickets
        .verify(token)
        .map_err(|e| ApiError::InvalidTicket(e.to_string()))
}

/// `GET /v1/queue/status`: refreshes the heartbeat and answers the exact position, in one
/// store round trip.
pub async fn status(
    State(app): State<AppState>,
    BearerOrQuery(token): BearerOrQuery,
) -> Result<Response, ApiError> {
    let (event, claims) = verify(&app, &token)?;
    match app.store.status(&event, &claims.sub, claims.seq).await? {
        StatusOutcome::Waiting(standing) => {
            Ok((no_store(), Json(waiting(event, standing))).into_response())
        }
        StatusOutcome::Gone(state) => Err(gone(state)),
        StatusOutcome::Unknown => Err(no_place()),
        StatusOutcome::Superseded => Err(superseded()),
    }
}

fn waiting(event_id: EventId, standing: Standing) -> StatusResponse {
    StatusResponse {
        event_id,
        state: "waiting",
        position: standing.position,
        ahead: standing.position - 1,
        eta_seconds: None,
        ready_for_entry: false,
        tier: standing.tier,
        poll_after_ms: standing.poll_after_ms,
    }
}

/// `POST /v1/queue/leave`: 204 once the person is out of the queue (leaving twice is fine).
pub async fn leave(
    State(app): State<AppState>,
    BearerOrQuery(token): BearerOrQuery,
) -> Result<StatusCode, ApiError> {
    let (event, claims) = verify(&app, &token)?;
    match app.store.leave(&event, &claims.sub, claims.seq).await? {
        LeaveOutcome::Left => Ok(StatusCode::NO_CONTENT),
        LeaveOutcome::Evicted => Err(ApiError::Evicted),
        LeaveOutcome::Unknown => Err(no_place()),
        LeaveOutcome::Superseded => Err(superseded()),
    }
}

fn gone(state: PersonState) -> ApiError {
    match state {
        PersonState::Evicted => ApiError::Evicted,
        PersonState::Left => ApiError::Left,
        PersonState::Waiting => ApiError::Internal,
    }
}

fn no_place() -> ApiError {
    ApiError::InvalidTicket("no place in the queue matches this ticket".into())
}

fn superseded() -> ApiError {
    ApiError::InvalidTicket("this ticket was replaced by a newer join".into())
}

/// Positions change every second: never cache them.
fn no_store() -> [(header::HeaderName, &'static str); 1] {
    [(header::CACHE_CONTROL, "no-store")]
}
