//! Bar charts as SVG: one bar per category, or groups of bars (one per series) with a legend;
//! a linear or a logarithmic value axis (so a method 400x smaller than another still shows),
//! and every bar's value written above it. The efficiency charts and the breakdown charts of
//! the report, and the comparison's `time.svg` / `memory.svg` / `params.svg`.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{FONT, colour, label, svg_string, tick};
use crate::atomic::write_text;
use crate::error::{Error, Result};

/// One series of bars: a value per category (`None`: no bar, written `n/a`).
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend entry (shown when there is more than one series).
    pub name: String,
    /// One value per category.
    pub values: Vec<Option<f64>>,
}

/// A bar chart.
#[derive(Debug, Clone)]
pub struct Bars {
    /// Caption.
    pub title: String,
    /// What the categories are (the x axis' description).
    pub x_desc: String,
    /// The value axis' description, with its unit.
    pub y_desc: String,
    /// Category names, left to right.
    pub categories: Vec<String>,
    /// The series; with one, each bar takes its category's colour.
    pub series: Vec<Series>,
    /// Logarithmic value axis (for quantities spanning decades).
    pub log: bool,
}

/// The value range drawn: from the bars' base to room above the tallest label (and the legend).
struct Range {
    base: f64,
    top: f64,
}

impl Bars {
    /// Bars of one series (`(category, value)` in order).
    pub fn single(
        title: &str,
        x_desc: &str,
        y_desc: &str,
        bars: Vec<(String, f64)>,
        log: bool,
    ) -> Bars {
        Bars {
            title: title.into(),
            x_desc: x_desc.into(),
            y_desc: y_desc.into(),
            categories: bars.iter().map(|b| b.0.clone()).collect(),
            series: vec![Series {
                name: y_desc.into(),
                values: bars.iter().map(|b| Some(b.1)).collect(),
            }],
            log,
        }
    }

    fn check(&self) -> Result<()> {
        let n = self.categories.len();
        let ok = n > 0
            && !self.series.is_empty()
            && self.series.iter().all(|s| {
                s.values.len() == n
                    && s.values
                        .iter()
                        .flatten()
                        .all(|v| v.is_finite() && *v >= 0.0)
            });
        if ok {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "chart {:?}: every series needs one finite, non-negative value per category",
                self.title
            )))
        }
    }

    fn range(&self) -> Range {
        let values = || {
            self.series
                .iter()
                .flat_map(|s| s.values.iter().flatten().copied())
        };
        let max = values().fold(0.0, f64::max);
        let legend = self.series.len() > 1;
        if self.log {
            let min = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
            let (min, max) = if min.is_finite() {
                (min, max)
            } else {
                (1.0, 1.0)
            };
            // a third of a decade-ish under the smallest bar, room for labels (and legend) above
            let top = max * if legend { 30.0 } else { 4.0 };
            Range {
                base: min / 3.0,
                top,
            }
        } else {
            let top = if max > 0.0 { max } else { 1.0 } * if legend { 1.4 } else { 1.18 };
            Range { base: 0.0, top }
        }
    }

    /// The chart as SVG text.
    pub fn svg(&self) -> Result<String> {
        self.check()?;
        let (n, m) = (self.categories.len(), self.series.len());
        // room for the bars and for the longest category name (about 8 px a character at 13 px)
        let longest = self
            .categories
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0);
        let slot = (m * 58 + 40).max(8 * longest + 16);
        let width = (130 + n * slot).max(560) as u32;
        svg_string(&self.title, (width, 440), |root| self.draw(root))
    }

    /// Write the chart to `path` (SVG), through a temporary file renamed into place.
    pub fn write_svg(&self, path: &Path) -> Result<()> {
        write_text(path, &self.svg()?)
    }

    fn draw(&self, root: &DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult {
        let r = self.range();
        let n = self.categories.len() as f64;
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(&self.title, (FONT, 20))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(84);
        if self.log {
            let chart = builder.build_cartesian_2d(0.0..n, (r.base..r.top).log_scale())?;
            self.bars_on(root, chart, &r)
        } else {
            let chart = builder.build_cartesian_2d(0.0..n, r.base..r.top)?;
            self.bars_on(root, chart, &r)
        }
    }

    /// Mesh, bars, value labels, category names and the legend on `chart`.
    fn bars_on<'a, 'b: 'a, Y>(
        &self,
        root: &DrawingArea<SVGBackend<'b>, Shift>,
        mut chart: ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
        r: &Range,
    ) -> DrawResult
    where
        Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(8)
            .y_label_formatter(&|v| tick(*v))
            .light_line_style(WHITE.mix(0.0))
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        let m = self.series.len();
        let width = 0.8 / m as f64;
        let value_style =
            TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
        for (j, s) in self.series.iter().enumerate() {
            let left = |i: usize| i as f64 + 0.1 + j as f64 * width;
            let fill = move |i: usize| colour(if m == 1 { i } else { j }).mix(0.9).filled();
            let bars = s.values.iter().enumerate().filter_map(|(i, v)| {
                let v = (*v)?;
                (v > r.base)
                    .then(|| Rectangle::new([(left(i), r.base), (left(i) + width, v)], fill(i)))
            });
            let drawn = chart.draw_series(bars)?;
            if m > 1 {
                let c = colour(j);
                drawn.label(s.name.as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 12, y + 6)], c.filled())
                });
            }
            let labels = s.values.iter().enumerate().map(|(i, v)| {
                let text = v.map_or("n/a".to_string(), label);
                let y = v.unwrap_or(r.base).max(r.base);
                let y = if self.log {
                    y * 1.08
                } else {
                    y + (r.top - r.base) * 0.01
                };
                Text::new(text, (left(i) + width / 2.0, y), value_style.clone())
            });
            chart.draw_series(labels)?;
        }
        // category names under the axis, centred on their group (drawn on the whole canvas:
        // the plotting area clips nothing, but its own tick labels cannot be placed at centres)
        let name_style =
            TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, name) in self.categories.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, r.base));
            root.draw(&Text::new(name.as_str(), (x, y + 8), name_style.clone()))?;
        }
        if m > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font((FONT, 13))
                .draw()?;
        }
        Ok(())
    }
}

/// What drawing returns: plotters' errors are boxed, then turned into the report's.
type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_series_writes_every_bar_and_label_on_either_axis() {
        let dir = tempfile::tempdir().unwrap();
        for log in [false, true] {
            let p = dir.path().join(format!("c{log}.svg"));
            Bars::single(
                "seconds per epoch",
                "method",
                "s / epoch",
                vec![("iisan".into(), 6.5), ("fft".into(), 1234.0)],
                log,
            )
            .write_svg(&p)
            .unwrap();
            let s = std::fs::read_to_string(&p).unwrap();
            assert!(s.starts_with("<svg"), "{}", &s[..40]);
            // plotters writes each text on its own line inside <text>
            for text in [
                "\niisan\n",
                "\nfft\n",
                "\n1234\n",
                "\n6.50\n",
                "\ns / epoch\n",
            ] {
                assert!(s.contains(text), "{text:?} missing");
            }
            // two bars: two filled rectangles besides the white background
            assert_eq!(s.matches("<rect").count() - 1, 2, "{s}");
        }
        let bad = Bars::single("t", "x", "u", vec![("x".into(), f64::NAN)], false);
        assert!(bad.svg().is_err());
    }

    #[test]
    fn groups_have_a_legend_and_missing_values_say_so() {
        let chart = Bars {
            title: "HR@10 by popularity".into(),
            x_desc: "target popularity".into(),
            y_desc: "HR@10".into(),
            categories: vec!["head".into(), "tail".into()],
            series: vec![
                Series {
                    name: "iisan".into(),
                    values: vec![Some(0.0946), Some(0.0147)],
                },
                Series {
                    name: "id <b>".into(),
                    values: vec![Some(0.0717), None],
                },
            ],
            log: false,
        };
        let s = chart.svg().unwrap();
        for text in ["\nhead\n", "\ntail\n", "\n0.0946\n", "\nn/a\n", "\niisan\n"] {
            assert!(s.contains(text), "{text:?} missing");
        }
        // names from data are escaped by the SVG backend
        assert!(s.contains("id &lt;b&gt;") && !s.contains("id <b>"));
        // three bars, two legend swatches, the legend's fill and border, the background
        assert_eq!(s.matches("<rect").count(), 3 + 2 + 2 + 1, "{s}");
    }
}
