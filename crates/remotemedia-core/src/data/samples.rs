//! [`Samples`]: the interleaved `f32` values of an audio buffer, shared without copying.
//!
//! Samples are usually owned by the runtime (`Arc<[f32]>`), but they can also be memory
//! someone else keeps alive — a numpy array handed over by Python, a received network
//! frame — held as [`Bytes`] so that audio crosses those boundaries without a copy.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

/// Interleaved 32-bit float samples; cloning copies nothing.
#[derive(Clone)]
pub struct Samples(Repr);

#[derive(Clone)]
enum Repr {
    /// Samples the runtime allocated.
    Owned(Arc<[f32]>),
    /// Little-endian `f32`s in memory another owner keeps alive. Invariant (checked by
    /// [`Samples::from_le_bytes`]): the pointer is 4-byte aligned, the length a multiple
    /// of 4, and the target little-endian.
    Borrowed(Bytes),
}

impl Samples {
    /// Samples over little-endian `f32` bytes: shared without a copy when they are
    /// 4-byte aligned (and this machine is little-endian), copied otherwise.
    ///
    /// Trailing bytes that do not make a whole sample are ignored.
    pub fn from_le_bytes(bytes: Bytes) -> Self {
        let whole = bytes.len() - bytes.len() % 4;
        let bytes = bytes.slice(..whole);
        let aligned = (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<f32>());
        if cfg!(target_endian = "little") && aligned {
            Self(Repr::Borrowed(bytes))
        } else {
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
    }

    /// The samples as little-endian bytes: a view of the same memory when that memory
    /// already is that (always, on little-endian machines), a copy otherwise.
    pub fn to_le_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Borrowed(b) => b.clone(),
            Repr::Owned(arc) if cfg!(target_endian = "little") => {
                Bytes::from_owner(OwnedBytes(Arc::clone(arc)))
            }
            Repr::Owned(arc) => arc.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// Writable samples: copied first unless this is their only holder and the runtime
    /// allocated them (a node that owns its input scales it in place).
    pub fn make_mut(&mut self) -> &mut [f32] {
        let unique = matches!(&self.0, Repr::Owned(arc) if Arc::strong_count(arc) == 1 && Arc::weak_count(arc) == 0);
        if !unique {
            self.0 = Repr::Owned(Arc::from(&self[..]));
        }
        match &mut self.0 {
            Repr::Owned(arc) => Arc::get_mut(arc).expect("the samples were just made unique"),
            Repr::Borrowed(_) => unreachable!("borrowed samples were just copied"),
        }
    }

    /// Whether these samples live in memory the runtime did not allocate.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Repr::Borrowed(_))
    }
}

/// Owned samples seen as bytes, for [`Samples::to_le_bytes`] on little-endian machines.
struct OwnedBytes(Arc<[f32]>);

impl AsRef<[u8]> for OwnedBytes {
    fn as_ref(&self) -> &[u8] {
        let s = &self.0[..];
        // SAFETY: any initialised f32 memory is valid as bytes; the length is in bytes.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
    }
}

impl Deref for Samples {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match &self.0 {
            Repr::Owned(arc) => arc,
            Repr::Borrowed(b) => {
                // SAFETY: `from_le_bytes` only builds this variant for 4-byte aligned
                // memory whose length is a multiple of 4 on a little-endian target, and
                // every bit pattern is a valid f32; `Bytes` keeps the memory alive and
                // unchanged while it is held.
                unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), b.len() / 4) }
            }
        }
    }
}

impl AsRef<[f32]> for Samples {
    fn as_ref(&self) -> &[f32] {
        self
    }
}

impl Default for Samples {
    fn default() -> Self {
        Self(Repr::Owned(Arc::from(Vec::new())))
    }
}

impl PartialEq for Samples {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl fmt::Debug for Samples {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self[..], f)
    }
}

impl From<Arc<[f32]>> for Samples {
    fn from(samples: Arc<[f32]>) -> Self {
        Self(Repr::Owned(samples))
    }
}

impl From<Vec<f32>> for Samples {
    fn from(samples: Vec<f32>) -> Self {
        Self(Repr::Owned(samples.into()))
    }
}

impl From<Box<[f32]>> for Samples {
    fn from(samples: Box<[f32]>) -> Self {
        Self(Repr::Owned(samples.into()))
    }
}

impl From<&[f32]> for Samples {
    fn from(samples: &[f32]) -> Self {
        Self(Repr::Owned(samples.into()))
    }
}

impl<const N: usize> From<[f32; N]> for Samples {
    fn from(samples: [f32; N]) -> Self {
        Self(Repr::Owned(Arc::new(samples)))
    }
}

impl FromIterator<f32> for Samples {
    fn from_iter<I: IntoIterator<Item = f32>>(iter: I) -> Self {
        Self(Repr::Owned(iter.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn aligned_bytes_are_shared_and_unaligned_ones_copied() {
        // A Vec<f32>'s memory is aligned for f32; one byte in, it is not.
        let values = [1.0f32, -2.5, 3.25, 0.0];
        let backing: Vec<f32> = values.to_vec();
        let bytes = Bytes::from_owner(OwnedBytes(Arc::from(backing)));
        let shared = Samples::from_le_bytes(bytes.clone());
        assert!(shared.is_borrowed());
        assert_eq!(shared.as_ptr().cast::<u8>(), bytes.as_ptr());
        assert_eq!(&shared[..], &values);

        let mut raw = vec![0u8];
        raw.extend(le(&values));
        let odd = Bytes::from(raw).slice(1..);
        let copied = Samples::from_le_bytes(odd);
        assert_eq!(&copied[..], &values);
        assert_eq!(copied, shared);
    }

    #[test]
    fn a_partial_trailing_sample_is_ignored() {
        let mut raw = le(&[0.5, 0.25]);
        raw.push(7);
        let s = Samples::from_le_bytes(Bytes::from(raw));
        assert_eq!(&s[..], &[0.5, 0.25]);
    }

    #[test]
    fn borrowed_samples_are_copied_before_writing_and_owned_unique_ones_are_not() {
        let bytes = Samples::from(vec![1.0f32, 2.0]).to_le_bytes();
        let mut borrowed = Samples::from_le_bytes(bytes.clone());
        borrowed.make_mut()[0] = 9.0;
        assert!(!borrowed.is_borrowed());
        assert_eq!(&borrowed[..], &[9.0, 2.0]);
        assert_eq!(&Samples::from_le_bytes(bytes)[..], &[1.0, 2.0]);

        let mut owned = Samples::from(vec![1.0f32, 2.0]);
        let before = owned.as_ptr();
        owned.make_mut()[1] = 4.0;
        assert_eq!(owned.as_ptr(), before);
    }

    #[test]
    fn owned_samples_are_viewed_as_bytes_without_a_copy() {
        let s = Samples::from(vec![1.0f32, 2.0]);
        let b = s.to_le_bytes();
        assert_eq!(b.as_ptr(), s.as_ptr().cast::<u8>());
        assert_eq!(&b[..], &le(&[1.0, 2.0])[..]);
    }
}
