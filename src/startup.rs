//! Wiring: from configuration to a running gateway (store, database, keys, the background
//! tasks, the server).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admission::{self, AdmissionKeys};
use crate::app::{AppState, Options, Parts, Stores};
use crate::config::GatewayConfig;
use crate::event::{EventConfig, EventId, EventState};
use crate::http;
use crate::inventory::connect_database;
use crate::store::Store;
use crate::sweeper;
use crate::tickets::TicketKeys;

/// How long open requests may finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// Builds an instance's state from its configuration.
pub async fn build_state(config: &GatewayConfig) -> anyhow::Result<AppState> {
    let stores = Stores::connect(config.redis_url.as_ref()).await?;
    let database = connect_database(&config.database.database_url).await?;
    let tickets = TicketKeys::load_or_create(&config.keys_dir)
        .with_context(|| format!("loading keys from {}", config.keys_dir.display()))?;
    let admissions = AdmissionKeys::load_or_create(&config.keys_dir)
        .with_context(|| format!("loading admission keys from {}", config.keys_dir.display()))?;
    let admin_token = config.admin_token.clone();
    if admin_token.is_none() {
        tracing::warn!("VESTIBULE_ADMIN_TOKEN unset: the admin API refuses every call");
    }
    if config.backend_token.is_none() {
        tracing::warn!("VESTIBULE_BACKEND_TOKEN unset: completing holds is refused");
    }
    let options = Options {
        admin_token,
        backend_token: config.backend_token.clone(),
        join_rate_per_client: config.join_rate_per_client,
        trusted_proxies: config.trusted_proxies.clone(),
        cors_origins: config.cors_origins.clone(),
    };
    let parts = Parts {
        stores,
        database,
        worker_metrics: Arc::default(),
        tickets,
        admissions,
    };
    Ok(AppState::new(parts, options))
}

/// Runs a gateway (API, sweeper, key reloads) on `listener` until `stop` is cancelled.
pub async fn run_gateway(
    state: AppState,
    listener: TcpListener,
    sweep_interval: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let sweeper = tokio::spawn(sweeper::run(
        state.store.clone(),
        state.metrics.clone(),
        sweep_interval,
        stop.clone(),
    ));
    // Pruned as often as ghosts are swept (it used to be part of the sweep round); a client
    // is forgotten only once its burst has refilled, so this never lets anyone join faster.
    tokio::spawn(forget_quiet_clients(
        state.clone(),
        sweep_interval,
        stop.clone(),
    ));
    tokio::spawn(reload_keys(state.clone(), stop.clone()));
    let shutdown = stop.clone().cancelled_owned();
    http::serve(listener, state, shutdown, DRAIN).await?;
    stop.cancel();
    let _ = sweeper.await;
    Ok(())
}

/// Drops the join limiter's state of clients whose burst has refilled, so the limiter's
/// memory follows the clients of the last moments, not every address ever seen.
async fn forget_quiet_clients(state: AppState, interval: Duration, stop: CancellationToken) {
    let Some(limiter) = &state.join_limiter else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        limiter.retain_recent();
    }
}

/// Picks up rotated admission keys without a restart.
async fn reload_keys(state: AppState, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(admission::RELOAD_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = state.admissions.reload() {
            tracing::error!(error = %err, "cannot reload admission keys; keeping the old set");
        }
    }
}

/// A fresh admin token: 32 random bytes, hex (what `vestibule run` makes when none is set).
pub fn make_admin_token() -> secrecy::SecretString {
    hex::encode(rand::random::<[u8; 32]>()).into()
}

/// Creates the `demo` event when the store has no event at all, so a newcomer sees a queue.
pub async fn ensure_demo_event(store: &dyn Store) -> anyhow::Result<Option<EventId>> {
    if !store.list_events().await?.is_empty() {
        return Ok(None);
    }
    let demo = EventId::parse("demo").map_err(anyhow::Error::msg)?;
    let config = EventConfig {
        state: EventState::Open,
        ..EventConfig::default()
    };
    store.put_event(&demo, &config, "vestibule run").await?;
    Ok(Some(demo))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received, draining");
}

/// Gives a new `demo` event a small inventory, so a reservation can be tried at once.
pub async fn ensure_demo_inventory(state: &AppState, event: &EventId) -> anyhow::Result<()> {
    state
        .database
        .set_totals(event, &[("ticket".to_owned(), 100)], "vestibule run (demo)")
        .await?;
    Ok(())
}

/// Starts the in-process worker(s) of `vestibule run`, counting into the gateway's `/metrics`.
pub fn spawn_worker(state: &AppState, config: &GatewayConfig, stop: CancellationToken) {
    crate::worker::spawn(
        state.reservations.clone(),
        state.store.clone(),
        state.database.clone(),
        config.worker.clone(),
        state.worker_metrics.clone(),
        stop,
    );
}
