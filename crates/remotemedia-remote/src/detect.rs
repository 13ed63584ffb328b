//! Detecting what this machine offers.
//!
//! CPU cores (as this process may use them), architecture and memory come from the
//! operating system (`sysinfo`). NVIDIA GPUs come from NVML, loaded at run time
//! (`nvml-wrapper` opens `libnvidia-ml` when a driver is installed); no driver means
//! no GPU, not an error. `REMOTEMEDIA_CAPABILITIES=FILE` replaces detection with the
//! JSON form of [`CapabilitySet`], so a test or a CPU box can stand in for a GPU
//! executor.

use std::path::Path;

use remotemedia_core::capabilities::{CapabilitySet, GpuInfo};
use remotemedia_core::manifest::GpuType;

use crate::error::RemoteError;

/// Environment variable naming a capabilities JSON file that replaces detection.
pub const CAPABILITIES_ENV: &str = "REMOTEMEDIA_CAPABILITIES";

/// Capabilities plus where they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalCapabilities {
    /// The capabilities.
    pub set: CapabilitySet,
    /// `detected` or `file <path>`.
    pub source: String,
    /// How GPU detection went (`NVML: 1 device`, `NVML unavailable: …`).
    pub gpu_detection: String,
}

/// Reads a capabilities JSON file.
pub fn load_capabilities(path: &Path) -> Result<CapabilitySet, RemoteError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RemoteError::Config(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        RemoteError::Config(format!(
            "{} is not a capabilities description: {e}",
            path.display()
        ))
    })
}

/// This machine's capabilities: from `override_file`, else from the file named by
/// `REMOTEMEDIA_CAPABILITIES`, else detected.
pub fn local_capabilities(override_file: Option<&Path>) -> Result<LocalCapabilities, RemoteError> {
    let env = std::env::var_os(CAPABILITIES_ENV).filter(|v| !v.is_empty());
    let file = override_file.map(Path::to_path_buf).or(env.map(Into::into));
    match file {
        Some(path) => Ok(LocalCapabilities {
            set: load_capabilities(&path)?,
            source: format!("file {}", path.display()),
            gpu_detection: "not run (capabilities from a file)".into(),
        }),
        None => Ok(detect()),
    }
}

/// Detects this machine's capabilities.
pub fn detect() -> LocalCapabilities {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let (total, available) = match sysinfo::System::new() {
        Ok(mut sys) => {
            sys.refresh_memory();
            (sys.total_memory(), Some(sys.available_memory()))
        }
        Err(_) => (0, None),
    };
    let (gpus, gpu_detection) = detect_nvidia();
    LocalCapabilities {
        set: CapabilitySet {
            cpu_cores: cores,
            arch: std::env::consts::ARCH.to_string(),
            memory_total_gb: gb(total),
            memory_available_gb: available.map(gb),
            gpus,
        },
        source: "detected".into(),
        gpu_detection,
    }
}

fn gb(bytes: u64) -> f64 {
    (bytes as f64 / 1e9 * 100.0).round() / 100.0
}

/// NVIDIA GPUs through NVML, when its library is installed.
fn detect_nvidia() -> (Vec<GpuInfo>, String) {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(n) => n,
        Err(e) => return (Vec::new(), format!("NVML unavailable ({e}); no NVIDIA GPU")),
    };
    let count = match nvml.device_count() {
        Ok(c) => c,
        Err(e) => return (Vec::new(), format!("NVML device count failed: {e}")),
    };
    let mut gpus = Vec::new();
    for i in 0..count {
        let Ok(device) = nvml.device_by_index(i) else {
            continue;
        };
        let model = device.name().unwrap_or_default();
        let memory = device.memory_info().map(|m| m.total).unwrap_or(0);
        gpus.push(GpuInfo {
            kind: GpuType::Cuda,
            vendor: "NVIDIA".into(),
            model,
            memory_gb: gb(memory),
        });
    }
    let note = format!("NVML: {} device(s)", gpus.len());
    (gpus, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_finds_cores_and_memory() {
        let c = detect();
        assert!(c.set.cpu_cores >= 1);
        assert!(c.set.memory_total_gb > 0.0);
        assert_eq!(c.set.arch, std::env::consts::ARCH);
    }

    #[test]
    fn a_file_replaces_detection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caps.json");
        std::fs::write(
            &path,
            r#"{"cpu_cores": 2, "arch": "x86_64", "memory_total_gb": 8,
                "gpus": [{"kind": "cuda", "vendor": "NVIDIA", "model": "A100", "memory_gb": 40}]}"#,
        )
        .unwrap();
        let c = local_capabilities(Some(&path)).unwrap();
        assert_eq!(c.set.gpus[0].memory_gb, 40.0);
        assert!(c.source.starts_with("file "));
        std::fs::write(&path, r#"{"cores": 2}"#).unwrap();
        let err = local_capabilities(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("is not a capabilities description"), "{err}");
    }
}
