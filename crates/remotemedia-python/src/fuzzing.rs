//! Entry point for the fuzz target of the process host's frame decoder (`fuzz/` in
//! the repository). Not part of the API.

use crate::process::{error_frame, forward_log, parse_batch};
use crate::wire::{read_frame, Reader};

/// Reads `data` as a worker's stdout — length-prefixed frames — and decodes each
/// frame as the host does by its kind: `G` a log record, `E` an error, `B` a batch
/// reply, anything else a single value. Must never panic or allocate beyond what the
/// frames themselves announce (at most `wire::MAX_FRAME` each).
pub fn worker_output(mut data: &[u8]) {
    loop {
        match read_frame(&mut data) {
            Ok(Some((b'G', payload))) => forward_log(&payload),
            Ok(Some((b'E', payload))) => {
                let _ = error_frame(&payload);
            }
            Ok(Some((b'B', payload))) => {
                if let Ok(chunk) = parse_batch(&payload) {
                    let _ = chunk.into_items();
                }
            }
            Ok(Some((_, payload))) => {
                let _ = Reader::new(&payload).value();
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// Well-formed worker output of every frame kind: the fuzz target's seeds, and a
/// check that the entry point decodes real frames.
pub fn seeds() -> Vec<Vec<u8>> {
    use remotemedia_core::{AudioBuffer, DType, Data, Tensor};

    use crate::wire::{encode, write_frame};

    let values = vec![
        Data::Null,
        Data::Bool(true),
        Data::Int(-7),
        Data::Float(0.25),
        Data::text("héllo"),
        Data::Bytes(bytes::Bytes::from_static(b"\x00\xff")),
        Data::list(vec![Data::Int(1), Data::text("two")]),
        Data::map_from([("k", Data::Int(1)), ("nested", Data::list(vec![]))]),
        Data::Audio(std::sync::Arc::new(
            AudioBuffer::new(vec![0.0, 0.5, -0.5, 1.0], 16_000, 2).with_pts(20_000),
        )),
        Data::Tensor(std::sync::Arc::new(
            Tensor::new(vec![2, 2], DType::I16, bytes::Bytes::from(vec![1u8; 8])).unwrap(),
        )),
    ];
    let value = |d: &Data| {
        let mut out = Vec::new();
        encode(d, &mut out).expect("encodable");
        out
    };
    let frame = |kind: u8, payload: &[u8]| {
        let mut out = Vec::new();
        write_frame(&mut out, kind, payload).expect("a frame");
        out
    };
    let mut batch = 3u32.to_le_bytes().to_vec();
    batch.push(0);
    batch.extend(2u32.to_le_bytes());
    batch.extend(value(&values[2]));
    batch.extend(value(&values[8]));
    batch.push(1);
    batch.extend(value(&Data::list(vec![
        Data::text("ValueError"),
        Data::text("bad"),
        Data::text("Traceback …"),
    ])));
    batch.push(0);
    batch.extend(0u32.to_le_bytes());
    let error = value(&Data::map_from([
        ("kind", Data::text("TypeError")),
        ("message", Data::text("no")),
        ("traceback", Data::text("")),
        ("compat", Data::Bool(false)),
    ]));
    let log = value(&Data::list(vec![
        Data::Int(20),
        Data::text("user"),
        Data::text("py"),
        Data::text("a message"),
    ]));
    let mut seeds: Vec<Vec<u8>> = values.iter().map(|d| frame(b'V', &value(d))).collect();
    seeds.push(frame(b'B', &batch));
    seeds.push(frame(b'E', &error));
    seeds.push(frame(b'G', &log));
    seeds.push([frame(b'R', &[]), frame(b'G', &log), frame(b'B', &batch)].concat());
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_and_any_prefix_of_them_is_harmless() {
        for seed in seeds() {
            let mut r = seed.as_slice();
            let (kind, payload) = read_frame(&mut r).unwrap().unwrap();
            if kind == b'B' {
                assert_eq!(parse_batch(&payload).unwrap().into_items().len(), 3);
            } else if kind == b'V' {
                Reader::new(&payload).value().unwrap();
            }
            for end in 0..seed.len() {
                worker_output(&seed[..end]);
            }
        }
    }

    /// Found by fuzzing: a batch reply announcing 4 billion outputs made the host
    /// reserve memory for all of them (an abort) before decoding the first.
    #[test]
    fn a_corrupt_batch_count_is_a_protocol_error_not_an_allocation() {
        let mut payload = u32::MAX.to_le_bytes().to_vec();
        payload.push(0);
        payload.extend(u32::MAX.to_le_bytes());
        payload.push(0);
        let e = parse_batch(&payload).err().expect("refused");
        assert!(e.message.contains("worker protocol error"), "{}", e.message);
        let mut tail = 2u32.to_le_bytes().to_vec();
        tail.extend([1, 0]); // an item error, then a truncated one
        assert!(parse_batch(&tail).is_err());
    }

    /// Writes the seeds into `REMOTEMEDIA_FUZZ_SEEDS` when it is set (how
    /// `fuzz/corpus/worker_frames` was made).
    #[test]
    fn write_seeds() {
        let Some(dir) = std::env::var_os("REMOTEMEDIA_FUZZ_SEEDS") else {
            return;
        };
        let dir = std::path::Path::new(&dir).join("worker_frames");
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
}
