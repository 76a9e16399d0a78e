//! The item-ID tower (`method = "id"`): one learned embedding per item, the classic
//! non-multimodal SASRec baseline (docs/MODEL.md section 7). It cannot embed items it never saw.

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::model::method::Method;
use crate::model::tower::ItemTower;
use crate::nn::layers::Ctx;
use crate::nn::params::{GROUP_DEFAULT, Init, ParamStore};

/// An embedding table `[N + 1, d]` (row 0 = padding, never read in training).
#[derive(Debug)]
pub struct IdTower {
    table: Tensor,
    dim: usize,
}

impl IdTower {
    /// Create the table `item.id_embedding`, xavier-normal initialised like SASRec's.
    pub fn new(store: &mut ParamStore, num_items: usize, dim: usize) -> Result<Self> {
        let table = store.add(
            "item.id_embedding",
            &[num_items + 1, dim],
            Init::XavierNormal,
            GROUP_DEFAULT,
        )?;
        Ok(IdTower { table, dim })
    }
}

impl ItemTower for IdTower {
    fn method(&self) -> Method {
        Method::Id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, ids: &[u32], _ctx: &Ctx) -> Result<Tensor> {
        let idx = Tensor::from_slice(ids, ids.len(), self.table.device())?;
        Ok(self.table.index_select(&idx, 0)?)
    }

    fn device(&self) -> Device {
        self.table.device().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_rows_and_all_items_with_zero_padding() {
        let mut s = ParamStore::new(1, Device::Cpu);
        let t = IdTower::new(&mut s, 5, 4).unwrap();
        assert_eq!(s.num_trainable(), 6 * 4);
        let e = t
            .embed(&[3, 1], &Ctx::eval())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let table = s.params()[0].var.as_tensor().to_vec2::<f32>().unwrap();
        assert_eq!(e, vec![table[3].clone(), table[1].clone()]);
        let all = t
            .embed_all(5, 2, &Ctx::eval())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(all[0], vec![0.0; 4]);
        assert_eq!(&all[1..], &table[1..]);
    }
}
