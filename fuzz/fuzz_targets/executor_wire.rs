//! The executor's request decoder: gRPC framing split at arbitrary points, memory
//! admission, protobuf and the conversion of items (`ExecutePipeline` and
//! `StreamPipeline` bodies).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    remotemedia_remote::fuzzing::executor_request(data);
});
