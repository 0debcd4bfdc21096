//! The Grafana dashboards and the Prometheus alert rules as files: where Grafana finds them,
//! their shape, variables, severities and waits, and every query of both (`queries`), which
//! `prometheus.rs` runs against a real Prometheus.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

/// Variables Grafana defines itself.
const GRAFANA_VARIABLES: &[&str] = &["__rate_interval", "__interval", "__range"];

/// The severities alerts route on: `page` wakes somebody, `ticket` waits for working hours.
const SEVERITIES: &[&str] = &["page", "ticket"];

/// The two dashboards; any other `dashboards/*.json` is checked as well.
const DASHBOARDS: &[&str] = &["vestibule-sale.json", "vestibule-worker.json"];

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub(crate) fn yaml(path: impl AsRef<Path>) -> Yaml {
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
pub(crate) fn rules() -> Vec<(String, Yaml)> {
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
pub(crate) struct Query {
    pub(crate) origin: String,
    pub(crate) expr: String,
    /// A Grafana variable query (`label_values(…)`), not plain PromQL.
    pub(crate) variable: bool,
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
pub(crate) fn queries() -> Vec<Query> {
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
