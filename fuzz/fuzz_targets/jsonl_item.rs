//! The CLI's JSON Lines input reader (its own source file, compiled in here): any
//! bytes give items and at most one bad line, never a panic; every item read is
//! written back as an output line that reads again as an item.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/remotemedia-cli/src/jsonl.rs"]
mod jsonl;

use std::io::BufReader;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    // Small batches and line limits reach the flush and limit paths.
    let batch = usize::from(control & 7) + 1;
    let max_line = 64 << (control >> 4);
    let eager = control & 8 != 0;
    let mut items = Vec::new();
    let _ = jsonl::read_items(
        BufReader::with_capacity(16, input),
        batch,
        eager,
        max_line,
        |batch| {
            items.extend(batch);
            true
        },
    );
    for item in &items {
        let mut line = Vec::new();
        jsonl::write_item(&mut line, None, item).expect("an item serializes");
        let again = jsonl::read_items(
            BufReader::new(line.as_slice()),
            1,
            false,
            usize::MAX,
            |_| true,
        );
        assert!(
            matches!(again, Ok(1)),
            "an output line does not read back as one item: {}",
            String::from_utf8_lossy(&line)
        );
    }
});
