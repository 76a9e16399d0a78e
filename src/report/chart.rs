//! What every chart of the report shares: the colours (one per run, the same in every chart),
//! how a value is written on a chart, and drawing into an SVG string with plotters' SVG backend.
//! Text is left to the viewer's fonts (`sans-serif`, which every browser maps to a font a bare
//! Linux machine has, e.g. DejaVu Sans), so no font files are read at run time.

use plotters::prelude::*;

use crate::error::{Error, Result};

/// The Okabe–Ito palette (distinguishable with the common colour-vision deficiencies); series
/// `i` gets colour `i % 8`.
const PALETTE: [(u8, u8, u8); 8] = [
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
    (120, 120, 120),
    (0, 0, 0),
];

/// The colour of series (or run) `i`.
pub fn colour(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// The font of titles and labels: a generic family every browser resolves.
pub const FONT: &str = "sans-serif";

/// A value as a chart label: millions as `1.23M`, tens of thousands as `624k`, hundreds as
/// integers, then two decimals down to 1, and three significant digits below 1
/// (`0.0946`, `0.123`).
pub fn label(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        // digits after the point so that three significant ones show
        let digits = (2 - v.log10().floor() as i64).clamp(1, 12) as usize;
        format!("{v:.digits$}")
    }
}

/// A value-axis tick: whole numbers below 10,000 as integers (`10`, not `10.00`), fractions
/// without trailing zeros (`0.08`), else as [`label`].
pub fn tick(v: f64) -> String {
    if (1.0..1e4).contains(&v) && (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v > 0.0 && v < 1.0 {
        // ticks are round: 0.0800 reads better as 0.08
        label(v).trim_end_matches('0').to_string()
    } else {
        label(v)
    }
}

/// The drawing's error, as the report's.
pub fn draw_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("cannot draw the chart {what:?}: {e}"))
}

/// Draw with `f` on a white `width` x `height` SVG canvas; the SVG text.
pub fn svg_string(
    what: &str,
    (width, height): (u32, u32),
    f: impl FnOnce(
        &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(what, e))?;
        f(&root).map_err(|e| draw_err(what, e))?;
        root.present().map_err(|e| draw_err(what, e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_three_significant_digits_below_one() {
        // 0.0946: log10 = -1.02, floor -2, 2 - (-2) = 4 decimals
        assert_eq!(label(0.094_62), "0.0946");
        assert_eq!(label(0.1234), "0.123");
        assert_eq!(label(6.5), "6.50");
        assert_eq!(label(1234.0), "1234");
        assert_eq!(label(624_071.0), "624k");
        assert_eq!(label(110_000_000.0), "110.00M");
        assert_eq!(label(0.0), "0");
        // ticks: 10 whole; 0.08 -> label "0.0800" less its trailing zeros; 1e5 as a label
        assert_eq!(
            (tick(10.0), tick(0.08), tick(1e5)),
            ("10".into(), "0.08".into(), "100k".into())
        );
    }
}
