//! Inventory per event and SKU (operators): `PUT` sets the remaining quantity of each SKU
//! listed, `GET` reads them. Stored in the inventory database ([`crate::inventory`]), where the
//! worker's conditional writes take from it.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::admin::Admin;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::app::AppState;
use crate::event::EventId;
use crate::inventory::DbError;
use crate::store::reservations::valid_sku;

/// Most SKUs in one PUT.
const MAX_SKUS: usize = 1000;

/// Largest quantity of one SKU.
const MAX_STOCK: i64 = 1_000_000_000;

/// One SKU's stock, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockBody {
    sku: String,
    quantity: i64,
}

/// Body of `PUT /admin/v1/events/{event_id}/inventory`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryBody {
    items: Vec<StockBody>,
}

fn validate(body: InventoryBody) -> Result<Vec<(String, i64)>, ApiError> {
    if body.items.is_empty() || body.items.len() > MAX_SKUS {
        return Err(ApiError::invalid_field(
            "items",
            format!("list 1 to {MAX_SKUS} skus"),
        ));
    }
    let mut out: Vec<(String, i64)> = Vec::with_capacity(body.items.len());
    for (i, item) in body.items.into_iter().enumerate() {
        if !valid_sku(&item.sku) {
            return Err(ApiError::invalid_field(
                format!("items[{i}].sku"),
                "a sku is 1 to 64 of letters, digits, '_', '.' and '-'",
            ));
        }
        if out.iter().any(|(sku, _)| *sku == item.sku) {
            return Err(ApiError::invalid_field(
                format!("items[{i}].sku"),
                "each sku may appear once",
            ));
        }
        if !(0..=MAX_STOCK).contains(&item.quantity) {
            return Err(ApiError::invalid_field(
                format!("items[{i}].quantity"),
                format!("must be between 0 and {MAX_STOCK}"),
            ));
        }
        out.push((item.sku, item.quantity));
    }
    Ok(out)
}

fn db_error(err: DbError) -> ApiError {
    tracing::warn!(error = %err, "inventory database failed");
    match err {
        DbError::Unavailable(_) => ApiError::Unavailable,
        DbError::Statement(_) => ApiError::Internal,
    }
}

async fn known_event(app: &AppState, raw: &str) -> Result<EventId, ApiError> {
    let event =
        EventId::parse(raw).map_err(|reason| ApiError::invalid_field("event_id", reason))?;
    app.store
        .get_event(&event)
        .await?
        .ok_or(ApiError::EventNotFound)?;
    Ok(event)
}

async fn answer(app: &AppState, event: &EventId) -> Result<Response, ApiError> {
    let items: Vec<_> = app
        .database
        .inventory(event)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|(sku, remaining)| json!({ "sku": sku, "remaining": remaining }))
        .collect();
    Ok(Json(json!({ "event_id": event, "items": items })).into_response())
}

#[utoipa::path(put, path = "/admin/v1/events/{event_id}/inventory", tag = "admin",
    security(("admin_token" = [])),
    params(("event_id" = String, Path, description = "The event")),
    request_body = InventoryBody,
    responses(
        (status = 200, description = "The event's inventory after the change", body = Object),
        (status = 400, description = "`invalid_request`", body = crate::http::error::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::http::error::ErrorBody),
        (status = 404, description = "`event_not_found`", body = crate::http::error::ErrorBody),
        (status = 422, description = "`invalid_field`, naming the field", body = crate::http::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = crate::http::error::ErrorBody),
    ))]
/// `PUT /admin/v1/events/{event_id}/inventory`: sets the remaining quantity of each SKU listed
/// (others keep theirs); answers the event's whole inventory.
pub async fn put_inventory(
    _: Admin,
    State(app): State<AppState>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<InventoryBody>,
) -> Result<Response, ApiError> {
    let items = validate(body)?;
    let event = known_event(&app, &raw).await?;
    app.database
        .set_inventory(&event, &items)
        .await
        .map_err(db_error)?;
    tracing::info!(%event, ?items, "inventory set");
    answer(&app, &event).await
}

#[utoipa::path(get, path = "/admin/v1/events/{event_id}/inventory", tag = "admin",
    security(("admin_token" = [])),
    params(("event_id" = String, Path, description = "The event")),
    responses(
        (status = 200, description = "`{event_id, items: [{sku, remaining}]}`", body = Object),
        (status = 401, description = "`unauthorized`", body = crate::http::error::ErrorBody),
        (status = 404, description = "`event_not_found`", body = crate::http::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = crate::http::error::ErrorBody),
    ))]
/// `GET /admin/v1/events/{event_id}/inventory`: `{event_id, items: [{sku, remaining}]}`.
pub async fn get_inventory(
    _: Admin,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let event = known_event(&app, &raw).await?;
    answer(&app, &event).await
}
