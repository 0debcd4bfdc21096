//! The operator API: create, update, read and list events, and read their audit trail. Every
//! change is validated, applied atomically with its audit entry, and logged.

use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ErrorBody};
use super::extract::{bearer, ApiJson};
use crate::app::AppState;
use crate::event::{EventConfig, EventId, EventUpdate};

/// Proof that the request carries the admin token (compared in constant time), and the id
/// the audit trail records for it: never the token itself.
pub struct Admin {
    /// `admin:` and the first 8 hex digits of the token's SHA-256.
    pub token_id: String,
}

impl axum::extract::FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let expected = app.admin_token.as_ref().ok_or(ApiError::Unauthorized)?;
        let given = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let equal: bool = given
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes())
            .into();
        if !equal {
            return Err(ApiError::Unauthorized);
        }
        Ok(Admin {
            token_id: format!(
                "admin:{}",
                hex::encode(&Sha256::digest(given.as_bytes())[..4])
            ),
        })
    }
}

pub(super) fn admin_event_id(raw: &str) -> Result<EventId, ApiError> {
    EventId::parse(raw).map_err(|reason| ApiError::invalid_field("event_id", reason))
}

#[utoipa::path(put, path = "/admin/v1/events/{event_id}", tag = "admin",
    security(("admin_token" = [])),
    params(("event_id" = String, Path, description = "1-64 of [A-Za-z0-9_-]")),
    request_body = EventUpdate,
    responses(
        (status = 201, description = "Created: `{event_id, config, changes}`", body = Object),
        (status = 200, description = "Updated: `{event_id, config, changes}`", body = Object),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, naming the field", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
/// `PUT /admin/v1/events/{event_id}`: creates (201) or updates (200) an event. The change is in
/// force on every instance at once: every store step reads the valves from the store.
pub async fn put_event(
    admin: Admin,
    State(app): State<AppState>,
    Path(raw): Path<String>,
    ApiJson(update): ApiJson<EventUpdate>,
) -> Result<Response, ApiError> {
    let event = admin_event_id(&raw)?;
    let current = app.store.get_event(&event).await?;
    let created = current.is_none();
    let next = current
        .unwrap_or_default()
        .apply(&update)
        .map_err(|e| ApiError::invalid_field(e.field, e.reason))?;
    let change = app.store.put_event(&event, &next, &admin.token_id).await?;
    tracing::info!(
        %event,
        by = %admin.token_id,
        version = change.version,
        changes = %change.changes,
        "event valves changed"
    );
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let config = EventConfig {
        version: change.version,
        ..next
    };
    let body = json!({ "event_id": event, "config": config, "changes": change.changes });
    Ok((status, Json(body)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/events/{event_id}", tag = "admin",
    security(("admin_token" = [])),
    params(("event_id" = String, Path, description = "The event")),
    responses(
        (status = 200, description = "`{event_id, state_now, config: EventConfig, figures: Figures, door_rate_now, outflow_per_second_last_minute}`", body = Object),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_field` (event_id)", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
/// `GET /admin/v1/events/{event_id}`: the valves and live figures.
pub async fn get_event(
    _: Admin,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let event = admin_event_id(&raw)?;
    Ok(Json(describe(&app, event).await?).into_response())
}

async fn describe(app: &AppState, event: EventId) -> Result<serde_json::Value, ApiError> {
    let config = app
        .store
        .get_event(&event)
        .await?
        .ok_or(ApiError::EventNotFound)?;
    let figures = app.store.figures(&event).await?;
    let state_now = config.state_at(crate::clock::now_ms());
    let door_rate = if state_now == crate::event::EventState::Open {
        config.admission_rate
    } else {
        0.0
    };
    Ok(json!({
        "event_id": event,
        "state_now": state_now,
        "config": config,
        // The keys themselves are write-only.
        "enqueue_key_set": config.enqueue_key.is_some(),
        "enqueue_key_previous_set": config.enqueue_key_previous.is_some(),
        "figures": figures,
        "door_rate_now": door_rate,
        "outflow_per_second_last_minute": figures.admitted_last_minute as f64 / 60.0,
    }))
}

#[utoipa::path(get, path = "/admin/v1/events", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "`{events: [...]}`, each as `GET /admin/v1/events/{event_id}`", body = Object),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
/// `GET /admin/v1/events`: every event with its valves and live figures.
pub async fn list_events(_: Admin, State(app): State<AppState>) -> Result<Response, ApiError> {
    let mut ids = app.store.list_events().await?;
    ids.sort();
    let mut events = Vec::with_capacity(ids.len());
    for event in ids {
        match describe(&app, event).await {
            Ok(described) => events.push(described),
            // Gone between the listing and the read: not an error.
            Err(ApiError::EventNotFound) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(Json(json!({ "events": events })).into_response())
}

/// Query of the audit endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Most entries to answer (default 100, at most the trail's length).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/admin/v1/events/{event_id}/audit", tag = "admin",
    security(("admin_token" = [])),
    params(("event_id" = String, Path, description = "The event"), AuditQuery),
    responses(
        (status = 200, description = "`{event_id, entries: [AuditEntry]}`, newest first", body = Object),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 422, description = "`invalid_field` (event_id)", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
/// `GET /admin/v1/events/{event_id}/audit`: who changed which valve when, newest first.
pub async fn audit(
    _: Admin,
    State(app): State<AppState>,
    Path(raw): Path<String>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let event = admin_event_id(&raw)?;
    let Query(query) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(100).clamp(1, crate::store::AUDIT_LEN);
    let entries = app.store.audit(&event, limit).await?;
    Ok(Json(json!({ "event_id": event, "entries": entries })).into_response())
}
