//! The manifest loader, JSON and YAML: parsing, then validation against every node
//! type the CLI knows. Any text must give a pipeline or a list of errors, never a
//! panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use remotemedia_core::manifest::{load_str, Format};
use remotemedia_core::Registry;

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut registry = Registry::builtin();
    remotemedia_audio::register(&mut registry);
    remotemedia_speech::register(&mut registry);
    remotemedia_python::register(&mut registry);
    registry
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The loader's own choice (by content), then each format forced.
    for format in [Format::detect(None, text), Format::Json, Format::Yaml] {
        let _ = load_str(text, format, &REGISTRY);
    }
});
