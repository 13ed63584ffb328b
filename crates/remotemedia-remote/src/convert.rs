//! Conversions between the runtime's types and their protobuf forms.

use std::sync::Arc;

use remotemedia_core::capabilities::{CapabilitySet, GpuInfo};
use remotemedia_core::data::check_container_depth;
use remotemedia_core::manifest::GpuType;
use remotemedia_core::{
    AudioBuffer, DType, Data, DataMap, ErrorKind, Phase, PipelineNodeError, Tensor,
};

use crate::pb;
use crate::pb::value::Kind;

/// A protobuf value that is not a valid item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid item: {0}")]
pub struct ConvertError(pub String);

/// Converts an item into its protobuf form. Byte payloads are shared, not copied;
/// so are audio samples on little-endian machines (elsewhere they are copied once into
/// little-endian bytes).
pub fn data_to_pb(d: &Data) -> pb::Value {
    let kind = match d {
        Data::Null => Kind::NullValue(true),
        Data::Bool(b) => Kind::BoolValue(*b),
        Data::Int(i) => Kind::IntValue(*i),
        Data::Float(f) => Kind::FloatValue(*f),
        Data::Text(s) => Kind::TextValue(s.to_string()),
        Data::Bytes(b) => Kind::BytesValue(b.clone()),
        Data::List(items) | Data::Tuple(items) => Kind::ListValue(pb::ValueList {
            items: items.iter().map(data_to_pb).collect(),
            tuple: matches!(d, Data::Tuple(_)),
        }),
        Data::Map(m) => Kind::MapValue(pb::ValueMap {
            entries: m
                .iter()
                .map(|(k, v)| pb::MapEntry {
                    key: k.clone(),
                    value: Some(data_to_pb(v)),
                })
                .collect(),
        }),
        Data::Audio(a) => Kind::AudioValue(pb::Audio {
            sample_rate: a.sample_rate,
            channels: u32::from(a.channels),
            samples: a.samples.to_le_bytes(),
            pts_us: a.pts_us,
        }),
        Data::Tensor(t) => Kind::TensorValue(pb::Tensor {
            shape: t.shape.iter().map(|&s| s as u64).collect(),
            dtype: t.dtype.name().to_string(),
            data: t.data.clone(),
        }),
    };
    pb::Value { kind: Some(kind) }
}

/// Converts items into their protobuf forms.
pub fn items_to_pb(items: &[Data]) -> Vec<pb::Value> {
    items.iter().map(data_to_pb).collect()
}

/// Converts a protobuf value into an item. An empty value is null; lists and maps
/// nested deeper than [`MAX_DEPTH`] are refused.
pub fn data_from_pb(v: pb::Value) -> Result<Data, ConvertError> {
    data_from_pb_at(v, 0)
}

/// `v`, inside `depth` lists and maps.
fn data_from_pb_at(v: pb::Value, depth: usize) -> Result<Data, ConvertError> {
    if matches!(v.kind, Some(Kind::ListValue(_) | Kind::MapValue(_))) {
        check_container_depth(depth).map_err(ConvertError)?;
    }
    Ok(match v.kind {
        None | Some(Kind::NullValue(_)) => Data::Null,
        Some(Kind::BoolValue(b)) => Data::Bool(b),
        Some(Kind::IntValue(i)) => Data::Int(i),
        Some(Kind::FloatValue(f)) => Data::Float(f),
        Some(Kind::TextValue(s)) => Data::from(s),
        Some(Kind::BytesValue(b)) => Data::Bytes(b),
        Some(Kind::ListValue(l)) => {
            let items = l
                .items
                .into_iter()
                .map(|v| data_from_pb_at(v, depth + 1))
                .collect::<Result<_, _>>()?;
            if l.tuple {
                Data::tuple(items)
            } else {
                Data::list(items)
            }
        }
        Some(Kind::MapValue(m)) => {
            let mut map = DataMap::with_capacity(m.entries.len());
            for e in m.entries {
                let value = data_from_pb_at(e.value.unwrap_or_default(), depth + 1)?;
                map.insert(e.key, value);
            }
            Data::Map(Arc::new(map))
        }
        Some(Kind::AudioValue(a)) => {
            if a.samples.len() % 4 != 0 {
                return Err(ConvertError(format!(
                    "audio samples take {} bytes, not a multiple of 4",
                    a.samples.len()
                )));
            }
            let channels = u16::try_from(a.channels)
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(|| ConvertError(format!("invalid channel count {}", a.channels)))?;
            let samples = le_bytes_to_f32s(&a.samples);
            if !samples.len().is_multiple_of(usize::from(channels)) {
                return Err(ConvertError(format!(
                    "{} samples do not divide into {channels} channels",
                    samples.len()
                )));
            }
            Data::from(AudioBuffer::new(samples, a.sample_rate, channels).with_pts(a.pts_us))
        }
        Some(Kind::TensorValue(t)) => {
            let dtype = DType::from_name(&t.dtype)
                .ok_or_else(|| ConvertError(format!("unknown tensor dtype `{}`", t.dtype)))?;
            let shape = t
                .shape
                .iter()
                .map(|&s| usize::try_from(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ConvertError("tensor dimension too large".into()))?;
            Data::from(Tensor::new(shape, dtype, t.data).map_err(|e| ConvertError(e.to_string()))?)
        }
    })
}

/// Converts protobuf values into items.
pub fn items_from_pb(values: Vec<pb::Value>) -> Result<Vec<Data>, ConvertError> {
    values.into_iter().map(data_from_pb).collect()
}

/// Straight into the shared slice the audio buffer keeps (one allocation, one copy,
/// no zero-filling first: that pass alone costs as much as the copy).
/// `bytes.len()` is a multiple of 4.
#[cfg(target_endian = "little")]
fn le_bytes_to_f32s(bytes: &[u8]) -> Arc<[f32]> {
    let n = bytes.len() / 4;
    let mut samples = Arc::<[f32]>::new_uninit_slice(n);
    let dst = Arc::get_mut(&mut samples).expect("a new Arc is unique");
    // SAFETY: `dst` is a fresh allocation of `n` f32s, i.e. `4 * n` bytes, all of
    // which are written from `bytes` (at least that long); every bit pattern is a valid
    // f32, so the slice is then initialized.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.as_mut_ptr().cast::<u8>(), 4 * n);
        samples.assume_init()
    }
}

/// Straight into the shared slice the audio buffer keeps (one allocation, one pass).
#[cfg(not(target_endian = "little"))]
fn le_bytes_to_f32s(bytes: &[u8]) -> Arc<[f32]> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// An approximate encoded size of an item in bytes, for sizing messages.
pub fn approx_size(d: &Data) -> usize {
    match d {
        Data::Null | Data::Bool(_) => 2,
        Data::Int(_) | Data::Float(_) => 10,
        Data::Text(s) => s.len() + 4,
        Data::Bytes(b) => b.len() + 4,
        Data::List(l) | Data::Tuple(l) => 4 + l.iter().map(approx_size).sum::<usize>(),
        Data::Map(m) => {
            4 + m
                .iter()
                .map(|(k, v)| k.len() + 4 + approx_size(v))
                .sum::<usize>()
        }
        Data::Audio(a) => a.samples.len() * 4 + 16,
        Data::Tensor(t) => t.data.len() + 8 * t.shape.len() + 16,
    }
}

fn gpu_kind_name(k: GpuType) -> &'static str {
    match k {
        GpuType::Cuda => "cuda",
        GpuType::Rocm => "rocm",
        GpuType::Metal => "metal",
        GpuType::Vulkan => "vulkan",
        GpuType::Any => "any",
    }
}

fn gpu_kind_from(name: &str) -> Option<GpuType> {
    match name {
        "cuda" => Some(GpuType::Cuda),
        "rocm" => Some(GpuType::Rocm),
        "metal" => Some(GpuType::Metal),
        "vulkan" => Some(GpuType::Vulkan),
        "any" => Some(GpuType::Any),
        _ => None,
    }
}

/// A capability set in protobuf form.
pub fn capabilities_to_pb(c: &CapabilitySet) -> pb::Capabilities {
    pb::Capabilities {
        cpu_cores: c.cpu_cores,
        arch: c.arch.clone(),
        memory_total_gb: c.memory_total_gb,
        memory_available_gb: c.memory_available_gb,
        gpus: c
            .gpus
            .iter()
            .map(|g| pb::Gpu {
                kind: gpu_kind_name(g.kind).to_string(),
                vendor: g.vendor.clone(),
                model: g.model.clone(),
                memory_gb: g.memory_gb,
            })
            .collect(),
    }
}

/// A capability set from its protobuf form; GPUs of unknown kinds are left out.
pub fn capabilities_from_pb(c: pb::Capabilities) -> CapabilitySet {
    CapabilitySet {
        cpu_cores: c.cpu_cores,
        arch: c.arch,
        memory_total_gb: c.memory_total_gb,
        memory_available_gb: c.memory_available_gb,
        gpus: c
            .gpus
            .into_iter()
            .filter_map(|g| {
                Some(GpuInfo {
                    kind: gpu_kind_from(&g.kind)?,
                    vendor: g.vendor,
                    model: g.model,
                    memory_gb: g.memory_gb,
                })
            })
            .collect(),
    }
}

/// A node failure in protobuf form.
pub fn failure_to_pb(e: &PipelineNodeError) -> pb::NodeFailure {
    pb::NodeFailure {
        node_id: e.node_id.clone(),
        node_type: e.node_type.clone(),
        phase: e.phase.to_string(),
        kind: e.kind.as_str().to_string(),
        message: e.message.clone(),
        input_preview: e.input_preview.clone(),
        traceback: e.traceback.clone(),
        attempts: e.attempts,
    }
}

/// Parses an error kind name; unknown names are [`ErrorKind::Other`].
pub fn kind_from_str(s: &str) -> ErrorKind {
    ErrorKind::from_name(s).unwrap_or(ErrorKind::Other)
}

/// A node failure from its protobuf form.
pub fn failure_from_pb(f: pb::NodeFailure) -> PipelineNodeError {
    let phase = match f.phase.as_str() {
        "initialize" => Phase::Initialize,
        "finish" => Phase::Finish,
        "cleanup" => Phase::Cleanup,
        _ => Phase::Process,
    };
    PipelineNodeError {
        node_id: f.node_id,
        node_type: f.node_type,
        phase,
        kind: kind_from_str(&f.kind),
        message: f.message,
        input_preview: f.input_preview,
        traceback: f.traceback,
        attempts: f.attempts.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn values_nested_deeper_than_max_depth_are_refused() {
        use remotemedia_core::MAX_DEPTH;
        let nest = |depth: usize| {
            (0..depth).fold(Data::Int(1), |d, i| {
                if i % 2 == 0 {
                    Data::list(vec![d])
                } else {
                    let mut m = DataMap::new();
                    m.insert("k".into(), d);
                    Data::map(m)
                }
            })
        };
        let ok = nest(MAX_DEPTH);
        assert_eq!(data_from_pb(data_to_pb(&ok)).unwrap(), ok);
        let deep = data_to_pb(&nest(MAX_DEPTH + 1));
        // What protobuf decodes, the executor still refuses.
        let bytes = prost::Message::encode_to_vec(&deep);
        let decoded: pb::Value = prost::Message::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            data_from_pb(decoded).unwrap_err().0,
            "value is nested deeper than 32 levels"
        );
    }

    #[test]
    fn every_variant_round_trips() {
        let tensor = Tensor::new(vec![2, 2], DType::F32, Bytes::from(vec![1u8; 16])).unwrap();
        let items = vec![
            Data::Null,
            Data::Bool(true),
            Data::Int(-7),
            Data::Float(f64::NAN),
            Data::text("héllo"),
            Data::Bytes(Bytes::from_static(b"\x00\x01")),
            Data::list(vec![Data::Int(1), Data::text("x")]),
            Data::map_from([("b", Data::Int(2)), ("a", Data::Int(1))]),
            Data::from(
                AudioBuffer::new(vec![0.5f32, -0.25, 1.0, 0.0], 16_000, 2).with_pts(-20_000),
            ),
            Data::from(tensor),
        ];
        let back = items_from_pb(items_to_pb(&items)).unwrap();
        assert_eq!(back.len(), items.len());
        for (a, b) in items.iter().zip(&back) {
            // NaN != NaN: compare the JSON forms.
            assert_eq!(a.to_json_string(), b.to_json_string());
        }
        // Map order survives.
        let keys: Vec<&String> = back[7].as_map().unwrap().keys().collect();
        assert_eq!(keys, ["b", "a"]);
    }

    #[test]
    fn a_tuple_stays_a_tuple_and_a_list_a_list() {
        let t = Data::tuple(vec![Data::Int(1), Data::list(vec![Data::tuple(vec![])])]);
        let bytes = prost::Message::encode_to_vec(&data_to_pb(&t));
        let back = data_from_pb(prost::Message::decode(bytes.as_slice()).unwrap()).unwrap();
        let Data::Tuple(items) = &back else {
            panic!("not a tuple: {back:?}")
        };
        let Data::List(inner) = &items[1] else {
            panic!("not a list: {:?}", items[1])
        };
        assert!(matches!(inner[0], Data::Tuple(_)));
    }

    #[test]
    fn bad_values_are_refused() {
        let audio = pb::Value {
            kind: Some(Kind::AudioValue(pb::Audio {
                sample_rate: 1,
                channels: 1,
                samples: Bytes::from_static(b"abc"),
                pts_us: 0,
            })),
        };
        assert!(data_from_pb(audio).is_err());
        let tensor = pb::Value {
            kind: Some(Kind::TensorValue(pb::Tensor {
                shape: vec![u64::MAX, 2],
                dtype: "float32".into(),
                data: Bytes::new(),
            })),
        };
        assert!(data_from_pb(tensor).is_err());
        let dtype = pb::Value {
            kind: Some(Kind::TensorValue(pb::Tensor {
                shape: vec![1],
                dtype: "complex".into(),
                data: Bytes::new(),
            })),
        };
        assert_eq!(
            data_from_pb(dtype).unwrap_err().to_string(),
            "invalid item: unknown tensor dtype `complex`"
        );
    }

    #[test]
    fn failures_round_trip() {
        let e = PipelineNodeError {
            node_id: "n".into(),
            node_type: "Calculator".into(),
            phase: Phase::Initialize,
            kind: ErrorKind::Resource,
            message: "no memory".into(),
            input_preview: None,
            traceback: None,
            attempts: 1,
        };
        assert_eq!(failure_from_pb(failure_to_pb(&e)), e);
    }
}
