//! The worker's settings: flags or environment (the flag wins), read once at start.

use std::net::SocketAddr;

use crate::store::reservations::ClaimPolicy;

/// Where inventory and applied reservations live (the gateway's inventory API and the worker).
#[derive(Clone, Debug, clap::Args)]
pub struct DatabaseArgs {
    /// `postgres://…` (production) or `sqlite://…` (created when missing).
    #[arg(
        long,
        env = "VESTIBULE_DATABASE_URL",
        default_value = "sqlite://vestibule.db",
        hide_env_values = true
    )]
    pub database_url: String,
}

/// How a worker reads, retries and gives up.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerArgs {
    /// Most work entries read and applied in one database transaction.
    #[arg(long = "worker-batch", env = "VESTIBULE_WORKER_BATCH", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,

    /// Deliveries after which an entry that keeps failing goes to the dead-letter stream.
    #[arg(long = "worker-max-deliveries", env = "VESTIBULE_WORKER_MAX_DELIVERIES", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=100))]
    pub max_deliveries: u64,

    /// First retry of a failed entry after this long (ms); doubles with each delivery.
    #[arg(long = "worker-retry-base-ms", env = "VESTIBULE_WORKER_RETRY_BASE_MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub retry_base_ms: u64,

    /// Longest wait between two retries of an entry (ms).
    #[arg(long = "worker-retry-max-ms", env = "VESTIBULE_WORKER_RETRY_MAX_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub retry_max_ms: u64,

    /// Entries idle this long on another consumer (a dead worker's) are taken over (ms). Longer
    /// than any batch takes, so a live worker keeps its entries.
    #[arg(long = "worker-claim-idle-ms", env = "VESTIBULE_WORKER_CLAIM_IDLE_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub claim_idle_ms: u64,

    /// Consumers (workers) in this process; each has its own name in the group.
    #[arg(long = "worker-consumers", env = "VESTIBULE_WORKER_CONSUMERS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub consumers: u32,
}

impl WorkerArgs {
    /// The claim policy these settings describe.
    pub fn policy(&self) -> ClaimPolicy {
        ClaimPolicy {
            retry_base_ms: self.retry_base_ms,
            // A retry slower than the claim timeout would be taken by another worker.
            retry_max_ms: self.retry_max_ms.min(self.claim_idle_ms / 2).max(1),
            claim_idle_ms: self.claim_idle_ms,
        }
    }
}

impl Default for WorkerArgs {
    fn default() -> Self {
        Self {
            batch: 200,
            max_deliveries: 5,
            retry_base_ms: 200,
            retry_max_ms: 5_000,
            claim_idle_ms: 30_000,
            consumers: 1,
        }
    }
}

/// The database and the worker, as a gateway sees them (`vestibule run` starts a worker in
/// process; `vestibule serve` only uses the database for the inventory API).
#[derive(Clone, Debug, clap::Args)]
pub struct SalesArgs {
    /// The database.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The in-process worker (`vestibule run`).
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// Settings of `vestibule worker`.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerConfig {
    /// `redis://…` or `redis-cluster://…`: the store the gateways write reservations to.
    #[arg(long, env = "VESTIBULE_REDIS_URL")]
    pub redis_url: String,

    /// The database.
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// How the worker reads, retries and gives up.
    #[command(flatten)]
    pub worker: WorkerArgs,

    /// Address of the worker's `/metrics` and `/healthz`.
    #[arg(
        long,
        env = "VESTIBULE_WORKER_METRICS_LISTEN",
        default_value = "127.0.0.1:9091"
    )]
    pub metrics_listen: SocketAddr,
}
