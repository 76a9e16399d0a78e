//! Full-ranking evaluation (spec section 6): ranks from scores against all items, and the
//! metrics computed from ranks.

pub mod metrics;
pub mod ranking;

pub use metrics::Metrics;
pub use ranking::{Mask, RankPair};
