//! # iisan
//!
//! Adapting frozen multimodal foundation models (a BERT-family text encoder and a ViT-family
//! image encoder) to sequential recommendation with IISAN — the Intra- and Inter-modal Side
//! Adapted Network (Fu et al., SIGIR 2024) — and the baselines it is compared with.
//!
//! **Start at [`api`]**: train a configuration ([`train`]), open a run ([`Run`]) and rank,
//! embed, add items and evaluate; encode the towers' caches; import datasets. The `iisan`
//! command line and the Python package are clients of that module.
//!
//! Layers, each importing only those listed before it (docs/ARCHITECTURE.md):
//! [`error`] -> [`atomic`], [`nn`], [`efficiency`], [`scorer`], [`progress`], [`provenance`] -> [`data`] -> [`cache`] -> [`backbone`] ->
//! [`encode`], [`model`] -> [`eval`] -> [`config`] -> [`run`] -> [`train`] -> [`report`], [`deploy`] -> [`api`] -> the `iisan` binary.
//! Everything that is a choice is one [`config::Config`], checked into a [`config::Plan`]
//! before any work starts.

#![warn(missing_docs)]

pub mod api;
pub mod atomic;
pub mod backbone;
pub mod cache;
pub mod catalogue;
pub mod config;
pub mod data;
pub mod deploy;
pub mod efficiency;
pub mod encode;
pub mod error;
pub mod eval;
pub mod model;
pub mod nn;
pub mod progress;
pub mod provenance;
pub mod report;
pub mod run;
pub mod scorer;
pub mod train;

pub use api::{Run, resume, train};
pub use config::Config;
pub use error::{Error, Result};
