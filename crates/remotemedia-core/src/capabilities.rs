//! What a machine offers (cores, memory, GPUs) and whether that satisfies what a node
//! asks for in its manifest `capabilities`.
//!
//! Data types and matching only: detecting the capabilities of the machine a program
//! runs on is left to the crates that start executors, so this crate stays free of
//! system and driver dependencies. A [`CapabilitySet`] has a JSON form (the
//! `REMOTEMEDIA_CAPABILITIES` file, `remotemedia capabilities --json`):
//!
//! ```json
//! {"cpu_cores": 16, "arch": "x86_64", "memory_total_gb": 64, "memory_available_gb": 40,
//!  "gpus": [{"kind": "cuda", "vendor": "NVIDIA", "model": "L4", "memory_gb": 24}]}
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::manifest::{Arch, Capabilities, GpuType};

/// What one machine (the local one or a remote executor) offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitySet {
    /// Logical CPU cores.
    pub cpu_cores: u32,
    /// CPU architecture as Rust names it (`x86_64`, `aarch64`, `arm`, …).
    pub arch: String,
    /// Total memory in GB (10^9 bytes).
    pub memory_total_gb: f64,
    /// Memory available when the set was taken, in GB, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_available_gb: Option<f64>,
    /// GPUs, possibly none.
    #[serde(default)]
    pub gpus: Vec<GpuInfo>,
}

/// One GPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuInfo {
    /// The compute API it serves (`cuda`, `rocm`, `metal`, `vulkan`).
    pub kind: GpuType,
    /// Vendor (`NVIDIA`, `AMD`, …).
    #[serde(default)]
    pub vendor: String,
    /// Model name.
    #[serde(default)]
    pub model: String,
    /// Device memory in GB (10^9 bytes).
    pub memory_gb: f64,
}

/// How well a [`CapabilitySet`] meets a node's requirements.
#[derive(Clone, Debug, PartialEq)]
pub enum Fit {
    /// Every requirement is met.
    Full,
    /// Everything is met except a GPU the node marked `required: false`: the node can
    /// run here on the CPU. `reason` says what GPU is missing.
    CpuOnly {
        /// Why the GPU requirement is not met.
        reason: String,
    },
    /// Some requirement is not met.
    No {
        /// Every unmet requirement, `; `-separated
        /// (`needs cuda ≥ 16 GB, has 8 GB; needs 8 cores, has 4`).
        reason: String,
    },
}

impl Fit {
    /// True for [`Fit::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, Fit::Full)
    }
}

/// A memory size for messages: `16 GB`, `7.5 GB`.
pub fn format_gb(gb: f64) -> String {
    let rounded = (gb * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0} GB")
    } else {
        format!("{rounded:.1} GB")
    }
}

fn gpu_type_name(t: GpuType) -> &'static str {
    match t {
        GpuType::Cuda => "cuda",
        GpuType::Rocm => "rocm",
        GpuType::Metal => "metal",
        GpuType::Vulkan => "vulkan",
        GpuType::Any => "any",
    }
}

impl fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", gpu_type_name(self.kind))?;
        let name = [self.vendor.as_str(), self.model.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            write!(f, " {name}")?;
        }
        write!(f, " {}", format_gb(self.memory_gb))
    }
}

impl CapabilitySet {
    /// Whether this set has a GPU of the given type (any GPU for [`GpuType::Any`]).
    pub fn has_gpu(&self, kind: GpuType) -> bool {
        self.gpus.iter().any(|g| gpu_matches(kind, g.kind))
    }

    /// Total memory of this set's GPUs, in GB.
    pub fn gpu_memory_gb(&self) -> f64 {
        self.gpus.iter().map(|g| g.memory_gb).sum()
    }

    /// Checks `required` against this set. No requirements always fit.
    pub fn evaluate(&self, required: Option<&Capabilities>) -> Fit {
        let Some(req) = required else {
            return Fit::Full;
        };
        let mut unmet = Vec::new();
        if let Some(cpu) = &req.cpu {
            if let Some(cores) = cpu.cores {
                if self.cpu_cores < cores {
                    unmet.push(format!("needs {cores} cores, has {}", self.cpu_cores));
                }
            }
            if let Some(arch) = cpu.arch {
                let wanted = arch_name(arch);
                if arch != Arch::Any && !self.arch.eq_ignore_ascii_case(wanted) {
                    unmet.push(format!("needs {wanted}, has {}", self.arch));
                }
            }
        }
        if let Some(gb) = req.memory_gb {
            if self.memory_total_gb + 1e-9 < gb {
                unmet.push(format!(
                    "needs {} memory, has {}",
                    format_gb(gb),
                    format_gb(self.memory_total_gb)
                ));
            }
        }
        let gpu_problem = req.gpu.as_ref().and_then(|gpu| {
            let kind = gpu.gpu_type;
            let name = gpu_type_name(kind);
            let matching: Vec<&GpuInfo> = self
                .gpus
                .iter()
                .filter(|g| gpu_matches(kind, g.kind))
                .collect();
            let best = matching
                .iter()
                .map(|g| g.memory_gb)
                .fold(f64::NEG_INFINITY, f64::max);
            let problem = if matching.is_empty() {
                let has = if self.gpus.is_empty() {
                    "none".to_string()
                } else {
                    self.gpus
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                match gpu.min_memory_gb {
                    Some(gb) => Some(format!("needs {name} ≥ {}, has {has}", format_gb(gb))),
                    None => Some(format!("needs a {name} GPU, has {has}")),
                }
            } else {
                match gpu.min_memory_gb {
                    Some(gb) if best + 1e-9 < gb => Some(format!(
                        "needs {name} ≥ {}, has {}",
                        format_gb(gb),
                        format_gb(best)
                    )),
                    _ => None,
                }
            };
            problem.map(|p| (p, gpu.required.unwrap_or(true)))
        });
        match (unmet.is_empty(), gpu_problem) {
            (true, None) => Fit::Full,
            (true, Some((reason, false))) => Fit::CpuOnly { reason },
            (_, gpu) => {
                if let Some((p, _)) = gpu {
                    unmet.insert(0, p);
                }
                Fit::No {
                    reason: unmet.join("; "),
                }
            }
        }
    }

    /// `Ok` when every requirement is met, otherwise why not.
    pub fn satisfies(&self, required: Option<&Capabilities>) -> Result<(), String> {
        match self.evaluate(required) {
            Fit::Full => Ok(()),
            Fit::CpuOnly { reason } | Fit::No { reason } => Err(reason),
        }
    }

    /// A one-line summary: `16 cores x86_64, 64 GB, cuda NVIDIA L4 24 GB`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} cores {}, {}",
            self.cpu_cores,
            self.arch,
            format_gb(self.memory_total_gb)
        );
        for g in &self.gpus {
            s.push_str(", ");
            s.push_str(&g.to_string());
        }
        s
    }
}

fn gpu_matches(wanted: GpuType, have: GpuType) -> bool {
    wanted == GpuType::Any || wanted == have
}

fn arch_name(a: Arch) -> &'static str {
    match a {
        Arch::X86_64 => "x86_64",
        Arch::Aarch64 => "aarch64",
        Arch::Arm => "arm",
        Arch::Any => "any",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{CpuRequirement, GpuRequirement};

    fn cpu_box() -> CapabilitySet {
        CapabilitySet {
            cpu_cores: 4,
            arch: "x86_64".into(),
            memory_total_gb: 16.0,
            memory_available_gb: Some(8.0),
            gpus: vec![],
        }
    }

    fn gpu_box(memory_gb: f64) -> CapabilitySet {
        CapabilitySet {
            gpus: vec![GpuInfo {
                kind: GpuType::Cuda,
                vendor: "NVIDIA".into(),
                model: "T4".into(),
                memory_gb,
            }],
            ..cpu_box()
        }
    }

    fn needs_gpu(min: Option<f64>, required: Option<bool>) -> Capabilities {
        Capabilities {
            gpu: Some(GpuRequirement {
                gpu_type: GpuType::Cuda,
                min_memory_gb: min,
                required,
            }),
            ..Capabilities::default()
        }
    }

    #[test]
    fn no_requirements_always_fit() {
        assert_eq!(cpu_box().evaluate(None), Fit::Full);
        assert_eq!(
            cpu_box().evaluate(Some(&Capabilities::default())),
            Fit::Full
        );
    }

    #[test]
    fn gpu_memory_is_compared() {
        let req = needs_gpu(Some(16.0), None);
        assert_eq!(
            gpu_box(8.0).satisfies(Some(&req)),
            Err("needs cuda ≥ 16 GB, has 8 GB".into())
        );
        assert_eq!(gpu_box(24.0).evaluate(Some(&req)), Fit::Full);
        assert_eq!(
            cpu_box().satisfies(Some(&req)),
            Err("needs cuda ≥ 16 GB, has none".into())
        );
        assert_eq!(
            cpu_box().satisfies(Some(&needs_gpu(None, None))),
            Err("needs a cuda GPU, has none".into())
        );
    }

    #[test]
    fn optional_gpu_fits_on_cpu() {
        let req = needs_gpu(None, Some(false));
        assert!(matches!(
            cpu_box().evaluate(Some(&req)),
            Fit::CpuOnly { .. }
        ));
        // Another unmet requirement makes it a plain no.
        let mut more = req.clone();
        more.memory_gb = Some(64.0);
        assert_eq!(
            cpu_box().evaluate(Some(&more)),
            Fit::No {
                reason: "needs a cuda GPU, has none; needs 64 GB memory, has 16 GB".into()
            }
        );
    }

    #[test]
    fn cpu_and_arch_are_checked() {
        let req = Capabilities {
            cpu: Some(CpuRequirement {
                cores: Some(8),
                arch: Some(Arch::Aarch64),
            }),
            ..Capabilities::default()
        };
        assert_eq!(
            cpu_box().satisfies(Some(&req)),
            Err("needs 8 cores, has 4; needs aarch64, has x86_64".into())
        );
        let any = Capabilities {
            cpu: Some(CpuRequirement {
                cores: Some(2),
                arch: Some(Arch::Any),
            }),
            ..Capabilities::default()
        };
        assert_eq!(cpu_box().evaluate(Some(&any)), Fit::Full);
    }

    #[test]
    fn json_form_round_trips() {
        let set = gpu_box(24.0);
        let text = serde_json::to_string(&set).unwrap();
        assert!(text.contains("\"kind\":\"cuda\""));
        let back: CapabilitySet = serde_json::from_str(&text).unwrap();
        assert_eq!(back, set);
        assert_eq!(set.summary(), "4 cores x86_64, 16 GB, cuda NVIDIA T4 24 GB");
        assert_eq!(format_gb(7.5), "7.5 GB");
    }
}
