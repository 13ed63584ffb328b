//! One module per subcommand.

pub mod capabilities;
pub mod connect;
pub mod nodes;
pub mod plan;
pub mod run;
pub mod serve;
pub mod validate;

use std::path::Path;

use remotemedia_core::manifest::{self, ManifestErrors, Pipeline};
use remotemedia_core::Registry;
use remotemedia_remote::Endpoint;

/// Loads and validates a manifest file; relative paths in it (a `PythonNode`'s
/// `python_path`, `python`) are taken from the manifest's directory.
pub fn load_manifest(path: &Path, registry: &Registry) -> Result<Pipeline, ManifestErrors> {
    let mut pipeline = manifest::load_file(path, registry)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if remotemedia_python::resolve_relative_paths(&mut pipeline, &base) {
        pipeline = manifest::validate_manifest(&pipeline.manifest, registry)?;
    }
    Ok(pipeline)
}

/// The node types this binary knows: the built-ins, the audio nodes and `PythonNode`.
pub fn registry() -> Registry {
    let mut registry = Registry::builtin();
    remotemedia_audio::register(&mut registry);
    remotemedia_speech::register(&mut registry);
    remotemedia_python::register(&mut registry);
    registry
}

/// The warning for executors a bearer token would reach in clear: plaintext and not on
/// this machine. `None` when there are none.
pub fn plaintext_token_warning(endpoints: &[Endpoint]) -> Option<String> {
    let exposed: Vec<String> = endpoints
        .iter()
        .filter(|e| e.token.is_some() && e.tls.is_none() && !e.is_loopback())
        .map(|e| format!("{} ({})", e.name, e.address))
        .collect();
    (!exposed.is_empty()).then(|| {
        format!(
            "the bearer token crosses the network in clear to {}: write the address as \
             https://HOST:PORT to send it over TLS",
            exposed.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use remotemedia_remote::tls::ClientTls;

    #[test]
    fn a_token_in_clear_off_this_machine_is_warned_about() {
        let token = Some("t".to_string());
        let plain = |name: &str, address: &str, token: &Option<String>| {
            Endpoint::plain(name, address, token.clone())
        };
        let tls = |name: &str, address: &str| Endpoint {
            tls: Some(ClientTls {
                server_name: "gpu".into(),
                ca: None,
            }),
            ..plain(name, address, &token)
        };
        let on_this_machine = [
            plain("a", "127.0.0.1:1", &token),
            plain("b", "localhost:2", &token),
            plain("c", "[::1]:3", &token),
            plain("d", "127.3.4.5:4", &token),
        ];
        assert_eq!(plaintext_token_warning(&on_this_machine), None);
        let safe = [tls("e", "10.0.0.5:5"), plain("f", "10.0.0.6:6", &None)];
        assert_eq!(plaintext_token_warning(&safe), None);
        let exposed = [
            plain("g", "10.0.0.7:7", &token),
            tls("h", "10.0.0.8:8"),
            plain("i", "gpu-box:9", &token),
        ];
        assert_eq!(
            plaintext_token_warning(&exposed).as_deref(),
            Some(
                "the bearer token crosses the network in clear to g (10.0.0.7:7), \
                 i (gpu-box:9): write the address as https://HOST:PORT to send it over TLS"
            )
        );
    }
}
