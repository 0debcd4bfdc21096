//! The HTTP edge: the router ([`app`]), serving with graceful shutdown ([`serve`]), and the
//! middleware every route shares (metrics by matched path, a time budget, JSON errors). The
//! state the handlers share is [`crate::app::AppState`].

mod admin;
pub mod cors;
mod draw;
pub(crate) mod enter_limits;
mod entry;
pub mod error;
mod extract;
mod inventory;
mod openapi;
mod ops;
mod page;
mod queue;
mod reservations;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use error::ApiError;

/// Largest request body accepted (bytes). Every body of this API is a small JSON object.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Time budget of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The router, without serving: tests call it in process.
pub fn app(state: AppState) -> Router {
    // What a sale frontend on another origin calls from the browser: the only routes with CORS.
    let cors = cors::layer(&state.cors_origins);
    let public = Router::new()
        .route("/v1/events/{event_id}/join", post(queue::join))
        .route("/v1/events/{event_id}/page", get(page::page_info))
        .route("/v1/events/{event_id}/draw", get(draw::public))
        .route("/v1/queue/status", get(queue::status))
        .route("/v1/queue/leave", post(queue::leave))
        .route("/v1/queue/enter", post(entry::enter))
        .route("/v1/reservations", post(reservations::reserve))
        .route("/v1/reservations/{reservation_id}", get(reservations::get))
        .route("/.well-known/jwks.json", get(entry::jwks))
        .layer(cors.clone());
    let bounded = Router::new()
        .route("/v1/admissions/redeem", post(entry::redeem))
        .route("/v1/admissions/check", get(entry::check))
        .route("/admin/v1/events", get(admin::list_events))
        .route(
            "/admin/v1/events/{event_id}",
            get(admin::get_event).put(admin::put_event),
        )
        .route("/admin/v1/events/{event_id}/audit", get(admin::audit))
        .route(
            "/admin/v1/events/{event_id}/draw/entries",
            get(draw::entries),
        )
        .route(
            "/v1/reservations/{reservation_id}/complete",
            post(reservations::complete),
        )
        .route(
            "/v1/reservations/{reservation_id}/cancel",
            post(reservations::cancel),
        )
        .route(
            "/admin/v1/events/{event_id}/inventory",
            get(inventory::get_inventory).put(inventory::put_inventory),
        )
        .route(
            "/admin/v1/events/{event_id}/inventory/audit",
            get(inventory::inventory_audit),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .merge(public)
        .merge(page::routes())
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn(time_budget));
    // A stream stays open for as long as its person waits: no time budget.
    let streams = Router::new()
        .route("/v1/queue/stream", get(queue::stream))
        .layer(cors);
    // Layers run outside in: the last added sees the request first.
    bounded
        .merge(streams)
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(error::scope_request_id))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id)
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `app` on a bound listener until `shutdown` resolves, then drains open requests for
/// at most `drain` before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut stop_rx = stop_rx;
    tokio::select! {
        result = server => result,
        _ = async {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!("drain timeout reached, closing remaining connections");
            Ok(())
        }
    }
}

/// Counts and times every request by its matched route (never the raw URI, which would let
/// clients mint label values).
async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    state
        .metrics
        .http_latency
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .http_requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    response
}

async fn time_budget(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// A safety net: errors produced outside our handlers (405 from the router, a body-limit
/// rejection) get the API's JSON error body too.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed.into_response(),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge.into_response(),
        StatusCode::NOT_FOUND => ApiError::NotFound.into_response(),
        s if s.is_client_error() => {
            ApiError::InvalidRequest(s.canonical_reason().unwrap_or("bad request").into())
                .into_response()
        }
        _ => ApiError::Internal.into_response(),
    }
}
