//! The deployment files checked against the code: `docker-compose.yml`, nginx, Prometheus and
//! Grafana configuration (`dashboards/`), the Dockerfile and the README's by-hand instructions.
//! Apart from the behavioural suite (`tests/api/`): these read files, and fail for a wrong file,
//! not for a wrong answer.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used)]

// Only the Redis server of the behavioural suite's helpers is used here.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod compose;
mod dashboards;
mod nginx;
mod processes;
mod prometheus;
