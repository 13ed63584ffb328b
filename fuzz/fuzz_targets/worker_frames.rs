//! The process host's decoder of what a Python worker writes: frames, values, batch
//! replies, errors and log records.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    remotemedia_python::fuzzing::worker_output(data);
});
