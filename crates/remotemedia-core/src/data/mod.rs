//! The value that flows along every edge of a pipeline.
//!
//! [`Data`] is cheap to clone: scalars are copied, everything larger sits behind an
//! [`Arc`] or [`Bytes`], so fanning a 10 MB audio buffer out to five nodes copies nothing.

mod json;
pub mod literal;
mod samples;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use indexmap::IndexMap;

pub use json::{check_integer_literals, JsonFormError, RESERVED_TAGS};
pub use samples::Samples;

/// An insertion-ordered map of string keys to values (the order of a Python dict).
pub type DataMap = IndexMap<String, Data>;

/// One item flowing through a pipeline.
#[derive(Clone, Default)]
pub enum Data {
    /// No value (`null` / `None`).
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text.
    Text(Arc<str>),
    /// Raw bytes.
    Bytes(Bytes),
    /// An ordered list of values.
    List(Arc<Vec<Data>>),
    /// A list that came from a Python `tuple`, so that Python gets a tuple back. Only
    /// Python tells the two apart: every node reads it as a list ([`Data::as_list`]),
    /// the JSON form writes it as an array, and equality compares it as a list.
    Tuple(Arc<Vec<Data>>),
    /// A map from string keys to values, in insertion order.
    Map(Arc<DataMap>),
    /// Interleaved f32 PCM audio.
    Audio(Arc<AudioBuffer>),
    /// An n-dimensional array.
    Tensor(Arc<Tensor>),
}

/// Interleaved 32-bit float PCM samples.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioBuffer {
    /// Samples, interleaved by channel (`frames * channels` values).
    pub samples: Samples,
    /// Frames per second.
    pub sample_rate: u32,
    /// Number of interleaved channels (at least 1).
    pub channels: u16,
    /// Presentation time of the first frame: microseconds from the start of the stream.
    /// Sources set it; nodes keep it continuous (a chunk of a buffer starts at the
    /// buffer's time plus the frames before it). 0 when the producer did not say.
    pub pts_us: i64,
}

impl AudioBuffer {
    /// Creates a buffer at time 0; `samples.len()` must be a multiple of `channels`.
    pub fn new(samples: impl Into<Samples>, sample_rate: u32, channels: u16) -> Self {
        Self {
            samples: samples.into(),
            sample_rate,
            channels,
            pts_us: 0,
        }
    }

    /// The same buffer at presentation time `pts_us`.
    pub fn with_pts(mut self, pts_us: i64) -> Self {
        self.pts_us = pts_us;
        self
    }

    /// The samples, writable: shared samples are copied first, samples this buffer
    /// alone holds are not (a node that owns its input scales it in place).
    pub fn samples_mut(&mut self) -> &mut [f32] {
        self.samples.make_mut()
    }

    /// Presentation time just after the last frame (`pts_us` + duration).
    pub fn end_pts_us(&self) -> i64 {
        self.pts_us + frames_to_us(self.frames() as u64, self.sample_rate)
    }

    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        if self.channels == 0 {
            0
        } else {
            self.samples.len() / self.channels as usize
        }
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.frames() as f64 / self.sample_rate as f64
        }
    }
}

/// Microseconds that `frames` frames last at `sample_rate` (rounded down; 0 at rate 0).
///
/// Stream positions are computed from frame counts, never by adding per-chunk
/// durations, so rounding never accumulates: chunk `k` of a stream starts at
/// `frames_to_us(frames before it, rate)`.
pub fn frames_to_us(frames: u64, sample_rate: u32) -> i64 {
    if sample_rate == 0 {
        return 0;
    }
    let us = u128::from(frames) * 1_000_000 / u128::from(sample_rate);
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// Element type of a [`Tensor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// Unsigned 8-bit.
    U8,
    /// Signed 8-bit.
    I8,
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    I16,
    /// Unsigned 32-bit.
    U32,
    /// Signed 32-bit.
    I32,
    /// Unsigned 64-bit.
    U64,
    /// Signed 64-bit.
    I64,
    /// IEEE half precision.
    F16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
    /// One byte per boolean.
    Bool,
}

impl DType {
    /// All dtypes, in declaration order.
    pub const ALL: [DType; 12] = [
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::U32,
        DType::I32,
        DType::U64,
        DType::I64,
        DType::F16,
        DType::F32,
        DType::F64,
        DType::Bool,
    ];

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 | DType::Bool => 1,
            DType::U16 | DType::I16 | DType::F16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }

    /// The name used in JSON and by numpy (`"float32"`, `"int64"`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::U64 => "uint64",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::Bool => "bool",
        }
    }

    /// Parses a dtype name as produced by [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// An n-dimensional array stored as contiguous little-endian bytes in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// `shape.product() * dtype.size()` bytes.
    pub data: Bytes,
}

/// Why a tensor could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("tensor of shape {shape:?} and dtype {dtype} needs {}, got {actual}", match expected {
    Some(n) => format!("{n} bytes"),
    None => "more bytes than this machine can address".to_string(),
})]
pub struct TensorShapeError {
    /// Requested shape.
    pub shape: Vec<usize>,
    /// Requested dtype name.
    pub dtype: &'static str,
    /// Bytes the shape needs (`None`: more than `usize` can count).
    pub expected: Option<usize>,
    /// Bytes supplied.
    pub actual: usize,
}

impl Tensor {
    /// Creates a tensor, checking that the byte length matches the shape (with checked
    /// arithmetic: a hostile shape is an error, never an overflow). Every way a tensor
    /// enters the runtime (JSON, Python, the wire, worker processes) goes through here.
    pub fn new(shape: Vec<usize>, dtype: DType, data: Bytes) -> Result<Self, TensorShapeError> {
        let expected = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size()));
        if expected != Some(data.len()) {
            return Err(TensorShapeError {
                shape,
                dtype: dtype.name(),
                expected,
                actual: data.len(),
            });
        }
        Ok(Self { shape, dtype, data })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Deepest nesting of lists and maps a value may have, everywhere it enters the
/// runtime (JSON, Python, the executor wire, worker processes): a list of scalars is 1
/// deep. Deep enough for any real document, shallow enough that no decoder on the way
/// (protobuf's recursion limit among them) gives up first.
pub const MAX_DEPTH: usize = 32;

/// The message for a value nested deeper than [`MAX_DEPTH`].
pub fn too_deep_message() -> String {
    format!("value is nested deeper than {MAX_DEPTH} levels")
}

/// The check every converter makes on entering a list or map that sits inside `depth`
/// others: `Err` with [`too_deep_message`] when that is deeper than [`MAX_DEPTH`] allows.
pub fn check_container_depth(depth: usize) -> Result<(), String> {
    if depth >= MAX_DEPTH {
        Err(too_deep_message())
    } else {
        Ok(())
    }
}

impl Data {
    /// Nesting depth of lists and maps: 0 for a scalar, 1 for a list of scalars.
    pub fn depth(&self) -> usize {
        match self {
            Data::List(items) | Data::Tuple(items) => {
                1 + items.iter().map(Data::depth).max().unwrap_or(0)
            }
            Data::Map(map) => 1 + map.values().map(Data::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Short name of the variant, used in error messages (`"int"`, `"map"`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Data::Null => "null",
            Data::Bool(_) => "bool",
            Data::Int(_) => "int",
            Data::Float(_) => "float",
            Data::Text(_) => "text",
            Data::Bytes(_) => "bytes",
            Data::List(_) => "list",
            Data::Tuple(_) => "tuple",
            Data::Map(_) => "map",
            Data::Audio(_) => "audio",
            Data::Tensor(_) => "tensor",
        }
    }

    /// Builds a text value.
    pub fn text(s: impl AsRef<str>) -> Data {
        Data::Text(Arc::from(s.as_ref()))
    }

    /// Builds a list value.
    pub fn list(items: Vec<Data>) -> Data {
        Data::List(Arc::new(items))
    }

    /// Builds a tuple value (a list Python sees as a `tuple`).
    pub fn tuple(items: Vec<Data>) -> Data {
        Data::Tuple(Arc::new(items))
    }

    /// Builds a map value.
    pub fn map(entries: DataMap) -> Data {
        Data::Map(Arc::new(entries))
    }

    /// Builds a map from `(key, value)` pairs.
    pub fn map_from<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Data)>) -> Data {
        Data::Map(Arc::new(
            pairs.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        ))
    }

    /// The value as `f64` if it is an int or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Data::Int(i) => Some(*i as f64),
            Data::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as `i64` if it is an int.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Data::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The text if this is a text value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The map if this is a map value.
    pub fn as_map(&self) -> Option<&DataMap> {
        match self {
            Data::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items if this is a list (or a tuple) value.
    pub fn as_list(&self) -> Option<&[Data]> {
        match self {
            Data::List(l) | Data::Tuple(l) => Some(l),
            _ => None,
        }
    }

    /// A one-line JSON rendering cut to about `max_chars` characters, for error messages.
    pub fn preview(&self, max_chars: usize) -> String {
        let full = self.to_json_string();
        if full.chars().count() <= max_chars {
            full
        } else {
            let cut: String = full.chars().take(max_chars).collect();
            format!("{cut}…")
        }
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        use Data::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a == b,
            (Text(a), Text(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            // A tuple is a list everywhere but in Python.
            (List(a) | Tuple(a), List(b) | Tuple(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            (Audio(a), Audio(b)) => a == b,
            (Tensor(a), Tensor(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.preview(200))
    }
}

impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json_string())
    }
}

impl From<bool> for Data {
    fn from(v: bool) -> Self {
        Data::Bool(v)
    }
}
impl From<i64> for Data {
    fn from(v: i64) -> Self {
        Data::Int(v)
    }
}
impl From<i32> for Data {
    fn from(v: i32) -> Self {
        Data::Int(v as i64)
    }
}
impl From<f64> for Data {
    fn from(v: f64) -> Self {
        Data::Float(v)
    }
}
impl From<&str> for Data {
    fn from(v: &str) -> Self {
        Data::text(v)
    }
}
impl From<String> for Data {
    fn from(v: String) -> Self {
        Data::Text(Arc::from(v))
    }
}
impl From<Vec<Data>> for Data {
    fn from(v: Vec<Data>) -> Self {
        Data::list(v)
    }
}
impl From<AudioBuffer> for Data {
    fn from(v: AudioBuffer) -> Self {
        Data::Audio(Arc::new(v))
    }
}
impl From<Tensor> for Data {
    fn from(v: Tensor) -> Self {
        Data::Tensor(Arc::new(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_shares_large_payloads() {
        let audio = Data::from(AudioBuffer::new(vec![0.5f32; 1 << 20], 16_000, 1));
        let copy = audio.clone();
        match (&audio, &copy) {
            (Data::Audio(a), Data::Audio(b)) => assert!(Arc::ptr_eq(a, b)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_tuple_reads_as_a_list_everywhere_but_python() {
        let t = Data::tuple(vec![Data::Int(1), Data::text("a")]);
        let l = Data::list(vec![Data::Int(1), Data::text("a")]);
        assert_eq!(t, l);
        assert_eq!(t.as_list(), l.as_list());
        assert_eq!(t.type_name(), "tuple");
        assert_eq!(t.to_json_string(), r#"[1,"a"]"#);
        assert_eq!(Data::tuple(vec![t.clone()]).depth(), 2);
        assert_ne!(t, Data::list(vec![Data::Int(1)]));
    }

    #[test]
    fn samples_are_written_in_place_unless_shared() {
        let mut a = AudioBuffer::new(vec![1.0f32, 2.0], 8000, 1);
        let before = a.samples.as_ptr();
        a.samples_mut()[0] = 5.0;
        assert_eq!(
            (a.samples.as_ptr(), &a.samples[..]),
            (before, &[5.0, 2.0][..])
        );
        let shared = a.clone();
        a.samples_mut()[1] = 7.0;
        assert_eq!(&shared.samples[..], &[5.0, 2.0]);
        assert_eq!(&a.samples[..], &[5.0, 7.0]);
    }

    #[test]
    fn tensor_checks_byte_length() {
        let err = Tensor::new(vec![2, 3], DType::F32, Bytes::from(vec![0u8; 20])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tensor of shape [2, 3] and dtype float32 needs 24 bytes, got 20"
        );
        assert!(Tensor::new(vec![2, 3], DType::F32, Bytes::from(vec![0u8; 24])).is_ok());
    }

    #[test]
    fn audio_frames_and_duration() {
        let a = AudioBuffer::new(vec![0.0f32; 32_000], 16_000, 2);
        assert_eq!(a.frames(), 16_000);
        assert!((a.duration_secs() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn preview_is_cut() {
        let d = Data::text("x".repeat(100));
        let p = d.preview(10);
        assert!(p.ends_with('…'));
        assert_eq!(p.chars().count(), 11);
    }

    #[test]
    fn dtype_names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
    }
}
