//! Drawing of the synthetic default's item images: one coloured, textured shape on a light
//! background. Everything an image shows (shape, colour, texture) is a latent attribute that the
//! item's title never mentions (see [`super::synth`]).

use image::{Rgb, RgbImage};
use rand::RngExt;
use rand::rngs::StdRng;

/// Shapes an item image can show.
pub const SHAPES: [&str; 6] = ["circle", "square", "triangle", "diamond", "ring", "cross"];
/// Colour names with their base RGB values.
pub const COLOURS: [(&str, [u8; 3]); 8] = [
    ("red", [210, 40, 40]),
    ("orange", [235, 130, 30]),
    ("yellow", [225, 200, 40]),
    ("green", [50, 160, 60]),
    ("teal", [30, 150, 150]),
    ("blue", [40, 80, 200]),
    ("purple", [130, 50, 170]),
    ("pink", [230, 110, 170]),
];
/// Surface textures.
pub const TEXTURES: [&str; 4] = ["solid", "stripes", "dots", "checker"];

/// What to draw for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// Index into [`SHAPES`].
    pub shape: usize,
    /// Index into [`COLOURS`].
    pub colour: usize,
    /// Index into [`TEXTURES`].
    pub texture: usize,
}

/// Is the point (x, y), in units of the shape's radius around its centre, inside `shape`?
fn inside(shape: usize, x: f32, y: f32) -> bool {
    match SHAPES[shape] {
        "circle" => x * x + y * y <= 1.0,
        "square" => x.abs() <= 0.85 && y.abs() <= 0.85,
        // apex up, base at y = 0.8
        "triangle" => (-1.0..=0.8).contains(&y) && x.abs() <= (y + 1.0) * 0.55,
        "diamond" => x.abs() + y.abs() <= 1.0,
        "ring" => {
            let r2 = x * x + y * y;
            (0.3..=1.0).contains(&r2)
        }
        "cross" => (x.abs() <= 0.3 && y.abs() <= 1.0) || (y.abs() <= 0.3 && x.abs() <= 1.0),
        other => unreachable!("unknown shape {other}"),
    }
}

/// Is the pixel at (px, py) painted in the texture's secondary tone?
fn secondary(texture: usize, px: u32, py: u32, period: u32) -> bool {
    match TEXTURES[texture] {
        "solid" => false,
        "stripes" => ((px + py) / period) % 2 == 1,
        "dots" => {
            let (cx, cy) = (px % period, py % period);
            let c = period as f32 / 2.0;
            let (dx, dy) = (cx as f32 + 0.5 - c, cy as f32 + 0.5 - c);
            dx * dx + dy * dy <= (c * 0.5) * (c * 0.5)
        }
        "checker" => ((px / period) + (py / period)) % 2 == 1,
        other => unreachable!("unknown texture {other}"),
    }
}

fn jitter(rng: &mut StdRng, v: u8, by: i32) -> u8 {
    (v as i32 + rng.random_range(-by..=by)).clamp(0, 255) as u8
}

/// Render `look` into a `size` x `size` RGB image, with per-item jitter (position, scale, tone,
/// background) drawn from `rng`.
pub fn render(look: Look, size: u32, rng: &mut StdRng) -> RgbImage {
    let s = size as f32;
    let radius = s * rng.random_range(0.28..0.38);
    let cx = s / 2.0 + rng.random_range(-0.08..0.08) * s;
    let cy = s / 2.0 + rng.random_range(-0.08..0.08) * s;
    let base = COLOURS[look.colour].1;
    let main = Rgb(base.map(|c| jitter(rng, c, 12)));
    let second = Rgb(main.0.map(|c| (c as u16 + (255 - c as u16) * 3 / 5) as u8));
    let bg = Rgb([
        jitter(rng, 236, 8),
        jitter(rng, 236, 8),
        jitter(rng, 230, 8),
    ]);
    let period = (size / 14).max(2);
    let mut img = RgbImage::from_pixel(size, size, bg);
    for py in 0..size {
        for px in 0..size {
            let x = (px as f32 + 0.5 - cx) / radius;
            let y = (py as f32 + 0.5 - cy) / radius;
            if inside(look.shape, x, y) {
                let c = if secondary(look.texture, px, py, period) {
                    second
                } else {
                    main
                };
                img.put_pixel(px, py, c);
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shapes_cover_their_centre_and_not_the_corner() {
        for (s, name) in SHAPES.iter().enumerate() {
            let centre = inside(s, 0.0, 0.05) || inside(s, 0.0, 0.6);
            assert!(centre, "{name}");
            assert!(!inside(s, 1.2, 1.2), "{name}");
        }
        // the ring's hole is empty
        assert!(!inside(4, 0.0, 0.0));
    }

    #[test]
    fn render_paints_the_colour_and_is_deterministic() {
        let look = Look {
            shape: 0,
            colour: 5,
            texture: 0,
        };
        let a = render(look, 56, &mut StdRng::seed_from_u64(3));
        let b = render(look, 56, &mut StdRng::seed_from_u64(3));
        assert_eq!(a, b);
        // the centre pixel is the (jittered) blue: blue channel dominates.
        let p = a.get_pixel(28, 28).0;
        assert!(p[2] > 150 && p[0] < 80, "{p:?}");
        // a corner pixel is background (light grey).
        assert!(a.get_pixel(0, 0).0.iter().all(|&c| c > 200));
    }
}
