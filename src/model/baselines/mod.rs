//! The methods IISAN is compared with (docs/MODEL.md section 7): the ID embedding table of
//! SASRec ([`id`]) and the pretrained towers tuned in the step: full fine-tuning, Adapter, LoRA,
//! BitFit ([`tuned`]).

pub mod id;
pub mod towers;
pub mod tuned;

pub use id::IdTower;
pub use towers::TowersConfig;
pub use tuned::{TunedTower, file_params};
