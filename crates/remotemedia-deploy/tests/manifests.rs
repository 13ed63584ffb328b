//! The Kubernetes manifests under `deploy/kubernetes/`, read as the API server would:
//! every document is deserialized into its `k8s-openapi` type, and any field the type
//! does not know (a typo serde would silently drop) or any value of the wrong type is
//! an error naming the file, the document's kind and the field's path. Then the
//! container arguments are parsed with the CLI's own clap definition, and the wiring
//! between the objects (probes, grace period against `--drain-timeout`, Secret and
//! ConfigMap mounts, Service and PDB selectors, HPA targets, the kustomization's
//! resource list) is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Probe, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The CLI's argument definition, compiled here as it is in the binary.
#[allow(dead_code)]
#[path = "../../remotemedia-cli/src/cli.rs"]
mod cli;

/// Seconds the grace period must exceed `--drain-timeout` by: after the drain deadline
/// the server cancels what is left and exits "within a few seconds".
const DRAIN_MARGIN_SECS: i64 = 10;

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// One typed object of a manifest file.
enum Object {
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    Pdb(Box<PodDisruptionBudget>),
    Hpa(Box<HorizontalPodAutoscaler>),
    ConfigMap(Box<ConfigMap>),
}

/// Where a document came from, for messages.
struct Doc {
    file: String,
    index: usize,
    kind: String,
    name: String,
}

impl std::fmt::Display for Doc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (document {}, {} {})",
            self.file, self.index, self.kind, self.name
        )
    }
}

/// `spec.template.spec.containers[0].nmae`: the path as written in the YAML (without
/// serde_ignored's markers for `Option`s and newtypes).
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Deserializes `value` as `T`, failing on any field `T` does not have.
fn strict<T: DeserializeOwned>(value: serde_yaml_ng::Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    let ignoring = serde_ignored::Deserializer::new(value, &mut note);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(ignoring);
    match parsed {
        Err(e) => Err(format!("at `{}`: {}", e.path(), e.inner())),
        Ok(_) if !unknown.is_empty() => Err(format!(
            "unknown field(s) for this kind: {}",
            unknown
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Ok(t) => Ok(t),
    }
}

/// Every `*.yaml` file of the directory but the kustomization, sorted.
fn resource_files() -> Vec<PathBuf> {
    let dir = manifests_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
}

/// Loads every document of every manifest file; all problems are returned together.
fn load_all() -> Result<Vec<(Doc, Object)>, Vec<String>> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for path in resource_files() {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        for (index, de) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let index = index + 1;
            let value = match serde_yaml_ng::Value::deserialize(de) {
                Ok(serde_yaml_ng::Value::Null) => continue,
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{file} (document {index}): not YAML: {e}"));
                    continue;
                }
            };
            let field = |key: &str| {
                value
                    .get(key)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let doc = Doc {
                file: file.clone(),
                index,
                kind: field("kind"),
                name: value
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(|n| n.as_str())
                    .unwrap_or("<no name>")
                    .to_string(),
            };
            let parsed = match (field("apiVersion").as_str(), doc.kind.as_str()) {
                ("apps/v1", "Deployment") => strict(value).map(Object::Deployment),
                ("v1", "Service") => strict(value).map(Object::Service),
                ("v1", "ConfigMap") => strict(value).map(Object::ConfigMap),
                ("policy/v1", "PodDisruptionBudget") => strict(value).map(Object::Pdb),
                ("autoscaling/v2", "HorizontalPodAutoscaler") => strict(value).map(Object::Hpa),
                (api, kind) => Err(format!(
                    "apiVersion `{api}` kind `{kind}` is not one this check knows; add it here"
                )),
            };
            match parsed {
                Ok(object) => objects.push((doc, object)),
                Err(e) => problems.push(format!("{doc}: {e}")),
            }
        }
    }
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(problems)
    }
}

fn load_or_panic() -> Vec<(Doc, Object)> {
    load_all().unwrap_or_else(|problems| {
        panic!(
            "{} problem(s) in deploy/kubernetes:\n{}",
            problems.len(),
            problems.join("\n")
        )
    })
}

#[test]
fn every_manifest_deserializes_into_its_kubernetes_type_without_unknown_fields() {
    let objects = load_or_panic();
    let kinds: BTreeSet<&str> = objects.iter().map(|(d, _)| d.kind.as_str()).collect();
    for kind in [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ConfigMap",
    ] {
        assert!(kinds.contains(kind), "no {kind} in deploy/kubernetes");
    }
}

#[test]
fn the_strict_reading_names_an_unknown_field_and_a_wrong_type() {
    let typo: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  clusterIp: None\n",
    )
    .unwrap();
    let err = strict::<Service>(typo).expect_err("a misspelt field is refused");
    assert!(err.contains("`spec.clusterIp`"), "{err}");
    let wrong: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: {name: grpc}\n",
    )
    .unwrap();
    let err = strict::<Service>(wrong).expect_err("a map for a list is refused");
    assert!(err.contains("spec.ports"), "{err}");
}

#[test]
fn the_kustomization_lists_every_manifest_file() {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Kustomization {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        resources: Vec<String>,
        #[serde(default)]
        images: Vec<serde_yaml_ng::Value>,
    }
    let path = manifests_dir().join("kustomization.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let k: Kustomization =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("kustomization.yaml: {e}"));
    assert_eq!(k.kind, "Kustomization", "kustomization.yaml: kind");
    let listed: BTreeSet<String> = k.resources.iter().cloned().collect();
    assert_eq!(
        listed.len(),
        k.resources.len(),
        "kustomization.yaml lists a file twice"
    );
    let present: BTreeSet<String> = resource_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml `resources` must list exactly the manifest files of deploy/kubernetes"
    );
}

fn probe_path(probe: Option<&Probe>) -> Option<(&str, String)> {
    let get = probe?.http_get.as_ref()?;
    let port = match &get.port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    };
    Some((get.path.as_deref().unwrap_or(""), port))
}

/// The port `--listen` names, and whether `port` (a probe's, by name or number) is it.
fn checks_listen_port(container: &Container, listen_port: u16, port: &str, what: &str) {
    let named = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(port))
        .map(|p| p.container_port);
    let number = named.or_else(|| port.parse().ok());
    assert_eq!(
        number,
        Some(i32::from(listen_port)),
        "container {}: the {what} probe's port `{port}` is not the --listen port {listen_port}",
        container.name
    );
}

fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    assert!(
        selector.match_expressions.is_none(),
        "matchExpressions are not checked here"
    );
    selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector
            .match_labels
            .as_ref()
            .is_some_and(|m| !m.is_empty())
}

/// The ConfigMap `name` exists and holds pipeline manifests the server will load: keys
/// `NAME.yaml` / `.yml` / `.json` with NAME of ASCII letters, digits, `-` and `_`.
fn check_pipelines_config_map(objects: &[(Doc, Object)], name: &str, what: &str) {
    let map = objects
        .iter()
        .find_map(|(_, o)| match o {
            Object::ConfigMap(m) if m.metadata.name.as_deref() == Some(name) => Some(m),
            _ => None,
        })
        .unwrap_or_else(|| {
            panic!("{what}: mounts ConfigMap {name}, which is not in deploy/kubernetes")
        });
    let keys: Vec<&String> = map.data.iter().flatten().map(|(k, _)| k).collect();
    assert!(!keys.is_empty(), "ConfigMap {name}: no pipelines in `data`");
    for key in keys {
        let (stem, ext) = key.rsplit_once('.').unwrap_or((key, ""));
        assert!(
            ["yaml", "yml", "json"].contains(&ext)
                && !stem.is_empty()
                && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "ConfigMap {name}: key `{key}` is not a pipeline file name the server loads (NAME.yaml, NAME.yml or NAME.json)"
        );
    }
}

#[test]
fn deployments_run_serve_with_flags_the_cli_accepts_and_probes_and_grace_fit_them() {
    let objects = load_or_panic();
    let mut deployments = 0;
    for (doc, object) in &objects {
        let Object::Deployment(d) = object else {
            continue;
        };
        deployments += 1;
        let spec = d.spec.as_ref().unwrap_or_else(|| panic!("{doc}: no spec"));
        let template = spec
            .template
            .spec
            .as_ref()
            .unwrap_or_else(|| panic!("{doc}: no pod spec"));
        let labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        assert!(
            selects(&spec.selector, &labels),
            "{doc}: the selector does not select the pod template"
        );
        let grace = template.termination_grace_period_seconds.unwrap_or(30);
        let pod_security = template.security_context.as_ref();
        assert_eq!(
            pod_security.and_then(|s| s.run_as_non_root),
            Some(true),
            "{doc}: runAsNonRoot"
        );
        let mounts_of = |kind: &str| -> Vec<String> {
            template
                .volumes
                .iter()
                .flatten()
                .filter(|v| match kind {
                    "secret" => v.secret.is_some(),
                    _ => v.config_map.is_some(),
                })
                .map(|v| v.name.clone())
                .collect()
        };
        for container in &template.containers {
            let what = format!("{doc}: container {}", container.name);
            assert!(
                container.command.is_none(),
                "{what}: `command` would replace the image's remotemedia entrypoint"
            );
            let args = container.args.clone().unwrap_or_default();
            let cli = cli::Cli::try_parse_from(
                std::iter::once("remotemedia".to_string()).chain(args.clone()),
            )
            .unwrap_or_else(|e| {
                panic!(
                    "{what}: `remotemedia {}` does not parse:\n{e}",
                    args.join(" ")
                )
            });
            let cli::Command::Serve(serve) = cli.command else {
                panic!("{what}: runs `{}`, not `serve`", args.join(" "));
            };
            let listen: std::net::SocketAddr = serve
                .listen
                .parse()
                .unwrap_or_else(|e| panic!("{what}: --listen {}: {e}", serve.listen));
            assert!(
                listen.ip().is_unspecified(),
                "{what}: --listen {listen} is unreachable from outside the pod"
            );
            let drain = i64::try_from(serve.drain_timeout).expect("drain timeout fits i64");
            assert!(
                grace >= drain + DRAIN_MARGIN_SECS,
                "{what}: terminationGracePeriodSeconds {grace} must exceed --drain-timeout {drain} by at least {DRAIN_MARGIN_SECS} s"
            );
            let (live, live_port) = probe_path(container.liveness_probe.as_ref())
                .unwrap_or_else(|| panic!("{what}: no HTTP liveness probe"));
            assert_eq!(live, "/healthz", "{what}: liveness probe path");
            checks_listen_port(container, listen.port(), &live_port, "liveness");
            let (ready, ready_port) = probe_path(container.readiness_probe.as_ref())
                .unwrap_or_else(|| panic!("{what}: no HTTP readiness probe"));
            assert_eq!(ready, "/readyz", "{what}: readiness probe path");
            checks_listen_port(container, listen.port(), &ready_port, "readiness");
            if let Some((path, port)) = probe_path(container.startup_probe.as_ref()) {
                assert_eq!(path, "/healthz", "{what}: startup probe path");
                checks_listen_port(container, listen.port(), &port, "startup");
            }
            // Files the flags name come from the right volumes.
            let mounted_from = |file: &Path, volumes: &[String]| {
                container
                    .volume_mounts
                    .iter()
                    .flatten()
                    .any(|m| volumes.contains(&m.name) && file.starts_with(&m.mount_path))
            };
            let token = serve
                .token_file
                .as_ref()
                .unwrap_or_else(|| panic!("{what}: no --token-file: off loopback, nobody gets in"));
            assert!(
                mounted_from(token, &mounts_of("secret")),
                "{what}: --token-file {} is not in a mounted Secret",
                token.display()
            );
            if let Some(dir) = &serve.pipelines {
                assert!(
                    mounted_from(dir, &mounts_of("configMap")),
                    "{what}: --pipelines {} is not a mounted ConfigMap",
                    dir.display()
                );
                for map in template
                    .volumes
                    .iter()
                    .flatten()
                    .filter_map(|v| v.config_map.as_ref())
                {
                    check_pipelines_config_map(&objects, &map.name, &what);
                }
            }
            let security = container.security_context.as_ref();
            assert_eq!(
                security.and_then(|s| s.read_only_root_filesystem),
                Some(true),
                "{what}: readOnlyRootFilesystem"
            );
            assert_eq!(
                security.and_then(|s| s.allow_privilege_escalation),
                Some(false),
                "{what}: allowPrivilegeEscalation"
            );
            let resources = container
                .resources
                .as_ref()
                .unwrap_or_else(|| panic!("{what}: no resources"));
            assert!(
                resources
                    .requests
                    .as_ref()
                    .is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory")),
                "{what}: cpu and memory requests"
            );
            assert!(
                resources
                    .limits
                    .as_ref()
                    .is_some_and(|r| r.contains_key("memory")),
                "{what}: memory limit"
            );
        }
    }
    assert!(
        deployments >= 2,
        "expected the executor and session server Deployments"
    );
}

#[test]
fn services_pdbs_and_autoscalers_point_at_the_deployments() {
    let objects = load_or_panic();
    let deployments: Vec<(&str, BTreeMap<String, String>)> = objects
        .iter()
        .filter_map(|(_, o)| match o {
            Object::Deployment(d) => Some((
                d.metadata.name.as_deref().unwrap_or(""),
                d.spec
                    .as_ref()?
                    .template
                    .metadata
                    .as_ref()?
                    .labels
                    .clone()?,
            )),
            _ => None,
        })
        .collect();
    let selected = |selector: &LabelSelector| -> Vec<&str> {
        deployments
            .iter()
            .filter(|(_, l)| selects(selector, l))
            .map(|(n, _)| *n)
            .collect()
    };
    let mut pdbs = BTreeSet::new();
    let mut headless_grpc = false;
    for (doc, object) in &objects {
        match object {
            Object::Service(s) => {
                let spec = s.spec.as_ref().unwrap_or_else(|| panic!("{doc}: no spec"));
                let selector = LabelSelector {
                    match_labels: spec.selector.clone(),
                    match_expressions: None,
                };
                assert_eq!(
                    selected(&selector).len(),
                    1,
                    "{doc}: selects {:?}, not one Deployment",
                    selected(&selector)
                );
                if spec.cluster_ip.as_deref() == Some("None") {
                    assert_eq!(
                        spec.publish_not_ready_addresses,
                        Some(false),
                        "{doc}: a draining pod must leave DNS"
                    );
                    headless_grpc |= s.metadata.name.as_deref() == Some("remotemedia-executor")
                        && spec.ports.iter().flatten().any(|p| {
                            p.name.as_deref() == Some("grpc")
                                && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
                        });
                }
            }
            Object::Pdb(p) => {
                let selector = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .unwrap_or_else(|| panic!("{doc}: no selector"));
                let names = selected(selector);
                assert_eq!(
                    names.len(),
                    1,
                    "{doc}: selects {names:?}, not one Deployment"
                );
                pdbs.insert(names[0]);
            }
            Object::Hpa(h) => {
                let target = &h
                    .spec
                    .as_ref()
                    .unwrap_or_else(|| panic!("{doc}: no spec"))
                    .scale_target_ref;
                assert!(
                    target.kind == "Deployment"
                        && deployments.iter().any(|(n, _)| *n == target.name),
                    "{doc}: scales {} {}, which is not a Deployment here",
                    target.kind,
                    target.name
                );
            }
            Object::Deployment(_) | Object::ConfigMap(_) => {}
        }
    }
    assert!(headless_grpc, "no headless Service remotemedia-executor with a TCP port named `grpc` (the SRV record _grpc._tcp)");
    for (name, _) in &deployments {
        assert!(
            pdbs.contains(name),
            "Deployment {name} has no PodDisruptionBudget"
        );
    }
}
