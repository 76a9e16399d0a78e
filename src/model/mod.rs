//! Models: the item towers (one per method) and the SASRec user encoder they share.
//!
//! [`tower::ItemTower`] is the one interface of the item side; [`factory::build_tower`] builds
//! the configured method's tower; [`trained::TrainedModel`] owns a tower, a user encoder and
//! the item index as one value that outlives training.

pub mod baselines;
pub mod config;
pub mod factory;
pub mod iisan;
pub mod live;
pub mod method;
pub mod modality;
pub mod sasrec;
pub mod served;
pub mod tower;
pub mod trained;

pub use config::{Kernels, Method, ModelConfig};
pub use factory::build_tower;
pub use sasrec::{UserEncoder, UserEncoderConfig};
pub use served::{Query, Scored, ServedModel};
pub use tower::ItemTower;
pub use trained::TrainedModel;
