//! The pre-queue's draw, checkable by anyone (DESIGN §18): the public commitment, then the seed,
//! and the operators' export of every place. The order is ascending
//! HMAC-SHA256(key = seed, message = the ticket's `jti`) ([`crate::door::draw_score`]), so the
//! seed and the export give the whole order back; README's "How to check the draw" shows how.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::admin::{admin_event_id, Admin};
use super::error::{ApiError, ErrorBody};
use crate::app::AppState;
use crate::event::{EventId, EventState, Queueing};
use crate::store::Draw;

/// Most entries in one page of the export.
const MAX_ENTRIES: u64 = 10_000;

/// The public view of a draw.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DrawView {
    #[schema(value_type = String)]
    event_id: EventId,
    /// Hex SHA-256 of the 32 seed bytes, published from the pre-queue's start.
    commitment: String,
    /// People in the draw (in the pre-queue now, or placed by it).
    count: u64,
    /// The opening: when the draw places everyone (unix s).
    opens_at: u64,
    /// The seed (64 hex characters), once the event has opened (in random order, once it has
    /// closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<String>,
    /// When the draw was made (unix s), once the event has opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    drawn_at: Option<u64>,
}

async fn load(app: &AppState, event: &EventId) -> Result<Draw, ApiError> {
    app.store.draw(event).await?.ok_or(ApiError::EventNotFound)
}

#[utoipa::path(get, path = "/v1/events/{event_id}/draw", tag = "queue",
    params(("event_id" = String, Path, description = "The event")),
    responses(
        (status = 200, description = "The commitment (and, once open, the seed)", body = DrawView),
        (status = 404, description = "`event_not_found`: no such event, or none with a pre-queue", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
/// `GET /v1/events/{event_id}/draw`: the commitment before the opening; the seed after.
pub async fn public(
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&raw).map_err(|_| ApiError::EventNotFound)?;
    let config = app.store.get_event(&event).await?;
    let Some(config) = config.filter(|c| c.prequeue_opens_at.is_some()) else {
        return Err(ApiError::EventNotFound);
    };
    let draw = load(&app, &event).await?;
    // In random order every later join is placed by the same seed: shown while the sale runs,
    // it would let a bot time its joins for a good place. It is shown once the event closes.
    let revealed =
        draw.drawn && (config.queueing != Queueing::Random || config.state == EventState::Closed);
    let view = DrawView {
        commitment: hex::encode(Sha256::digest(&draw.seed)),
        count: draw.count,
        opens_at: draw.opens_at,
        seed: revealed.then(|| hex::encode(&draw.seed)),
        drawn_at: draw.drawn.then_some(draw.opens_at),
        event_id: event,
    };
    Ok(Json(view).into_response())
}

/// A page of the export.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EntriesQuery {
    /// Places skipped (default 0).
    offset: Option<u64>,
    /// Places in this page (default and most 10000).
    limit: Option<u64>,
}

/// One place of the draw.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DrawEntry {
    /// The ticket's `jti`: the message of the HMAC that orders the draw.
    jti: String,
    /// 1 for the first place.
    place: u64,
}

#[utoipa::path(get, path = "/admin/v1/events/{event_id}/draw/entries", tag = "admin",
    security(("admin_token" = [])),
    params(("event_id" = String, Path, description = "The event"), EntriesQuery),
    responses(
        (status = 200, description = "`{event_id, drawn, count, entries: [{jti, place}]}`: empty until the event has opened", body = Object),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`event_not_found`: no such event, or none with a pre-queue", body = ErrorBody),
        (status = 422, description = "`invalid_field` (event_id)", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
/// `GET /admin/v1/events/{event_id}/draw/entries`: `(jti, place)` for every place the draw
/// gave, in pages. Nothing before the opening: the export would show the order early.
pub async fn entries(
    _: Admin,
    State(app): State<AppState>,
    Path(raw): Path<String>,
    query: Result<Query<EntriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let event = admin_event_id(&raw)?;
    let Query(query) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(MAX_ENTRIES).clamp(1, MAX_ENTRIES);
    let draw = load(&app, &event).await?;
    let seqs = if draw.drawn {
        app.store.draw_entries(&event, offset, limit).await?
    } else {
        Vec::new()
    };
    let entries: Vec<DrawEntry> = (offset + 1..)
        .zip(seqs)
        .map(|(place, seq)| DrawEntry {
            jti: crate::tickets::jti(&event, seq),
            place,
        })
        .collect();
    Ok(Json(serde_json::json!({
        "event_id": event,
        "drawn": draw.drawn,
        "count": draw.count,
        "entries": entries,
    }))
    .into_response())
}
