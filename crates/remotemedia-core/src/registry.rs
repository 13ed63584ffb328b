//! Node types by name: documentation, load-time parameter validation, construction.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::NodeError;
use crate::node::{Execution, Node};

/// Parameters of a node as written in the manifest (`params`, an object).
pub type Params = Map<String, Value>;

/// JSON type a parameter accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// Any number.
    Number,
    /// `true` / `false`.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// Anything (or one of several types).
    Any,
}

impl ParamType {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Integer => "an integer",
            ParamType::Number => "a number",
            ParamType::Boolean => "a boolean",
            ParamType::Object => "an object",
            ParamType::Array => "an array",
            ParamType::Any => "any value",
        }
    }
}

/// Documentation of one parameter, derived from the params struct's schema.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamDoc {
    /// Key in `params`.
    pub name: String,
    /// Accepted JSON type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// Whether the key must be present.
    pub required: bool,
    /// Allowed values, when the parameter is an enumeration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// Default, as JSON text, when not required and the struct gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// What it does (the field's doc comment).
    pub description: String,
    /// The parameter's JSON Schema.
    #[serde(skip)]
    pub schema: Value,
}

/// Documentation of a node type, shown by `remotemedia nodes info`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeDoc {
    /// Canonical type name.
    pub node_type: &'static str,
    /// Other names accepted in manifests.
    pub aliases: &'static [&'static str],
    /// What the node does.
    pub description: &'static str,
    /// What it accepts.
    pub input: &'static str,
    /// What it emits.
    pub output: &'static str,
    /// Its parameters.
    pub params: Vec<ParamDoc>,
    /// JSON Schema of its `params` object (with `$defs` of its own).
    pub params_schema: Value,
}

impl NodeDoc {
    /// The documentation of a node type whose params are the struct `P` (its schema,
    /// descriptions and checks come from `P`). [`crate::NodeType`] does this for you;
    /// a factory that carries state calls it itself. Built once per process for each
    /// params type and node type name: deriving a schema takes microseconds, and some
    /// callers (the Python SDK) build a registry for every run.
    pub fn with_params<P: schemars::JsonSchema + 'static>(
        node_type: &'static str,
        aliases: &'static [&'static str],
        description: &'static str,
        input: &'static str,
        output: &'static str,
    ) -> Arc<NodeDoc> {
        type Docs = std::sync::Mutex<HashMap<(std::any::TypeId, &'static str), Arc<NodeDoc>>>;
        static DOCS: std::sync::OnceLock<Docs> = std::sync::OnceLock::new();
        let key = (std::any::TypeId::of::<P>(), node_type);
        let docs = DOCS.get_or_init(Docs::default);
        if let Some(doc) = docs.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Arc::clone(doc);
        }
        let schema = crate::node_type::params_schema::<P>();
        let doc = Arc::new(NodeDoc {
            node_type,
            aliases,
            description,
            input,
            output,
            params: crate::params::docs(&schema),
            params_schema: schema,
        });
        docs.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Arc::clone(&doc));
        doc
    }

    /// Every problem with `params` against this type's params schema (unknown keys
    /// with the closest name, wrong types, values outside the choices or range,
    /// missing required keys).
    pub fn check(&self, params: &Params) -> Vec<ParamIssue> {
        crate::params::check(&self.params_schema, self.node_type, params)
    }
}

/// One problem with a node's params, found at load time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamIssue {
    /// Path inside `params` (`operation`, `gt`), empty for the params object itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ParamIssue {
    /// Creates an issue.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Params in a factory's own checked form (see [`NodeFactory::prepare`]).
pub type Prepared = Arc<dyn Any + Send + Sync>;

/// Creates nodes of one type: the registry's view of a node type. Node authors
/// implement [`crate::NodeType`] instead, which provides all of this from a params
/// struct; implement this directly only for node types whose params depend on state
/// (a set of served classes, a remote executor).
pub trait NodeFactory: Send + Sync {
    /// The type's documentation (its name, aliases and parameters).
    fn doc(&self) -> &NodeDoc;

    /// Checks params at load time: every problem at once.
    fn validate(&self, params: &Params) -> Vec<ParamIssue>;

    /// Checks params and, when they are valid, may return them in the factory's own
    /// form, which the pipeline keeps so that building nodes later parses nothing
    /// (see [`NodeFactory::create_prepared`]). The default is [`NodeFactory::validate`].
    fn prepare(&self, params: &Params) -> Result<Option<Prepared>, Vec<ParamIssue>> {
        let issues = self.validate(params);
        if issues.is_empty() {
            Ok(None)
        } else {
            Err(issues)
        }
    }

    /// Builds a node from params that passed [`NodeFactory::validate`].
    fn create(&self, params: &Params) -> Result<Box<dyn Node>, NodeError>;

    /// Builds a node from what [`NodeFactory::prepare`] returned for `params`.
    fn create_prepared(
        &self,
        prepared: &Prepared,
        params: &Params,
    ) -> Result<Box<dyn Node>, NodeError> {
        let _ = prepared;
        self.create(params)
    }

    /// True when params can make this process run code of the manifest author's
    /// choosing (an interpreter given source, any importable module, an executable).
    /// An executor serving clients it does not trust with code refuses to start with
    /// such a node type in its registry.
    fn executes_client_code(&self) -> bool {
        false
    }

    /// True when params name files of the machine the node runs on, to read or to
    /// write (`MediaReader`, `MediaWriter`): an executor serving clients does not offer
    /// such types, so that no client reads or overwrites its files.
    fn uses_host_files(&self) -> bool {
        false
    }

    /// True for a source: a node that takes no input and makes its own stream of
    /// items through [`Node::pull`] (a file reader, a generator). Manifests may not
    /// connect anything to it.
    fn is_source(&self) -> bool {
        false
    }

    /// How the executor schedules a node built from `params`: what the node's
    /// [`Node::execution`] will say, known without building it, so that a plan can show
    /// its stages before any node (or model) is loaded. Default:
    /// [`Execution::Inline`].
    fn execution(&self, params: &Params) -> Execution {
        let _ = params;
        Execution::Inline
    }
}

/// `` `a`, `b`, `c` `` for messages.
pub fn quote_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The JSON type of a value in words (`a string`, `an object`).
pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The candidate closest to `word` by edit distance, if any is reasonably close.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let d = strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase());
            (d, c)
        })
        .filter(|(d, c)| {
            let longest = lower.len().max(c.len()).max(1);
            *d <= 3.max(longest / 3) && *d < longest
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Node types by name (canonical names and aliases).
///
/// Cloning is cheap (the tables are shared until a clone changes): a front door can
/// build its registry once and hand every run a copy.
#[derive(Clone)]
pub struct Registry {
    tables: Arc<Tables>,
    /// Identity of this set of types: new for every registry and every change, kept
    /// by clones, so that a pipeline can reuse the factories it was validated with.
    generation: u64,
}

/// The lookup tables of a [`Registry`].
#[derive(Clone, Default)]
struct Tables {
    by_name: HashMap<String, Arc<dyn NodeFactory>>,
    canonical: BTreeMap<String, Arc<dyn NodeFactory>>,
}

/// Source of [`Registry::generation`] values.
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            tables: Arc::default(),
            generation: next_generation(),
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("types", &self.tables.canonical.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with every built-in node type.
    pub fn builtin() -> Self {
        let mut r = Self::new();
        crate::nodes::register_builtins(&mut r);
        r
    }

    /// Adds the node type `T` (see [`crate::NodeType`]): one line per node type.
    pub fn add<T: crate::NodeType>(&mut self) {
        self.register(Arc::new(crate::node_type::TypedFactory::<T>::new()));
    }

    /// Adds a node type under its name and aliases, replacing any previous holder.
    pub fn register(&mut self, factory: Arc<dyn NodeFactory>) {
        let doc = factory.doc();
        let tables = Arc::make_mut(&mut self.tables);
        tables
            .by_name
            .insert(doc.node_type.to_string(), Arc::clone(&factory));
        for alias in doc.aliases {
            tables
                .by_name
                .insert(alias.to_string(), Arc::clone(&factory));
        }
        tables
            .canonical
            .insert(doc.node_type.to_string(), Arc::clone(&factory));
        self.generation = next_generation();
    }

    /// Keeps only the node types (with their aliases) for which `keep` is true.
    pub fn retain(&mut self, keep: impl Fn(&dyn NodeFactory) -> bool) {
        let tables = Arc::make_mut(&mut self.tables);
        tables.by_name.retain(|_, f| keep(&**f));
        tables.canonical.retain(|_, f| keep(&**f));
        self.generation = next_generation();
    }

    /// Identity of the current set of types (changes with every [`Registry::register`]).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The factory for a type name or alias.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn NodeFactory>> {
        self.tables.by_name.get(name)
    }

    /// The factory for a type name or alias in any letter case (`calculator`), when
    /// exactly one type matches that way: for people typing a name, not for manifests.
    pub fn get_ignoring_case(&self, name: &str) -> Option<&Arc<dyn NodeFactory>> {
        if let Some(f) = self.get(name) {
            return Some(f);
        }
        let mut matches = self
            .tables
            .by_name
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, f)| f);
        let first = matches.next()?;
        let doc = first.doc().node_type;
        matches.all(|f| f.doc().node_type == doc).then_some(first)
    }

    /// Canonical type names, sorted.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.tables.canonical.keys().map(String::as_str)
    }

    /// Canonical names of the types whose params can choose code to run (see
    /// [`NodeFactory::executes_client_code`]), sorted.
    pub fn code_executing_types(&self) -> Vec<&str> {
        self.tables
            .canonical
            .iter()
            .filter(|(_, f)| f.executes_client_code())
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Documentation of every type, sorted by canonical name.
    pub fn docs(&self) -> impl Iterator<Item = &NodeDoc> {
        self.tables.canonical.values().map(|f| f.doc())
    }

    /// The known name (canonical or alias) closest to `name`.
    pub fn closest_type(&self, name: &str) -> Option<&str> {
        closest(name, self.tables.by_name.keys().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        let c = ["PassThrough", "Calculator", "Echo"];
        assert_eq!(closest("Calculater", c), Some("Calculator"));
        assert_eq!(closest("passthrough", c), Some("PassThrough"));
        assert_eq!(closest("Zebra", c), None);
    }

    #[test]
    fn builtins_are_registered_with_aliases() {
        let r = Registry::builtin();
        assert!(r.get("PassThroughNode").is_some());
        assert!(r.get("CalculatorNode").is_some());
        assert_eq!(r.closest_type("Calcluator"), Some("Calculator"));
    }
}
