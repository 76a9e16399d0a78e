//! A trained run cloned with a catalogue grown to millions of items, for measuring ranking and
//! serving at scale without encoding millions of titles (`iisan index synth`; docs/SERVING.md,
//! "Catalogues at scale"). The real items stay, first and unchanged, so recall can be measured
//! against exact ranking over the whole matrix; the generated items are drawn from a Gaussian
//! kernel density estimate of the real item embeddings: pick a real item uniformly, add
//! Gaussian noise whose standard deviation in dimension k is `h * sd_k` (`sd_k` the real items'
//! standard deviation in k, `h` Silverman's factor `(4 / (d + 2))^(1 / (d + 4)) * n^(-1 / (d + 4))`
//! for n real items in d dimensions). The clone's other files (user encoder, configuration,
//! summary) are the source's, so it serves and recommends like the source run.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::catalogue::{Catalogue, SearchMode, write_base};
use crate::data::output::{check_out, replace_with, scratch_beside};
use crate::error::{Error, Result};
use crate::progress::{Reporter, Unit};

/// The command recorded in the clone's output record.
const COMMAND: &str = "index synth";

/// What [`synth_items`] wrote.
#[derive(Debug, Clone)]
pub struct SynthReport {
    /// The clone.
    pub out: PathBuf,
    /// Real items kept.
    pub real: usize,
    /// Items generated.
    pub generated: usize,
    /// Silverman's bandwidth factor used.
    pub bandwidth: f64,
}

/// Per-dimension standard deviations of the rows `1..` of `items` (`d` wide) and Silverman's
/// factor for their count.
fn kernel(items: &[f32], d: usize) -> (Vec<f32>, f64) {
    let n = items.len() / d - 1;
    let rows = || items[d..].chunks_exact(d);
    let mut mean = vec![0f64; d];
    rows().for_each(|r| r.iter().zip(&mut mean).for_each(|(x, m)| *m += *x as f64));
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0f64; d];
    for r in rows() {
        for ((x, m), v) in r.iter().zip(&mean).zip(&mut var) {
            *v += (*x as f64 - m).powi(2);
        }
    }
    let sd = var.iter().map(|v| (v / n as f64).sqrt() as f32).collect();
    let df = d as f64;
    let h = (4.0 / (df + 2.0)).powf(1.0 / (df + 4.0)) * (n as f64).powf(-1.0 / (df + 4.0));
    (sd, h)
}

/// Clone run `run` into `out` with `count` generated items (ids `synth-<n>`) after its real
/// ones, drawn with `seed`. `out` must be new, or an earlier output of this command.
pub fn synth_items(
    run: &Path,
    count: usize,
    seed: u64,
    out: &Path,
    progress: &Reporter,
) -> Result<SynthReport> {
    let existing = check_out(out, COMMAND, &[run])?;
    let cat = Catalogue::open(run, SearchMode::Exact)?;
    let (rows, d) = (cat.num_items() + 1, cat.dim());
    if rows < 3 {
        return Err(Error::file(
            run,
            "needs at least two real items to draw from",
        ));
    }
    let real: Vec<f32> = cat.to_vec();
    let (sd, h) = kernel(&real, d);
    let mut keys: Vec<String> = std::iter::once("<pad>".to_string())
        .chain(cat.ids())
        .collect();
    let width = count.to_string().len();
    keys.extend((1..=count).map(|i| format!("synth-{i:0width$}")));
    cat.check_new_keys(&keys[rows..])?;
    drop(cat);
    let mut all = real;
    all.reserve(count * d);
    let mut rng = StdRng::seed_from_u64(seed);
    let task = progress.task("generating items", Unit::Items, count as u64, 0);
    for i in 0..count {
        let src = rng.random_range(1..rows) * d;
        for k in 0..d {
            let z: f32 = StandardNormal.sample(&mut rng);
            let x = all[src + k] + (h as f32) * sd[k] * z;
            all.push(x);
        }
        if (i + 1) % 65_536 == 0 {
            task.advance(65_536);
            progress.check(|| "index synth stopped".into())?;
        }
    }
    task.finish();
    let tmp = scratch_beside(out)?;
    copy_run_files(run, &tmp)?;
    let items = Tensor::from_vec(all, (rows + count, d), &Device::Cpu)?;
    write_base(&tmp, &keys, &items)?;
    replace_with(tmp, out, existing, COMMAND)?;
    Ok(SynthReport {
        out: out.to_path_buf(),
        real: rows - 1,
        generated: count,
        bandwidth: h,
    })
}

/// Copy the run's top-level files (not its catalogue, which is written anew, nor its ANN
/// index, which indexes other rows, nor its locks or output record) into `dir`.
fn copy_run_files(run: &Path, dir: &Path) -> Result<()> {
    const SKIP: [&str; 6] = [
        "items.safetensors",
        "item_ids.txt",
        "items.lock",
        "run.lock",
        crate::catalogue::ann::RECORD,
        crate::data::output::RECORD,
    ];
    // the segment's files and the index files
    const SKIP_PREFIX: [&str; 3] = ["items.seg-", "item_ids.seg-", "items-ann-"];
    for e in std::fs::read_dir(run).map_err(|e| Error::io(run, e))? {
        let e = e.map_err(|e| Error::io(run, e))?;
        let name = e.file_name();
        let is_file = e
            .file_type()
            .map_err(|x| Error::io(&e.path(), x))?
            .is_file();
        let prefixed = SKIP_PREFIX
            .iter()
            .any(|p| name.to_string_lossy().starts_with(p));
        if is_file && !prefixed && !SKIP.iter().any(|s| name == *s) {
            let to = dir.join(&name);
            std::fs::copy(e.path(), &to).map_err(|x| Error::io(&to, x))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows (after the padding row) [1, 0], [3, 0], [2, 4], [2, 4] (n = 4, d = 2): means 2 and
    /// 2, variances (1 + 1 + 0 + 0) / 4 = 0.5 and (4 + 4 + 4 + 4) / 4 = 4, so sd = [0.7071, 2];
    /// h = (4 / 4)^(1 / 6) * 4^(-1 / 6) = 0.7937.
    #[test]
    fn bandwidths_by_hand() {
        let items = [0., 0., 1., 0., 3., 0., 2., 4., 2., 4.];
        let (sd, h) = kernel(&items, 2);
        assert!((sd[0] - 0.5f32.sqrt()).abs() < 1e-6 && (sd[1] - 2.0).abs() < 1e-6);
        assert!((h - 4f64.powf(-1.0 / 6.0)).abs() < 1e-12, "{h}");
    }
}
