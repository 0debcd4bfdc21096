//! Configuration: flags or environment (the flag wins), read once at start, failing fast.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;

/// Settings of a gateway instance (`vestibule serve` and `vestibule run`).
#[derive(Clone, Debug, clap::Args)]
pub struct GatewayConfig {
    /// Address of the public and admin API.
    #[arg(long, env = "VESTIBULE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// `redis://…` or `redis-cluster://…`; unset: the embedded in-process store.
    #[arg(long, env = "VESTIBULE_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Bearer token of the admin API; unset: the admin API refuses every call.
    #[arg(long, env = "VESTIBULE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

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

    /// The database (inventory API) and the in-process worker of `vestibule run`.
    #[command(flatten)]
    pub sales: crate::worker::config::SalesArgs,
}
