//! The cost curve's chart: the `cost.tsv` that `scripts/bench/tower_cost.sh` writes, drawn as
//! two log-log panels over the text tower's parameters: time (encoding every item once,
//! cached IISAN's epoch, and LoRA through the tower for every item once, the least an epoch of
//! it costs) and peak memory of the same three.
//!
//! Usage: `cargo run --release --example cost_chart -- COST.tsv OUT.svg`

use plotters::prelude::*;

/// One row of cost.tsv.
struct Row {
    layout: String,
    params_m: f64,
    encode_s: f64,
    encode_mib: f64,
    iisan_s: f64,
    iisan_mib: f64,
    lora_s: f64,
    lora_mib: f64,
}

/// Items of the synthetic default (what "every item once" counts).
const ITEMS: f64 = 1499.0;

fn read(path: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(path).expect("cost.tsv");
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<f64> = l
                .split('\t')
                .skip(1)
                .take(7)
                .map(|x| x.parse().expect("a number"))
                .collect();
            Row {
                layout: l.split('\t').next().unwrap_or("").to_string(),
                params_m: f[0] / 1e6,
                encode_s: ITEMS / f[1],
                encode_mib: f[2],
                iisan_s: f[3],
                iisan_mib: f[4],
                lora_s: ITEMS * f[5],
                lora_mib: f[6],
            }
        })
        .collect()
}

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// A value on a log axis, without needless decimals.
fn tick(v: &f64) -> String {
    if *v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    (title, y): (&str, &str),
    names: &[(f64, String)],
    series: &[Series],
) {
    let xs = series.iter().flat_map(|s| s.2.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
    let (x0, x1) = xs.fold((f64::MAX, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (y0, y1) = ys.fold((f64::MAX, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x0 * 0.8..x1 * 1.8).log_scale(),
            (y0 * 0.5..y1 * 2.0).log_scale(),
        )
        .expect("chart");
    chart
        .configure_mesh()
        .x_desc("text tower parameters (millions)")
        .y_desc(y)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .draw()
        .expect("mesh");
    // each tower's name above the axis at its size
    let base = y0 * 0.6;
    chart
        .draw_series(names.iter().map(|(x, n)| {
            Text::new(
                n.clone(),
                (*x, base),
                ("sans-serif", 12).into_font().color(&BLACK.mix(0.7)),
            )
        }))
        .expect("names");
    for (name, color, pts) in series {
        let c = *color;
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .expect("line")
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .expect("points");
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .expect("legend");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows = read(&args[0]);
    let root = SVGBackend::new(&args[1], (1100, 460)).into_drawing_area();
    root.fill(&WHITE).expect("fill");
    let halves = root.split_evenly((1, 2));
    let pick = |f: fn(&Row) -> f64| rows.iter().map(|r| (r.params_m, f(r))).collect::<Vec<_>>();
    let names: Vec<(f64, String)> = rows
        .iter()
        .map(|r| (r.params_m, r.layout.clone()))
        .collect();
    let (blue, green, red) = (
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
    );
    panel(
        &halves[0],
        ("Time", "seconds"),
        &names,
        &[
            ("encode every item once", blue, pick(|r| r.encode_s)),
            ("cached IISAN, one epoch", green, pick(|r| r.iisan_s)),
            ("LoRA fwd+bwd, every item once", red, pick(|r| r.lora_s)),
        ],
    );
    panel(
        &halves[1],
        ("Peak memory", "MiB (process RSS)"),
        &names,
        &[
            ("encode", blue, pick(|r| r.encode_mib)),
            ("cached IISAN training", green, pick(|r| r.iisan_mib)),
            ("LoRA step", red, pick(|r| r.lora_mib)),
        ],
    );
    root.present().expect("write the SVG");
}
