//! The Grafana dashboards and the Prometheus alert rules against the code. Every metric a
//! query names must be registered by the gateway (or be one the worker will register, listed
//! below), so a renamed metric or a typo fails here rather than as an empty panel, or an alert
//! that can never fire, in the middle of a sale. No Grafana or Prometheus needed: a parse, plus
//! one `redis-server` so the Redis store's own metrics are registered as in production.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;
use vestibule::metrics::Metrics;
use vestibule::store::redis::RedisStore;
use vestibule::store::Store;

use crate::helpers::RedisServer;

/// Series Prometheus records itself for every scrape target.
const PROMETHEUS_METRICS: &[&str] = &["up"];

/// Variables Grafana defines itself.
const GRAFANA_VARIABLES: &[&str] = &["__rate_interval", "__interval", "__range"];

/// The severities alerts route on: `page` wakes somebody, `ticket` waits for working hours.
const SEVERITIES: &[&str] = &["page", "ticket"];

/// The two dashboards; any other `dashboards/*.json` is checked as well.
const DASHBOARDS: &[&str] = &["vestibule-sale.json", "vestibule-worker.json"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml(path: impl AsRef<Path>) -> Yaml {
    let path = path.as_ref();
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of<'a>(value: &'a Json, field: &str, origin: &str) -> &'a str {
    value[field]
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| panic!("{origin}: `{field}` missing or empty"))
}

// === The files ===

/// Every `dashboards/*.json`, by file name.
fn dashboards() -> BTreeMap<String, Json> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(repo().join("dashboards")).expect("dashboards/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            let json = serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{name}: {e}"));
            found.insert(name, json);
        }
    }
    for name in DASHBOARDS {
        assert!(found.contains_key(*name), "dashboards/{name} missing");
    }
    found
}

/// Every panel, those inside rows included (a collapsed row keeps its panels in `panels`).
fn panels(dashboard: &Json) -> Vec<&Json> {
    fn walk<'a>(list: &'a Json, out: &mut Vec<&'a Json>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn is_row(panel: &Json) -> bool {
    panel["type"] == "row"
}

/// The rule files Prometheus loads (relative to its configuration, as it resolves them).
fn rule_files() -> Vec<PathBuf> {
    let config = Path::new("dashboards/prometheus.yml");
    let files: Vec<PathBuf> = yaml(config)["rule_files"]
        .as_sequence()
        .expect("rule_files")
        .iter()
        .map(|f| config.with_file_name(f.as_str().expect("a path")))
        .collect();
    assert!(files.contains(&PathBuf::from("dashboards/alerts.yml")));
    files
}

/// Every rule of every group of every rule file, with where it comes from.
fn rules() -> Vec<(String, Yaml)> {
    let mut rules = Vec::new();
    for file in rule_files() {
        for group in yaml(&file)["groups"].as_sequence().expect("groups") {
            for rule in group["rules"].as_sequence().expect("rules") {
                let name = rule["alert"]
                    .as_str()
                    .or(rule["record"].as_str())
                    .unwrap_or("?");
                rules.push((format!("{} {name}", file.display()), rule.clone()));
            }
        }
    }
    rules
}

/// A PromQL expression (or a Grafana variable query) and where it comes from.
struct Query {
    origin: String,
    expr: String,
    /// A Grafana variable query (`label_values(…)`), not plain PromQL.
    variable: bool,
}

/// The query of a Grafana query variable: a string, or (its newer editor) an object.
fn variable_query(variable: &Json) -> &str {
    let query = &variable["query"];
    query
        .as_str()
        .or(query["query"].as_str())
        .unwrap_or_else(|| panic!("variable {}: no query", variable["name"]))
}

/// Every query of the dashboards and the alert rules.
fn queries() -> Vec<Query> {
    let mut queries = Vec::new();
    for (file, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                queries.push(Query {
                    origin: format!("{file} panel {:?}", panel["title"]),
                    expr: str_of(target, "expr", &file).to_owned(),
                    variable: false,
                });
            }
        }
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if variable["type"] != "query" {
                continue;
            }
            queries.push(Query {
                origin: format!("{file} variable {:?}", variable["name"]),
                expr: variable_query(variable).to_owned(),
                variable: true,
            });
        }
    }
    for (origin, rule) in rules() {
        queries.push(Query {
            origin,
            expr: rule["expr"].as_str().expect("expr").to_owned(),
            variable: false,
        });
    }
    queries
}

// === Metric names in PromQL ===

/// Functions and aggregation operators: an identifier followed by `(` must be one of these.
#[rustfmt::skip]
const FUNCTIONS: &[&str] = &[
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg", "avg_over_time", "bottomk", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "cos", "cosh", "count", "count_over_time", "count_values", "day_of_month", "day_of_week",
    "day_of_year", "days_in_month", "deg", "delta", "deriv", "end", "exp", "floor", "group",
    "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile",
    "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta",
    "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "mad_over_time", "max", "max_over_time", "min", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile", "quantile_over_time", "rad", "rate",
    "resets", "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "start",
    "stddev", "stddev_over_time", "stdvar", "stdvar_over_time", "sum", "sum_over_time", "tan",
    "tanh", "time", "timestamp", "topk", "vector", "year",
];

/// Aggregations, which may take `by (…)`/`without (…)` before their argument.
#[rustfmt::skip]
const AGGREGATIONS: &[&str] = &[
    "avg", "bottomk", "count", "count_values", "group", "max", "min", "quantile", "stddev",
    "stdvar", "sum", "topk",
];

/// Keywords followed by a list of label names, not metrics: `by (event, le)`.
#[rustfmt::skip]
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// Other keywords: set operators, `bool`, `offset`, `atan2`, and the number words.
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Punct(char),
    /// A string, a number or duration, or a Grafana variable: never a metric name.
    Other,
}

fn tokenize(expr: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' | '\'' | '`' => {
                loop {
                    match chars.next().ok_or("unterminated string")? {
                        // Backticks are raw strings: no escapes.
                        '\\' if c != '`' => {
                            chars.next();
                        }
                        q if q == c => break,
                        _ => {}
                    }
                }
                tokens.push(Token::Other);
            }
            '$' => {
                // `$name` or `${name[:format]}`.
                if chars.peek() == Some(&'{') {
                    chars.find(|&c| c == '}').ok_or("unterminated ${")?;
                } else {
                    while chars
                        .next_if(|c| c.is_alphanumeric() || *c == '_')
                        .is_some()
                    {}
                }
                tokens.push(Token::Other);
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = c.to_string();
                while let Some(c) =
                    chars.next_if(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':'))
                {
                    word.push(c);
                }
                tokens.push(Token::Ident(word));
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers and durations: 0.99, 1e3, 0x1f, 5m, 1h30m.
                while chars
                    .next_if(|c| c.is_ascii_alphanumeric() || *c == '.')
                    .is_some()
                {}
                tokens.push(Token::Other);
            }
            c => tokens.push(Token::Punct(c)),
        }
    }
    Ok(tokens)
}

/// The index just after the `close` matching the `open` at `start`.
fn skip_group(tokens: &[Token], start: usize, open: char, close: char) -> Result<usize, String> {
    let mut depth = 0;
    for (i, token) in tokens.iter().enumerate().skip(start) {
        match token {
            Token::Punct(c) if *c == open => depth += 1,
            Token::Punct(c) if *c == close => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
    }
    Err(format!("`{open}` without `{close}`"))
}

/// The metric names a PromQL expression reads.
fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    let tokens = tokenize(expr)?;
    let mut names = BTreeSet::new();
    let mut parens = 0i32;
    let mut i = 0;
    while i < tokens.len() {
        let next = tokens.get(i + 1);
        match &tokens[i] {
            Token::Punct('{') => {
                let end = skip_group(&tokens, i, '{', '}')?;
                // `{__name__="…"}` names a metric in a string: name it plainly so it is checked.
                if tokens[i..end].contains(&Token::Ident("__name__".into())) {
                    return Err("a __name__ matcher: name the metric instead".into());
                }
                i = end;
                continue;
            }
            Token::Punct('[') => {
                // A range or subquery: durations and variables only.
                i = skip_group(&tokens, i, '[', ']')?;
                continue;
            }
            Token::Punct('}' | ']') => return Err(format!("unbalanced {:?}", tokens[i])),
            Token::Punct('(') => parens += 1,
            Token::Punct(')') => {
                parens -= 1;
                if parens < 0 {
                    return Err("`)` without `(`".into());
                }
            }
            Token::Ident(word) => {
                let lower = word.to_ascii_lowercase();
                let calls = next == Some(&Token::Punct('('));
                if LABEL_LISTS.contains(&lower.as_str()) && calls {
                    i = skip_group(&tokens, i + 1, '(', ')')?;
                    continue;
                }
                if calls && !FUNCTIONS.contains(&word.as_str()) {
                    return Err(format!("unknown function {word}"));
                }
                let grouped = AGGREGATIONS.contains(&word.as_str())
                    && matches!(next, Some(Token::Ident(n)) if n == "by" || n == "without");
                let keyword =
                    LABEL_LISTS.contains(&lower.as_str()) || KEYWORDS.contains(&lower.as_str());
                if !(calls || grouped || keyword) {
                    names.insert(word.clone());
                }
            }
            _ => {}
        }
        i += 1;
    }
    if parens != 0 {
        return Err("`(` without `)`".into());
    }
    Ok(names)
}

/// The metric names a Grafana variable query reads.
fn variable_metric_names(query: &str) -> Result<BTreeSet<String>, String> {
    let query = query.trim();
    let inner = |prefix: &str| query.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'));
    if let Some(args) = inner("label_values(") {
        // `label_values(label)` or `label_values(selector, label)`: a label is no metric.
        return match args.rsplit_once(',') {
            Some((selector, _label)) => metric_names(selector),
            None => Ok(BTreeSet::new()),
        };
    }
    if let Some(expr) = inner("query_result(") {
        return metric_names(expr);
    }
    Err(format!(
        "a variable query this check does not read: {query}"
    ))
}

/// The Grafana variables an expression uses: `$name`, `${name}`, `${name:format}`. A `$`
/// ending a regex or a `$1` of label_replace is no variable.
fn variables_used(expr: &str) -> BTreeSet<String> {
    expr.split('$')
        .skip(1)
        .map(|rest| {
            let rest = rest.strip_prefix('{').unwrap_or(rest);
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| name.starts_with(|c: char| c.is_alphabetic() || c == '_'))
        .collect()
}

#[test]
fn the_extractor_finds_metric_names_in_tricky_expressions() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"histogram_quantile(0.99, sum by (route, le) (rate(http_seconds_bucket{route="/v1/queue/status", method=~"GET|HEAD"}[$__rate_interval])))"#,
            &["http_seconds_bucket"],
        ),
        // Bare names, grouping after the aggregation, `on` lists, comparison with `bool`.
        (
            "max by (event) (waiting) > 0 and on (event) sum(rate(admitted_total[5m])) by (event) == bool 0",
            &["admitted_total", "waiting"],
        ),
        ("up{job=\"gateway\"} == 0", &["up"]),
        (
            "sum(dead unless dead offset 10m) > 0 or increase(dead[10m:1m]) > 0",
            &["dead"],
        ),
        (
            "a / ignoring (status) group_left (route) b * on() group_right c",
            &["a", "b", "c"],
        ),
        ("sum without (instance) (rate(job:requests:rate5m[1h]))", &["job:requests:rate5m"]),
        // What looks like PromQL inside strings is not read.
        (
            r#"label_replace(real{route="sum(rate(fake_a[5m]))", x='fake_b', y=`fake\`}, "dst", "$1", "src", "(fake_c)")"#,
            &["real"],
        ),
        (r#"ok{route="a\"b fake"}"#, &["ok"]),
        // Variables, numbers, comments.
        ("topk(5, x{event=~\"${event:regex}\"}) # not_a_metric", &["x"]),
        ("1 - NaN + Inf * 1e3", &[]),
    ];
    for (expr, expected) in cases {
        let found = metric_names(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(found, expected, "{expr}");
    }
    for broken in [
        "histogram_quantil(0.9, x)",
        "sum(rate(x[5m])",
        "rate(x[5m]))",
        "x{a=\"b}",
        "x{a=\"b\"",
        "x[5m",
        "{__name__=\"x\"}",
    ] {
        assert!(metric_names(broken).is_err(), "{broken} accepted");
    }
    assert_eq!(
        variable_metric_names("label_values(vestibule_queue_waiting{job=\"a,b\"}, event)"),
        Ok(BTreeSet::from(["vestibule_queue_waiting".to_owned()]))
    );
    assert_eq!(
        variable_metric_names("label_values(event)"),
        Ok(BTreeSet::new())
    );
    assert!(variable_metric_names("metrics(vestibule_.*)").is_err());
    assert_eq!(
        variables_used(
            r#"label_replace(rate(x{event=~"$event", b="${b:csv}", c=~"a$"}[$__rate_interval]), "d", "$1", "e", "(.*)")"#
        ),
        BTreeSet::from(["event".into(), "b".into(), "__rate_interval".into()])
    );
}

// === Against the registered metrics ===

/// Every metric family a gateway registers, whether or not it has samples yet, with the
/// Redis store (the in-process store has no call metrics).
async fn exposed_names() -> BTreeSet<String> {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url())
        .await
        .expect("connect to the test Redis");
    let metrics = Metrics::new(store.collectors());
    let worker = vestibule::worker::metrics::WorkerMetrics::new();
    let names: BTreeSet<String> = metrics
        .names()
        .into_iter()
        .chain(worker.names().iter().cloned())
        .collect();
    assert!(
        names.contains("vestibule_store_call_duration_seconds"),
        "the Redis store's metrics are registered: {names:?}"
    );
    names
}

/// Whether `name` is a registered family, or a histogram's `_bucket`/`_sum`/`_count` series.
/// A known gap: `Metrics::names()` gives names without types, so `_count` appended to a
/// gauge's name would pass here too.
fn is_exposed(name: &str, exposed: &BTreeSet<String>) -> bool {
    exposed.contains(name)
        || PROMETHEUS_METRICS.contains(&name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .any(|base| exposed.contains(base))
}

#[tokio::test]
async fn every_metric_a_dashboard_or_an_alert_reads_is_registered() {
    let exposed = exposed_names().await;
    let mut missing = Vec::new();
    for query in queries() {
        let names = if query.variable {
            variable_metric_names(&query.expr)
        } else {
            metric_names(&query.expr)
        }
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", query.origin, query.expr));
        assert!(!names.is_empty(), "{}: reads no metric", query.origin);
        for name in names {
            if !is_exposed(&name, &exposed) {
                missing.push(format!("{}: {name}", query.origin));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not registered:\n{}",
        missing.join("\n")
    );
}

// === Grafana ===

/// Grafana's provisioning as docker-compose.yml mounts it.
struct Provisioning {
    /// The repository folder the dashboard provider reads.
    dashboards_dir: PathBuf,
    /// The uid of the provisioned Prometheus data source.
    datasource_uid: String,
}

impl Provisioning {
    fn load() -> Self {
        let compose = yaml("docker-compose.yml");
        let mounts: Vec<(String, String)> = compose["services"]["grafana"]["volumes"]
            .as_sequence()
            .expect("grafana mounts volumes")
            .iter()
            .filter_map(|v| {
                let (source, target) = v.as_str()?.split_once(':')?;
                let target = target.split(':').next()?;
                Some((source.to_owned(), target.to_owned()))
            })
            .collect();
        let source_of = |target: &str| {
            mounts
                .iter()
                .find(|(_, t)| t.trim_end_matches('/') == target.trim_end_matches('/'))
                .map(|(s, _)| repo().join(s))
                .unwrap_or_else(|| panic!("grafana: nothing mounted on {target}"))
        };
        let provisioning = source_of("/etc/grafana/provisioning");

        let providers = yaml(provisioning.join("dashboards/vestibule.yml"));
        let provider = &providers["providers"][0];
        assert_eq!(provider["type"].as_str(), Some("file"));
        let path = provider["options"]["path"].as_str().expect("provider path");

        let datasources = yaml(provisioning.join("datasources/prometheus.yml"));
        let prometheus: Vec<&Yaml> = datasources["datasources"]
            .as_sequence()
            .expect("datasources")
            .iter()
            .filter(|d| d["type"].as_str() == Some("prometheus"))
            .collect();
        assert_eq!(prometheus.len(), 1, "one Prometheus data source");
        Self {
            dashboards_dir: source_of(path),
            datasource_uid: prometheus[0]["uid"]
                .as_str()
                .expect("a fixed uid")
                .to_owned(),
        }
    }
}

#[test]
fn grafana_loads_the_dashboards_from_the_folder_they_are_in() {
    let provisioning = Provisioning::load();
    let mounted = provisioning
        .dashboards_dir
        .canonicalize()
        .expect("the mounted folder exists");
    assert_eq!(mounted, repo().join("dashboards").canonicalize().unwrap());
    for name in DASHBOARDS {
        assert!(mounted.join(name).is_file(), "{name} is not in {mounted:?}");
    }
}

/// Checks a `datasource` field names the provisioned Prometheus by uid.
fn assert_datasource(value: &Json, uid: &str, origin: &str) {
    assert_eq!(
        value["datasource"]["type"], "prometheus",
        "{origin}: datasource type"
    );
    assert_eq!(value["datasource"]["uid"], uid, "{origin}: datasource uid");
}

#[test]
fn dashboards_are_well_formed_for_grafana() {
    let uid = Provisioning::load().datasource_uid;
    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for (file, dashboard) in dashboards() {
        let dashboard_uid = str_of(&dashboard, "uid", &file);
        // Grafana refuses longer uids.
        assert!(dashboard_uid.len() <= 40, "{file}: uid too long");
        assert!(
            uids.insert(dashboard_uid.to_owned()),
            "{file}: uid used twice"
        );
        assert!(
            titles.insert(str_of(&dashboard, "title", &file).to_owned()),
            "{file}: title used twice"
        );
        let schema = dashboard["schemaVersion"].as_u64().expect("schemaVersion");
        assert!(schema >= 36, "{file}: schemaVersion {schema}");

        let mut variables: BTreeSet<String> =
            GRAFANA_VARIABLES.iter().map(|s| s.to_string()).collect();
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = str_of(variable, "name", &file);
            assert!(
                variables.insert(name.to_owned()),
                "{file}: variable {name} twice"
            );
            if variable["type"] == "query" {
                assert_datasource(variable, &uid, &format!("{file} variable {name}"));
            }
        }

        let panels = panels(&dashboard);
        assert!(!panels.is_empty(), "{file}: no panels");
        let mut ids = BTreeSet::new();
        let mut cells: Vec<(u64, u64, u64, u64, String)> = Vec::new();
        for panel in panels {
            let id = panel["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{file}: a panel without id"));
            assert!(ids.insert(id), "{file}: panel id {id} twice");
            let origin = format!("{file} panel {id}");
            let title = str_of(panel, "title", &origin).to_owned();
            let origin = format!("{origin} {title:?}");
            str_of(panel, "type", &origin);
            let pos = &panel["gridPos"];
            let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| {
                pos[k]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{origin}: gridPos.{k}"))
            });
            assert!(h > 0 && w > 0 && x + w <= 24, "{origin}: gridPos {pos}");
            if is_row(panel) {
                continue;
            }
            // Overlapping panels are pushed about by Grafana: a copy-paste slip, not a layout.
            for &(ox, oy, ow, oh, ref other) in &cells {
                let apart = x >= ox + ow || ox >= x + w || y >= oy + oh || oy >= y + h;
                assert!(apart, "{origin} overlaps {other}");
            }
            cells.push((x, y, w, h, title));
            assert_datasource(panel, &uid, &origin);
            let targets = panel["targets"]
                .as_array()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| panic!("{origin}: no targets"));
            let mut refs = BTreeSet::new();
            for target in targets {
                let ref_id = str_of(target, "refId", &origin);
                assert!(
                    refs.insert(ref_id.to_owned()),
                    "{origin}: refId {ref_id} twice"
                );
                if !target["datasource"].is_null() {
                    assert_datasource(target, &uid, &origin);
                }
                let expr = str_of(target, "expr", &origin);
                for used in variables_used(expr) {
                    assert!(
                        variables.contains(&used),
                        "{origin}: ${used} is not defined"
                    );
                }
            }
        }
    }
}

#[test]
fn the_sale_dashboard_picks_events_by_the_queue_gauge() {
    let dashboards = dashboards();
    let sale = &dashboards["vestibule-sale.json"];
    let event = sale["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "event")
        .expect("an `event` variable");
    let expected = "label_values(vestibule_queue_waiting, event)";
    // Grafana runs `query`; `definition` is what its editor shows.
    assert_eq!(variable_query(event), expected);
    assert_eq!(event["definition"], expected);
    // With "All", `event=~"$event"` must match every event, also `-` (unknown events).
    assert_eq!(event["allValue"], ".*");
}

// === Prometheus ===

/// A Prometheus duration: one or more `<number><unit>`, e.g. `30s`, `1h30m`.
fn is_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

#[test]
fn alert_rules_wait_name_a_severity_and_say_what_to_do() {
    assert!(is_duration("1h30m") && is_duration("0s") && is_duration("250ms"));
    assert!(!is_duration("5") && !is_duration("m") && !is_duration("5 m") && !is_duration(""));
    let mut names = BTreeSet::new();
    let rules = rules();
    assert!(rules.len() > 1, "the rules exist");
    for (origin, rule) in rules {
        // A recording rule would make a new metric name that queries could use: the name
        // check above would need to learn about them first.
        let name = rule["alert"]
            .as_str()
            .unwrap_or_else(|| panic!("{origin}: not an alert"));
        assert!(names.insert(name.to_owned()), "{origin}: alert name twice");
        assert!(
            rule["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
            "{origin}: expr"
        );
        let wait = rule["for"]
            .as_str()
            .unwrap_or_else(|| panic!("{origin}: no `for`"));
        assert!(is_duration(wait), "{origin}: for: {wait}");
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            SEVERITIES.contains(&severity),
            "{origin}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation]
                    .as_str()
                    .is_some_and(|a| !a.trim().is_empty()),
                "{origin}: annotations.{annotation}"
            );
        }
    }
}
