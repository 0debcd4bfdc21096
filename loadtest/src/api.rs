//! The gateway's HTTP API as the crowd sees it: every call returns an [`Exchange`] (when it was
//! sent and answered, the HTTP status and the error `code`) next to what it carried.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use serde_json::Value;
use tokio::sync::Semaphore;

/// Status code recorded for a request that got no HTTP answer (refused, reset, timed out).
pub const NO_ANSWER: u16 = 0;

/// The endpoints the crowd calls, for the figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// `POST /v1/events/{event}/join`
    Join,
    /// `GET /v1/queue/status`
    Status,
    /// `POST /v1/queue/leave`
    Leave,
    /// `POST /v1/queue/enter`
    Enter,
    /// `POST /v1/reservations`
    Reserve,
    /// `GET /v1/reservations/{id}`
    Reservation,
}

impl Endpoint {
    /// Every endpoint, in report order.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Join,
        Endpoint::Status,
        Endpoint::Leave,
        Endpoint::Enter,
        Endpoint::Reserve,
        Endpoint::Reservation,
    ];

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Join => "join",
            Endpoint::Status => "status",
            Endpoint::Leave => "leave",
            Endpoint::Enter => "enter",
            Endpoint::Reserve => "reserve",
            Endpoint::Reservation => "resv_get",
        }
    }
}

/// One request and its answer, as timed by the client.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// Just before the request left (after waiting for a connection slot).
    pub sent: Instant,
    /// When the whole answer had arrived (or the request failed).
    pub received: Instant,
    /// The HTTP status, or [`NO_ANSWER`].
    pub status: u16,
    /// The `error.code` of an error answer; `transport` or `timeout` when there was none.
    pub code: Option<String>,
}

impl Exchange {
    /// Time from sending to the full answer.
    pub fn latency(&self) -> Duration {
        self.received.saturating_duration_since(self.sent)
    }

    /// True for 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What a successful join carried.
#[derive(Clone, Debug)]
pub struct Placed {
    /// The queue ticket.
    pub ticket: Arc<str>,
    /// The `seq` claim of the ticket: the queue order.
    pub seq: u64,
    /// The position the join answered.
    pub position: u64,
    /// When to poll first.
    pub poll_after_ms: u64,
}

/// What a successful status poll carried.
#[derive(Clone, Copy, Debug)]
pub struct Standing {
    /// The position shown to the person.
    pub position: u64,
    /// The server's `poll_after_ms`.
    pub poll_after_ms: u64,
    /// `ready_for_entry`: the person is inside the door's window (or already admitted).
    pub ready_for_entry: bool,
    /// `state: admitted`: the person has entered already (position 0 then means nothing).
    pub admitted: bool,
}

/// What an enter answered.
#[derive(Clone, Debug)]
pub enum Entry {
    /// `200`: the admission token (the same one when entered before).
    Admitted(Arc<str>),
    /// `425 not_ready` or `429 rate_limited`: try again after this long (`Retry-After`).
    NotYet(Duration),
    /// Anything else: see the exchange.
    Refused,
}

/// A reservation as the gateway shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    /// The reservation id.
    pub id: String,
    /// `pending`, `confirmed` or `rejected`.
    pub state: String,
    /// Why it was rejected.
    pub reason: Option<String>,
}

/// A client of one gateway and one event. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    target: Arc<str>,
    event: Arc<str>,
    /// Bounds requests in flight, hence connections: a crowd of 100k must not open 100k sockets.
    slots: Arc<Semaphore>,
}

impl Api {
    /// A client for `target` (e.g. `http://127.0.0.1:8080`) and `event`, with at most
    /// `connections` requests in flight.
    pub fn new(target: &str, event: &str, connections: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            target: target.trim_end_matches('/').into(),
            event: event.into(),
            slots: Arc::new(Semaphore::new(connections.max(1))),
        })
    }

    /// The event under test.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// `POST /v1/events/{event}/join` with an empty body.
    pub async fn join(&self) -> (Exchange, Option<Placed>) {
        let url = format!("{}/v1/events/{}/join", self.target, self.event);
        let (exchange, body, _) = self.call(self.http.post(url)).await;
        let placed = if exchange.ok() {
            body.as_ref().and_then(placed_from)
        } else {
            None
        };
        (exchange, placed)
    }

    /// `GET /v1/queue/status` with the ticket as a bearer token.
    pub async fn status(&self, ticket: &str) -> (Exchange, Option<Standing>) {
        let url = format!("{}/v1/queue/status", self.target);
        let (exchange, body, _) = self.call(self.http.get(url).bearer_auth(ticket)).await;
        let standing = if exchange.ok() {
            body.as_ref().and_then(|b| {
                Some(Standing {
                    position: b["position"].as_u64()?,
                    poll_after_ms: b["poll_after_ms"].as_u64()?,
                    ready_for_entry: b["ready_for_entry"].as_bool().unwrap_or(false),
                    admitted: b["state"].as_str() == Some("admitted"),
                })
            })
        } else {
            None
        };
        (exchange, standing)
    }

    /// `POST /v1/queue/leave` with the ticket as a bearer token.
    pub async fn leave(&self, ticket: &str) -> Exchange {
        let url = format!("{}/v1/queue/leave", self.target);
        self.call(self.http.post(url).bearer_auth(ticket)).await.0
    }

    /// `POST /v1/queue/enter` with the ticket as a bearer token.
    pub async fn enter(&self, ticket: &str) -> (Exchange, Entry) {
        let url = format!("{}/v1/queue/enter", self.target);
        let (exchange, body, retry_after) =
            self.call(self.http.post(url).bearer_auth(ticket)).await;
        let token = body
            .as_ref()
            .and_then(|b| b["admission_token"].as_str())
            .map(Arc::from);
        let entry = match (exchange.status, token) {
            (200, Some(token)) => Entry::Admitted(token),
            (425 | 429, _) => Entry::NotYet(retry_after.unwrap_or(Duration::from_secs(1))),
            _ => Entry::Refused,
        };
        (exchange, entry)
    }

    /// `POST /v1/reservations` of one unit of `sku`, with the admission token and `key` as
    /// the `Idempotency-Key`. Answers the reservation when `202`, and the `Retry-After`.
    pub async fn reserve(
        &self,
        admission: &str,
        key: &str,
        sku: &str,
    ) -> (Exchange, Option<Shown>, Option<Duration>) {
        let url = format!("{}/v1/reservations", self.target);
        let request = self
            .http
            .post(url)
            .bearer_auth(admission)
            .header("idempotency-key", key)
            .json(&serde_json::json!({ "items": [{ "sku": sku, "quantity": 1 }] }));
        let (exchange, body, retry_after) = self.call(request).await;
        let shown = if exchange.status == 202 {
            body.as_ref().and_then(shown_from)
        } else {
            None
        };
        (exchange, shown, retry_after)
    }

    /// `GET /v1/reservations/{id}` with the admission token.
    pub async fn reservation(&self, admission: &str, id: &str) -> (Exchange, Option<Shown>) {
        let url = format!("{}/v1/reservations/{id}", self.target);
        let (exchange, body, _) = self.call(self.http.get(url).bearer_auth(admission)).await;
        let shown = if exchange.status == 200 {
            body.as_ref().and_then(shown_from)
        } else {
            None
        };
        (exchange, shown)
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> (Exchange, Option<Value>, Option<Duration>) {
        // The semaphore is never closed, so acquiring cannot fail; if it did, sending
        // without a slot is still a correct request.
        let _slot = self.slots.acquire().await.ok();
        let sent = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes, retry_after))
        }
        .await;
        let received = Instant::now();
        match result {
            Ok((status, bytes, retry_after)) => {
                let body: Option<Value> = serde_json::from_slice(&bytes).ok();
                let code = if (200..300).contains(&status) {
                    None
                } else {
                    Some(
                        body.as_ref()
                            .and_then(|b| b["error"]["code"].as_str())
                            .unwrap_or("no_code")
                            .to_owned(),
                    )
                };
                let exchange = Exchange {
                    sent,
                    received,
                    status,
                    code,
                };
                (exchange, body, retry_after)
            }
            Err(err) => {
                let code = if err.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                };
                let exchange = Exchange {
                    sent,
                    received,
                    status: NO_ANSWER,
                    code: Some(code.to_owned()),
                };
                (exchange, None, None)
            }
        }
    }
}

fn placed_from(body: &Value) -> Option<Placed> {
    let ticket = body["ticket"].as_str()?;
    Some(Placed {
        seq: ticket_seq(ticket)?,
        ticket: ticket.into(),
        position: body["position"].as_u64()?,
        poll_after_ms: body["poll_after_ms"].as_u64()?,
    })
}

fn shown_from(body: &Value) -> Option<Shown> {
    Some(Shown {
        id: body["reservation_id"].as_str()?.to_owned(),
        state: body["state"].as_str()?.to_owned(),
        reason: body["reason"].as_str().map(str::to_owned),
    })
}

/// The `seq` claim of a queue ticket, read without verifying it (the gateway verifies; the
/// crowd only needs the order).
pub fn ticket_seq(ticket: &str) -> Option<u64> {
    let payload = ticket.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["seq"].as_u64()
}

// === admin ===

/// The admin API, for preparing the event and reading its live figures.
#[derive(Clone)]
pub struct Admin {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Admin {
    /// An admin client for `event` on `target`.
    pub fn new(target: &str, event: &str, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            url: format!("{}/admin/v1/events/{event}", target.trim_end_matches('/')),
            token: token.to_owned(),
        })
    }

    /// `PUT` the event's valves; returns the stored configuration.
    pub async fn put_event(&self, valves: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .put(&self.url)
            .bearer_auth(&self.token)
            .json(valves)
            .send()
            .await
            .with_context(|| format!("PUT {}", self.url))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "PUT {} answered {status}: {body}",
            self.url
        );
        Ok(body["config"].clone())
    }

    /// `PUT` the event's inventory: `stock` of each sku.
    pub async fn put_inventory(&self, skus: &[String], stock: u64) -> anyhow::Result<()> {
        let items: Vec<Value> = skus
            .iter()
            .map(|sku| serde_json::json!({ "sku": sku, "quantity": stock }))
            .collect();
        let url = format!("{}/inventory", self.url);
        let response = self
            .http
            .put(&url)
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "items": items }))
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "PUT {url} answered {status}: {body}");
        Ok(())
    }

    /// `GET` the event's inventory: remaining by sku.
    pub async fn inventory(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let url = format!("{}/inventory", self.url);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "GET {url} answered {status}: {body}");
        let items = body["items"].as_array().cloned().unwrap_or_default();
        Ok(items
            .iter()
            .filter_map(|i| Some((i["sku"].as_str()?.to_owned(), i["remaining"].as_i64()?)))
            .collect())
    }

    /// `GET` the event: `{config, figures}`.
    pub async fn get_event(&self) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {}", self.url))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "GET {} answered {status}: {body}",
            self.url
        );
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seq_claim_is_read_from_the_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"ev":"demo","sub":"a.x","seq":42,"iat":1,"exp":2,"jti":"demo:42"}"#);
        assert_eq!(ticket_seq(&format!("h.{payload}.s")), Some(42));
        assert_eq!(ticket_seq("not-a-jwt"), None);
    }
}
