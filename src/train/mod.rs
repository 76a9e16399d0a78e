//! Training: the loss ([`loss`]), one step ([`trainer`]), the loop over epochs with early
//! stopping ([`fit`]), grouped Adam ([`optim`]) and the run directory it writes ([`run_dir`]).

pub mod fit;
pub mod loss;
pub mod optim;
pub mod run_dir;
pub mod trainer;

pub use run_dir::{RunDir, Summary};
pub use trainer::Trainer;
