//! How to run a model: threads, device, graph optimisation, batching, fitting.

use std::{fmt, path::PathBuf, str::FromStr};

use crate::pipeline::FitMode;

/// Where the network runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider on this GPU; it must register or loading fails (no silent CPU fallback).
    Cuda(i32),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(id) => write!(f, "cuda:{id}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;
    /// `cpu`, `cuda` (device 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(id)) if id >= 0 => Ok(Device::Cuda(id)),
                _ => Err(format!("unknown device {s:?}; expected cpu, cuda or cuda:N")),
            },
        }
    }
}

/// ONNX Runtime's graph optimisation levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OptimizationLevel {
    /// No graph rewrites.
    Disable,
    /// Constant folding, redundant-node elimination.
    Basic,
    /// Plus node fusions.
    Extended,
    /// Everything, including layout optimisations.
    #[default]
    All,
}

/// Options for [`crate::Runtime::load`]. `Default` is CPU, ORT's own thread count, all optimisations,
/// batches of 16, [`FitMode::Auto`], library from `ORT_DYLIB_PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Intra-op threads; `None` lets ONNX Runtime decide (one per core).
    pub threads: Option<usize>,
    /// Execution provider.
    pub device: Device,
    /// Graph optimisation level.
    pub optimization_level: OptimizationLevel,
    /// Images per `session.run` in [`crate::Runtime::reconstruct_batch`] (a model with a fixed batch
    /// dimension overrides it).
    pub batch_size: usize,
    /// How images are fitted to the model's square input.
    pub fit: FitMode,
    /// The ONNX Runtime library; `None` reads `ORT_DYLIB_PATH`. Only the first load in a process counts.
    pub ort_library: Option<PathBuf>,
    /// Width in original pixels of the colour-matched seam blended inside the hole
    /// ([`crate::feather`]); 0 (the default) replaces hole pixels with the plain reconstruction.
    /// Known pixels stay bit-identical either way.
    pub feather: u32,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            threads: None,
            device: Device::Cpu,
            optimization_level: OptimizationLevel::All,
            batch_size: 16,
            fit: FitMode::Auto,
            ort_library: None,
            feather: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("CUDA".parse::<Device>(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
        assert!("cuda:x".parse::<Device>().is_err());
        assert!("tpu".parse::<Device>().is_err());
        assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
    }
}
