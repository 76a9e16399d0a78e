//! What finished runs are turned into for people: the metrics table ([`table`]), the
//! efficiency comparison with TPME ([`compare`]), and (with the `charts` feature) its bar
//! charts ([`bars`]) and the HTML report ([`html`]: the runs as read ([`view`]), settings side
//! by side ([`settings`]), metrics, training curves ([`training`], drawn by [`curves`]),
//! efficiency, breakdowns ([`breakdowns`]), on one page ([`page`]); shared drawing in [`chart`]).

#[cfg(feature = "charts")]
pub mod bars;
#[cfg(feature = "charts")]
pub mod breakdowns;
#[cfg(feature = "charts")]
pub mod chart;
pub mod compare;
#[cfg(feature = "charts")]
pub mod curves;
#[cfg(feature = "charts")]
pub mod html;
#[cfg(feature = "charts")]
pub mod page;
#[cfg(feature = "charts")]
pub mod settings;
pub mod table;
#[cfg(feature = "charts")]
pub mod training;
#[cfg(feature = "charts")]
pub mod view;

pub use table::summary_table;
