//! [`NodeType`]: how a node type is declared — its name, aliases, what it does, and a
//! params struct from which validation, `remotemedia nodes info` and the manifest
//! schema all come.
//!
//! ```
//! use remotemedia_core::{Data, Node, NodeError, NodeType, Registry};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! /// Params of `Scale`.
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! pub struct ScaleParams {
//!     /// Factor every number is multiplied by.
//!     pub factor: f64,
//! }
//!
//! /// Multiplies numbers by a factor.
//! pub struct Scale(f64);
//!
//! impl Node for Scale {
//!     fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
//!         let x = item.as_f64().ok_or_else(|| {
//!             NodeError::invalid_input(format!("expected a number, got {}", item.type_name()))
//!         })?;
//!         out.push(Data::Float(x * self.0));
//!         Ok(())
//!     }
//! }
//!
//! impl NodeType for Scale {
//!     const NAME: &'static str = "Scale";
//!     const DESCRIPTION: &'static str = "Multiplies numbers by a factor.";
//!     const INPUT: &'static str = "a number";
//!     const OUTPUT: &'static str = "a float";
//!     type Params = ScaleParams;
//!
//!     fn from_params(params: &ScaleParams) -> Result<Self, NodeError> {
//!         Ok(Scale(params.factor))
//!     }
//! }
//!
//! let mut registry = Registry::builtin();
//! registry.add::<Scale>();
//! assert!(registry.get("Scale").is_some());
//! ```

use std::marker::PhantomData;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ErrorKind, NodeError};
use crate::node::{Execution, Node};
use crate::registry::{NodeDoc, NodeFactory, ParamIssue, Params, Prepared};

/// A node type: a [`Node`] with a name and a params struct. Register it with
/// [`crate::Registry::add`].
pub trait NodeType: Node + Sized + 'static {
    /// Canonical type name, as written in manifests.
    const NAME: &'static str;
    /// Other names manifests may use.
    const ALIASES: &'static [&'static str] = &[];
    /// What the node does, in a sentence or two.
    const DESCRIPTION: &'static str;
    /// What it accepts.
    const INPUT: &'static str;
    /// What it emits.
    const OUTPUT: &'static str;

    /// Whether params can make the process run code of the manifest author's choosing
    /// (see [`NodeFactory::executes_client_code`]). Default: no.
    const EXECUTES_CLIENT_CODE: bool = false;

    /// Whether this is a source: it takes no input and makes its own items through
    /// [`Node::pull`], which the executor calls until it says [`crate::node::Pull::Done`]
    /// (see [`NodeFactory::is_source`]). Default: no.
    const SOURCE: bool = false;

    /// Whether params name files of the host to read or write (see
    /// [`NodeFactory::uses_host_files`]). Default: no.
    const USES_HOST_FILES: bool = false;

    /// Its params: a struct deriving `Deserialize` and `JsonSchema` (use
    /// `#[serde(deny_unknown_fields)]`; [`NoParams`] when there are none). Doc comments
    /// become the parameter descriptions; types, `Option`s, serde defaults, enums and
    /// `#[schemars(range(..))]` become the checks.
    type Params: DeserializeOwned + JsonSchema + Send + Sync + 'static;

    /// Rules beyond each param's own type (one param requires another, a number must
    /// fit a narrower type), checked on the params as written so that these problems
    /// are reported together with the others. Default: none.
    fn check(written: &serde_json::Map<String, Value>) -> Vec<ParamIssue> {
        let _ = written;
        Vec::new()
    }

    /// Builds a node from checked params.
    fn from_params(params: &Self::Params) -> Result<Self, NodeError>;

    /// How the executor schedules the node built from `params`: what its
    /// [`Node::execution`] will say, known without building it (`remotemedia plan`
    /// shows it). Default: [`Execution::Inline`].
    fn execution_of(params: &Self::Params) -> Execution {
        let _ = params;
        Execution::Inline
    }
}

/// The params of a node type that takes none.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The JSON Schema of a params struct, as a value (with its own `$defs`).
pub fn params_schema<P: JsonSchema>() -> Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(P)).expect("a schema always serializes");
    if let Some(obj) = schema.as_object_mut() {
        // The document-level keys belong to a file, not to a `params` object.
        obj.remove("$schema");
        obj.remove("title");
    }
    unwrap_descriptions(&mut schema);
    schema
}

/// Doc comments wrap at the source's line width and link items the rustdoc way: join
/// each paragraph's lines and drop the link brackets (`` [`Zip`] `` reads `` `Zip` ``), so
/// that descriptions read as sentences in `nodes info` and in editors.
fn unwrap_descriptions(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            for (k, child) in obj.iter_mut() {
                match child {
                    Value::String(text) if k == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                            .collect::<Vec<_>>()
                            .join("\n\n")
                            .replace("[`", "`")
                            .replace("`]", "`");
                    }
                    _ => unwrap_descriptions(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// The documentation of a node type `T`, from its constants and params struct.
pub fn doc_of<T: NodeType>() -> Arc<NodeDoc> {
    NodeDoc::with_params::<T::Params>(T::NAME, T::ALIASES, T::DESCRIPTION, T::INPUT, T::OUTPUT)
}

/// Every problem with `params` for node type `T`: each param against its schema, the
/// type's own rules, and finally what serde itself says (for anything the schema
/// cannot express).
pub fn check_params<T: NodeType>(doc: &NodeDoc, params: &Params) -> Vec<ParamIssue> {
    let mut issues = doc.check(params);
    issues.extend(T::check(params));
    if issues.is_empty() {
        if let Err(e) = parse::<T::Params>(params) {
            issues.push(ParamIssue::new("", e.to_string()));
        }
    }
    issues
}

/// Deserializes params (as written in a manifest) into a params struct, without
/// copying them.
pub fn parse<P: DeserializeOwned>(params: &Params) -> Result<P, serde_json::Error> {
    let pairs = params.iter().map(|(k, v)| (k.as_str(), v));
    P::deserialize(serde::de::value::MapDeserializer::new(pairs))
}

/// The [`NodeFactory`] of a [`NodeType`].
pub struct TypedFactory<T: NodeType> {
    doc: std::sync::Arc<NodeDoc>,
    _type: PhantomData<fn() -> T>,
}

impl<T: NodeType> Default for TypedFactory<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: NodeType> TypedFactory<T> {
    /// The factory of `T`, its documentation derived once.
    pub fn new() -> Self {
        Self {
            doc: doc_of::<T>(),
            _type: PhantomData,
        }
    }

    /// Parses params that passed validation into `T`'s params struct.
    pub fn parse(&self, params: &Params) -> Result<T::Params, NodeError> {
        parse(params).map_err(|e| NodeError::new(ErrorKind::Config, e.to_string()))
    }
}

impl<T: NodeType> NodeFactory for TypedFactory<T> {
    fn doc(&self) -> &NodeDoc {
        &self.doc
    }

    fn validate(&self, params: &Params) -> Vec<ParamIssue> {
        check_params::<T>(&self.doc, params)
    }

    fn prepare(&self, params: &Params) -> Result<Option<Prepared>, Vec<ParamIssue>> {
        let issues = self.validate(params);
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(parse::<T::Params>(params)
            .ok()
            .map(|p| Arc::new(p) as Prepared))
    }

    fn create(&self, params: &Params) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(T::from_params(&self.parse(params)?)?))
    }

    fn create_prepared(
        &self,
        prepared: &Prepared,
        params: &Params,
    ) -> Result<Box<dyn Node>, NodeError> {
        match prepared.downcast_ref::<T::Params>() {
            Some(p) => Ok(Box::new(T::from_params(p)?)),
            None => self.create(params),
        }
    }

    fn executes_client_code(&self) -> bool {
        T::EXECUTES_CLIENT_CODE
    }

    fn execution(&self, params: &Params) -> Execution {
        self.parse(params)
            .map_or(Execution::Inline, |p| T::execution_of(&p))
    }

    fn is_source(&self) -> bool {
        T::SOURCE
    }

    fn uses_host_files(&self) -> bool {
        T::USES_HOST_FILES
    }
}
