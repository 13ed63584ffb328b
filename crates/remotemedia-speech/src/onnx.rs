//! Reading the weights out of an ONNX model file: the few protobuf messages of the
//! ONNX format that hold tensors, and a walk over a graph and its subgraphs collecting
//! every constant tensor by name.

use std::collections::HashMap;

use prost::Message;

/// `onnx.ModelProto`, only the graph.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

/// `onnx.GraphProto`, only its nodes and initializers.
#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

/// `onnx.NodeProto`, only what finds `Constant` nodes and subgraphs.
#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

/// `onnx.AttributeProto`: a tensor (a `Constant`'s value) or a graph (an `If` branch).
#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "5")]
    t: Option<TensorProto>,
    #[prost(message, optional, boxed, tag = "6")]
    g: Option<Box<GraphProto>>,
}

/// `onnx.TensorProto`, the fields of a dense tensor.
#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

/// ONNX's code for 32-bit floats.
const FLOAT: i32 = 1;

/// A float tensor of the model.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tensor {
    /// Its shape.
    pub dims: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// Every float tensor the model holds as an initializer or a `Constant` node's value,
/// in the main graph or any subgraph, by name.
pub(crate) fn float_tensors(bytes: &[u8]) -> Result<HashMap<String, Tensor>, String> {
    let model = ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))?;
    let graph = model.graph.ok_or("not an ONNX model: it has no graph")?;
    let mut found = HashMap::new();
    collect(&graph, &mut found)?;
    Ok(found)
}

fn collect(graph: &GraphProto, found: &mut HashMap<String, Tensor>) -> Result<(), String> {
    for t in &graph.initializer {
        add(&t.name, t, found)?;
    }
    for node in &graph.node {
        for a in &node.attribute {
            if let (Some(t), "Constant", "value") = (&a.t, node.op_type.as_str(), a.name.as_str()) {
                if let Some(name) = node.output.first() {
                    add(name, t, found)?;
                }
            }
            if let Some(g) = &a.g {
                collect(g, found)?;
            }
        }
    }
    Ok(())
}

fn add(name: &str, t: &TensorProto, found: &mut HashMap<String, Tensor>) -> Result<(), String> {
    if t.data_type != FLOAT {
        return Ok(());
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor {name}: dimension {d}")))
        .collect::<Result<Vec<_>, _>>()?;
    let len: usize = dims.iter().product();
    let data = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    if data.len() != len {
        return Err(format!(
            "tensor {name}: {} values for the shape {dims:?}",
            data.len()
        ));
    }
    found.insert(name.to_string(), Tensor { dims, data });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: FLOAT,
            float_data: Vec::new(),
            name: name.to_string(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    #[test]
    fn constants_in_subgraphs_and_initializers_are_found() {
        let branch = GraphProto {
            node: vec![NodeProto {
                output: vec!["inner".into()],
                op_type: "Constant".into(),
                attribute: vec![AttributeProto {
                    name: "value".into(),
                    t: Some(tensor("", &[2], &[1.0, 2.0])),
                    g: None,
                }],
            }],
            initializer: Vec::new(),
        };
        let model = ModelProto {
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    output: vec!["y".into()],
                    op_type: "If".into(),
                    attribute: vec![AttributeProto {
                        name: "then_branch".into(),
                        t: None,
                        g: Some(Box::new(branch)),
                    }],
                }],
                initializer: vec![tensor("outer", &[1, 3], &[4.0, 5.0, 6.0])],
            }),
        };
        let found = float_tensors(&model.encode_to_vec()).unwrap();
        assert_eq!(found["inner"].data, [1.0, 2.0]);
        assert_eq!(found["outer"].dims, [1, 3]);
        assert_eq!(found["outer"].data, [4.0, 5.0, 6.0]);
    }

    #[test]
    fn garbage_and_bad_shapes_are_errors() {
        assert!(float_tensors(b"\xff\xff\xff garbage")
            .unwrap_err()
            .starts_with("not an ONNX model"));
        let model = ModelProto {
            graph: Some(GraphProto {
                node: Vec::new(),
                initializer: vec![tensor("w", &[2, 2], &[1.0])],
            }),
        };
        assert_eq!(
            float_tensors(&model.encode_to_vec()).unwrap_err(),
            "tensor w: 1 values for the shape [2, 2]"
        );
    }
}
