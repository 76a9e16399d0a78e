//! Where the computation runs and in which precision the frozen towers compute (docs/GPU.md).
//!
//! [`DeviceSpec`] is what a user writes (`"cpu"`, `"cuda"`, `"cuda:1"`; `train.device`,
//! `--device`); [`DeviceSpec::open`] turns it into a candle [`Device`], with a one-line error when
//! the binary was built without the `cuda` feature or the GPU cannot be opened. [`TowerDType`] is
//! the precision of the frozen towers' weights and activations (`model.towers.dtype`,
//! `--dtype`): their outputs are always handed on as f32, and everything that trains stays f32.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A compute device as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU (the hand-written kernels; the default).
    #[default]
    Cpu,
    /// CUDA GPU number `n` (`"cuda"` is `"cuda:0"`).
    Cuda(usize),
}

impl DeviceSpec {
    /// Whether this is the CPU.
    pub fn is_cpu(self) -> bool {
        self == DeviceSpec::Cpu
    }

    /// An error when this binary cannot run on the device at all (CUDA on a build without the
    /// `cuda` feature): what a configuration check calls before any work.
    pub fn check_built(self) -> Result<()> {
        if !self.is_cpu() && !cfg!(feature = "cuda") {
            return Err(Error::Config(format!(
                "device {self}: this iisan was built without CUDA support; rebuild with \
                 `cargo build --release --features cuda` (docs/GPU.md)"
            )));
        }
        Ok(())
    }

    /// Open the device. A CUDA device on a build without the `cuda` feature, or one the driver
    /// cannot open, is a configuration error (exit 2) that says which.
    pub fn open(self) -> Result<Device> {
        self.check_built()?;
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => Device::new_cuda(n)
                .map_err(|e| Error::Config(format!("device {self} cannot be opened: {e}"))),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("device {s:?}: expected \"cpu\", \"cuda\" or \"cuda:N\"");
        match s.trim() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            t => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(bad),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The precision of the frozen towers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TowerDType {
    /// Single precision (the default; the parity tests' precision).
    #[default]
    F32,
    /// bfloat16 weights and activations (f32 range, 8-bit mantissa).
    Bf16,
    /// IEEE half precision (10-bit mantissa, range up to 65504).
    F16,
}

impl TowerDType {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            TowerDType::F32 => DType::F32,
            TowerDType::Bf16 => DType::BF16,
            TowerDType::F16 => DType::F16,
        }
    }

    /// The precision of a candle dtype (f32 for any but bf16 and f16).
    pub fn of(dtype: DType) -> TowerDType {
        match dtype {
            DType::BF16 => TowerDType::Bf16,
            DType::F16 => TowerDType::F16,
            _ => TowerDType::F32,
        }
    }

    /// The name used in configs and cache headers.
    pub fn name(self) -> &'static str {
        match self {
            TowerDType::F32 => "f32",
            TowerDType::Bf16 => "bf16",
            TowerDType::F16 => "f16",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip_and_bad_ones_are_refused() {
        for (s, d) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), d);
        }
        assert_eq!(DeviceSpec::Cuda(0).to_string(), "cuda:0");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU0"] {
            assert!(bad.parse::<DeviceSpec>().unwrap_err().contains("expected"));
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_config_error_naming_the_fix() {
        let e = DeviceSpec::Cuda(0).open().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--features cuda"), "{e}");
    }
}
