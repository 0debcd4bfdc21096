//! Endpoints for machines: liveness, readiness, metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::error::{ApiError, ErrorBody};
use crate::app::AppState;

#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "The process is up", body = Object)))]
/// `GET /healthz`: the process is up.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "The store answers", body = Object),
        (status = 503, description = "`unavailable`, with Retry-After", body = ErrorBody),
    ))]
/// `GET /readyz`: the store answers; 503 otherwise, so a balancer stops sending traffic.
pub async fn readyz(State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    app.store.ping().await?;
    Ok(Json(json!({ "status": "ready" })))
}

#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
/// `GET /metrics`: Prometheus text format (with the in-process worker's, if any).
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let mut text = app.metrics.render();
    text.push_str(&app.worker_metrics.render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "This document", body = Object)))]
/// `GET /openapi.json`: the API description, generated from the handlers' annotations.
pub async fn openapi() -> impl IntoResponse {
    Json(super::openapi::document())
}
