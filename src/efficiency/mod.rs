//! Efficiency measurement (docs/MODEL.md section 8): time, peak memory (process RSS; a CUDA device's pool), parameter counts and TPME.

pub mod device_memory;
pub mod meter;
pub mod profile;
pub mod tpme;

pub use device_memory::{peak_device_mib, reset_peak_device};
pub use meter::{Efficiency, peak_rss_mib};
pub use profile::Profile;
