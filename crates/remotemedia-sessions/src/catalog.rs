//! The named pipelines a session server offers: every manifest of one directory,
//! named by its file stem, validated (and planned once) at start, so that a bad one
//! fails the start naming its file and every problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use remotemedia_core::manifest::{self, ManifestError, ManifestErrors, Pipeline};
use remotemedia_core::plan::Plan;
use remotemedia_core::Registry;
use serde::Serialize;
use serde_json::{Map, Value};

/// Why a pipelines directory cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The directory cannot be read.
    #[error("--pipelines {dir}: {message}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// One or more manifests are bad; every problem of every file.
    #[error("{}", .0.join("\n"))]
    Manifests(Vec<String>),
}

/// A root or sink of a pipeline, as `GET /v1/pipelines` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct Port {
    /// Node id.
    pub node: String,
    /// Its type.
    pub node_type: String,
    /// What it takes (roots) or emits (sinks).
    pub kind: String,
}

/// One named pipeline.
#[derive(Clone, Debug)]
pub struct NamedPipeline {
    /// Its name (the file stem).
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// The validated pipeline.
    pub pipeline: Arc<Pipeline>,
    /// The manifest as JSON, to apply overrides to.
    raw: Value,
    /// Nodes without an upstream node: where client input goes.
    pub inputs: Vec<Port>,
    /// Sinks: where outputs come from.
    pub outputs: Vec<Port>,
}

impl NamedPipeline {
    /// The pipeline with a client's param overrides applied and validated again (so a
    /// bad value gets the same message as in a manifest). `params` keys are
    /// `node_id.param` and must be in the manifest's `metadata.overridable`.
    pub fn with_overrides(
        &self,
        params: &Map<String, Value>,
        registry: &Registry,
    ) -> Result<Arc<Pipeline>, String> {
        if params.is_empty() {
            return Ok(Arc::clone(&self.pipeline));
        }
        let allowed = &self.pipeline.manifest.metadata.overridable;
        let mut raw = self.raw.clone();
        for (key, value) in params {
            if !allowed.iter().any(|a| a == key) {
                return Err(if allowed.is_empty() {
                    format!(
                        "param `{key}` cannot be set: pipeline `{}` declares no overridable params",
                        self.name
                    )
                } else {
                    format!(
                        "param `{key}` cannot be set: pipeline `{}` allows {}",
                        self.name,
                        allowed
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            }
            let (id, param) = key.split_once('.').unwrap_or((key, ""));
            let node = raw["nodes"]
                .as_array_mut()
                .and_then(|nodes| nodes.iter_mut().find(|n| n["id"] == id))
                .ok_or_else(|| format!("param `{key}`: no node `{id}`"))?;
            let obj = node
                .as_object_mut()
                .ok_or_else(|| format!("param `{key}`: node `{id}` is not an object"))?;
            let params = obj
                .entry("params")
                .or_insert_with(|| Value::Object(Map::new()));
            if params.is_null() {
                *params = Value::Object(Map::new());
            }
            params
                .as_object_mut()
                .ok_or_else(|| {
                    format!("param `{key}`: node `{id}` has params that are not an object")
                })?
                .insert(param.to_string(), value.clone());
        }
        manifest::validate_value(&raw, registry)
            .map(Arc::new)
            .map_err(|errors| {
                errors
                    .0
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
    }

    /// The overridable params (`node_id.param`).
    pub fn overridable(&self) -> &[String] {
        &self.pipeline.manifest.metadata.overridable
    }
}

/// The pipelines of a directory, by name.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pipelines: BTreeMap<String, Arc<NamedPipeline>>,
}

/// File extensions read as manifests.
const EXTENSIONS: [&str; 3] = ["json", "yaml", "yml"];

impl Catalog {
    /// Loads every `*.json`, `*.yaml` and `*.yml` file of `dir`. Every problem of every
    /// file is reported at once, each line starting with the file. Each pipeline is
    /// also planned once, so that a node that cannot be built (a missing model) fails
    /// the start rather than the first session.
    pub fn load(dir: &Path, registry: &Registry) -> Result<Catalog, CatalogError> {
        let entries = std::fs::read_dir(dir).map_err(|e| CatalogError::Dir {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|x| x.to_str())
                        .is_some_and(|x| EXTENSIONS.contains(&x))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(CatalogError::Dir {
                dir: dir.to_path_buf(),
                message: "no pipeline manifests (*.json, *.yaml, *.yml) in it".into(),
            });
        }
        let mut problems = Vec::new();
        let mut pipelines = BTreeMap::new();
        for path in files {
            let file = path.display().to_string();
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                problems.push(format!(
                    "{file}: the pipeline name `{name}` (the file stem) must use only ASCII \
                     letters, digits, `-` and `_`"
                ));
                continue;
            }
            if let Some(other) = pipelines
                .get(&name)
                .map(|p: &Arc<NamedPipeline>| p.path.clone())
            {
                problems.push(format!(
                    "{file}: the name `{name}` is taken by {}",
                    other.display()
                ));
                continue;
            }
            match load_one(&path, &name, registry) {
                Ok(p) => {
                    pipelines.insert(name, Arc::new(p));
                }
                Err(errors) => problems.extend(errors.0.iter().map(|e| format!("{file}: {e}"))),
            }
        }
        if problems.is_empty() {
            Ok(Catalog { pipelines })
        } else {
            Err(CatalogError::Manifests(problems))
        }
    }

    /// A pipeline by name.
    pub fn get(&self, name: &str) -> Option<&Arc<NamedPipeline>> {
        self.pipelines.get(name)
    }

    /// Every pipeline, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<NamedPipeline>> {
        self.pipelines.values()
    }

    /// The names.
    pub fn names(&self) -> Vec<&str> {
        self.pipelines.keys().map(String::as_str).collect()
    }
}

fn load_one(path: &Path, name: &str, registry: &Registry) -> Result<NamedPipeline, ManifestErrors> {
    let pipeline = manifest::load_file(path, registry)?;
    let one = |message: String| ManifestErrors(vec![ManifestError::new("$", message)]);
    if let Some(node) = pipeline.nodes.iter().find(|n| n.host.is_some()) {
        return Err(one(format!(
            "node `{}` has a `host`: a session pipeline runs on this server; remove the host",
            node.id
        )));
    }
    let plan = Plan::build(&pipeline, registry).map_err(|e| one(e.to_string()))?;
    if plan.has_sources() {
        return Err(one(
            "a session pipeline takes its input from the client: it cannot have a source node"
                .to_string(),
        ));
    }
    drop(plan);
    let raw = serde_json::to_value(&pipeline.manifest).map_err(|e| one(e.to_string()))?;
    let port = |i: usize, what: fn(&remotemedia_core::registry::NodeDoc) -> &'static str| {
        let node = &pipeline.nodes[i];
        let kind = registry
            .get(&node.node_type)
            .map(|f| what(f.doc()).to_string())
            .unwrap_or_default();
        Port {
            node: node.id.clone(),
            node_type: node.node_type.clone(),
            kind,
        }
    };
    let inputs = (0..pipeline.nodes.len())
        .filter(|&i| !pipeline.edges.iter().any(|&(_, to)| to == i))
        .map(|i| port(i, |d| d.input))
        .collect();
    let outputs = (0..pipeline.nodes.len())
        .filter(|&i| !pipeline.edges.iter().any(|&(from, _)| from == i))
        .map(|i| port(i, |d| d.output))
        .collect();
    Ok(NamedPipeline {
        name: name.to_string(),
        path: path.to_path_buf(),
        pipeline: Arc::new(pipeline),
        raw,
        inputs,
        outputs,
    })
}
