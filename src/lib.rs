//! # iisan
//!
//! Adapting frozen multimodal foundation models (a BERT-family text encoder and a ViT-family
//! image encoder) to sequential recommendation with IISAN — the Intra- and Inter-modal Side
//! Adapted Network (Fu et al., SIGIR 2024) — and the baselines it is compared with.
//!
//! Data flows one way: raw files ([`data`]) -> item towers and the user encoder ([`model`]) ->
//! trainer and run directory ([`train`]) -> full-ranking evaluation ([`eval`]) and efficiency
//! figures ([`efficiency`]). Everything that is a choice is one validated [`config::Config`].

pub mod backbone;
pub mod cache;
pub mod compare;
pub mod config;
pub mod data;
pub mod efficiency;
pub mod encode;
pub mod error;
pub mod eval;
pub mod model;
pub mod plots;
pub mod report;
pub mod train;

pub use config::Config;
pub use error::{Error, Result};
