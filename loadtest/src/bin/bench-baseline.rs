//! `bench-baseline`: the ceiling the gateway's status endpoint is measured against.
//!
//! An axum server with `GET /bare` (a small JSON, no I/O) and `GET /eval` (one EVALSHA of a
//! trivial Lua script through `fred`, over one connection as the gateway's store uses, then a
//! small JSON). Status does one script call too, plus an HMAC check and a bigger script, so
//! `/eval` is what status could be at best on the same machine and Redis.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use fred::prelude::*;
use fred::types::scripts::Script;
use serde_json::{json, Value};

/// Serves `/bare` and `/eval` for benchmarks.
#[derive(Debug, Parser)]
#[command(name = "bench-baseline", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,

    /// The Redis the gateway uses.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
}

struct Baseline {
    client: Client,
    script: Script,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::from_url(&args.redis_url).context("parsing --redis-url")?;
    let client = Builder::from_config(config)
        .build()
        .context("building the client")?;
    client.init().await.context("connecting to Redis")?;
    let state = Arc::new(Baseline {
        client,
        script: Script::from_lua("return 1"),
    });
    let app = Router::new()
        .route("/bare", get(bare))
        .route("/eval", get(eval))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!("bench-baseline listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn bare() -> Json<Value> {
    Json(json!({"state": "waiting", "position": 1}))
}

async fn eval(State(b): State<Arc<Baseline>>) -> Result<Json<Value>, StatusCode> {
    let reply: i64 = b
        .script
        .evalsha_with_reload(
            &b.client,
            vec!["vst:{bench}:k"],
            Vec::<fred::types::Value>::new(),
        )
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(Json(json!({"state": "waiting", "position": reply})))
}
