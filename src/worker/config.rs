//! The settings of `vestibule worker` (the worker alone). The argument groups it shares with
//! `vestibule run` ([`DatabaseArgs`], [`WorkerArgs`]) live in [`crate::config`].

use std::net::SocketAddr;

use secrecy::SecretString;

use crate::config::{DatabaseArgs, WorkerArgs};

/// Settings of `vestibule worker`.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerConfig {
    /// `redis://…` or `redis-cluster://…`: the store the gateways write reservations to.
    #[arg(long, env = "VESTIBULE_REDIS_URL", hide_env_values = true)]
    pub redis_url: SecretString,

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
