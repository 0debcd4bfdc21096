//! The `vestibule-loadtest` binary: parses arguments, runs a sale (or `tickets`), prints.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vestibule_loadtest::{chart, sale, tickets};

/// Simulates a sale against a running Vestibule gateway and checks every position shown.
///
/// Exits 1 when any truth check failed, 2 on a usage or setup error.
#[derive(Debug, Parser)]
#[command(
    name = "vestibule-loadtest",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    sale: sale::SaleArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Join a pool of people and write their tickets, one a line.
    Tickets(tickets::TicketsArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Tickets(args)) => tickets::run(&args).await.map(|_| true),
        None => run_sale(&cli.sale).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run_sale(args: &sale::SaleArgs) -> anyhow::Result<bool> {
    let report = sale::run(args).await?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.chart {
        let door_rate = report.door.as_ref().and_then(|d| d.door_rate);
        chart::draw(path, &report.timeline, door_rate)?;
    }
    Ok(report.passed())
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
