//! docker-compose.yml against the code and the files it names, without Docker (nginx checks
//! its own file with `nginx -t`), so the stack cannot drift from the binary while nobody is
//! running it: a renamed variable, file, service or port fails here. `nginx.rs` runs the
//! same topology by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_norway::Value;

/// Variables a service of our image may set that no code reads yet, with the reason.
/// Gateways get no such allowance: everything they are given must be read by `serve`.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml(path: &str) -> Value {
    let mut value: Value =
        serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    // One pass of apply_merge resolves one level of `<<`; the gateways merge an anchor that
    // itself merges another, so repeat until none is left.
    for _ in 0..8 {
        value.apply_merge().expect("valid merge keys");
    }
    assert!(!has_merge_key(&value), "{path}: unresolved `<<`");
    value
}

fn has_merge_key(value: &Value) -> bool {
    match value {
        Value::Mapping(map) => map.contains_key("<<") || map.values().any(has_merge_key),
        Value::Sequence(seq) => seq.iter().any(has_merge_key),
        _ => false,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

// === The compose file ===

struct Stack(Value);

impl Stack {
    fn load() -> Self {
        Self(yaml("docker-compose.yml"))
    }

    fn services(&self) -> BTreeMap<String, &Value> {
        self.0["services"]
            .as_mapping()
            .expect("services")
            .iter()
            .map(|(name, service)| (text(name), service))
            .collect()
    }

    fn service(&self, name: &str) -> &Value {
        self.services()
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    /// Services running our image (they are built from the Dockerfile).
    fn vestibule_services(&self) -> BTreeMap<String, &Value> {
        self.services()
            .into_iter()
            .filter(|(_, s)| s.get("build").is_some())
            .collect()
    }

    /// Services running `vestibule serve`.
    fn gateways(&self) -> BTreeMap<String, &Value> {
        let gateways: BTreeMap<_, _> = self
            .vestibule_services()
            .into_iter()
            .filter(|(_, s)| command(s).first().map(String::as_str) == Some("serve"))
            .collect();
        assert_eq!(gateways.len(), 2, "two gateway instances");
        gateways
    }

    fn declared_volumes(&self) -> BTreeSet<String> {
        self.0["volumes"]
            .as_mapping()
            .map(|m| m.keys().map(text).collect())
            .unwrap_or_default()
    }
}

fn command(service: &Value) -> Vec<String> {
    match service.get("command") {
        Some(Value::Sequence(seq)) => seq.iter().map(text).collect(),
        Some(Value::String(line)) => line.split_whitespace().map(str::to_owned).collect(),
        _ => vec![],
    }
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        Some(Value::Mapping(map)) => map.iter().map(|(k, v)| (text(k), text(v))).collect(),
        Some(Value::Sequence(seq)) => seq
            .iter()
            .map(|entry| {
                let entry = text(entry);
                let (k, v) = entry.split_once('=').unwrap_or((&entry, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `(source, target)` of every mount, short (`src:dst[:mode]`) or long syntax.
fn mounts(service: &Value) -> Vec<(String, String)> {
    let Some(Value::Sequence(volumes)) = service.get("volumes") else {
        return vec![];
    };
    volumes
        .iter()
        .map(|v| match v {
            Value::String(short) => {
                let mut parts = short.split(':');
                let source = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().expect("src:dst").to_owned();
                (source, target)
            }
            long => (text(&long["source"]), text(&long["target"])),
        })
        .collect()
}

fn is_file_mount(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/')
}

/// The container ports a service says it listens on (`expose`).
fn exposed(service: &Value) -> BTreeSet<u16> {
    service
        .get("expose")
        .and_then(Value::as_sequence)
        .map(|seq| {
            seq.iter()
                .map(|p| text(p).parse().expect("a port"))
                .collect()
        })
        .unwrap_or_default()
}

fn host_port(target: &str) -> (String, u16) {
    let (host, port) = target.rsplit_once(':').expect("host:port");
    (host.to_owned(), port.parse().expect("a port"))
}

// === The stack's shape ===

#[test]
fn every_service_names_an_image_or_a_build() {
    for (name, service) in Stack::load().services() {
        assert!(
            service.get("image").is_some() || service.get("build").is_some(),
            "{name} has neither image nor build"
        );
    }
}

#[test]
fn every_named_volume_mounted_is_declared_and_every_declared_one_is_used() {
    let stack = Stack::load();
    let declared = stack.declared_volumes();
    let mut used = BTreeSet::new();
    for (name, service) in stack.services() {
        for (source, _) in mounts(service) {
            if !is_file_mount(&source) {
                assert!(
                    declared.contains(&source),
                    "{name} mounts undeclared volume {source}"
                );
                used.insert(source);
            }
        }
    }
    assert_eq!(used, declared, "declared volumes nobody mounts");
}

#[test]
fn every_file_the_stack_mounts_from_the_repository_exists() {
    let stack = Stack::load();
    for (name, service) in stack.services() {
        for (source, _) in mounts(service) {
            if is_file_mount(&source) {
                assert!(
                    !source.starts_with('/'),
                    "{name} mounts a host path: {source}"
                );
                assert!(
                    repo().join(&source).exists(),
                    "{name} mounts missing {source}"
                );
            }
        }
    }
}

#[test]
fn the_image_is_built_from_the_dockerfile_in_ci_and_runs_vestibule() {
    let stack = Stack::load();
    for (name, service) in stack.vestibule_services() {
        let build = &service["build"];
        assert_eq!(
            text(&build["context"]),
            ".",
            "{name}: the context is the repository"
        );
        let dockerfile = text(&build["dockerfile"]);
        assert!(
            repo().join(&dockerfile).is_file(),
            "{name}: {dockerfile} missing"
        );
        let dockerfile = read(&dockerfile);
        assert!(dockerfile.contains("cargo build --release --locked"));
        assert!(dockerfile.contains(r#"ENTRYPOINT ["vestibule"]"#));
    }
}

/// What `apt-get install` puts into the Dockerfile's last (runtime) stage, comments aside.
fn runtime_packages(dockerfile: &str) -> BTreeSet<String> {
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap_or_default();
    let code = runtime
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    code.lines()
        .filter_map(|line| line.split_once("apt-get install").map(|(_, rest)| rest))
        .flat_map(|rest| {
            rest.split("&&")
                .next()
                .unwrap_or_default()
                .split_whitespace()
        })
        .filter(|word| !word.starts_with('-'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn healthchecks_ask_readyz_with_a_tool_the_image_installs() {
    let stack = Stack::load();
    let dockerfile = read(text(&stack.service("gateway-a")["build"]["dockerfile"]));
    let installed = runtime_packages(&dockerfile);
    for (name, gateway) in stack.gateways() {
        let test: Vec<String> = gateway["healthcheck"]["test"]
            .as_sequence()
            .expect("healthcheck.test")
            .iter()
            .map(text)
            .collect();
        assert_eq!(test[0], "CMD", "{name}");
        let readyz = format!(":{}/readyz", listen_port(gateway));
        assert!(
            test.iter().any(|a| a.ends_with(&readyz)),
            "{name}: {test:?}"
        );
        assert!(
            installed.contains(&test[1]),
            "{name}: the image installs {installed:?}, not {}",
            test[1]
        );
    }
}

// === The gateways' configuration ===

/// The environment variables a source file reads: clap's `env = "NAME"` and
/// `std::env::var("NAME")`, the two ways src/ reads one.
fn variables_read_in(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for marker in ["env = \"", "var(\""] {
        for rest in source.split(marker).skip(1) {
            names.extend(rest.split('"').next().map(str::to_owned));
        }
    }
    names
}

/// What `vestibule serve` reads: its configuration, logging, and `RUST_LOG`, which
/// tracing-subscriber reads for us.
pub(crate) fn variables_a_gateway_reads() -> BTreeSet<String> {
    let mut names = BTreeSet::from(["RUST_LOG".to_owned()]);
    names.extend(variables_read_in(&read("src/config.rs")));
    names.extend(variables_read_in(&read("src/worker/config.rs")));
    names.extend(variables_read_in(&read("src/telemetry.rs")));
    assert!(
        names.contains("VESTIBULE_REDIS_URL"),
        "the scan finds config.rs names"
    );
    names
}

/// What any part of the binary reads (the worker's configuration may live anywhere in src/).
pub(crate) fn variables_the_binary_reads() -> BTreeSet<String> {
    fn walk(dir: &Path, names: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("src/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, names);
            } else if path.extension().is_some_and(|e| e == "rs") {
                names.extend(variables_read_in(
                    &std::fs::read_to_string(&path).expect("source"),
                ));
            }
        }
    }
    let mut names = variables_a_gateway_reads();
    walk(&repo().join("src"), &mut names);
    names
}

#[test]
fn gateways_are_given_only_variables_the_binary_reads() {
    let stack = Stack::load();
    let serve_reads = variables_a_gateway_reads();
    for (name, gateway) in stack.gateways() {
        for variable in environment(gateway).keys() {
            assert!(
                serve_reads.contains(variable),
                "{name}: serve does not read {variable}"
            );
        }
    }
    let known = variables_the_binary_reads();
    for (name, service) in stack.vestibule_services() {
        for variable in environment(service).keys() {
            assert!(known.contains(variable), "{name}: nothing reads {variable}");
        }
    }
}

#[test]
fn gateways_share_their_store_keys_and_trust_only_the_stack_network() {
    let stack = Stack::load();
    let subnets: BTreeSet<IpNet> = stack.0["networks"]
        .as_mapping()
        .expect("networks")
        .values()
        .flat_map(|n| {
            n["ipam"]["config"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| text(&c["subnet"]).parse().expect("a CIDR"))
        .collect();
    let mut keys_volumes = BTreeSet::new();
    let mut redis_urls = BTreeSet::new();
    for (name, gateway) in stack.gateways() {
        let env = environment(gateway);
        let proxies: BTreeSet<IpNet> = env["VESTIBULE_TRUSTED_PROXIES"]
            .split(',')
            .map(|p| p.trim().parse().expect("a CIDR, as the binary parses it"))
            .collect();
        assert_eq!(
            proxies, subnets,
            "{name} trusts exactly the stack's network"
        );
        let keys_dir = &env["VESTIBULE_KEYS_DIR"];
        let volume = mounts(gateway)
            .into_iter()
            .find(|(_, target)| target == keys_dir)
            .unwrap_or_else(|| panic!("{name}: nothing mounted on {keys_dir}"))
            .0;
        assert!(
            stack.declared_volumes().contains(&volume),
            "{name}: keys on a named volume"
        );
        keys_volumes.insert(volume);
        redis_urls.insert(env["VESTIBULE_REDIS_URL"].clone());
    }
    assert_eq!(keys_volumes.len(), 1, "one keys volume for every gateway");
    assert_eq!(redis_urls.len(), 1, "one store for every gateway");
    let redis = redis_urls.pop_first().unwrap_or_default();
    let (host, _) = host_port(redis.trim_start_matches("redis://"));
    assert!(
        stack.services().contains_key(&host),
        "{redis} names a service"
    );
    assert!(command(stack.service(&host))
        .join(" ")
        .contains("--appendonly yes"));
}

/// The container port a gateway listens on, from its `VESTIBULE_LISTEN`.
fn listen_port(service: &Value) -> u16 {
    let listen: SocketAddr = environment(service)["VESTIBULE_LISTEN"]
        .parse()
        .expect("VESTIBULE_LISTEN is an address");
    assert!(
        listen.ip().is_unspecified(),
        "reachable from other containers"
    );
    listen.port()
}

// === nginx ===

/// The `listen`, upstream `server` and `proxy_pass` arguments of a configuration that real
/// nginx has accepted (`nginx -t`): one directive per line, as the file is written.
fn directive_args<'a>(config: &'a str, name: &str) -> Vec<&'a str> {
    config
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .filter_map(|rest| rest.strip_suffix(';'))
        .map(|args| args.split_whitespace().next().unwrap_or_default())
        .collect()
}

#[test]
fn nginx_accepts_its_config_and_sends_traffic_to_every_gateway_on_its_port() {
    let stack = Stack::load();
    let nginx = stack.service("nginx");
    let (config_file, config_target) = mounts(nginx)
        .into_iter()
        .find(|(source, _)| source.ends_with(".conf"))
        .expect("nginx mounts its configuration");
    assert!(
        command(nginx).contains(&config_target),
        "nginx runs the mounted file"
    );
    let source = read(&config_file);

    // Real nginx checks the file; the compose names resolve only inside the stack, so they
    // are pointed at this machine for the check (the by-hand stack does the same).
    let dir = crate::helpers::temp_dir("nginx-t");
    let local = source
        .replace("gateway-a:", "127.0.0.1:")
        .replace("gateway-b:", "127.0.0.1:");
    std::fs::write(dir.join("nginx.conf"), local).unwrap();
    let checked = std::process::Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .output()
        .expect("nginx (Debian package `nginx`) on PATH");
    assert!(
        checked.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let servers: BTreeMap<String, u16> = directive_args(&source, "server")
        .into_iter()
        .map(host_port)
        .collect();
    let gateways: BTreeMap<String, u16> = stack
        .gateways()
        .into_iter()
        .map(|(name, g)| {
            let port = listen_port(g);
            assert!(exposed(g).contains(&port), "{name} exposes {port}");
            (name, port)
        })
        .collect();
    assert_eq!(
        servers, gateways,
        "upstream servers are the gateways at their ports"
    );
    let passes = directive_args(&source, "proxy_pass");
    assert!(!passes.is_empty());
    assert!(
        passes.iter().all(|p| *p == "http://vestibule"),
        "{passes:?}"
    );

    let listens: BTreeSet<u16> = directive_args(&source, "listen")
        .iter()
        .map(|l| l.parse().expect("listen PORT"))
        .collect();
    let published: BTreeSet<u16> = nginx["ports"]
        .as_sequence()
        .expect("nginx publishes a port")
        .iter()
        .map(|p| {
            text(p)
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .parse()
                .expect("a port")
        })
        .collect();
    assert_eq!(
        listens, published,
        "nginx listens on the container port compose publishes"
    );
}

// === Prometheus and Grafana ===

#[test]
fn prometheus_scrapes_every_vestibule_service_at_its_port_and_loads_the_alerts() {
    let stack = Stack::load();
    let prometheus = stack.service("prometheus");
    let prometheus_mounts = mounts(prometheus);
    let config_flag = command(prometheus)
        .into_iter()
        .find_map(|a| a.strip_prefix("--config.file=").map(str::to_owned))
        .expect("--config.file");
    let (config_file, _) = prometheus_mounts
        .iter()
        .find(|(_, target)| *target == config_flag)
        .expect("the config file is mounted")
        .clone();
    let config = yaml(&config_file);

    let mut scraped = BTreeSet::new();
    for job in config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
    {
        for group in job["static_configs"].as_sequence().expect("static_configs") {
            for target in group["targets"].as_sequence().expect("targets") {
                let (host, port) = host_port(&text(target));
                let service = stack.service(&host);
                assert!(
                    exposed(service).contains(&port),
                    "{host} does not expose {port}"
                );
                scraped.insert(host);
            }
        }
    }
    let vestibule: BTreeSet<String> = stack.vestibule_services().into_keys().collect();
    assert_eq!(
        scraped, vestibule,
        "every gateway and the worker, nothing else"
    );

    // rule_files are relative to the config file: each must sit beside it in the repository
    // and in the container alike.
    let config_dir_in_repo = Path::new(&config_file).parent().expect("a folder");
    let config_dir_in_container = Path::new(&config_flag).parent().expect("a folder");
    for rules in config["rule_files"].as_sequence().expect("rule_files") {
        let rules = text(rules);
        let in_repo = config_dir_in_repo.join(&rules);
        assert!(
            repo().join(&in_repo).is_file(),
            "{} missing",
            in_repo.display()
        );
        let in_container = config_dir_in_container.join(&rules);
        assert!(
            prometheus_mounts
                .iter()
                .any(|(s, t)| Path::new(s) == in_repo && Path::new(t) == in_container),
            "{rules} is not mounted beside the config"
        );
        let rules = yaml(&in_repo.to_string_lossy());
        assert!(rules["groups"].is_sequence(), "a rule file has groups");
    }
}

#[test]
fn grafana_reads_prometheus_and_provisions_the_dashboards_folder() {
    let stack = Stack::load();
    let grafana_mounts = mounts(stack.service("grafana"));
    let provisioning = grafana_mounts
        .iter()
        .find(|(_, target)| target == "/etc/grafana/provisioning")
        .expect("provisioning is mounted")
        .0
        .clone();

    let datasources = yaml(&format!("{provisioning}/datasources/prometheus.yml"));
    let url = text(&datasources["datasources"][0]["url"]);
    let (host, port) = host_port(url.trim_start_matches("http://"));
    assert!(exposed(stack.service(&host)).contains(&port), "{url}");

    let providers = yaml(&format!("{provisioning}/dashboards/vestibule.yml"));
    let path = text(&providers["providers"][0]["options"]["path"]);
    let source = grafana_mounts
        .iter()
        .find(|(_, target)| *target == path)
        .expect("the dashboards path is mounted")
        .0
        .trim_end_matches('/')
        .to_owned();
    assert_eq!(source, "./dashboards");
}

// === By hand ===

#[test]
fn the_readme_runs_the_same_files_by_hand() {
    let readme = read("README.md");
    let section = readme
        .split("## Running the full stack without Docker")
        .nth(1)
        .expect("README has the section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let stack = Stack::load();
    for file in ["nginx", "prometheus"]
        .iter()
        .flat_map(|s| mounts(stack.service(s)))
        .map(|(source, _)| source)
        .filter(|s| is_file_mount(s))
    {
        let file = file.trim_start_matches("./");
        assert!(section.contains(file), "README does not use {file}");
    }
    // The compose names of every upstream and scrape target are rewritten to local ports.
    for (name, service) in stack.vestibule_services() {
        for port in exposed(service) {
            let rewrite = format!("s/{name}:{port}/");
            assert!(section.contains(&rewrite), "README rewrites {name}:{port}");
        }
    }
    assert!(section.contains("redis-server --appendonly yes"));
    assert_eq!(
        section.matches("vestibule serve").count(),
        2,
        "two gateways"
    );
}
