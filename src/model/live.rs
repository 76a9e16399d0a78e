//! Frozen towers whose states are computed when they are needed (uncached IISAN in the training
//! step, and new items of any IISAN run): loaded once and shared (a server embedding new items
//! keeps them), each with the inputs it reads. The factory builds uncached IISAN over them
//! ([`super::factory`]), and so does `items add` for a run's new items.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};

use super::iisan::states::{HiddenStates, LiveImage, LiveText};
use super::modality::TextImage;
use crate::backbone::encoders::{ImageEncoder, TextEncoder};
use crate::backbone::inputs::{ItemImages, ItemTokens};
use crate::backbone::pooling::Pooling;
use crate::data::Dataset;
use crate::data::image::MissingImage;
use crate::error::Result;

/// A text tower: the model, its folder, title tokens kept.
pub struct TextTower {
    tower: Arc<TextEncoder>,
    dir: PathBuf,
    max_tokens: usize,
}

/// An image tower: the model, its folder, the image side it reads.
pub struct ImageTower {
    tower: Arc<ImageEncoder>,
    dir: PathBuf,
    image_size: usize,
}

/// The frozen towers of a model's live states.
#[derive(Default)]
pub struct LiveTowers {
    text: Option<TextTower>,
    image: Option<ImageTower>,
}

impl LiveTowers {
    /// Load the text tower of `text` (folder, title tokens, pooling) and the image tower of
    /// `image` (folder, image side) on `device`, computing in `dtype`.
    pub fn load(
        text: Option<(&Path, usize, Option<Pooling>)>,
        image: Option<(&Path, usize)>,
        device: &Device,
        dtype: DType,
    ) -> Result<LiveTowers> {
        let text = text
            .map(|(dir, max_tokens, pooling)| -> Result<TextTower> {
                Ok(TextTower {
                    tower: Arc::new(TextEncoder::load(dir, pooling, device, dtype)?),
                    dir: dir.to_path_buf(),
                    max_tokens,
                })
            })
            .transpose()?;
        let image = image
            .map(|(dir, image_size)| -> Result<ImageTower> {
                Ok(ImageTower {
                    tower: Arc::new(ImageEncoder::load(dir, image_size, device, dtype)?),
                    dir: dir.to_path_buf(),
                    image_size,
                })
            })
            .transpose()?;
        Ok(LiveTowers { text, image })
    }

    /// The towers' folders (text, image).
    pub fn dirs(&self) -> (Option<&Path>, Option<&Path>) {
        (
            self.text.as_ref().map(|t| t.dir.as_path()),
            self.image.as_ref().map(|t| t.dir.as_path()),
        )
    }

    /// The text and image states of `data`'s items, `chunk` items per tower forward; an item
    /// without an image is an error or a zero image (`missing`).
    pub fn states(
        &self,
        data: &Dataset,
        chunk: usize,
        missing: MissingImage,
    ) -> Result<TextImage<Option<Box<dyn HiddenStates>>>> {
        let text: Option<Box<dyn HiddenStates>> = match &self.text {
            Some(t) => Some(Box::new(LiveText {
                tower: t.tower.clone(),
                tokens: ItemTokens::new(data, &t.dir, t.max_tokens)?,
                chunk,
            })),
            None => None,
        };
        let image: Option<Box<dyn HiddenStates>> = match &self.image {
            Some(t) => Some(Box::new(LiveImage {
                tower: t.tower.clone(),
                images: ItemImages::new(data, &t.dir, t.image_size, missing)?,
                chunk,
            })),
            None => None,
        };
        Ok(TextImage { text, image })
    }
}
