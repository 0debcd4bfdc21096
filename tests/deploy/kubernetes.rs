//! The Kubernetes manifests (`deploy/kubernetes/`): validated against the Kubernetes schemas
//! offline by `kubernetes-validate` (PyPI; `bash .ci/run` installs it), and held to the code:
//! every variable they set is one the binary reads, the gateway's probes ask the port it
//! listens on, and it drains before it stops.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;
use serde_norway::Value;

use crate::compose::{variables_a_gateway_reads, variables_the_binary_reads};
use crate::dashboards::repo;

/// Every manifest file, in file order.
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .expect("deploy/kubernetes/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every resource of every manifest.
fn resources() -> Vec<Value> {
    let mut all = Vec::new();
    for file in manifest_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_norway::Deserializer::from_str(&text) {
            all.push(Value::deserialize(document).unwrap_or_else(|e| panic!("{file:?}: {e}")));
        }
    }
    all
}

fn find<'a>(resources: &'a [Value], kind: &str, name: &str) -> &'a Value {
    resources
        .iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// The variables a container sets: its `env` and every key of the Secrets it takes whole.
fn variables(resources: &[Value], container: &Value) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = container["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|e| e["name"].as_str().expect("env name").to_owned())
        .collect();
    for source in container["envFrom"].as_sequence().into_iter().flatten() {
        let secret = source["secretRef"]["name"].as_str().expect("a Secret");
        let data = &find(resources, "Secret", secret)["stringData"];
        names.extend(
            data.as_mapping()
                .expect("stringData")
                .keys()
                .map(|k| k.as_str().unwrap().to_owned()),
        );
    }
    names
}

#[test]
fn the_manifests_are_valid_kubernetes() {
    let output = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(manifest_files())
        .output()
        .expect("kubernetes-validate (pip install kubernetes-validate) on PATH");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let kinds: BTreeSet<String> = resources()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
    ] {
        assert!(kinds.contains(kind), "no {kind}");
    }
}

#[test]
fn the_manifests_set_only_variables_the_binary_reads() {
    let resources = resources();
    let gateway = container(find(&resources, "Deployment", "vestibule-gateway"));
    assert_eq!(gateway["args"][0], "serve");
    let serve_reads = variables_a_gateway_reads();
    let set = variables(&resources, gateway);
    for required in [
        "VESTIBULE_REDIS_URL",
        "VESTIBULE_ADMIN_TOKEN",
        "VESTIBULE_KEYS_DIR",
    ] {
        assert!(
            set.contains(required),
            "the gateway is not given {required}"
        );
    }
    for variable in &set {
        assert!(
            serve_reads.contains(variable),
            "serve does not read {variable}"
        );
    }
    let worker = container(find(&resources, "Deployment", "vestibule-worker"));
    assert_eq!(worker["args"][0], "worker");
    let known = variables_the_binary_reads();
    for variable in variables(&resources, worker) {
        assert!(known.contains(&variable), "nothing reads {variable}");
    }
}

#[test]
fn the_gateway_is_ready_on_readyz_at_its_port_and_drains_before_it_stops() {
    let resources = resources();
    let deployment = find(&resources, "Deployment", "vestibule-gateway");
    let gateway = container(deployment);
    let listen = gateway["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "VESTIBULE_LISTEN")
        .and_then(|e| e["value"].as_str())
        .expect("VESTIBULE_LISTEN");
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let http = &gateway["ports"][0];
    assert_eq!(http["containerPort"].as_u64(), Some(port));
    let readiness = &gateway["readinessProbe"]["httpGet"];
    assert_eq!(readiness["path"], "/readyz");
    assert_eq!(readiness["port"], http["name"]);
    assert_eq!(gateway["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(
        gateway["lifecycle"]["preStop"].is_mapping(),
        "a preStop hook lets endpoints go before SIGTERM"
    );
    // The keys directory the gateway is told about is the Secret's mount.
    let keys_dir = gateway["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "VESTIBULE_KEYS_DIR")
        .and_then(|e| e["value"].as_str())
        .unwrap();
    let mounts = gateway["volumeMounts"].as_sequence().expect("mounts");
    assert!(mounts.iter().any(|m| m["mountPath"] == keys_dir));

    let service = find(&resources, "Service", "vestibule-gateway");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], http["name"]);
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for selector in [
        &service["spec"]["selector"],
        &find(&resources, "PodDisruptionBudget", "vestibule-gateway")["spec"]["selector"]
            ["matchLabels"],
    ] {
        assert_eq!(selector, labels, "selects the gateway pods");
    }
    let hpa = find(&resources, "HorizontalPodAutoscaler", "vestibule-gateway");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "vestibule-gateway");
}
