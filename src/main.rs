//! The `vestibule` binary: parses the command line, sets up logging, calls the library.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use vestibule::config::GatewayConfig;
use vestibule::startup;

// The gateway allocates a little on every request (JSON, headers, store replies); glibc's
// allocator showed up as ~15% of its CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A virtual waiting-room queue gateway.
#[derive(Debug, Parser)]
#[command(name = "vestibule", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process; creates a `demo` event when the store has none.
    Run(GatewayConfig),
    /// The gateway: public and admin API, sweeper.
    Serve(GatewayConfig),
    /// Operator commands over the admin API of a running gateway.
    Admin(vestibule::admin_cli::AdminArgs),
    /// The worker alone: applies reservations from Redis to the database.
    Worker(vestibule::worker::config::WorkerConfig),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Adds an admission key and signs with it from now on; old keys keep verifying until their
    /// `admission-<kid>.pk8` file is deleted. Running instances pick it up within seconds.
    Rotate {
        /// The keys directory shared by every instance.
        #[arg(long, env = "VESTIBULE_KEYS_DIR", default_value = "./keys")]
        keys_dir: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    vestibule::telemetry::init();
    match cli.command {
        Command::Run(config) => gateway(config, true).await,
        Command::Serve(config) => gateway(config, false).await,
        Command::Worker(config) => {
            let stop = CancellationToken::new();
            let signal_stop = stop.clone();
            tokio::spawn(async move {
                startup::shutdown_signal().await;
                signal_stop.cancel();
            });
            vestibule::worker::process::run(config, stop).await
        }
        Command::Keys(KeysCommand::Rotate { keys_dir }) => {
            let kid = vestibule::admission::rotate(&keys_dir)
                .with_context(|| format!("rotating keys in {}", keys_dir.display()))?;
            println!("new signing key {kid}; old keys still verify until their files are deleted");
            Ok(())
        }
        Command::Admin(args) => {
            // An operator's terminal wants the API's answer, not anyhow's backtrace.
            if let Err(err) = vestibule::admin_cli::run(args).await {
                eprintln!("error: {err}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn gateway(mut config: GatewayConfig, demo: bool) -> anyhow::Result<()> {
    // `run` is for trying it out: without a token the console it points to would refuse
    // everything, so it makes one for this run, shown once below and kept nowhere.
    let made_token = (demo && config.admin_token.is_none()).then(startup::make_admin_token);
    if let Some(token) = &made_token {
        config.admin_token = Some(token.clone());
    }
    let state = startup::build_state(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    if demo {
        if let Some(event) = startup::ensure_demo_event(state.store.as_ref()).await? {
            println!("\nVestibule is running with a `{event}` event. Try it:\n");
            println!("  open http://{addr}/wait/{event} in a browser (operators: /admin/ui)");
            println!("  curl -s -X POST http://{addr}/v1/events/{event}/join");
            println!(
                "  curl -s http://{addr}/v1/queue/status -H \"Authorization: Bearer <ticket>\""
            );
            startup::ensure_demo_inventory(&state, &event).await?;
            println!("  # when status says ready_for_entry (the door lets one in a second): enter");
            println!(
                "  curl -s -X POST http://{addr}/v1/queue/enter -H \"Authorization: Bearer <ticket>\""
            );
            println!("  # then reserve with the admission token (a worker applies it) and read it");
            println!("  curl -s -X POST http://{addr}/v1/reservations -H \"Authorization: Bearer <admission_token>\" -H \"Idempotency-Key: order-1\" -d '{{\"items\":[{{\"sku\":\"ticket\",\"quantity\":1}}]}}'");
            println!("  curl -s http://{addr}/v1/reservations/<reservation_id> -H \"Authorization: Bearer <admission_token>\"");
        }
    }
    if let Some(token) = &made_token {
        let token = token.expose_secret();
        println!("\nOperators: this run's admin token (made because VESTIBULE_ADMIN_TOKEN is unset; shown once):");
        println!("\n  {token}\n");
        println!(
            "  open http://{addr}/admin/ui and paste it, or set VESTIBULE_ADMIN_TOKEN to it and"
        );
        println!("  vestibule admin --url http://{addr} show demo\n");
    } else if demo {
        println!("\nOperators: http://{addr}/admin/ui, or vestibule admin --url http://{addr} show demo\n");
    }
    let stop = CancellationToken::new();
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        startup::shutdown_signal().await;
        signal_stop.cancel();
    });
    if demo {
        // `run` is everything in one process: the worker too.
        startup::spawn_worker(&state, &config, stop.clone());
    }
    let interval = Duration::from_millis(config.sweep_interval_ms);
    startup::run_gateway(state, listener, interval, stop).await
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
