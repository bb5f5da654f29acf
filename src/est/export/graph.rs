//! An ONNX graph under construction: nodes whose outputs get unique names, initializers under
//! the names est's checkpoints use, and the graph's typed inputs and outputs.

use std::collections::HashSet;

use super::onnx::*;
use super::ExportError;

/// An attribute's value.
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Str(&'static str),
    Strings(Vec<String>),
}

/// A dimension of a graph input or output.
#[derive(Clone, Debug)]
pub enum Dim {
    Fixed(i64),
    Named(String),
}

/// A graph being built.
#[derive(Default)]
pub struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    /// Every value name taken, so no two values share one.
    taken: HashSet<String>,
    /// Whether an `ai.onnx.ml` operator is used.
    pub uses_ml: bool,
}

/// The domain of the classical-ML operators (`LabelEncoder`).
pub const ML: &str = "ai.onnx.ml";

impl Graph {
    /// Reserves `names` (the graph's outputs), so no intermediate value takes one.
    pub fn reserve(&mut self, names: &[&str]) {
        self.taken.extend(names.iter().map(|n| n.to_string()));
    }

    /// `base`, or `base_2`, `base_3`, ... whichever is free; taken from then on.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 1;
        while self.taken.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.taken.insert(name.clone());
        name
    }

    /// A graph input of `elem_type` and `dims`; its name must be free.
    pub fn input(&mut self, name: &str, elem_type: i32, dims: &[Dim]) -> Result<String, ExportError> {
        if !self.taken.insert(name.to_string()) {
            return Err(ExportError::NameClash(name.to_string()));
        }
        self.inputs.push(value_info(name, elem_type, dims));
        Ok(name.to_string())
    }

    /// Declares value `name` (reserved before) as a graph output.
    pub fn output(&mut self, name: &str, elem_type: i32, dims: &[Dim]) {
        self.outputs.push(value_info(name, elem_type, dims));
    }

    /// A float initializer named `name`, as the checkpoint names the variable, of float32
    /// little-endian bytes.
    pub fn weight(&mut self, name: &str, dims: &[usize], raw_data: Vec<u8>) -> Result<String, ExportError> {
        if !self.taken.insert(name.to_string()) {
            return Err(ExportError::NameClash(name.to_string()));
        }
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: TYPE_FLOAT,
            name: name.to_string(),
            raw_data,
            ..Default::default()
        });
        Ok(name.to_string())
    }

    /// A constant initializer, named after `base`; one of the same name and value is reused.
    fn constant(&mut self, base: &str, data_type: i32, dims: &[i64], raw_data: Vec<u8>) -> String {
        let same = |t: &&TensorProto| {
            t.data_type == data_type
                && t.dims == dims
                && t.raw_data == raw_data
                && t.name.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
        };
        if let Some(t) = self.initializers.iter().find(same) {
            return t.name.clone();
        }
        let name = self.fresh(base);
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type,
            name: name.clone(),
            raw_data,
            ..Default::default()
        });
        name
    }

    /// A float constant of `dims`.
    pub fn floats(&mut self, base: &str, dims: &[i64], values: &[f32]) -> String {
        self.constant(base, TYPE_FLOAT, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// A double constant of `dims`.
    pub fn doubles(&mut self, base: &str, dims: &[i64], values: &[f64]) -> String {
        self.constant(base, TYPE_DOUBLE, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// An int64 constant of `dims`.
    pub fn longs(&mut self, base: &str, dims: &[i64], values: &[i64]) -> String {
        self.constant(base, TYPE_INT64, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// A node of the standard domain with one output, named after `base`.
    pub fn op(&mut self, op: &str, inputs: &[&str], attributes: Vec<(&str, Attr)>, base: &str) -> String {
        let output = self.fresh(base);
        self.node("", op, inputs, attributes, output)
    }

    /// A node of the standard domain writing graph output `name`, reserved before.
    pub fn op_as(&mut self, op: &str, inputs: &[&str], attributes: Vec<(&str, Attr)>, name: &str) -> String {
        self.node("", op, inputs, attributes, name.to_string())
    }

    /// A node of the `ai.onnx.ml` domain with one output, named after `base`, or exactly
    /// `base` when it is a reserved graph output.
    pub fn ml_op(
        &mut self,
        op: &str,
        inputs: &[&str],
        attributes: Vec<(&str, Attr)>,
        base: &str,
        exact: bool,
    ) -> String {
        self.uses_ml = true;
        let output = if exact { base.to_string() } else { self.fresh(base) };
        self.node(ML, op, inputs, attributes, output)
    }

    fn node(
        &mut self,
        domain: &str,
        op: &str,
        inputs: &[&str],
        attributes: Vec<(&str, Attr)>,
        output: String,
    ) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.to_string(),
            domain: domain.to_string(),
            attribute: attributes.into_iter().map(|(name, value)| attribute(name, value)).collect(),
        });
        output
    }

    /// Bytes the initializers hold.
    pub fn weight_bytes(&self) -> u64 {
        self.initializers.iter().map(|t| t.raw_data.len() as u64).sum()
    }

    /// The graph, named `name`.
    pub fn finish(self, name: &str, doc: String) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: name.to_string(),
            initializer: self.initializers,
            doc_string: doc,
            input: self.inputs,
            output: self.outputs,
        }
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => DimValue::Fixed(*n),
                Dim::Named(s) => DimValue::Param(s.clone()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto { elem_type, shape: Some(TensorShapeProto { dim }) }),
        }),
        doc_string: String::new(),
    }
}

fn attribute(name: &str, value: Attr) -> AttributeProto {
    let mut a = AttributeProto { name: name.to_string(), ..Default::default() };
    match value {
        Attr::Int(i) => (a.r#type, a.i) = (ATTRIBUTE_INT, i),
        Attr::Float(f) => (a.r#type, a.f) = (ATTRIBUTE_FLOAT, f),
        Attr::Ints(v) => (a.r#type, a.ints) = (ATTRIBUTE_INTS, v),
        Attr::Str(s) => (a.r#type, a.s) = (ATTRIBUTE_STRING, s.as_bytes().to_vec()),
        Attr::Strings(v) => {
            (a.r#type, a.strings) = (ATTRIBUTE_STRINGS, v.into_iter().map(String::into_bytes).collect())
        }
    }
    a
}
