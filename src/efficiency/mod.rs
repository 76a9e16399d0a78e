//! Efficiency measurement (spec section 8): time, peak memory and parameter counts.

pub mod meter;
pub mod profile;

pub use meter::{Efficiency, peak_rss_mib};
pub use profile::Profile;
