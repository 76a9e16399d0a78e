//! Efficiency measurement (docs/MODEL.md section 8): time, peak memory, parameter counts and TPME.

pub mod meter;
pub mod profile;
pub mod tpme;

pub use meter::{Efficiency, peak_rss_mib};
pub use profile::Profile;
