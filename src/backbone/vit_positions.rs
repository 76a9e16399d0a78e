//! ViT position embeddings at another input resolution: the patch positions resized
//! bicubically to the input grid as Hugging Face does (`F.interpolate(size=grid,
//! mode="bicubic", align_corners=False)`, A = -0.75), expressed as two interpolation matrices
//! so the resize is a matmul (and differentiable, for towers that train).

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

use super::get;
use crate::error::Result;

/// What the position embeddings depend on: the width `D`, the patch side, the image side the
/// tower was pretrained at (the stored grid is `stored_image / patch` per side), and whether the
/// positions are resized even at that side (DINOv2 always interpolates).
#[derive(Debug, Clone, Copy)]
pub(super) struct PositionGrid {
    pub(super) hidden: usize,
    pub(super) patch: usize,
    pub(super) stored_image: usize,
    pub(super) always_resize: bool,
}

/// Bicubic weights (A = -0.75) of PyTorch's `interpolate(mode="bicubic", align_corners=False)`
/// from `input` to `output` samples: a row-stochastic `[output, input]` matrix.
pub fn bicubic_matrix(input: usize, output: usize) -> Vec<f32> {
    const A: f64 = -0.75;
    let c1 = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = input as f64 / output as f64;
    let mut m = vec![0f32; output * input];
    for o in 0..output {
        let src = scale * (o as f64 + 0.5) - 0.5;
        let i0 = src.floor();
        let t = src - i0;
        let w = [c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t)];
        for (k, wk) in w.iter().enumerate() {
            let idx = (i0 as i64 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
            m[o * input + idx] += *wk as f32;
        }
    }
    m
}

/// The position embeddings under `e` for `image_size` inputs: the class position `[1, 1, D]`,
/// the patch positions `[grid * grid, D]` (resized from the stored grid when it differs, and
/// always for DINOv2, see [`resize_grid`]) and the grid side.
pub(super) fn position_embeddings(
    e: &VarBuilder,
    c: PositionGrid,
    image_size: usize,
    file: &Path,
    device: &Device,
) -> Result<(Tensor, Tensor, usize)> {
    let (d, p) = (c.hidden, c.patch);
    // The stored grid is the pretraining one, image_size / patch_size per side.
    let src = c.stored_image / p;
    let pos_full = get(e, &[1, src * src + 1, d], "position_embeddings", file)?;
    let grid = image_size / p;
    let cls_pos = pos_full.narrow(1, 0, 1)?;
    let mut grid_pos = pos_full.narrow(1, 1, src * src)?.squeeze(0)?; // [src*src, D]
    if grid != src || c.always_resize {
        grid_pos = resize_grid(&grid_pos, src, grid, d, device)?;
    }
    Ok((cls_pos, grid_pos, grid))
}

/// Resize the patch positions `[src * src, D]` to `[grid * grid, D]` with [`bicubic_matrix`],
/// rows (height) first, then columns (width).
fn resize_grid(
    grid_pos: &Tensor,
    src: usize,
    grid: usize,
    d: usize,
    device: &Device,
) -> Result<Tensor> {
    let m = Tensor::from_vec(bicubic_matrix(src, grid), (grid, src), device)?
        .to_dtype(grid_pos.dtype())?;
    // rows (height) then columns (width): [src, src, D] -> [grid, grid, D]
    let g = grid_pos.reshape((src, src * d))?;
    let g = m
        .matmul(&g)?
        .reshape((grid, src, d))?
        .transpose(0, 1)?
        .contiguous()?;
    let g = m
        .matmul(&g.reshape((src, grid * d))?)?
        .reshape((grid, grid, d))?
        .transpose(0, 1)?;
    Ok(g.contiguous()?.reshape((grid * grid, d))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_rows_sum_to_one_and_identity_when_same_size() {
        let m = bicubic_matrix(37, 16);
        for r in m.chunks(37) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // same size: src = o exactly, t = 0 -> weights [c2(1), c1(0), c1(1), c2(2)] = [0, 1, 0, 0].
        let id = bicubic_matrix(5, 5);
        for o in 0..5 {
            for i in 0..5 {
                assert!((id[o * 5 + i] - f32::from(o == i)).abs() < 1e-6);
            }
        }
        // 4 -> 2: scale 2, src(0) = 0.5, t = 0.5: weights c2(1.5), c1(.5), c1(.5), c2(1.5)
        // = -0.09375, 0.59375, 0.59375, -0.09375 on taps -1 (clamped to 0), 0, 1, 2.
        let m = bicubic_matrix(4, 2);
        let want = [0.5, 0.59375, -0.09375, 0.0];
        for (a, b) in m[..4].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{m:?}");
        }
    }
}
