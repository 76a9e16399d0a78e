//! Training: the loss, the trainer loop (epochs, parameter groups, early stopping) and the run
//! directory it writes.

pub mod loss;
pub mod optim;
pub mod run_dir;
pub mod trainer;

pub use run_dir::{RunDir, Summary};
pub use trainer::{EvalResult, Trainer};
