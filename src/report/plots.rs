//! Bar charts of the efficiency comparison (time, memory, parameters per method) as SVG files,
//! drawn with plotters' SVG backend (text is left to the viewer's fonts, so no font files are
//! needed at run time).

use std::path::Path;

use plotters::coord::ranged1d::{SegmentedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordusize;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};

/// One chart: a title, the y-axis description, one bar per (label, value), linear or log scale.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Caption.
    pub title: String,
    /// Y-axis description (with unit).
    pub unit: String,
    /// Bars in order.
    pub bars: Vec<(String, f64)>,
    /// Logarithmic y axis (for quantities spanning decades, like parameter counts).
    pub log: bool,
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{}: cannot draw the chart: {e}", path.display()))
}

fn label(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A chart area with one segment per bar and a value axis `Y` (linear or log).
type BarArea<'a, Y> =
    ChartContext<'a, SVGBackend<'a>, Cartesian2d<SegmentedCoord<RangedCoordusize>, Y>>;

impl BarChart {
    /// Mesh, bars from `base` up and value labels at `label_y(value)`.
    fn bars_on<Y>(
        &self,
        mut chart: BarArea<'_, Y>,
        base: f64,
        label_y: impl Fn(f64) -> f64,
    ) -> std::result::Result<(), Box<dyn std::error::Error>>
    where
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let names: Vec<String> = self.bars.iter().map(|b| b.0.clone()).collect();
        let fmt = move |x: &SegmentValue<usize>| match x {
            SegmentValue::CenterOf(i) if *i < names.len() => names[*i].clone(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(&self.unit)
            .x_label_formatter(&fmt)
            .draw()?;
        let colour = RGBColor(66, 114, 196).mix(0.85).filled();
        chart.draw_series(self.bars.iter().enumerate().map(|(i, (_, v))| {
            let top = v.max(base);
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), base),
                    (SegmentValue::Exact(i + 1), top),
                ],
                colour,
            );
            r.set_margin(0, 0, 14, 14);
            r
        }))?;
        // value labels centred above each bar
        let style = TextStyle::from(("sans-serif", 14).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(self.bars.iter().enumerate().map(|(i, (_, v))| {
            Text::new(
                label(*v),
                (SegmentValue::CenterOf(i), label_y(*v)),
                style.clone(),
            )
        }))?;
        Ok(())
    }

    /// Write the chart to `path` (SVG), through a temporary file renamed into place.
    pub fn write_svg(&self, path: &Path) -> Result<()> {
        if self.bars.is_empty() || self.bars.iter().any(|b| !b.1.is_finite() || b.1 < 0.0) {
            return Err(Error::Internal(format!(
                "{}: bar values must be finite and non-negative",
                path.display()
            )));
        }
        let tmp = path.with_extension("svg.partial");
        self.draw(&tmp).map_err(|e| plot_err(path, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    fn draw(&self, out: &Path) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let n = self.bars.len();
        let width = (160 + 130 * n).max(520) as u32;
        let root = SVGBackend::new(out, (width, 440)).into_drawing_area();
        root.fill(&WHITE)?;
        let max = self.bars.iter().map(|b| b.1).fold(0.0, f64::max);
        // plotters' integer ranges include their end: 0..=n-1 gives one segment per bar
        let segments = (0..n - 1).into_segmented();
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(&self.title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(80);
        if self.log {
            let lo = self
                .bars
                .iter()
                .map(|b| b.1)
                .filter(|v| *v > 0.0)
                .fold(f64::INFINITY, f64::min)
                .min(1.0);
            let floor = lo / 2.0;
            let chart = builder.build_cartesian_2d(segments, (floor..max * 4.0).log_scale())?;
            self.bars_on(chart, floor, |v| v.max(floor) * 1.05)?;
        } else {
            let chart = builder.build_cartesian_2d(segments, 0.0..(max * 1.15).max(1e-9))?;
            self.bars_on(chart, 0.0, |v| v + max * 0.01)?;
        }
        root.present()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_bar_and_label() {
        let dir = tempfile::tempdir().unwrap();
        for log in [false, true] {
            let p = dir.path().join(format!("c{log}.svg"));
            BarChart {
                title: "seconds per epoch".into(),
                unit: "s".into(),
                bars: vec![("iisan".into(), 6.5), ("fft".into(), 1234.0)],
                log,
            }
            .write_svg(&p)
            .unwrap();
            let s = std::fs::read_to_string(&p).unwrap();
            assert!(s.starts_with("<svg"), "{}", &s[..40]);
            // plotters writes each label on its own line inside <text>
            for label in ["\niisan\n", "\nfft\n", "\n1234\n", "\n6.50\n"] {
                assert!(s.contains(label), "{label:?} missing");
            }
            assert!(!p.with_extension("svg.partial").exists());
        }
        // a single bar works too
        let one = BarChart {
            title: "one".into(),
            unit: "u".into(),
            bars: vec![("only".into(), 3.0)],
            log: false,
        };
        one.write_svg(&dir.path().join("one.svg")).unwrap();
        let bad = BarChart {
            title: "t".into(),
            unit: "u".into(),
            bars: vec![("x".into(), f64::NAN)],
            log: false,
        };
        assert!(bad.write_svg(&dir.path().join("bad.svg")).is_err());
    }
}
