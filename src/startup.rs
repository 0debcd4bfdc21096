//! Wiring: from configuration to a running gateway (store, keys, sweeper, server).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admission::{self, AdmissionKeys};
use crate::config::GatewayConfig;
use crate::event::{EventConfig, EventId, EventState};
use crate::http::{self, AppState, Options};
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::Store;
use crate::sweeper;
use crate::tickets::TicketKeys;

/// How long open requests may finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// Connects the configured store: Redis when a URL is given, else the in-process store.
pub async fn connect_store(config: &GatewayConfig) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.redis_url {
        Some(url) => Arc::new(
            RedisStore::connect(url)
                .await
                .with_context(|| format!("connecting to Redis at {url}"))?,
        ),
        None => {
            tracing::info!("VESTIBULE_REDIS_URL unset: using the embedded in-process store");
            Arc::new(MemoryStore::default())
        }
    })
}

/// Builds an instance's state from its configuration.
pub async fn build_state(config: &GatewayConfig) -> anyhow::Result<AppState> {
    let store = connect_store(config).await?;
    let tickets = TicketKeys::load_or_create(&config.keys_dir)
        .with_context(|| format!("loading keys from {}", config.keys_dir.display()))?;
    let admissions = AdmissionKeys::load_or_create(&config.keys_dir)
        .with_context(|| format!("loading admission keys from {}", config.keys_dir.display()))?;
    let admin_token = config.admin_token.clone().map(SecretString::from);
    if admin_token.is_none() {
        tracing::warn!("VESTIBULE_ADMIN_TOKEN unset: the admin API refuses every call");
    }
    let options = Options {
        admin_token,
        join_rate_per_client: config.join_rate_per_client,
        enter_rate: config.enter_rate,
        trusted_proxies: config.trusted_proxies.clone(),
    };
    Ok(AppState::new(store, tickets, admissions, options))
}

/// Runs a gateway (API, sweeper) on `listener` until `stop` is cancelled.
pub async fn run_gateway(
    state: AppState,
    listener: TcpListener,
    sweep_interval: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let sweeper = tokio::spawn(sweeper::run(state.clone(), sweep_interval, stop.clone()));
    tokio::spawn(reload_keys(state.clone(), stop.clone()));
    let shutdown = stop.clone().cancelled_owned();
    http::serve(listener, state, shutdown, DRAIN).await?;
    stop.cancel();
    let _ = sweeper.await;
    Ok(())
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
