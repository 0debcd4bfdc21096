//! The deployment files checked against the code: `docker-compose.yml`, nginx, Prometheus and
//! Grafana configuration (`dashboards/`), the Kubernetes manifests (`deploy/kubernetes/`), the
//! Dockerfile and the README's by-hand instructions.
//! Apart from the behavioural suite (`tests/api/`): these read the files and run the programs
//! operators run on them (promtool, Prometheus, nginx, kubernetes-validate, Chromium), and fail
//! for a wrong file.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used)]

// Only the Redis server of the behavioural suite's helpers is used here.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod compose;
mod dashboards;
mod kubernetes;
mod nginx;
mod processes;
mod prometheus;
