//! nginx for real: the project's `dashboards/nginx.conf`, rewritten by the README's own `sed`
//! line ("Running the full stack without Docker") and moved to this test's free ports, in front
//! of two gateways sharing one Redis, one PostgreSQL database and one keys directory, with a
//! worker: the topology of docker-compose.yml, run by hand. A person joins, follows the status
//! stream (each event arrives while the stream is still open: nginx does not buffer it),
//! enters when the door opens and reserves; the worker confirms in PostgreSQL. The same in
//! Chromium: the waiting-room page waits, streams, enters and lands (`tests/browser/run.mjs`,
//! scenario `nginx`; `bash .ci/run` installs Chromium and the scripts' modules).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value as Json};

use crate::dashboards::repo;
use crate::helpers::{temp_dir, RedisServer};
use crate::processes::{free_port, start, wait_for, Process};

const ADMIN_TOKEN: &str = "nginx-test-admin-token";

/// The README's rewrite of the compose file's service names to local ports (`LOCAL='…'`).
fn readme_rewrite() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    readme
        .lines()
        .find_map(|line| line.strip_prefix("LOCAL='")?.strip_suffix('\''))
        .expect("README: the LOCAL='…' rewrite of the by-hand stack")
        .to_owned()
}

/// A PostgreSQL database of its own on the shared server, dropped at the end.
struct Database(String);

impl Database {
    fn create() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("vestibule_nginx_{}_{n}", std::process::id());
        let _ = Command::new("dropdb")
            .args(["-h", "127.0.0.1", "-U", "postgres", "--if-exists", &name])
            .status();
        let created = Command::new("createdb")
            .args(["-h", "127.0.0.1", "-U", "postgres", &name])
            .status()
            .expect("createdb (PostgreSQL client) on PATH");
        assert!(created.success(), "createdb {name}");
        Self(name)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("dropdb")
            .args(["-h", "127.0.0.1", "-U", "postgres", "--force", &self.0])
            .status();
    }
}

struct Stack {
    http: reqwest::Client,
    /// nginx, the only address a person uses.
    url: String,
    gateways: [String; 2],
    // Dropped in order: nginx and the programs first, then the database and Redis.
    _processes: Vec<Process>,
    _database: Database,
    _redis: RedisServer,
}

impl Stack {
    async fn start() -> Self {
        let redis = RedisServer::start();
        let database = Database::create();
        let dir = temp_dir("nginx");
        let keys = dir.join("keys");
        let bin = env!("CARGO_BIN_EXE_vestibule");
        let http = reqwest::Client::new();
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let [a, b, worker, proxy] = ports.map(|p| format!("127.0.0.1:{p}"));
        let env = [
            ("VESTIBULE_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("VESTIBULE_REDIS_URL", redis.url()),
            ("VESTIBULE_DATABASE_URL", database.url()),
        ];
        let mut processes = Vec::new();
        for (listen, name) in [(&a, "gateway-a"), (&b, "gateway-b")] {
            // As the README: one keys directory, nginx on 127.0.0.1 the trusted proxy.
            let mut command = Command::new(bin);
            command.envs(env.clone()).args([
                "serve",
                "--listen",
                listen,
                "--keys-dir",
                keys.to_str().unwrap(),
                "--trusted-proxies",
                "127.0.0.1/32",
            ]);
            processes.push(start(command, &dir.join(format!("{name}.log"))));
            // One after the other: the first generates the keys the second reads.
            let ready = format!("http://{listen}/readyz");
            wait_for(Duration::from_secs(30), || async {
                match http.get(&ready).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            })
            .await
            .unwrap_or_else(|e| panic!("{name} never got ready: {e}"));
        }
        let mut command = Command::new(bin);
        command
            .envs(env.clone())
            .env("VESTIBULE_WORKER_METRICS_LISTEN", &worker)
            .arg("worker");
        processes.push(start(command, &dir.join("worker.log")));

        // The README's command, then this test's ports for the README's fixed ones.
        let nginx_dir = dir.join("nginx");
        std::fs::create_dir_all(&nginx_dir).unwrap();
        let rewritten = Command::new("sed")
            .arg(readme_rewrite())
            .arg(repo().join("dashboards/nginx.conf"))
            .output()
            .expect("sed");
        assert!(rewritten.status.success());
        let config = String::from_utf8(rewritten.stdout)
            .unwrap()
            .replace("127.0.0.1:8081", &a)
            .replace("127.0.0.1:8082", &b)
            .replace("listen 8080;", &format!("listen {proxy};"));
        assert!(config.contains(&a) && config.contains(&b), "{config}");
        let config_path = nginx_dir.join("nginx.conf");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new("nginx");
        command
            .arg("-p")
            .arg(&nginx_dir)
            .arg("-c")
            .arg(&config_path);
        processes.push(start(command, &dir.join("nginx.log")));
        let url = format!("http://{proxy}");
        wait_for(Duration::from_secs(30), || async {
            match http.get(format!("{url}/readyz")).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
        .unwrap_or_else(|e| {
            let log = std::fs::read_to_string(dir.join("nginx.log")).unwrap_or_default();
            panic!("nginx never answered: {e}\n{log}")
        });
        Self {
            http,
            url,
            gateways: [a, b],
            _processes: processes,
            _database: database,
            _redis: redis,
        }
    }

    async fn admin_put(&self, path: &str, body: Json) {
        let response = self
            .http
            .put(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "PUT {path}: {response:?}");
    }

    /// Enters and reserves a seat through nginx with an admission token; waits until the
    /// worker has confirmed it in PostgreSQL.
    async fn reserve_confirmed(&self, token: &str) {
        let reserved: Json = self
            .http
            .post(format!("{}/v1/reservations", self.url))
            .bearer_auth(token)
            .header("idempotency-key", "seat-1")
            .json(&json!({"items": [{"sku": "seat", "quantity": 1}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = reserved["reservation_id"]
            .as_str()
            .expect("an id")
            .to_owned();
        let url = format!("{}/v1/reservations/{id}", self.url);
        wait_for(Duration::from_secs(30), || async {
            let response = self.http.get(&url).bearer_auth(token).send().await;
            let body: Json = response.map_err(|e| e.to_string())?.json().await.unwrap();
            match body["state"].as_str() {
                Some("confirmed") => Ok(()),
                _ => Err(body.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| panic!("the worker never confirmed the reservation: {e}"));
    }

    /// Requests a gateway answered on the status route, from its own `/metrics`.
    async fn status_polls_served_by(&self, gateway: &str) -> u64 {
        let text = self
            .http
            .get(format!("http://{gateway}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with("vestibule_http_requests_total{")
                    && l.contains("route=\"/v1/queue/status\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

/// The next whole SSE event (`event:` and `data:` lines) of a stream still open.
async fn next_event(stream: &mut reqwest::Response, buffer: &mut String) -> (String, Json) {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            let (Some(kind), Some(data)) = (field("event:"), field("data:")) else {
                continue; // a keep-alive comment
            };
            return (kind, serde_json::from_str(&data).unwrap());
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk())
            .await
            .expect("an event within 30 s: nginx holds the stream back")
            .expect("the stream reads")
            .expect("the stream closed before its event");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn through_nginx_a_person_streams_enters_and_reserves_across_two_gateways() {
    let stack = Stack::start().await;
    stack
        .admin_put(
            "/admin/v1/events/sale",
            json!({"state": "open", "admission_rate": 0, "max_active": 100}),
        )
        .await;
    stack
        .admin_put(
            "/admin/v1/events/sale/inventory",
            json!({"items": [{"sku": "seat", "quantity": 1}]}),
        )
        .await;

    let joined: Json = stack
        .http
        .post(format!("{}/v1/events/sale/join", stack.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = joined["ticket"].as_str().expect("a ticket").to_owned();

    // Status polls through nginx reach both gateways, and each accepts the ticket.
    for _ in 0..6 {
        let polled = stack
            .http
            .get(format!("{}/v1/queue/status", stack.url))
            .bearer_auth(&ticket)
            .send()
            .await
            .unwrap();
        assert_eq!(polled.status(), StatusCode::OK);
    }
    for gateway in &stack.gateways {
        assert!(
            stack.status_polls_served_by(gateway).await > 0,
            "nginx never sent a status poll to {gateway}"
        );
    }

    // The stream: its first event arrives while it stays open; then the door opens and the
    // next event, on the same open stream, says so.
    let mut stream = stack
        .http
        .get(format!("{}/v1/queue/stream?ticket={ticket}", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut buffer = String::new();
    let (kind, first) = next_event(&mut stream, &mut buffer).await;
    assert_eq!(kind, "status", "{first}");
    assert_eq!(first["state"], "waiting", "{first}");
    stack
        .admin_put(
            "/admin/v1/events/sale",
            json!({"state": "open", "admission_rate": 50, "max_active": 100}),
        )
        .await;
    let (kind, next) = next_event(&mut stream, &mut buffer).await;
    assert_eq!(kind, "status", "{next}");
    drop(stream);

    // Enter and reserve through nginx; the worker confirms in PostgreSQL.
    let token = loop {
        let response = stack
            .http
            .post(format!("{}/v1/queue/enter", stack.url))
            .bearer_auth(&ticket)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Json = response.json().await.unwrap();
        if status == StatusCode::OK {
            break body["admission_token"].as_str().unwrap().to_owned();
        }
        assert_eq!(status, StatusCode::TOO_EARLY, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stack.reserve_confirmed(&token).await;

    // nginx keeps /metrics to the scrapers, in the API's error format.
    let metrics = stack
        .http
        .get(format!("{}/metrics", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn through_nginx_a_browser_waits_streams_enters_and_lands() {
    let stack = Stack::start().await;
    let shop = format!("{}/healthz", stack.url);
    let shut = json!({"state": "open", "admission_rate": 0, "redirect_url": shop});
    stack.admin_put("/admin/v1/events/sale", shut).await;
    stack
        .admin_put(
            "/admin/v1/events/sale/inventory",
            json!({"items": [{"sku": "seat", "quantity": 1}]}),
        )
        .await;

    let scripts = repo().join("tests/browser");
    let chromium =
        std::env::var("VESTIBULE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists() && scripts.join("node_modules").exists(),
        "Chromium or the browser scripts' modules are missing: run `bash .ci/run`"
    );
    let mut child = Command::new("node")
        .arg(scripts.join("run.mjs"))
        .arg("nginx")
        .current_dir(&scripts)
        .env("VESTIBULE_URL", &stack.url)
        .env("SHOP_URL", &shop)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node on PATH");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // The script asks for one step, the door opening, and ends with the admission token.
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        let mut result = None;
        for line in stdout.lines() {
            let line = line.unwrap();
            let Some(message) = line.strip_prefix("@@ ") else {
                continue;
            };
            let message: Json = serde_json::from_str(message).unwrap();
            if message.get("result").is_some() {
                result = Some(message["result"].clone());
                continue;
            }
            assert_eq!(message["step"], "open_door", "{message}");
            let open = json!({"state": "open", "admission_rate": 50});
            handle.block_on(stack.admin_put("/admin/v1/events/sale", open));
            let _ = writeln!(stdin, "{}", json!({"ok": true}));
        }
        result
    });
    let status = child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(
        status.success(),
        "the nginx scenario failed ({status}):\n{log}"
    );
    let token = result.expect("a result")["token"]
        .as_str()
        .expect("the admission token")
        .to_owned();
    // The page's admission is good for the sale, through nginx, to the worker.
    stack.reserve_confirmed(&token).await;
}
