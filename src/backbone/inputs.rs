//! What the towers read for an item when they run inside the training step (the baselines and
//! uncached IISAN): its title's token ids (tokenised once at start-up) and its image (decoded
//! and resized from `<dataset>/images/` per batch, so no pixel copy of the catalogue stays in
//! memory).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::data::Dataset;
use crate::data::image::MissingImage;
use crate::data::image::{ImagePrep, find_image};
use crate::data::text::{TextPrep, TokenBatch};
use crate::error::{Error, Result};

/// The `(ids, mask)` tensors `[batch, len]` of a padded token batch, on `device`.
pub fn token_tensors(tb: TokenBatch, device: &Device) -> Result<(Tensor, Tensor)> {
    Ok((
        Tensor::from_vec(tb.ids, (tb.batch, tb.len), device)?,
        Tensor::from_vec(tb.mask, (tb.batch, tb.len), device)?,
    ))
}

/// Token ids of every item's title (index = item id; row 0, padding, empty).
#[derive(Debug, Clone)]
pub struct ItemTokens {
    rows: Vec<Vec<u32>>,
    max_tokens: usize,
}

impl ItemTokens {
    /// Tokenise every title of `data` with the tokenizer of the text model folder `model`.
    pub fn new(data: &Dataset, model: &Path, max_tokens: usize) -> Result<ItemTokens> {
        let prep = TextPrep::from_model_dir(model, max_tokens)?;
        let mut rows = vec![Vec::new()];
        for t in &data.titles[1..] {
            rows.push(prep.encode(t)?);
        }
        Ok(ItemTokens { rows, max_tokens })
    }

    /// Tokens per title at most (what the titles were cut to).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The token rows of items `ids`.
    pub fn rows(&self, ids: &[u32]) -> Vec<&[u32]> {
        ids.iter()
            .map(|&i| self.rows[i as usize].as_slice())
            .collect()
    }

    /// The padded `(ids, mask)` tensors `[n, T]` of items `ids`.
    pub fn batch(&self, ids: &[u32], device: &Device) -> Result<(Tensor, Tensor)> {
        token_tensors(TokenBatch::pad(&self.rows(ids)), device)
    }
}

/// Loads item images as normalised pixels.
#[derive(Debug, Clone)]
pub struct ItemImages {
    root: PathBuf,
    keys: Vec<String>,
    prep: ImagePrep,
    missing: MissingImage,
}

impl ItemImages {
    /// Images of `data` (its directory's `images/`), preprocessed for the image model `model`
    /// at `size` pixels.
    pub fn new(data: &Dataset, model: &Path, size: usize, missing: MissingImage) -> Result<Self> {
        let root = data
            .root
            .clone()
            .ok_or_else(|| Error::Config("the dataset has no directory for images".into()))?;
        Ok(ItemImages {
            root,
            keys: data.item_keys.clone(),
            prep: ImagePrep::from_model_dir(model, size as u32)?,
            missing,
        })
    }

    /// Pixels `[n, 3, S, S]` of items `ids`.
    pub fn batch(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        let s = self.prep.size as usize;
        let mut px = Vec::with_capacity(ids.len() * 3 * s * s);
        for &i in ids {
            let key = &self.keys[i as usize];
            let loaded = match find_image(&self.root, key) {
                Some(p) => self.prep.load(&p),
                None => Err(Error::file(
                    &self.root.join("images"),
                    format!("no image for item {key:?} (png, jpg, jpeg or webp)"),
                )),
            };
            match (loaded, self.missing) {
                (Ok(v), _) => px.extend(v),
                (Err(_), MissingImage::Zero) => px.extend(std::iter::repeat_n(0f32, 3 * s * s)),
                (Err(e), MissingImage::Error) => return Err(e),
            }
        }
        Ok(Tensor::from_vec(px, (ids.len(), 3, s, s), device)?)
    }
}
