//! `vestibule admin …`: operator commands over the admin API, so nobody has to write curl.
//!
//! The gateway stays the only judge of valves: this module checks syntax (a valve is
//! `name=value`, an event id is one the API accepts) and leaves ranges and names to the API,
//! whose `invalid_field` answers it prints as they come.

use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::event::EventId;

/// How long one admin call may take. The API answers in milliseconds or times out itself
/// after 10 s; waiting longer only hides a hung gateway.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Operator commands over the admin API.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Base URL of a gateway (plain HTTP: this build has no TLS client).
    #[arg(long, env = "VESTIBULE_URL", default_value = "http://127.0.0.1:8080",
          value_parser = parse_base_url, global = true)]
    pub url: Url,

    /// Bearer token of the admin API.
    #[arg(
        long,
        env = "VESTIBULE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<SecretString>,

    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// One operator command.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create an event (or update it, if it exists) with the given valves.
    Create {
        /// The event's id: 1-64 of letters, digits, '_' and '-'.
        event: String,
        #[command(flatten)]
        valves: Valves,
        /// Further valves as `name=value`, for valves without a flag of their own.
        #[arg(value_name = "VALVE=VALUE", value_parser = parse_assignment)]
        extra: Vec<(String, Value)>,
    },
    /// Set valves of an existing event: `set sale admission_rate=50 state=open`.
    Set {
        /// The event's id.
        event: String,
        /// `name=value`; numbers are sent as JSON numbers, anything else as a string.
        #[arg(value_name = "VALVE=VALUE", required = true, value_parser = parse_assignment)]
        valves: Vec<(String, Value)>,
    },
    /// Stop taking new people; everybody waiting keeps their place.
    Pause {
        /// The event's id.
        event: String,
    },
    /// Take new people again (state `open`).
    Resume {
        /// The event's id.
        event: String,
    },
    /// End the event: no more joins, its keys drain away.
    Close {
        /// The event's id.
        event: String,
    },
    /// Show an event's valves and live figures.
    Show {
        /// The event's id.
        event: String,
        /// Print the API's JSON as it is, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Check an event's draw (DESIGN §18) from what anyone can read: the seed matches the
    /// commitment published before the opening, and every exported place follows ascending
    /// HMAC-SHA256(seed, jti). Exits non-zero on any mismatch.
    Draw {
        /// The event's id.
        event: String,
    },
    /// Show who changed an event's valves, when, and from what to what (newest first).
    Audit {
        /// The event's id.
        event: String,
        /// Most entries to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print the API's JSON as it is, for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// The valves `create` takes as flags. Unset flags are not sent: the event keeps its value
/// (or, when new, the default).
#[derive(Debug, Default, clap::Args, Serialize)]
pub struct Valves {
    /// `scheduled`, `open`, `paused` or `closed`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// A person not seen this long is evicted.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_ttl_secs: Option<u64>,
    /// Most people waiting at once (0: no limit).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queue_len: Option<u64>,
    /// Lifetime of a queue ticket.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_ttl_secs: Option<u64>,
    /// `anonymous` or `user_id`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Positions 1..=vip_size are the `vip` tier.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip_size: Option<u64>,
    /// Positions up to here are the `fast` tier; the rest `slow`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_upto: Option<u64>,
    /// `poll_after_ms` of the vip and fast tiers.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_poll_ms: Option<u64>,
    /// `poll_after_ms` of the slow tier.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_poll_ms: Option<u64>,
}

/// Why an admin command failed. The message is meant for the operator's terminal as it is.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The command line is well formed but cannot be sent.
    #[error("{0}")]
    Usage(String),
    /// A check found what it checks to be wrong.
    #[error("check failed: {0}")]
    Check(String),
    /// The gateway could not be reached or did not answer.
    #[error("no answer from the gateway at {url}: {cause}\n(set --url or VESTIBULE_URL to the gateway's address)")]
    Unreachable {
        /// Where the call went.
        url: String,
        /// reqwest's description of the failure.
        cause: String,
    },
    /// The API answered with its error format.
    #[error("{status}: {code}: {message}{}{}", field_line(.field), hint(.code))]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The API's fixed error code.
        code: String,
        /// The API's message.
        message: String,
        /// The offending field, for `invalid_field`.
        field: Option<String>,
    },
    /// Something answered, but not in the API's format (a proxy's error page, say).
    #[error("{status} from {url}, not an answer of the admin API: {body}")]
    Unexpected {
        /// The HTTP status.
        status: StatusCode,
        /// Where the call went.
        url: String,
        /// The start of the body.
        body: String,
    },
}

fn field_line(field: &Option<String>) -> String {
    field
        .as_ref()
        .map(|f| format!("\nfield: {f}"))
        .unwrap_or_default()
}

fn hint(code: &str) -> &'static str {
    match code {
        "unauthorized" => {
            "\n(pass --token or set VESTIBULE_ADMIN_TOKEN to the gateway's admin token)"
        }
        _ => "",
    }
}

/// Runs one admin command, printing its outcome on stdout.
pub async fn run(args: AdminArgs) -> Result<(), AdminError> {
    let client = Client::new(args.url, args.token)?;
    match args.command {
        AdminCommand::Create {
            event,
            valves,
            extra,
        } => {
            let mut body = match serde_json::to_value(&valves) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            };
            body.extend(assignments(extra)?);
            let (status, answer) = client.put(&event, &Value::Object(body)).await?;
            let verb = if status == StatusCode::CREATED {
                "created"
            } else {
                "already existed; updated"
            };
            print!("event {event} {verb}\n{}", render(&answer));
        }
        AdminCommand::Set { event, valves } => {
            let body = Value::Object(assignments(valves)?);
            client.update_existing(&event, &body).await?;
        }
        AdminCommand::Pause { event } => pause_resume_close(&client, &event, "paused").await?,
        AdminCommand::Resume { event } => pause_resume_close(&client, &event, "open").await?,
        AdminCommand::Close { event } => pause_resume_close(&client, &event, "closed").await?,
        AdminCommand::Show { event, json } => {
            let answer = client.get(&event).await?;
            if json {
                let pretty = serde_json::to_string_pretty(&answer).unwrap_or_default();
                println!("{pretty}");
            } else {
                print!("event {event}\n{}", render(&answer));
            }
        }
        AdminCommand::Draw { event } => {
            let places = check_draw(&client, &event).await?;
            println!(
                "draw of {event}: {places} places checked; the seed matches its commitment and \
                 every place follows ascending HMAC-SHA256(seed, jti)"
            );
        }
        AdminCommand::Audit { event, limit, json } => {
            let url = format!("{}/audit?limit={limit}", client.event_url(&event)?);
            let (_, answer) = client.call(Method::GET, &url, None).await?;
            if json {
                let pretty = serde_json::to_string_pretty(&answer).unwrap_or_default();
                println!("{pretty}");
            } else {
                print!(
                    "event {event}: changes, newest first\n{}",
                    render_audit(&answer)
                );
            }
        }
    }
    Ok(())
}

/// Recomputes a draw from its published seed and its export; answers the number of places.
async fn check_draw(client: &Client, event: &str) -> Result<u64, AdminError> {
    let admin_url = client.event_url(event)?;
    let public_url = admin_url.replace("/admin/v1/events/", "/v1/events/") + "/draw";
    let (_, draw) = client.call(Method::GET, &public_url, None).await?;
    let seed = draw["seed"]
        .as_str()
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| AdminError::Check(format!("no seed published yet: {draw}")))?;
    let commitment = hex::encode(Sha256::digest(&seed));
    if draw["commitment"].as_str() != Some(commitment.as_str()) {
        return Err(AdminError::Check(format!(
            "SHA-256 of the seed is {commitment}, the commitment was {}",
            draw["commitment"]
        )));
    }
    let count = draw["count"].as_u64().unwrap_or(0);
    let mut entries = Vec::new();
    while (entries.len() as u64) < count {
        let url = format!(
            "{admin_url}/draw/entries?offset={}&limit=10000",
            entries.len()
        );
        let (_, page) = client.call(Method::GET, &url, None).await?;
        let before = entries.len();
        entries.extend(page["entries"].as_array().into_iter().flatten().map(|e| {
            let jti = e["jti"].as_str().unwrap_or_default().to_owned();
            (jti, e["place"].as_u64().unwrap_or(0))
        }));
        if entries.len() == before {
            return Err(AdminError::Check(format!(
                "the export ends at place {before} of {count}"
            )));
        }
    }
    check_order(&seed, &entries).map_err(AdminError::Check)?;
    Ok(count)
}

/// Checks that `(jti, place)` entries, in place order, are places 1, 2, … in ascending
/// HMAC-SHA256(seed, jti).
fn check_order(seed: &[u8], entries: &[(String, u64)]) -> Result<(), String> {
    let mut previous: Option<Vec<u8>> = None;
    for ((jti, place), expected) in entries.iter().zip(1..) {
        if *place != expected {
            return Err(format!(
                "expected place {expected}, the export says {place}"
            ));
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(seed).map_err(|e| e.to_string())?;
        mac.update(jti.as_bytes());
        let mac = mac.finalize().into_bytes().to_vec();
        if previous.as_ref().is_some_and(|p| *p >= mac) {
            return Err(format!("place {place} ({jti}) is out of the seed's order"));
        }
        previous = Some(mac);
    }
    Ok(())
}

async fn pause_resume_close(client: &Client, event: &str, state: &str) -> Result<(), AdminError> {
    client
        .update_existing(event, &json!({ "state": state }))
        .await
}

/// Turns `name=value` pairs into a JSON object, refusing a valve given twice (which one
/// would win is a guess the operator should not have to make).
fn assignments(pairs: Vec<(String, Value)>) -> Result<Map<String, Value>, AdminError> {
    let mut body = Map::new();
    for (name, value) in pairs {
        if body.insert(name.clone(), value).is_some() {
            return Err(AdminError::Usage(format!("valve {name} is given twice")));
        }
    }
    Ok(body)
}

/// Parses `name=value`: the value is a JSON number when it reads as one, else a string.
fn parse_assignment(raw: &str) -> Result<(String, Value), String> {
    let (name, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("expected VALVE=VALUE, got `{raw}`"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("no valve name in `{raw}`"));
    }
    let value = match serde_json::from_str::<serde_json::Number>(value.trim()) {
        Ok(number) => Value::Number(number),
        Err(_) => Value::String(value.to_owned()),
    };
    Ok((name.to_owned(), value))
}

fn parse_base_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" => Ok(url),
        // Built without a TLS client to keep the binary small; the admin API belongs on a
        // private network anyway.
        "https" => Err("https is not supported by this build: reach the gateway over plain HTTP on its private address".to_owned()),
        other => Err(format!("unsupported scheme `{other}`: use http://")),
    }
}

/// Prints the `config` and `figures` objects of an admin answer as aligned `name value` lines.
/// Generic over the names, so valves and figures the API adds later show up unchanged.
fn render(answer: &Value) -> String {
    let mut out = String::new();
    for (section, title) in [("config", "valves"), ("figures", "figures")] {
        let Some(fields) = answer.get(section).and_then(Value::as_object) else {
            continue;
        };
        let _ = writeln!(out, "  {title}:");
        let width = fields.keys().map(String::len).max().unwrap_or(0);
        for (name, value) in fields {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = writeln!(out, "    {name:<width$}  {shown}");
        }
    }
    out
}

/// Prints audit entries as `when  by  version` lines, each followed by its `field: old -> new`
/// changes.
fn render_audit(answer: &Value) -> String {
    let mut out = String::new();
    let entries = answer.get("entries").and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        let at = entry.get("at_ms").and_then(Value::as_u64).unwrap_or(0);
        let when =
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(at));
        let by = entry.get("by").and_then(Value::as_str).unwrap_or("?");
        let version = entry.get("version").and_then(Value::as_u64).unwrap_or(0);
        let _ = writeln!(out, "  {when}  by {by}  version {version}");
        let changes = entry.get("changes").and_then(Value::as_object);
        for (field, change) in changes.into_iter().flatten() {
            let shown = |k: &str| match change.get(k) {
                None | Some(Value::Null) => "-".to_owned(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            let _ = writeln!(out, "    {field}: {} -> {}", shown("old"), shown("new"));
        }
    }
    if out.is_empty() {
        out.push_str("  (no changes recorded)\n");
    }
    out
}

// === impl Client ===

/// The admin API, as seen from the command line.
struct Client {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

impl Client {
    fn new(url: Url, token: Option<SecretString>) -> Result<Self, AdminError> {
        let token = token
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or_else(|| {
                AdminError::Usage(
                    "no admin token: pass --token or set VESTIBULE_ADMIN_TOKEN".to_owned(),
                )
            })?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| AdminError::Usage(format!("cannot build an HTTP client: {e}")))?;
        // Kept as text so a gateway mounted under a path prefix keeps its prefix.
        let base = url.as_str().trim_end_matches('/').to_owned();
        Ok(Self { http, base, token })
    }

    fn event_url(&self, event: &str) -> Result<String, AdminError> {
        // Checked here so an id like `a/b` cannot address another route.
        let event = EventId::parse(event).map_err(|reason| AdminError::Usage(reason.to_owned()))?;
        Ok(format!("{}/admin/v1/events/{event}", self.base))
    }

    async fn get(&self, event: &str) -> Result<Value, AdminError> {
        let url = self.event_url(event)?;
        Ok(self.call(Method::GET, &url, None).await?.1)
    }

    async fn put(&self, event: &str, body: &Value) -> Result<(StatusCode, Value), AdminError> {
        let url = self.event_url(event)?;
        self.call(Method::PUT, &url, Some(body)).await
    }

    /// PUT on an event that must exist. The API's PUT creates missing events, so without this
    /// check a typo (`close salle`) would create a new event instead of failing.
    async fn update_existing(&self, event: &str, body: &Value) -> Result<(), AdminError> {
        self.get(event).await?;
        let (_, answer) = self.put(event, body).await?;
        print!("event {event} updated\n{}", render(&answer));
        Ok(())
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), AdminError> {
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| AdminError::Unreachable {
            url: url.to_owned(),
            cause: error_chain(&e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        let parsed = serde_json::from_str::<Value>(&text).ok();
        if status.is_success() {
            if let Some(answer) = parsed {
                return Ok((status, answer));
            }
        } else if let Some(error) = parsed.as_ref().and_then(|v| v.get("error")) {
            let text_of = |k: &str| error.get(k).and_then(Value::as_str).map(str::to_owned);
            return Err(AdminError::Api {
                status,
                code: text_of("code").unwrap_or_else(|| "unknown".to_owned()),
                message: text_of("message").unwrap_or_default(),
                field: text_of("field"),
            });
        }
        Err(AdminError::Unexpected {
            status,
            url: url.to_owned(),
            body: text.chars().take(200).collect(),
        })
    }
}

/// reqwest's top-level message is often just "error sending request"; the cause is below it.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_sent_as_numbers_and_everything_else_as_strings() {
        assert_eq!(
            parse_assignment("max_queue_len=500").unwrap(),
            ("max_queue_len".to_owned(), json!(500))
        );
        assert_eq!(parse_assignment("rate=2.5").unwrap().1, json!(2.5));
        assert_eq!(parse_assignment("state=open").unwrap().1, json!("open"));
        // Only numbers are special: `true` stays a word, so a typo is never silently retyped.
        assert_eq!(parse_assignment("state=true").unwrap().1, json!("true"));
        assert_eq!(parse_assignment("state=").unwrap().1, json!(""));
        assert_eq!(parse_assignment("a=b=c").unwrap().1, json!("b=c"));
        assert!(parse_assignment("open").is_err());
        assert!(parse_assignment("=5").is_err());
    }

    #[test]
    fn a_draw_out_of_the_seeds_order_is_caught() {
        let seed = [9u8; 32];
        let mut entries: Vec<(String, u64)> = (1..=20).map(|s| (format!("sale:{s}"), 0)).collect();
        entries.sort_by_key(|(jti, _)| crate::door::draw_score(&seed, jti));
        for (i, entry) in entries.iter_mut().enumerate() {
            entry.1 = i as u64 + 1;
        }
        assert_eq!(check_order(&seed, &entries), Ok(()));
        let mut swapped = entries.clone();
        swapped.swap(3, 4);
        swapped[3].1 = 4;
        swapped[4].1 = 5;
        assert!(check_order(&seed, &swapped).is_err());
        assert!(
            check_order(&[8u8; 32], &entries).is_err(),
            "another seed, another order"
        );
    }

    #[test]
    fn a_valve_given_twice_is_refused() {
        let pairs = vec![
            ("state".to_owned(), json!("open")),
            ("state".to_owned(), json!("closed")),
        ];
        assert!(matches!(assignments(pairs), Err(AdminError::Usage(m)) if m.contains("state")));
    }

    #[test]
    fn only_plain_http_urls_are_accepted() {
        assert!(parse_base_url("http://10.0.0.5:8080/").is_ok());
        assert!(parse_base_url("https://gateway").is_err());
        assert!(parse_base_url("gateway:8080").is_err());
    }

    #[test]
    fn only_the_flags_given_are_sent() {
        let valves = Valves {
            state: Some("open".to_owned()),
            max_queue_len: Some(0),
            ..Valves::default()
        };
        assert_eq!(
            serde_json::to_value(&valves).unwrap(),
            json!({"state": "open", "max_queue_len": 0})
        );
    }

    #[test]
    fn api_errors_print_their_code_and_field() {
        let err = AdminError::Api {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field".to_owned(),
            message: "must be between 1 and 86400".to_owned(),
            field: Some("heartbeat_ttl_secs".to_owned()),
        };
        let text = err.to_string();
        assert!(text.contains("422"), "{text}");
        assert!(text.contains("invalid_field"), "{text}");
        assert!(text.contains("field: heartbeat_ttl_secs"), "{text}");
    }

    #[test]
    fn valves_and_figures_render_as_aligned_lines() {
        let answer = json!({
            "event_id": "sale",
            "config": {"state": "open", "heartbeat_ttl_secs": 300},
            "figures": {"waiting": 12}
        });
        assert_eq!(
            render(&answer),
            "  valves:\n    heartbeat_ttl_secs  300\n    state               open\n  figures:\n    waiting  12\n"
        );
    }
}
