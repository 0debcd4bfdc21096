//! Sales: what the gateway needs for reservations and inventory, and the store wiring shared
//! by `vestibule run`, `serve` and `worker`: one store connection serves both the queue
//! ([`Store`]) and reservations ([`Reservations`]).

use std::sync::Arc;

use anyhow::Context;

use crate::inventory::Database;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::reservations::Reservations;
use crate::store::Store;
use crate::worker::metrics::WorkerMetrics;

/// Reservations, inventory and the in-process worker's metrics of a gateway.
pub struct Sales {
    /// Where reservations are recorded and read.
    pub reservations: Arc<dyn Reservations>,
    /// Inventory (the admin API) and applied reservations.
    pub database: Arc<Database>,
    /// The in-process worker's metrics (`vestibule run`), shown on the gateway's `/metrics`;
    /// empty when no worker runs in process.
    pub worker_metrics: Arc<WorkerMetrics>,
}

/// Both views of one store: Redis when a URL is given, else the in-process store.
pub async fn connect_stores(
    redis_url: Option<&str>,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn Reservations>)> {
    Ok(match redis_url {
        Some(url) => {
            let store = Arc::new(
                RedisStore::connect(url)
                    .await
                    .with_context(|| format!("connecting to Redis at {url}"))?,
            );
            (store.clone(), store)
        }
        None => {
            tracing::info!("VESTIBULE_REDIS_URL unset: using the embedded in-process store");
            let store = Arc::new(MemoryStore::default());
            (store.clone(), store)
        }
    })
}
