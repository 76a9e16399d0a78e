//! Full-ranking evaluation (docs/MODEL.md section 6): ranks from scores against all items
//! ([`ranking`]), the metrics computed from ranks ([`metrics`]), and the [`Evaluator`] that
//! ranks every user of a split for any [`crate::scorer::Scorer`]; the test users split into
//! buckets by target popularity, history length or coldness ([`breakdown`]).

pub mod breakdown;
pub mod evaluator;
pub mod metrics;
pub mod ranking;

pub use breakdown::{Breakdown, EvalGroup};
pub use evaluator::{EvalResult, Evaluator};
pub use metrics::{Metric, Metrics};
pub use ranking::{Mask, PerMask, RankPair};
