//! Using a trained run: new items embedded without retraining ([`new_items`]), a clone with a
//! catalogue grown to millions of items for measurements at scale ([`synth_items`]), and the
//! HTTP server ([`server`]). The top layer of the library: it opens run directories
//! ([`crate::run::finished`]) and serves through [`crate::model::ServedModel`].

pub mod new_items;
#[cfg(feature = "serve")]
pub mod server;
pub mod synth_items;
