//! Efficiency measurement (spec section 8): time, peak memory and parameter counts.

pub mod meter;

pub use meter::{Efficiency, peak_rss_mib};
