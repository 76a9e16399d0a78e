//! Training: the loss ([`loss`]), one step ([`trainer`]), the loop over epochs with early
//! stopping ([`fit`]), grouped Adam ([`optim`]), the run directory it writes ([`run_dir`]) with its records
//! ([`summary`]), finished runs opened for use ([`finished`]), and the device path checked
//! against the CPU path ([`device_check`]).

pub mod device_check;
pub mod finished;
pub mod fit;
pub mod loss;
pub mod optim;
pub mod run_dir;
pub mod summary;
pub mod trainer;

pub use fit::Start;
pub use run_dir::RunDir;
pub use summary::Summary;
pub use trainer::Trainer;
