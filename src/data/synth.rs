//! The embedded default: a **synthetic** multimodal recommendation dataset.
//!
//! No real item images exist offline for any recommendation dataset, so a fresh clone generates
//! its own, clearly labelled synthetic, with signal in both modalities.
//!
//! # Generative model
//! Items. Each item `i` draws five latent attributes independently and uniformly:
//! * text-only: `kind` (10 product kinds: lamp, mug, ...) and `style` (6: vintage, modern, ...),
//!   written into its title together with one neutral filler word and a unique model code,
//!   e.g. `"vintage lamp deluxe qx-417"`;
//! * image-only: `shape` (6), `colour` (8) and `texture` (4), drawn as a textured shape on a
//!   light background ([`super::draw`]) with random position, scale and tone jitter.
//!   No title mentions an image attribute and no image shows a text attribute.
//!
//! Each item also has a base popularity `pop_i ∝ 1 / r_i^0.9` for a random rank `r_i` (Zipf skew).
//!
//! Users. Each user `u` has a favourite style `st_u` and two favourite colours `C_u`.
//! Kinds and shapes follow fixed global Markov successions: after kind `k` the next purchase is
//! likely of kind `k` or `k+1 (mod 10)`; after shape `s`, of shape `s` or `s+1 (mod 6)`.
//! A user's sequence starts with an item drawn by popularity; each next item `i` is drawn with
//! probability `∝ pop_i^0.5 · exp(1.5·[style_i = st_u] + 2·[kind_i ∈ next(kind_prev)]
//! + 1.5·[colour_i ∈ C_u] + 2·[shape_i ∈ next(shape_prev)])`, and with probability 0.1 (noise)
//! by popularity alone. Sequence lengths are `5 + Geometric(1/6)`, capped at 30.
//!
//! So a text-only model can learn the style and kind parts, an image-only model the colour and
//! shape parts, and only a model that sees both can narrow the next item down to the few that
//! match all four. The latent attributes are written to `attributes.tsv` for analysis.
//!
//! Output (`iisan data synth --out DIR`): `items.tsv`, `users.tsv`, `images/<item>.png`,
//! `attributes.tsv` and `synth.json` (the generator's parameters, `"synthetic": true`).
//! Deterministic for a seed; written to a temporary directory, then renamed into place.

use std::fmt::Write as _;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::draw::{self, COLOURS, Look, SHAPES, TEXTURES};
use super::output::{Existing, check_out, replace_with, scratch_beside};
use crate::error::{Error, Result};

/// Product kinds (text-only attribute).
pub const KINDS: [&str; 10] = [
    "lamp", "mug", "kettle", "backpack", "notebook", "speaker", "candle", "vase", "clock",
    "blanket",
];
/// Styles (text-only attribute).
pub const STYLES: [&str; 6] = [
    "vintage",
    "modern",
    "rustic",
    "minimalist",
    "industrial",
    "bohemian",
];
const FILLERS: [&str; 12] = [
    "deluxe",
    "classic",
    "edition",
    "premium",
    "compact",
    "set",
    "original",
    "plus",
    "series",
    "collection",
    "essential",
    "signature",
];

/// Version of the generative model; bump when the output for a seed changes.
pub const GENERATOR_VERSION: u32 = 1;

/// Parameters of the synthetic generator (written to `synth.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Always true: the data is synthetic.
    pub synthetic: bool,
    /// Generator version ([`GENERATOR_VERSION`]).
    pub version: u32,
    /// RNG seed.
    pub seed: u64,
    /// Number of users.
    pub users: usize,
    /// Number of items.
    pub items: usize,
    /// Image side in pixels.
    pub image_size: u32,
    /// Probability that a step ignores the preferences.
    pub noise: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            synthetic: true,
            version: GENERATOR_VERSION,
            seed: 2024,
            users: 2000,
            items: 1500,
            image_size: 112,
            noise: 0.1,
        }
    }
}

/// Latent attributes of one synthetic item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latent {
    /// Index into [`KINDS`].
    pub kind: usize,
    /// Index into [`STYLES`].
    pub style: usize,
    /// What its image shows.
    pub look: Look,
}

/// A generated dataset in memory.
#[derive(Debug, Clone)]
pub struct Synth {
    /// Item keys (`S0001`, ...), titles and latent attributes, aligned.
    pub keys: Vec<String>,
    /// Titles, aligned with `keys`.
    pub titles: Vec<String>,
    /// Latent attributes, aligned with `keys`.
    pub latents: Vec<Latent>,
    /// Per user: item positions (indices into `keys`), oldest first.
    pub sequences: Vec<Vec<usize>>,
}

/// Draw items and sequences (no images) for `cfg`.
pub fn generate(cfg: &SynthConfig) -> Synth {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let n = cfg.items;
    let (keys, titles, latents) = draw_items(&mut rng, n);
    let pop = zipf_popularity(&mut rng, n);
    let by_pop = Cumulative::new(&pop);
    let sqrt_pop: Vec<f64> = pop.iter().map(|p| p.sqrt()).collect();
    let mut sequences = Vec::with_capacity(cfg.users);
    let mut weights = vec![0f64; n];
    for _ in 0..cfg.users {
        let seq = draw_sequence(
            &mut rng,
            cfg.noise,
            &latents,
            &by_pop,
            &sqrt_pop,
            &mut weights,
        );
        sequences.push(seq);
    }
    Synth {
        keys,
        titles,
        latents,
        sequences,
    }
}

/// Draw `n` items in turn: their keys (`S0001`, ...), titles and latent attributes, aligned.
fn draw_items(rng: &mut StdRng, n: usize) -> (Vec<String>, Vec<String>, Vec<Latent>) {
    let width = n.to_string().len().max(4);
    let mut keys = Vec::with_capacity(n);
    let mut titles = Vec::with_capacity(n);
    let mut latents = Vec::with_capacity(n);
    for i in 0..n {
        let lat = draw_latent(rng);
        let title = draw_title(rng, &lat);
        keys.push(format!("S{:0width$}", i + 1));
        titles.push(title);
        latents.push(lat);
    }
    (keys, titles, latents)
}

/// Draw an item's latent attributes: kind, style, then shape, colour and texture.
fn draw_latent(rng: &mut StdRng) -> Latent {
    Latent {
        kind: rng.random_range(0..KINDS.len()),
        style: rng.random_range(0..STYLES.len()),
        look: Look {
            shape: rng.random_range(0..SHAPES.len()),
            colour: rng.random_range(0..COLOURS.len()),
            texture: rng.random_range(0..TEXTURES.len()),
        },
    }
}

/// Draw the title of an item with latent attributes `lat`: its style and kind, a filler word
/// and a model code, e.g. `"vintage lamp deluxe qx-417"`.
fn draw_title(rng: &mut StdRng, lat: &Latent) -> String {
    let code: String = (0..2)
        .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
        .collect();
    let filler = FILLERS[rng.random_range(0..FILLERS.len())];
    let num = rng.random_range(100..1000);
    format!(
        "{} {} {filler} {code}-{num}",
        STYLES[lat.style], KINDS[lat.kind]
    )
}

/// Zipf base popularity `r^-0.9` of `n` items over a random rank order `r`.
fn zipf_popularity(rng: &mut StdRng, n: usize) -> Vec<f64> {
    let mut ranks: Vec<usize> = (1..=n).collect();
    rand::seq::SliceRandom::shuffle(ranks.as_mut_slice(), rng);
    ranks.iter().map(|&r| (r as f64).powf(-0.9)).collect()
}

/// A user's preferences: a favourite style and two favourite colours.
struct Taste {
    /// Index into [`STYLES`].
    style: usize,
    /// First favourite colour (index into [`COLOURS`]).
    c1: usize,
    /// Second favourite colour, different from `c1`.
    c2: usize,
}

/// Draw one user: taste, sequence length, then the sequence (a first item by popularity, each
/// next one by popularity alone with probability `noise`, else by [`preference_weights`]).
/// `weights` is scratch space, one entry per item.
fn draw_sequence(
    rng: &mut StdRng,
    noise: f64,
    latents: &[Latent],
    by_pop: &Cumulative,
    sqrt_pop: &[f64],
    weights: &mut [f64],
) -> Vec<usize> {
    let style = rng.random_range(0..STYLES.len());
    let c1 = rng.random_range(0..COLOURS.len());
    let c2 = (c1 + rng.random_range(1..COLOURS.len())) % COLOURS.len();
    let taste = Taste { style, c1, c2 };
    let mut len = 5;
    while len < 30 && !rng.random_bool(1.0 / 6.0) {
        len += 1;
    }
    let mut seq = vec![by_pop.sample(rng)];
    while seq.len() < len {
        let prev = latents[*seq.last().unwrap()];
        if rng.random_bool(noise) {
            seq.push(by_pop.sample(rng));
            continue;
        }
        preference_weights(weights, latents, sqrt_pop, &taste, &prev);
        seq.push(Cumulative::new(weights).sample(rng));
    }
    seq
}

/// Fill `weights` with each item's weight as the next item of a user of `taste` whose previous
/// item is `prev`: `sqrt(pop_i) · exp(score_i)`, the score rewarding the favourite style and
/// colours and the kind and shape successions.
fn preference_weights(
    weights: &mut [f64],
    latents: &[Latent],
    sqrt_pop: &[f64],
    taste: &Taste,
    prev: &Latent,
) {
    for (i, w) in weights.iter_mut().enumerate() {
        let l = &latents[i];
        let mut s = 0.0;
        if l.style == taste.style {
            s += 1.5;
        }
        if l.kind == prev.kind || l.kind == (prev.kind + 1) % KINDS.len() {
            s += 2.0;
        }
        if l.look.colour == taste.c1 || l.look.colour == taste.c2 {
            s += 1.5;
        }
        let ps = prev.look.shape;
        if l.look.shape == ps || l.look.shape == (ps + 1) % SHAPES.len() {
            s += 2.0;
        }
        *w = sqrt_pop[i] * f64::exp(s);
    }
}

/// Inverse-CDF sampler over non-negative weights.
struct Cumulative(Vec<f64>);

impl Cumulative {
    fn new(w: &[f64]) -> Self {
        let mut acc = 0.0;
        Cumulative(
            w.iter()
                .map(|x| {
                    acc += x;
                    acc
                })
                .collect(),
        )
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let total = *self.0.last().unwrap();
        let x = rng.random::<f64>() * total;
        self.0.partition_point(|&c| c <= x).min(self.0.len() - 1)
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Outcome of [`write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The dataset was generated into the directory.
    Created,
    /// The directory already held this exact dataset (same `synth.json`); nothing was done.
    AlreadyThere,
}

/// Generate the dataset for `cfg` and write it to `out` (temporary directory, then rename).
/// An existing `out` with the same `synth.json` is left as it is; a different one is an error
/// unless `force`, which replaces it.
pub fn write(cfg: &SynthConfig, out: &Path, force: bool) -> Result<Written> {
    let existing = check_out(out, "data synth", &[])?;
    if existing == Existing::Ours {
        let manifest = out.join("synth.json");
        let same = std::fs::read_to_string(&manifest)
            .ok()
            .and_then(|s| serde_json::from_str::<SynthConfig>(&s).ok())
            .is_some_and(|c| &c == cfg);
        if same && !force {
            return Ok(Written::AlreadyThere);
        }
        if !force {
            return Err(Error::file(
                out,
                "holds another synthetic dataset (use --force to replace it)",
            ));
        }
    }
    let tmp = scratch_beside(out)?;
    let images = tmp.join("images");
    std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
    let synth = generate(cfg);
    let mut items = String::new();
    let mut attrs = String::from("item\tkind\tstyle\tshape\tcolour\ttexture\n");
    let mut img_rng = StdRng::seed_from_u64(cfg.seed ^ 0x1A6E_5EED);
    for ((key, title), lat) in synth.keys.iter().zip(&synth.titles).zip(&synth.latents) {
        writeln!(items, "{key}\t{title}").unwrap();
        writeln!(
            attrs,
            "{key}\t{}\t{}\t{}\t{}\t{}",
            KINDS[lat.kind],
            STYLES[lat.style],
            SHAPES[lat.look.shape],
            COLOURS[lat.look.colour].0,
            TEXTURES[lat.look.texture]
        )
        .unwrap();
        let path = images.join(format!("{key}.png"));
        draw::render(lat.look, cfg.image_size, &mut img_rng)
            .save(&path)
            .map_err(|e| Error::file(&path, format!("cannot write image: {e}")))?;
    }
    let mut users = String::new();
    for (u, seq) in synth.sequences.iter().enumerate() {
        let ids: Vec<&str> = seq.iter().map(|&i| synth.keys[i].as_str()).collect();
        writeln!(users, "U{:05}\t{}", u + 1, ids.join(" ")).unwrap();
    }
    write_file(&tmp.join("items.tsv"), &items)?;
    write_file(&tmp.join("users.tsv"), &users)?;
    write_file(&tmp.join("attributes.tsv"), &attrs)?;
    let manifest = serde_json::to_string_pretty(cfg).expect("serialisable");
    write_file(&tmp.join("synth.json"), &manifest)?;
    replace_with(tmp, out, existing, "data synth")?;
    Ok(Written::Created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthConfig {
        SynthConfig {
            users: 200,
            items: 120,
            image_size: 28,
            ..Default::default()
        }
    }

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        let a = generate(&small());
        let b = generate(&small());
        assert_eq!(a.titles, b.titles);
        assert_eq!(a.sequences, b.sequences);
        let c = generate(&SynthConfig { seed: 7, ..small() });
        assert_ne!(a.sequences, c.sequences);
    }

    #[test]
    fn titles_never_name_image_attributes() {
        let s = generate(&small());
        for t in &s.titles {
            for word in t.split(' ') {
                assert!(!SHAPES.contains(&word) && !TEXTURES.contains(&word), "{t}");
                assert!(!COLOURS.iter().any(|(c, _)| *c == word), "{t}");
            }
        }
    }

    #[test]
    fn sequences_follow_the_kind_succession_more_than_chance() {
        // Under the model, P(next kind in {k, k+1}) is far above the 2/10 of random choice.
        let s = generate(&SynthConfig {
            users: 400,
            ..small()
        });
        let (mut hit, mut all) = (0usize, 0usize);
        for seq in &s.sequences {
            assert!((5..=30).contains(&seq.len()));
            for w in seq.windows(2) {
                let (a, b) = (s.latents[w[0]].kind, s.latents[w[1]].kind);
                hit += usize::from(b == a || b == (a + 1) % KINDS.len());
                all += 1;
            }
        }
        assert!(hit as f64 / all as f64 > 0.4, "{hit}/{all}");
    }

    #[test]
    fn cumulative_sampler_respects_zero_weights() {
        let c = Cumulative::new(&[0.0, 1.0, 0.0, 3.0]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[c.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[0] + counts[2], 0);
        assert!(counts[3] > 2 * counts[1]);
    }
}
