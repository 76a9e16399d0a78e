//! Line charts as SVG: a run's training curves (the training loss, the validation metric under
//! each mask) per epoch, with a marked epoch (the best one) drawn as a vertical line and named.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{FONT, colour, svg_string};
use crate::error::{Error, Result};

/// One line: a legend name, its points, its colour index and whether it is dashed.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend entry (shown when the chart has more than one line).
    pub name: String,
    /// `(x, y)` in order of x.
    pub points: Vec<(f64, f64)>,
    /// Index into the report's palette.
    pub colour: usize,
    /// Dashed instead of solid (a second mask of the same metric).
    pub dashed: bool,
}

/// A line chart with an optional marked x (the best epoch).
#[derive(Debug, Clone)]
pub struct Curves {
    /// Caption.
    pub title: String,
    /// The x axis' description (`epoch`).
    pub x_desc: String,
    /// The y axis' description, with its unit.
    pub y_desc: String,
    /// The lines.
    pub lines: Vec<Line>,
    /// A vertical line at this x, labelled.
    pub marker: Option<(f64, String)>,
}

impl Curves {
    fn check(&self) -> Result<()> {
        let ok = !self.lines.is_empty()
            && self.lines.iter().all(|l| {
                !l.points.is_empty() && l.points.iter().all(|(x, y)| x.is_finite() && y.is_finite())
            });
        if ok {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "chart {:?}: every line needs finite points",
                self.title
            )))
        }
    }

    /// The axes' ranges: the points' extent, padded; a flat line gets a band around it.
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let pts = || self.lines.iter().flat_map(|l| l.points.iter().copied());
        let (x0, x1) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| {
            (a.min(x), b.max(x))
        });
        let (y0, y1) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| {
            (a.min(y), b.max(y))
        });
        let pad = if y1 > y0 {
            (y1 - y0) * 0.08
        } else {
            y0.abs().max(1e-3) * 0.1
        };
        ((x0 - 0.5, x1 + 0.5), (y0 - pad, y1 + pad))
    }

    /// The chart as SVG text (`width` pixels wide).
    pub fn svg(&self, width: u32) -> Result<String> {
        self.check()?;
        svg_string(&self.title, (width, 340), |root| self.draw(root))
    }

    fn draw(
        &self,
        root: &DrawingArea<SVGBackend<'_>, Shift>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let ((x0, x1), (y0, y1)) = self.ranges();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            // epochs are whole: ticks between them stay unlabelled
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-6 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        if let Some((x, name)) = &self.marker {
            let grey = RGBColor(90, 90, 90);
            chart.draw_series(DashedLineSeries::new(
                [(*x, y0), (*x, y1)],
                4,
                4,
                grey.stroke_width(1),
            ))?;
            let style = TextStyle::from((FONT, 12).into_font())
                .color(&grey)
                .pos(Pos::new(HPos::Left, VPos::Top));
            let (px, py) = chart.backend_coord(&(*x, y1));
            root.draw(&Text::new(name.as_str(), (px + 4, py + 2), style))?;
        }
        for l in &self.lines {
            let c = colour(l.colour);
            let style = c.stroke_width(2);
            let drawn = if l.dashed {
                chart.draw_series(DashedLineSeries::new(l.points.iter().copied(), 6, 4, style))?
            } else {
                chart.draw_series(LineSeries::new(l.points.iter().copied(), style))?
            };
            if self.lines.len() > 1 {
                // two segments: touching for a solid line, apart for a dashed one
                let gap = if l.dashed { 4 } else { 0 };
                drawn.label(l.name.as_str()).legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new([(0, 0), (8 - gap / 2, 0)], c.stroke_width(2))
                        + PathElement::new([(8 + gap / 2, 0), (18, 0)], c.stroke_width(2))
                });
            }
            // a point per epoch, so a single epoch still shows
            chart.draw_series(l.points.iter().map(|&p| Circle::new(p, 2, c.filled())))?;
        }
        if self.lines.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font((FONT, 12))
                .draw()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, ys: &[f64], dashed: bool) -> Line {
        Line {
            name: name.into(),
            points: ys
                .iter()
                .enumerate()
                .map(|(i, y)| ((i + 1) as f64, *y))
                .collect(),
            colour: 0,
            dashed,
        }
    }

    #[test]
    fn draws_each_line_its_points_and_the_marked_epoch() {
        let c = Curves {
            title: "validation HR@10".into(),
            x_desc: "epoch".into(),
            y_desc: "HR@10".into(),
            lines: vec![
                line("history", &[0.1, 0.3, 0.2], false),
                line("none", &[0.2, 0.4, 0.3], true),
            ],
            marker: Some((2.0, "best epoch 2".into())),
        };
        let s = c.svg(480).unwrap();
        assert!(
            s.contains("\nbest epoch 2\n") && s.contains("\nepoch\n"),
            "{s}"
        );
        assert!(
            s.contains("\nhistory\n") && s.contains("\nnone\n"),
            "legend"
        );
        // 3 + 3 epoch points
        assert_eq!(s.matches("<circle").count(), 6, "{s}");
        // one flat, one-epoch line still draws (a band around the value)
        let one = Curves {
            lines: vec![line("loss", &[5.0], false)],
            marker: None,
            ..c
        };
        assert_eq!(one.svg(480).unwrap().matches("<circle").count(), 1);
        let bad = Curves {
            lines: vec![line("loss", &[f64::NAN], false)],
            ..one
        };
        assert!(bad.svg(480).is_err());
    }
}
