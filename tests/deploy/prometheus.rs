//! The alert rules and dashboards against the programs operators run: `promtool` checks the
//! configuration and runs the alerts' unit tests (`dashboards/alerts.test.yml`), and a real
//! Prometheus scrapes a gateway and a worker through a mini sale, then answers every query of
//! every dashboard panel with data. Every metric an alert or a panel reads (found by a PromQL
//! parser) must be one that Prometheus scraped.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use reqwest::StatusCode;
use serde_json::{json, Value as Json};
use serde_norway::Value as Yaml;

use crate::dashboards::{queries, repo, rules, yaml};
use crate::helpers::{temp_dir, RedisServer};
use crate::processes::{free_port, start, wait_for, Process};

const ADMIN_TOKEN: &str = "prometheus-test-admin-token";

/// What Grafana puts in for its variables when a panel is drawn: the rate window (four
/// scrapes of the test's 1 s interval, and long enough to still hold the sale when the
/// queries run), the dashboard's time range, the event picked.
const GRAFANA_VALUES: &[(&str, &str)] = &[
    ("$__rate_interval", "1m"),
    ("$__range", "5m"),
    ("$event", "sale"),
];

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("promtool (Debian package `prometheus`) on PATH");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_configuration_and_the_rules() {
    promtool(&["check", "config", "dashboards/prometheus.yml"]);
    let out = promtool(&["check", "rules", "dashboards/alerts.yml"]);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", rules().len())),
        "{out}"
    );
}

#[test]
fn every_alert_fires_when_it_should_and_not_otherwise() {
    promtool(&["test", "rules", "dashboards/alerts.test.yml"]);

    // Every alert has a case where it fires and one where it stays silent.
    let tests = yaml("dashboards/alerts.test.yml");
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for test in tests["tests"].as_sequence().expect("tests") {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected > 0 {
                &mut fires
            } else {
                &mut silent
            }
            .insert(name);
        }
    }
    for (origin, rule) in rules() {
        let Some(alert) = rule["alert"].as_str() else {
            continue;
        };
        assert!(fires.contains(alert), "{origin}: no test where it fires");
        assert!(
            silent.contains(alert),
            "{origin}: no test where it stays silent"
        );
    }
}

/// Every metric name an expression reads.
fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            let selector = match expr {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            let name = selector.name.clone().or_else(|| {
                selector
                    .matchers
                    .matchers
                    .iter()
                    .find(|m| m.name == "__name__")
                    .map(|m| m.value.clone())
            });
            self.0
                .insert(name.ok_or("a selector without a metric name")?);
            Ok(true)
        }
    }
    let parsed = parser::parse(expr)?;
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &parsed)?;
    Ok(names.0)
}

#[test]
fn the_parser_finds_every_metric_an_expression_reads() {
    let names = metric_names(
        "sum by (event) (rate(a_total{x=\"y\"}[5m])) / on (event) max(b) \
         unless c offset 10m or histogram_quantile(0.9, rate(d_bucket[1m]))",
    )
    .unwrap();
    assert_eq!(
        names,
        BTreeSet::from(["a_total", "b", "c", "d_bucket"].map(String::from))
    );
    assert!(metric_names("sum(rate(x[5m])").is_err());
}

fn command(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    command
}

/// The stack of the compose file in small: a gateway and a worker over one Redis and one
/// database, and Prometheus with the project's rules scraping both every second.
struct Stack {
    http: reqwest::Client,
    gateway: String,
    prometheus: String,
    dir: PathBuf,
    _processes: Vec<Process>,
    _redis: RedisServer,
}

impl Stack {
    async fn start() -> Self {
        let redis = RedisServer::start();
        let dir = temp_dir("prometheus");
        let database = format!("sqlite://{}", dir.join("inventory.db").display());
        let keys = dir.join("keys");
        let (gateway_port, worker_port, prometheus_port) = (free_port(), free_port(), free_port());
        let bin = env!("CARGO_BIN_EXE_vestibule");
        let gateway_listen = format!("127.0.0.1:{gateway_port}");
        let worker_listen = format!("127.0.0.1:{worker_port}");
        let mut processes = vec![start(
            command(
                bin,
                &[
                    "serve",
                    "--listen",
                    &gateway_listen,
                    "--redis-url",
                    &redis.url(),
                    "--admin-token",
                    ADMIN_TOKEN,
                    "--keys-dir",
                    keys.to_str().unwrap(),
                    "--database-url",
                    &database,
                    "--sweep-interval-ms",
                    "200",
                ],
            ),
            &dir.join("gateway.log"),
        )];
        let http = reqwest::Client::new();
        let gateway = format!("http://{gateway_listen}");
        wait_for(Duration::from_secs(30), || async {
            let url = format!("{gateway}/readyz");
            match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
        .unwrap_or_else(|e| panic!("the gateway never got ready: {e}"));
        // The database exists once the gateway has run its migrations.
        processes.push(start(
            command(
                bin,
                &[
                    "worker",
                    "--redis-url",
                    &redis.url(),
                    "--database-url",
                    &database,
                    "--metrics-listen",
                    &worker_listen,
                ],
            ),
            &dir.join("worker.log"),
        ));

        // The project's prometheus.yml with the compose file's targets swapped for this test's
        // ports and a 1 s interval; the rules are the project's file.
        let mut config: Yaml = yaml("dashboards/prometheus.yml");
        config["global"]["scrape_interval"] = "1s".into();
        config["global"]["evaluation_interval"] = "1s".into();
        config["rule_files"] = serde_norway::to_value(vec![repo()
            .join("dashboards/alerts.yml")
            .display()
            .to_string()])
        .unwrap();
        for job in config["scrape_configs"].as_sequence_mut().expect("jobs") {
            let target = match job["job_name"].as_str() {
                Some("gateway") => &gateway_listen,
                Some("worker") => &worker_listen,
                other => panic!("a job this test does not know: {other:?}"),
            };
            job["static_configs"] =
                serde_norway::to_value(json!([{ "targets": [target] }])).expect("targets");
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, serde_norway::to_string(&config).unwrap()).unwrap();
        let prometheus_listen = format!("127.0.0.1:{prometheus_port}");
        processes.push(start(
            command(
                "prometheus",
                &[
                    &format!("--config.file={}", config_path.display()),
                    &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
                    &format!("--web.listen-address={prometheus_listen}"),
                ],
            ),
            &dir.join("prometheus.log"),
        ));
        let stack = Self {
            http,
            gateway,
            prometheus: format!("http://{prometheus_listen}"),
            dir,
            _processes: processes,
            _redis: redis,
        };
        // Both targets up: every series then has a first sample at 0 before the sale moves it.
        wait_for(Duration::from_secs(30), || async {
            let up = stack.query("sum(up)").await?;
            match up.first().map(|s| s["value"][1].as_str()) {
                Some(Some("2")) => Ok(()),
                _ => Err(format!("up: {up:?}")),
            }
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Prometheus never scraped both targets: {e}\n{}",
                stack.logs()
            )
        });
        stack
    }

    fn logs(&self) -> String {
        ["gateway.log", "worker.log", "prometheus.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- {name}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// An instant query through the HTTP API: its result vector.
    async fn query(&self, promql: &str) -> Result<Vec<Json>, String> {
        let response = self
            .http
            .get(format!("{}/api/v1/query", self.prometheus))
            .query(&[("query", promql)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Json = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{promql}: {body}"));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    async fn admin_put(&self, path: &str, body: Json) {
        let response = self
            .http
            .put(format!("{}{path}", self.gateway))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "PUT {path}: {}",
            response.status()
        );
    }

    /// A POST, with a bearer token and an idempotency key when given.
    async fn post(
        &self,
        path: &str,
        bearer: Option<&str>,
        key: Option<&str>,
        body: Json,
    ) -> (StatusCode, Json) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.gateway))
            .json(&body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Json::Null))
    }

    /// A mini sale: people join, poll, enter and reserve (the worker confirms or rejects for
    /// sold out); one leaves; a full queue answers 503 and an unknown event 404.
    async fn mini_sale(&self) {
        self.admin_put(
            "/admin/v1/events/sale",
            json!({"state": "open", "admission_rate": 100, "max_active": 100}),
        )
        .await;
        self.admin_put(
            "/admin/v1/events/sale/inventory",
            json!({"items": [{"sku": "seat", "quantity": 3}]}),
        )
        .await;
        self.admin_put(
            "/admin/v1/events/tiny",
            json!({"state": "open", "admission_rate": 0, "max_queue_len": 1}),
        )
        .await;
        // As in a real sale, the event exists a while before people come: Prometheus holds its
        // series at 0 first, so rates and quantiles see the first increments.
        wait_for(Duration::from_secs(30), || async {
            let count = "vestibule_time_in_queue_seconds_count{event=\"sale\"}";
            match self.query(count).await?.len() {
                0 => Err("not scraped yet".to_owned()),
                _ => Ok(()),
            }
        })
        .await
        .unwrap_or_else(|e| panic!("the event's series never appeared: {e}\n{}", self.logs()));
        let mut reservations = Vec::new();
        for i in 0..5 {
            let (status, joined) = self
                .post("/v1/events/sale/join", None, None, json!({}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{joined}");
            let ticket = joined["ticket"].as_str().unwrap().to_owned();
            let status_url = format!("{}/v1/queue/status", self.gateway);
            let polled = self.http.get(&status_url).bearer_auth(&ticket).send().await;
            assert!(polled.unwrap().status().is_success());
            let token = loop {
                let (status, body) = self
                    .post("/v1/queue/enter", Some(&ticket), None, json!({}))
                    .await;
                if status == StatusCode::OK {
                    break body["admission_token"].as_str().unwrap().to_owned();
                }
                assert_eq!(status, StatusCode::TOO_EARLY, "{body}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if i == 4 {
                let (status, _) = self
                    .post("/v1/queue/leave", Some(&ticket), None, json!({}))
                    .await;
                assert!(status.is_success());
                continue;
            }
            let items = json!({"items": [{"sku": "seat", "quantity": 1}]});
            let key = format!("seat-{i}");
            let (status, body) = self
                .post("/v1/reservations", Some(&token), Some(&key), items)
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            reservations.push((token, body["reservation_id"].as_str().unwrap().to_owned()));
        }
        let (first, _) = self
            .post("/v1/events/tiny/join", None, None, json!({}))
            .await;
        assert_eq!(first, StatusCode::CREATED);
        let (full, body) = self
            .post("/v1/events/tiny/join", None, None, json!({}))
            .await;
        assert_eq!(full, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let (status, _) = self
            .post("/v1/events/nope/join", None, None, json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The worker settles every reservation: 3 confirmed, 1 sold out.
        for (token, id) in &reservations {
            wait_for(Duration::from_secs(30), || async {
                let url = format!("{}/v1/reservations/{id}", self.gateway);
                let response = self.http.get(&url).bearer_auth(token).send().await;
                let body: Json = response.map_err(|e| e.to_string())?.json().await.unwrap();
                match body["state"].as_str() {
                    Some("confirmed" | "rejected") => Ok(()),
                    _ => Err(body.to_string()),
                }
            })
            .await
            .unwrap_or_else(|e| panic!("reservation {id} never settled: {e}\n{}", self.logs()));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_a_mini_sale_and_every_panel_has_data() {
    let stack = Stack::start().await;
    stack.mini_sale().await;

    let panels: Vec<_> = queries()
        .into_iter()
        .filter(|q| q.origin.contains(" panel "))
        .collect();
    assert!(panels.len() > 20, "{} panel queries", panels.len());
    let expand = |expr: &str| {
        GRAFANA_VALUES
            .iter()
            .fold(expr.to_owned(), |e, (var, value)| e.replace(var, value))
    };
    // Each query answers with at least one number (NaN is "No data" on a panel).
    let outcome = wait_for(Duration::from_secs(30), || async {
        let mut empty = Vec::new();
        for query in &panels {
            let result = stack.query(&expand(&query.expr)).await?;
            let numbers = result
                .iter()
                .filter(|s| s["value"][1].as_str().is_some_and(|v| v != "NaN"))
                .count();
            if numbers == 0 {
                empty.push(format!("{}: {}", query.origin, query.expr));
            }
        }
        if empty.is_empty() {
            Ok(())
        } else {
            Err(empty.join("\n"))
        }
    })
    .await;
    if let Err(empty) = outcome {
        panic!("panels without data:\n{empty}\n{}", stack.logs());
    }

    // The sale dashboard's event picker lists the event.
    let picker = queries()
        .into_iter()
        .find(|q| q.variable)
        .expect("the event variable");
    let selector = picker
        .expr
        .strip_prefix("label_values(")
        .and_then(|rest| rest.split_once(", event)"))
        .map(|(selector, _)| selector.to_owned())
        .unwrap_or_else(|| panic!("a variable query this test does not read: {}", picker.expr));
    let events = stack
        .query(&format!("count by (event) ({selector})"))
        .await
        .unwrap();
    assert!(
        events.iter().any(|s| s["metric"]["event"] == "sale"),
        "{}: {events:?}",
        picker.origin
    );

    // Every metric any panel or alert reads is one Prometheus scraped: a renamed metric or a
    // typo fails here, not as an alert that can never fire.
    let scraped: BTreeSet<String> = stack
        .http
        .get(format!("{}/api/v1/label/__name__/values", stack.prometheus))
        .send()
        .await
        .unwrap()
        .json::<Json>()
        .await
        .unwrap()["data"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(|n| n.as_str().map(String::from))
        .collect();
    let mut missing = Vec::new();
    for query in queries().into_iter().filter(|q| !q.variable) {
        let names = metric_names(&expand(&query.expr))
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", query.origin, query.expr));
        missing.extend(
            names
                .difference(&scraped)
                .map(|name| format!("{}: {name}", query.origin)),
        );
    }
    assert!(missing.is_empty(), "never scraped:\n{}", missing.join("\n"));

    // Prometheus loaded the project's rules and none of them is broken.
    let rules: Json = stack
        .http
        .get(format!("{}/api/v1/rules", stack.prometheus))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let loaded: Vec<&Json> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(loaded.len(), crate::dashboards::rules().len(), "{rules}");
    for rule in loaded {
        assert_ne!(rule["health"], "err", "{rule}");
    }
}
