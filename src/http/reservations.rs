//! Reservations (DESIGN semantics 9, §19): an admitted person orders with `POST
//! /v1/reservations` and reads the result with `GET /v1/reservations/{id}`; a worker applies
//! it meanwhile. A confirmed reservation is a hold: the sale backend completes it (`POST
//! …/complete`, backend token), the person or the backend cancels it (`POST …/cancel`), or it
//! expires (the worker). The database decides each end with one conditional row update, so
//! of any racing ends exactly one wins; the store shows the winner.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::{bearer, ApiJson};
use crate::admission::AdmissionClaims;
use crate::app::AppState;
use crate::event::EventId;
use crate::inventory::{DbError, HoldEnd};
use crate::store::reservations::{
    encode_items, valid_sku, Item, NewReservation, Reservation, ReservationState, ReserveOutcome,
    MAX_ITEMS, MAX_QUANTITY,
};

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 128;

// === extractors ===

/// A verified admission token: who is ordering, for which event. Missing, forged, expired,
/// or a queue ticket instead: 401 `invalid_token`.
pub struct Admitted {
    event: EventId,
    claims: AdmissionClaims,
}

impl FromRequestParts<AppState> for Admitted {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::InvalidToken("an admission token is required".into()))?;
        let (event, claims) = app
            .admissions
            .verify(&token)
            .map_err(|e| ApiError::InvalidToken(e.to_string()))?;
        Ok(Self { event, claims })
    }
}

/// The `Idempotency-Key` header: required, 1–128 visible ASCII characters (400 otherwise).
pub struct IdempotencyKey(String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let value = parts.headers.get("idempotency-key").ok_or_else(|| {
            ApiError::InvalidRequest("the Idempotency-Key header is required".into())
        })?;
        let key = value
            .to_str()
            .ok()
            .filter(|k| {
                (1..=MAX_IDEMPOTENCY_KEY).contains(&k.len())
                    && k.bytes().all(|b| b.is_ascii_graphic())
            })
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                ))
            })?;
        Ok(Self(key.to_owned()))
    }
}

// === bodies ===

/// One line of an order, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    sku: String,
    quantity: u32,
}

/// Body of `POST /v1/reservations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody {
    items: Vec<ItemBody>,
}

/// Checks an order against the per-reservation limits ([`MAX_ITEMS`], [`MAX_QUANTITY`]);
/// 422 naming the field.
fn validate(body: ReserveBody) -> Result<Vec<Item>, ApiError> {
    if body.items.is_empty() {
        return Err(ApiError::invalid_field("items", "order at least one item"));
    }
    if body.items.len() > MAX_ITEMS {
        return Err(ApiError::invalid_field(
            "items",
            format!("at most {MAX_ITEMS} items per reservation"),
        ));
    }
    let mut items: Vec<Item> = Vec::with_capacity(body.items.len());
    for (i, item) in body.items.into_iter().enumerate() {
        if !valid_sku(&item.sku) {
            return Err(ApiError::invalid_field(
                format!("items[{i}].sku"),
                "a sku is 1 to 64 of letters, digits, '_', '.' and '-'",
            ));
        }
        if items.iter().any(|seen| seen.sku == item.sku) {
            return Err(ApiError::invalid_field(
                format!("items[{i}].sku"),
                "each sku may appear once",
            ));
        }
        if item.quantity == 0 || item.quantity > MAX_QUANTITY {
            return Err(ApiError::invalid_field(
                format!("items[{i}].quantity"),
                format!("must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        items.push(Item {
            sku: item.sku,
            quantity: item.quantity,
        });
    }
    let total: u32 = items.iter().map(|i| i.quantity).sum();
    if total > MAX_QUANTITY {
        return Err(ApiError::invalid_field(
            "items",
            format!("at most {MAX_QUANTITY} units per reservation"),
        ));
    }
    Ok(items)
}

/// The idempotency fingerprint of an order: a hash of its normalised items, so the same
/// order sent with other whitespace is still the same body.
fn body_hash(items: &[Item]) -> String {
    hex::encode(Sha256::digest(encode_items(items).as_bytes()))
}

fn view(event: &EventId, reservation: &Reservation) -> Value {
    let mut body = json!({
        "reservation_id": reservation.id,
        "event_id": event,
        "state": reservation.state,
        "items": reservation.items,
    });
    if let Some(reason) = &reservation.reason {
        body["reason"] = json!(reason);
    }
    if reservation.state == ReservationState::Confirmed {
        // Unix seconds, like an admission's `expires_at`; null: the hold never expires.
        body["hold_expires_at"] = json!(reservation.hold_expires_at_ms.map(|ms| ms / 1000));
    }
    body
}

/// Whether the request carries the sale backend's token (compared in constant time).
pub(super) fn is_backend(headers: &axum::http::HeaderMap, app: &AppState) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    match (app.backend_token.as_ref(), bearer(headers)) {
        (Some(expected), Some(given)) => given
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes())
            .into(),
        _ => false,
    }
}

fn well_formed(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Ends a hold in the database (which decides), then shows it in the store. If showing it
/// fails, the worker does it later (the row stays unsynced): the answer is already decided.
async fn end_hold(
    app: &AppState,
    id: &str,
    how: ReservationState,
    owner: Option<(&EventId, &str)>,
) -> Result<Response, ApiError> {
    let ended = app.database.end_hold(id, how, owner).await.map_err(|err| {
        tracing::warn!(error = %err, "ending a hold failed");
        match err {
            DbError::Unavailable(_) => ApiError::Unavailable,
            DbError::Statement(_) => ApiError::Internal,
        }
    })?;
    let event = match ended {
        HoldEnd::Ended { event } => {
            if let Ok(event) = EventId::parse(&event) {
                let shown = app.reservations.end_hold(&event, id, how).await;
                if shown.is_ok() {
                    let _ = app.database.mark_synced(&[id.to_owned()]).await;
                }
                tracing::info!(%event, reservation = %id, state = how.as_str(), "hold ended");
            }
            event
        }
        HoldEnd::Already { event } => event,
        HoldEnd::Over { state, .. } => {
            return Err(ApiError::HoldEnded(format!(
                "this reservation's hold is over: {}",
                state.as_str()
            )))
        }
        HoldEnd::NotFound => return Err(ApiError::ReservationNotFound),
    };
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "reservation_id": id, "event_id": event, "state": how })),
    )
        .into_response())
}

// === handlers ===

#[utoipa::path(post, path = "/v1/reservations", tag = "reservations",
    params(("Idempotency-Key" = String, Header, description = "Required: the same key and body give the same reservation")),
    request_body = ReserveBody,
    responses(
        (status = 202, description = "`{reservation_id, state: \"pending\"}` (the same reservation for a repeated key and body)", body = Object),
        (status = 400, description = "`invalid_request`: malformed body or missing Idempotency-Key", body = crate::http::error::ErrorBody),
        (status = 401, description = "`invalid_token`: no valid admission token", body = crate::http::error::ErrorBody),
        (status = 404, description = "`event_not_found`", body = crate::http::error::ErrorBody),
        (status = 403, description = "`admission_redeemed`: the sale backend redeemed this admission", body = crate::http::error::ErrorBody),
        (status = 409, description = "`idempotency_conflict`: the key was used with another body", body = crate::http::error::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::http::error::ErrorBody),
        (status = 422, description = "`invalid_field`, naming the field (quantities, limits)", body = crate::http::error::ErrorBody),
        (status = 429, description = "`too_many_reservations` open for this person, with Retry-After", body = crate::http::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = crate::http::error::ErrorBody),
    ))]
/// `POST /v1/reservations`: records the order as `pending` and answers 202 with its id; a
/// worker applies it. The same `Idempotency-Key` with the same body answers the same
/// reservation (202, its current state); with another body, 409 `idempotency_conflict`.
/// Too many pending reservations: 429 `too_many_reservations`.
pub async fn reserve(
    State(app): State<AppState>,
    Admitted { event, claims }: Admitted,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    ApiJson(body): ApiJson<ReserveBody>,
) -> Result<Response, ApiError> {
    let items = validate(body)?;
    let new = NewReservation {
        id: uuid::Uuid::new_v4().simple().to_string(),
        person: claims.sub.clone(),
        idempotency_key,
        admission: claims.jti.clone(),
        body_hash: body_hash(&items),
        items,
    };
    let (id, fresh) = match app.reservations.reserve(&event, &new).await? {
        ReserveOutcome::Accepted { id, new } => (id, new),
        ReserveOutcome::Conflict => return Err(ApiError::IdempotencyConflict),
        ReserveOutcome::TooManyOpen => return Err(ApiError::TooManyReservations),
        ReserveOutcome::NoEvent => return Err(ApiError::EventNotFound),
        ReserveOutcome::Redeemed => return Err(ApiError::AdmissionRedeemed),
    };
    let body = if fresh {
        tracing::info!(%event, reservation = %id, "reservation recorded");
        json!({ "reservation_id": id, "event_id": event, "state": "pending" })
    } else {
        match app.reservations.reservation(&event, &id).await? {
            Some(reservation) => view(&event, &reservation),
            None => json!({ "reservation_id": id, "event_id": event, "state": "pending" }),
        }
    };
    let location = format!("/v1/reservations/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/reservations/{reservation_id}", tag = "reservations",
    params(("reservation_id" = String, Path, description = "The reservation")),
    responses(
        (status = 200, description = "`{reservation_id, state: pending|confirmed|rejected, reason?, items}`", body = Object),
        (status = 401, description = "`invalid_token`", body = crate::http::error::ErrorBody),
        (status = 404, description = "`reservation_not_found` (also for someone else's)", body = crate::http::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = crate::http::error::ErrorBody),
    ))]
/// `GET /v1/reservations/{id}`: `{reservation_id, state, reason?, items}`. Only the person
/// who made it may read it; anyone else gets 404, as for an unknown id.
pub async fn get(
    State(app): State<AppState>,
    Admitted { event, claims }: Admitted,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !well_formed(&id) {
        return Err(ApiError::ReservationNotFound);
    }
    let reservation = app
        .reservations
        .reservation(&event, &id)
        .await?
        .filter(|r| r.person == claims.sub)
        .ok_or(ApiError::ReservationNotFound)?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(view(&event, &reservation)),
    )
        .into_response())
}

#[utoipa::path(post, path = "/v1/reservations/{reservation_id}/complete", tag = "reservations",
    security(("backend_token" = [])),
    params(("reservation_id" = String, Path, description = "The reservation")),
    responses(
        (status = 200, description = "`{reservation_id, event_id, state: \"completed\"}` (also when repeated)", body = Object),
        (status = 401, description = "`unauthorized`: no backend token", body = crate::http::error::ErrorBody),
        (status = 404, description = "`reservation_not_found` (unknown, or not applied yet)", body = crate::http::error::ErrorBody),
        (status = 409, description = "`hold_ended`: released, expired or rejected", body = crate::http::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = crate::http::error::ErrorBody),
    ))]
/// `POST /v1/reservations/{id}/complete` (backend token): the hold's units are sold. Racing
/// expiry or a cancel, exactly one wins; the loser gets 409 `hold_ended`.
pub async fn complete(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !is_backend(&headers, &app) {
        return Err(ApiError::Unauthorized);
    }
    if !well_formed(&id) {
        return Err(ApiError::ReservationNotFound);
    }
    end_hold(&app, &id, ReservationState::Completed, None).await
}

#[utoipa::path(post, path = "/v1/reservations/{reservation_id}/cancel", tag = "reservations",
    params(("reservation_id" = String, Path, description = "The reservation")),
    responses(
        (status = 200, description = "`{reservation_id, event_id, state: \"released\"}` (also when repeated)", body = Object),
        (status = 401, description = "`invalid_token`: neither the maker's admission token nor the backend token", body = crate::http::error::ErrorBody),
        (status = 404, description = "`reservation_not_found` (unknown, someone else's, or not applied yet)", body = crate::http::error::ErrorBody),
        (status = 409, description = "`hold_ended`: completed, expired or rejected", body = crate::http::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = crate::http::error::ErrorBody),
    ))]
/// `POST /v1/reservations/{id}/cancel` (the maker's admission token, or the backend token):
/// the hold's units return to `remaining`, once.
pub async fn cancel(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let maker = if is_backend(&headers, &app) {
        None
    } else {
        let token = bearer(&headers)
            .ok_or_else(|| ApiError::InvalidToken("an admission token is required".into()))?;
        let (event, claims) = app
            .admissions
            .verify(&token)
            .map_err(|e| ApiError::InvalidToken(e.to_string()))?;
        Some((event, claims.sub))
    };
    if !well_formed(&id) {
        return Err(ApiError::ReservationNotFound);
    }
    let owner = maker
        .as_ref()
        .map(|(event, person)| (event, person.as_str()));
    end_hold(&app, &id, ReservationState::Released, owner).await
}
