//! What finished runs are turned into for people: the metrics table ([`table`]), the
//! efficiency comparison with TPME ([`compare`]) and its bar charts ([`plots`]).

pub mod compare;
#[cfg(feature = "charts")]
pub mod plots;
pub mod table;

pub use table::summary_table;
