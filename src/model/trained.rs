//! A model as one owned value: the trainable parameters, the item tower, the SASRec user
//! encoder and the item index (external ids in row order). It is `Send + Sync` and owns
//! everything it computes with, so it outlives the trainer that fits it (the trainer borrows
//! it) and the dataset it was built from; a server or a language binding can hold it.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::config::{Kernels, ModelConfig};
use super::factory::build_tower;
use super::sasrec::UserEncoder;
use super::tower::ItemTower;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Ctx, Engine, ParamStore, TowerDType};
use crate::scorer::Scorer;

/// Item tower + user encoder + item index, with the parameters they train.
pub struct TrainedModel {
    store: ParamStore,
    tower: Box<dyn ItemTower>,
    user: UserEncoder,
    item_keys: Vec<String>,
    config: ModelConfig,
    engine: Engine,
}

impl TrainedModel {
    /// A freshly initialised model of `mc` for `data` on `device` (initial values from `seed`,
    /// drawn on the CPU whatever the device); `cache` is the hidden-state cache directory IISAN
    /// reads. The engine is chosen here, once for every part: the CPU kernels when `kernels`
    /// asks for them and the device is the CPU, candle ops otherwise. Under a half `precision`
    /// (mixed-precision training, candle ops only) the parameters get compute copies in it and
    /// the towers compute in it.
    pub fn build(
        mc: &ModelConfig,
        cache: Option<&Path>,
        (kernels, precision): (Kernels, TowerDType),
        data: &Dataset,
        (seed, device): (u64, &Device),
    ) -> Result<TrainedModel> {
        let engine = Engine::choose(kernels == Kernels::Cpu, device);
        let mut store = ParamStore::new(seed, device.clone());
        let mut built = mc.clone();
        if precision != TowerDType::F32 {
            if engine == Engine::Kernels {
                return Err(Error::Internal(
                    "mixed precision runs on candle ops, not the CPU kernels".into(),
                ));
            }
            store.set_precision(precision.dtype())?;
            built.towers.dtype = precision;
        }
        let tower = build_tower(&built, cache, engine, data, &mut store)?;
        let user = UserEncoder::new(&mut store, &mc.user, data.max_seq_len, engine)?;
        Ok(TrainedModel {
            store,
            tower,
            user,
            item_keys: data.item_keys.clone(),
            config: mc.clone(),
            engine,
        })
    }

    /// Replace every trainable parameter with the values of a checkpoint written by
    /// [`ParamStore::save`] (e.g. a run's `best.safetensors`).
    pub fn load_weights(&self, checkpoint: &Path) -> Result<()> {
        self.store.load(checkpoint)
    }

    /// The trainable parameters.
    pub fn params(&self) -> &ParamStore {
        &self.store
    }

    /// The item tower.
    pub fn tower(&self) -> &dyn ItemTower {
        self.tower.as_ref()
    }

    /// The user encoder.
    pub fn user(&self) -> &UserEncoder {
        &self.user
    }

    /// Which implementation of each part runs (chosen once, when the model was built).
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The model's options.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// External item ids in row order (`item_keys()[0]` is the padding row).
    pub fn item_keys(&self) -> &[String] {
        &self.item_keys
    }
}

impl Scorer for TrainedModel {
    fn num_items(&self) -> usize {
        self.item_keys.len() - 1
    }

    fn max_len(&self) -> usize {
        self.user.max_len()
    }

    fn item_embeddings(&self, chunk: usize) -> Result<Tensor> {
        self.tower.embed_all(self.num_items(), chunk, &Ctx::eval())
    }

    /// The user encoder reads `items` in the model's precision; the states come back in f32.
    fn user_states(&self, items: &Tensor, histories: &[u32], n: usize) -> Result<Tensor> {
        let items = items.to_dtype(self.store.precision())?;
        let s = self.user.last_states(&items, histories, n)?;
        Ok(s.to_dtype(DType::F32)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trained_model_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<TrainedModel>();
    }
}
