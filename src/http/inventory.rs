//! Inventory per event and SKU (operators, DESIGN §19): `PUT` sets the `total` of each SKU
//! listed (never below what is held and sold: 409), `GET` reads `{sku, total, held, sold,
//! remaining}`, `GET …/inventory/audit` the changes operators made. Stored in the inventory
//! database ([`crate::inventory`]), where the worker's conditional writes take from it.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::admin::Admin;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::app::AppState;
use crate::event::EventId;
use crate::inventory::{DbError, TotalsError};
use crate::store::reservations::valid_sku;

/// Most SKUs in one PUT.
const MAX_SKUS: usize = 1000;

/// Largest quantity of one SKU.
const MAX_STOCK: i64 = 1_000_000_000;

/// One SKU's stock, as sent: its `total` (`quantity` is its old name, still accepted).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockBody {
    sku: String,
    #[serde(alias = "quantity")]
    total: i64,
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
        if !(0..=MAX_STOCK).contains(&item.total) {
            return Err(ApiError::invalid_field(
                format!("items[{i}].total"),
                format!("must be between 0 and {MAX_STOCK}"),
            ));
        }
        out.push((item.sku, item.total));
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
        (status = 409, description = "`inventory_conflict`: a total below held + sold (nothing changed)", body = crate::http::error::ErrorBody),
        (status = 422, description = "`invalid_field`, naming the field", body = crate::http::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = crate::http::error::ErrorBody),
    ))]
/// `PUT /admin/v1/events/{event_id}/inventory`: sets the total of each SKU listed (others
/// keep theirs), audited; answers the event's whole inventory.
pub async fn put_inventory(
    admin: Admin,
    State(app): State<AppState>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<InventoryBody>,
) -> Result<Response, ApiError> {
    let items = validate(body)?;
    let event = known_event(&app, &raw).await?;
    match app
        .database
        .set_totals(&event, &items, &admin.token_id)
        .await
    {
        Ok(()) => {}
        Err(TotalsError::BelowCommitted { sku, held, sold }) => {
            return Err(ApiError::InventoryConflict(format!(
                "{sku}: total cannot go below held ({held}) + sold ({sold}); nothing changed"
            )))
        }
        Err(TotalsError::Db(err)) => return Err(db_error(err)),
    }
    tracing::info!(%event, ?items, by = %admin.token_id, "inventory totals set");
    answer(&app, &event).await
}

#[utoipa::path(get, path = "/admin/v1/events/{event_id}/inventory", tag = "admin",
    security(("admin_token" = [])),
    params(("event_id" = String, Path, description = "The event")),
    responses(
        (status = 200, description = "`{event_id, items: [{sku, total, held, sold, remaining}]}`", body = Object),
        (status = 401, description = "`unauthorized`", body = crate::http::error::ErrorBody),
        (status = 404, description = "`event_not_found`", body = crate::http::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = crate::http::error::ErrorBody),
    ))]
/// `GET /admin/v1/events/{event_id}/inventory`: `{event_id, items: [{sku, total, held, sold,
/// remaining}]}`.
pub async fn get_inventory(
    _: Admin,
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let event = known_event(&app, &raw).await?;
    answer(&app, &event).await
}

/// Query of the inventory audit.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/admin/v1/events/{event_id}/inventory/audit", tag = "admin",
    security(("admin_token" = [])),
    params(("event_id" = String, Path, description = "The event"),
           ("limit" = Option<i64>, Query, description = "1 to 1000 entries (default 100)")),
    responses(
        (status = 200, description = "`{event_id, entries: [{sku, at_ms, by, old_total, new_total}]}`, newest first", body = Object),
        (status = 401, description = "`unauthorized`", body = crate::http::error::ErrorBody),
        (status = 404, description = "`event_not_found`", body = crate::http::error::ErrorBody),
        (status = 422, description = "`invalid_field` (`limit`)", body = crate::http::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = crate::http::error::ErrorBody),
    ))]
/// `GET /admin/v1/events/{event_id}/inventory/audit`: who changed which total when.
pub async fn inventory_audit(
    _: Admin,
    State(app): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "must be between 1 and 1000",
        ));
    }
    let event = known_event(&app, &raw).await?;
    let entries = app
        .database
        .inventory_audit(&event, limit)
        .await
        .map_err(db_error)?;
    Ok(Json(json!({ "event_id": event, "entries": entries })).into_response())
}
