//! The state of a gateway instance, built once ([`AppState::new`]) from all its parts: both
//! views of the store, the inventory database, the keys and the metrics. Nothing is filled in
//! after construction, so no handler has to ask whether a part is there.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use anyhow::Context;
use axum::http::HeaderValue;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

use crate::admission::AdmissionKeys;
use crate::http::enter_limits::EnterLimits;
use crate::inventory::Database;
use crate::metrics::Metrics;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::reservations::Reservations;
use crate::store::Store;
use crate::tickets::TicketKeys;
use crate::worker::metrics::WorkerMetrics;

/// Both views of one store connection: the queue and reservations.
#[derive(Clone)]
pub struct Stores {
    /// Events, the queue and the door.
    pub queue: Arc<dyn Store>,
    /// Reservations and the work streams the worker reads.
    pub reservations: Arc<dyn Reservations>,
}

impl Stores {
    /// Both views of `store`.
    pub fn of<S: Store + Reservations>(store: Arc<S>) -> Self {
        Self {
            queue: store.clone(),
            reservations: store,
        }
    }

    /// Redis when a URL is given, else the in-process store.
    pub async fn connect(redis_url: Option<&SecretString>) -> anyhow::Result<Self> {
        Ok(match redis_url {
            Some(url) => {
                let shown = crate::config::redacted(url);
                let store = RedisStore::connect(url.expose_secret())
                    .await
                    .with_context(|| format!("connecting to Redis at …{shown}"))?;
                Self::of(Arc::new(store))
            }
            None => {
                tracing::info!("VESTIBULE_REDIS_URL unset: using the embedded in-process store");
                Self::of(Arc::new(MemoryStore::default()))
            }
        })
    }
}

/// What an instance is made of, all given at once to [`AppState::new`].
pub struct Parts {
    /// The store, both views.
    pub stores: Stores,
    /// Inventory (the admin API) and applied reservations.
    pub database: Arc<Database>,
    /// The in-process worker's metrics (`vestibule run`), shown on the gateway's `/metrics`;
    /// empty when no worker runs in process.
    pub worker_metrics: Arc<WorkerMetrics>,
    /// Queue ticket keys.
    pub tickets: TicketKeys,
    /// Admission token keys.
    pub admissions: AdmissionKeys,
}

/// Tunables of an instance (not of an event).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The admin API's bearer token; `None` refuses every admin call.
    pub admin_token: Option<SecretString>,
    /// The sale backend's bearer token; `None` refuses every backend call.
    pub backend_token: Option<SecretString>,
    /// Joins per second per client address (burst twice that); 0 disables the limit.
    pub join_rate_per_client: u32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins whose pages may call the public API (CORS); empty: none.
    pub cors_origins: Vec<HeaderValue>,
}

/// Shared state of a gateway instance.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

/// What [`AppState`] holds.
pub struct AppInner {
    /// The queue store.
    pub store: Arc<dyn Store>,
    /// Where reservations are recorded and read.
    pub reservations: Arc<dyn Reservations>,
    /// Inventory (the admin API) and applied reservations.
    pub database: Arc<Database>,
    /// The in-process worker's metrics; empty when no worker runs in process.
    pub worker_metrics: Arc<WorkerMetrics>,
    /// Queue ticket keys.
    pub tickets: TicketKeys,
    /// Admission token keys.
    pub admissions: AdmissionKeys,
    /// The admin API's bearer token; `None` refuses every admin call.
    pub admin_token: Option<SecretString>,
    /// The sale backend's bearer token; `None` refuses every backend call.
    pub backend_token: Option<SecretString>,
    /// This instance's metrics, shared with its sweeper.
    pub metrics: Arc<Metrics>,
    /// Per-client limit on joins; `None` when disabled.
    pub join_limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// This instance's burst limiters on enter, per event; the vip tier bypasses them (never
    /// the door).
    pub enter_limits: EnterLimits,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins whose pages may call the public API (CORS); empty: none.
    pub cors_origins: Vec<HeaderValue>,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// Builds the state of an instance.
    pub fn new(parts: Parts, options: Options) -> Self {
        let join_limiter = NonZeroU32::new(options.join_rate_per_client).map(|rate| {
            // A burst of twice the rate lets a household behind one address join together.
            let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let Stores {
            queue,
            reservations,
        } = parts.stores;
        let metrics = Arc::new(Metrics::new(queue.collectors()));
        Self(Arc::new(AppInner {
            store: queue,
            reservations,
            database: parts.database,
            worker_metrics: parts.worker_metrics,
            tickets: parts.tickets,
            admissions: parts.admissions,
            admin_token: options.admin_token,
            backend_token: options.backend_token,
            metrics,
            join_limiter,
            enter_limits: EnterLimits::default(),
            trusted_proxies: options.trusted_proxies,
            cors_origins: options.cors_origins,
        }))
    }
}
