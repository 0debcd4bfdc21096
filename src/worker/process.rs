//! `vestibule worker`: the worker alone, reading the gateways' Redis, with a small `/metrics`
//! listener of its own.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::config::WorkerConfig;
use super::metrics::WorkerMetrics;
use crate::app::Stores;
use crate::inventory::connect_database;

/// Runs `settings.consumers` workers and the metrics listener until `stop` is cancelled; the
/// batches in flight finish first.
pub async fn run(config: WorkerConfig, stop: CancellationToken) -> anyhow::Result<()> {
    let stores = Stores::connect(Some(&config.redis_url)).await?;
    let database = connect_database(&config.database.database_url).await?;
    let metrics = Arc::new(WorkerMetrics::new());
    let listener = TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding {}", config.metrics_listen))?;
    tracing::info!(addr = %listener.local_addr()?, "worker metrics listening");
    let routes = Router::new()
        .route("/metrics", get(render))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .with_state(metrics.clone());
    let shutdown = stop.clone().cancelled_owned();
    let server = tokio::spawn(async move {
        axum::serve(listener, routes)
            .with_graceful_shutdown(shutdown)
            .await
    });
    let workers = super::spawn(
        stores.reservations,
        stores.queue,
        database,
        config.worker.clone(),
        metrics,
        stop.clone(),
    );
    for worker in workers {
        let _ = worker.await;
    }
    stop.cancel();
    let _ = server.await;
    Ok(())
}

async fn render(State(metrics): State<Arc<WorkerMetrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}
