//! The report rendered by a real browser: headless Chromium (Debian's `chromium`, which
//! `.ci/run` installs when absent; `IISAN_CHROMIUM` names another binary) takes a screenshot
//! of the page, and the screenshot is not blank: text, and the charts' first colour (the
//! report's palette, bars and curves of the first run) cover a good part of it.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn chromium() -> String {
    std::env::var("IISAN_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// Pixels of the screenshot `png`: (not white, dark like text, the palette's first colour).
fn census(png: &Path) -> (f64, usize, usize) {
    let img = image::open(png).unwrap().to_rgb8();
    let (mut ink, mut dark, mut blue) = (0usize, 0usize, 0usize);
    for p in img.pixels() {
        let [r, g, b] = p.0;
        if (r, g, b) != (255, 255, 255) {
            ink += 1;
        }
        if r < 90 && g < 90 && b < 90 {
            dark += 1;
        }
        // (0, 114, 178) at 90 % over white, give or take antialiasing
        if r < 60 && (100..=150).contains(&g) && (150..=210).contains(&b) {
            blue += 1;
        }
    }
    (ink as f64 / img.pixels().len() as f64, dark, blue)
}

#[test]
fn headless_chromium_renders_the_report_with_its_charts() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 80, 40);
    train_run(t, &run_sets(&data, "a", "id"));
    let o = iisan(t, &["report", "--html", "page.html", "runs/a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shot = t.join("page.png");
    let out = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", t.join("profile").display()))
        .args(["--window-size=1200,2600"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", t.join("page.html").display()))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (.ci/run installs Debian's chromium)", chromium()));
    assert!(
        out.status.success() && shot.is_file(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ink, dark, blue) = census(&shot);
    // measured on this page: 9.5 % of the pixels inked, 26,000 dark ones, 117,000 of the blue;
    // a blank page, or one whose inline SVG did not render, has none of the blue
    assert!(
        ink > 0.05,
        "only {:.1} % of the screenshot is not white",
        ink * 100.0
    );
    assert!(dark > 5_000, "{dark} dark (text) pixels");
    assert!(blue > 5_000, "{blue} pixels of the charts' blue");
}
