//! Training: the loss ([`loss`]), one step ([`trainer`]), the loop over epochs with early
//! stopping ([`fit`]), grouped Adam ([`optim`]), and the device path checked against the CPU path ([`device_check`]). What a run writes is [`crate::run`]'s.

pub mod device_check;
pub mod fit;
pub mod loss;
pub mod optim;
pub mod trainer;

pub use fit::Start;
pub use trainer::Trainer;
