//! The operator API (minimal for now): create, update and read an event's valves.

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::extract::{bearer, ApiJson};
use super::AppState;
use crate::event::{EventConfig, EventId, EventUpdate};

/// Proof that the request carries the admin token (compared in constant time).
pub struct Admin;

impl axum::extract::FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let expected = app.admin_token.as_ref().ok_or(ApiError::Unauthorized)?;
        let given = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let equal: bool = given
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes())
            .into();
        equal.then_some(Admin).ok_or(ApiError::Unauthorized)
    }
}

fn admin_event_id(raw: &str) -> Result<EventId, ApiError> {
    EventId::parse(raw).map_err(|reason| ApiError::invalid_field("event_id", reason))
}

/// `PUT /admin/v1/events/{event_id}`: creates (201) or updates (200) an event.
pub async fn put_event(
    _: Admin,
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
    let version = app.store.put_event(&event, &next).await?;
    tracing::info!(%event, ?update, version, "event valves changed");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = EventConfig { version, ..next };
    Ok((status, Json(json!({ "event_id": event, "config": body }))).into_response())
}

/// `GET /admin/v1/events/{event_id}`: the valves and live figures.
pub async fn get_event(
    _: Admin,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let event = admin_event_id(&raw)?;
    let config = app
        .store
        .get_event(&event)
        .await?
        .ok_or(ApiError::EventNotFound)?;
    let figures = app.store.figures(&event).await?;
    Ok(Json(json!({ "event_id": event, "config": config, "figures": figures })).into_response())
}
