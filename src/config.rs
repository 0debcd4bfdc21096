//! Configuration: flags or environment (the flag wins), read once at start, failing fast.
//! Secrets (the admin token, URLs that may carry a password) are [`SecretString`] from the
//! moment they are parsed, so no `Debug` of a configuration prints them.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

use crate::store::reservations::ClaimPolicy;

/// Settings of a gateway instance (`vestibule serve` and `vestibule run`).
#[derive(Clone, Debug, clap::Args)]
pub struct GatewayConfig {
    /// Address of the public and admin API.
    #[arg(long, env = "VESTIBULE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// `redis://…` or `redis-cluster://…`; unset: the embedded in-process store.
    #[arg(long, env = "VESTIBULE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,

    /// Bearer token of the admin API; unset: the admin API refuses every call.
    #[arg(long, env = "VESTIBULE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<SecretString>,

    /// Bearer token of the sale backend (completing holds, redeeming admissions); unset: those
    /// calls are refused.
    #[arg(long, env = "VESTIBULE_BACKEND_TOKEN", hide_env_values = true)]
    pub backend_token: Option<SecretString>,

    /// How often the sweeper evicts ghosts (ms).
    #[arg(long, env = "VESTIBULE_SWEEP_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub sweep_interval_ms: u64,

    /// Where signing keys live; generated on first start when empty.
    #[arg(long, env = "VESTIBULE_KEYS_DIR", default_value = "./keys")]
    pub keys_dir: PathBuf,

    /// CIDRs whose `X-Forwarded-For` is believed (comma separated).
    #[arg(long, env = "VESTIBULE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,

    /// Joins per second allowed per client address (burst twice that); 0 disables the limit.
    #[arg(long, env = "VESTIBULE_JOIN_RATE_PER_CLIENT", default_value_t = 10)]
    pub join_rate_per_client: u32,

    /// Origins (exact `https://host[:port]`, comma separated) whose pages may call the public
    /// API from the browser (CORS); empty: none.
    #[arg(long, env = "VESTIBULE_CORS_ORIGINS", value_delimiter = ',',
          value_parser = crate::http::cors::parse_origin)]
    pub cors_origins: Vec<axum::http::HeaderValue>,

    /// The database (the inventory API; `vestibule serve` uses only this).
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The in-process worker of `vestibule run`.
    #[command(flatten)]
    pub worker: WorkerArgs,
}

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
    pub database_url: SecretString,
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

/// What of a URL may be printed: what follows its last `@`, so a password before it never
/// reaches a log or an error message.
pub fn redacted(url: &SecretString) -> &str {
    let url = url.expose_secret();
    url.split('@').next_back().unwrap_or(url)
}
