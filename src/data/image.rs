//! Item images for the image tower (docs/MODEL.md section 2): decode (JPEG, PNG, WebP), convert to RGB,
//! resize to `size` x `size` with a bilinear filter (no crop; Pillow-compatible convolution, as
//! the reference's PIL preprocessing), scale to [0, 1], normalise with the model's mean / std,
//! and lay out channel-first. CLIP-family towers resize as their processors do: bicubic, and
//! for CLIP the shortest edge to `size` then the centre `size` x `size` crop.

use std::path::{Path, PathBuf};

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// ImageNet mean (DINOv2).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet std (DINOv2).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// CLIP's mean (OpenAI's image statistics).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's std.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Image preprocessing parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePrep {
    /// Output side in pixels.
    pub size: u32,
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel std.
    pub std: [f32; 3],
    /// How the image is brought to `size` x `size`.
    pub fit: Fit,
}

/// How an image is brought to the tower's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Resized to the square, bilinear (ViT, DINOv2: the paper's preprocessing).
    Bilinear,
    /// Resized to the square, bicubic (SigLIP).
    Bicubic,
    /// The shortest edge resized to the side (bicubic), then the centre square (CLIP).
    BicubicCrop,
}

#[derive(Deserialize)]
struct Preprocessor {
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
    resample: Option<u32>,
    do_center_crop: Option<bool>,
}

#[derive(Deserialize)]
struct ModelType {
    model_type: String,
}

impl ImagePrep {
    /// Read mean / std from `dir/preprocessor_config.json`, or, without one, use the model
    /// type's convention (ViT: 0.5 / 0.5; DINOv2: ImageNet).
    pub fn from_model_dir(dir: &Path, size: u32) -> Result<ImagePrep> {
        let cfg = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg)
            .map_err(|_| Error::file(dir, "not a model folder: config.json is missing"))?;
        let t: ModelType = serde_json::from_str(&text)
            .map_err(|e| Error::file(&cfg, format!("invalid model config: {e}")))?;
        let clip = t.model_type.starts_with("clip") || t.model_type.starts_with("siglip");
        let pre = dir.join("preprocessor_config.json");
        let p: Option<Preprocessor> = if pre.exists() {
            let text = crate::atomic::read_bounded(&pre, 1 << 20)?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| Error::file(&pre, format!("invalid: {e}")))?,
            )
        } else {
            None
        };
        let (mean, std) = match (t.model_type.as_str(), &p) {
            (
                _,
                Some(Preprocessor {
                    image_mean: Some(m),
                    image_std: Some(s),
                    ..
                }),
            ) => (*m, *s),
            ("dinov2", _) => (IMAGENET_MEAN, IMAGENET_STD),
            (t, _) if t.starts_with("clip") => (CLIP_MEAN, CLIP_STD),
            _ => ([0.5; 3], [0.5; 3]),
        };
        let fit = match (clip, &p) {
            (false, _) => Fit::Bilinear,
            (true, Some(p)) if p.resample == Some(2) => Fit::Bilinear,
            (true, Some(p)) if p.do_center_crop.unwrap_or(false) => Fit::BicubicCrop,
            (true, None) if t.model_type.starts_with("clip") => Fit::BicubicCrop,
            (true, _) => Fit::Bicubic,
        };
        Ok(ImagePrep {
            size,
            mean,
            std,
            fit,
        })
    }

    /// Decode the image at `path` and preprocess it into `[3, size, size]` floats; an image
    /// of more than [`MAX_IMAGE_PIXELS`] pixels is refused before it is decoded.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>> {
        let reader = image::ImageReader::open(path)
            .map_err(|e| Error::io(path, e))?
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))?;
        let img = decode_bounded(reader).map_err(|e| Error::file(path, e))?;
        self.from_rgb(&img.to_rgb8())
    }

    /// Preprocess an RGB image into `[3, size, size]` floats.
    pub fn from_rgb(&self, img: &RgbImage) -> Result<Vec<f32>> {
        let s = self.size;
        let (w, h) = (img.width(), img.height());
        let resized: Vec<u8> = match self.fit {
            _ if w == s && h == s => img.as_raw().clone(),
            Fit::Bilinear => resize(img, (s, s), FilterType::Bilinear)?,
            Fit::Bicubic => resize(img, (s, s), FilterType::CatmullRom)?,
            Fit::BicubicCrop => {
                // the shortest edge to s, the other int(s * long / short), as transformers'
                // get_resize_output_image_size; then the centre crop, offsets floored
                let (rw, rh) = if w <= h {
                    (s, (u64::from(s) * u64::from(h) / u64::from(w)) as u32)
                } else {
                    ((u64::from(s) * u64::from(w) / u64::from(h)) as u32, s)
                };
                let big = resize(img, (rw, rh), FilterType::CatmullRom)?;
                let (left, top) = ((rw - s) / 2, (rh - s) / 2);
                let mut out = Vec::with_capacity((s * s * 3) as usize);
                for y in top..top + s {
                    let row = (y * rw + left) as usize * 3;
                    out.extend_from_slice(&big[row..row + s as usize * 3]);
                }
                out
            }
        };
        let n = (s * s) as usize;
        let mut out = vec![0f32; 3 * n];
        for (p, px) in resized.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * n + p] = (px[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        Ok(out)
    }
}

/// `img` resized to `w` x `h` by a Pillow-compatible convolution with `filter` (Catmull-Rom is
/// Pillow's bicubic).
fn resize(img: &RgbImage, (w, h): (u32, u32), filter: FilterType) -> Result<Vec<u8>> {
    let src = Image::from_vec_u8(
        img.width(),
        img.height(),
        img.as_raw().clone(),
        PixelType::U8x3,
    )
    .map_err(|e| Error::Internal(format!("image buffer: {e}")))?;
    let mut dst = Image::new(w, h, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    Resizer::new()
        .resize(&src, &mut dst, &opts)
        .map_err(|e| Error::Internal(format!("resize: {e}")))?;
    Ok(dst.into_vec())
}

/// Decoded pixels above which an image is refused (an 8K photograph has 33 million; a 160 KB
/// PNG of 13000 x 13000 would take 1.3 GB to decode and resize).
pub const MAX_IMAGE_PIXELS: u64 = 40_000_000;

/// Decode the image `reader` reads, refusing one of more than [`MAX_IMAGE_PIXELS`] pixels
/// (whatever its colour type) from its header, before anything is decoded; the decoder's own
/// allocations are bounded to 8 bytes a pixel of that (16-bit RGBA).
pub fn decode_bounded<R: std::io::BufRead + std::io::Seek>(
    reader: image::ImageReader<R>,
) -> std::result::Result<image::DynamicImage, String> {
    use image::ImageDecoder;
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode image: {e}"))?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_IMAGE_PIXELS {
        return Err(format!(
            "the image is {w} x {h} = {pixels} pixels; the limit is {MAX_IMAGE_PIXELS}"
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8);
    (decoder.set_limits(limits)).map_err(|e| format!("cannot decode image: {e}"))?;
    image::DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode image: {e}"))
}

/// Decode an image held in memory under [`decode_bounded`].
pub fn decode_bytes(bytes: &[u8]) -> std::result::Result<image::DynamicImage, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    decode_bounded(reader)
}

/// The image file of item `key` under `dir/images/` (`.png`, `.jpg`, `.jpeg` or `.webp`).
pub fn find_image(dir: &Path, key: &str) -> Option<PathBuf> {
    find_image_in(&dir.join("images"), key)
}

/// The image file extensions a dataset's `images/` may hold (in lower case; upper case is
/// accepted too).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// The image file of item `key` in the folder `images` (`<key>.png`, `.jpg`, `.jpeg` or
/// `.webp`, in lower or upper case: cameras write `.JPG`).
pub fn find_image_in(images: &Path, key: &str) -> Option<PathBuf> {
    let lower = IMAGE_EXTENSIONS.map(String::from);
    let upper = IMAGE_EXTENSIONS.map(str::to_uppercase);
    lower
        .iter()
        .chain(&upper)
        .map(|e| images.join(format!("{key}.{e}")))
        .find(|p| p.exists())
}

/// What to do with an item whose image is missing or cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MissingImage {
    /// Stop with an error naming the item and file (default).
    #[default]
    Error,
    /// Encode an all-zero input tensor instead and count it.
    Zero,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32 (IEEE, reflected, polynomial 0xEDB88320) as PNG chunks carry it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn images_are_found_with_upper_case_extensions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("S0017.JPG"), b"x").unwrap();
        assert_eq!(
            find_image_in(dir.path(), "S0017"),
            Some(dir.path().join("S0017.JPG"))
        );
        assert_eq!(find_image_in(dir.path(), "S0018"), None);
    }

    #[test]
    fn an_image_beyond_the_pixel_cap_is_refused_before_decoding() {
        // 300-byte PNGs whose headers claim 13000 x 13000 RGB (507 MB decoded) and 12000 x
        // 12000 greyscale (144 M pixels in 144 MB: under a cap counted in bytes of RGBA, so
        // the cap counts pixels): signature, IHDR, an empty IDAT and IEND
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            let body = [kind, data].concat();
            c.extend(&body);
            c.extend(crc32(&body).to_be_bytes());
            c
        };
        assert_eq!(crc32(b"IEND"), 0xAE42_6082, "the CRC every PNG ends with");
        for (side, colour) in [(13000u32, 2u8), (12000, 0)] {
            let mut ihdr = side.to_be_bytes().to_vec();
            ihdr.extend(side.to_be_bytes());
            ihdr.extend([8, colour, 0, 0, 0]);
            let png = [
                b"\x89PNG\r\n\x1a\n".to_vec(),
                chunk(b"IHDR", &ihdr),
                chunk(b"IDAT", &[]),
                chunk(b"IEND", &[]),
            ]
            .concat();
            let e = decode_bytes(&png).unwrap_err();
            let want = format!(
                "{side} x {side} = {} pixels; the limit is 40000000",
                side * side
            );
            assert!(e.contains(&want), "{e}");
        }
    }

    #[test]
    fn normalises_channel_first() {
        // 2x2 image: pixel (0,0) red 255, the rest black. ViT convention mean = std = 0.5:
        // 255 -> (1 - .5) / .5 = 1; 0 -> -1.
        let mut img = RgbImage::new(2, 2);
        img.put_pixel(0, 0, image::Rgb([255, 0, 0]));
        let prep = ImagePrep {
            size: 2,
            mean: [0.5; 3],
            std: [0.5; 3],
            fit: Fit::Bilinear,
        };
        let v = prep.from_rgb(&img).unwrap();
        assert_eq!(
            v,
            vec![1., -1., -1., -1., -1., -1., -1., -1., -1., -1., -1., -1.]
        );
    }

    #[test]
    fn bilinear_downsampling_averages() {
        // A 4x4 image of constant 100 stays 100 after resizing to 2x2 (the filter is normalised).
        let img = RgbImage::from_pixel(4, 4, image::Rgb([100, 100, 100]));
        let prep = ImagePrep {
            size: 2,
            mean: [0.0; 3],
            std: [1.0; 3],
            fit: Fit::Bilinear,
        };
        let v = prep.from_rgb(&img).unwrap();
        assert!(v.iter().all(|&x| (x - 100.0 / 255.0).abs() < 1e-6), "{v:?}");
    }

    #[test]
    fn corrupt_image_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.png");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let prep = ImagePrep {
            size: 8,
            mean: [0.0; 3],
            std: [1.0; 3],
            fit: Fit::Bilinear,
        };
        let e = prep.load(&p).unwrap_err().to_string();
        assert!(
            e.contains("x.png") && e.contains("cannot decode image"),
            "{e}"
        );
    }
}
