//! IISAN's options (docs/MODEL.md section 3): which paths, gated or additive mixing, the
//! hidden-state taps of each tower, the SAN bottleneck and the gate temperature.
//!
//! A tap list left out is derived from its tower's depth ([`default_taps`]): the paper's
//! LayerDrop rule on 12 layers, every state on towers of at most 6 layers.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which paths the item embedding uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Both intra paths and the inter path (the paper's default).
    IntraInter,
    /// Both intra paths only.
    Intra,
    /// The inter path only.
    Inter,
    /// The text intra path only.
    Text,
    /// The image intra path only.
    Image,
}

impl Modality {
    /// The option's config name.
    pub fn name(self) -> &'static str {
        match self {
            Modality::IntraInter => "intra_inter",
            Modality::Intra => "intra",
            Modality::Inter => "inter",
            Modality::Text => "text",
            Modality::Image => "image",
        }
    }

    pub(crate) fn uses(self) -> (bool, bool, bool) {
        match self {
            Modality::IntraInter => (true, true, true),
            Modality::Intra => (true, true, false),
            Modality::Inter => (false, false, true),
            Modality::Text => (true, false, false),
            Modality::Image => (false, true, false),
        }
    }

    /// Whether the text cache is read.
    pub fn needs_text(self) -> bool {
        let (t, _, m) = self.uses();
        t || m
    }

    /// Whether the image cache is read.
    pub fn needs_image(self) -> bool {
        let (_, i, m) = self.uses();
        i || m
    }
}

/// How a path combines a backbone state with its running state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// Learned scalar gates (the paper's).
    Gate,
    /// Plain sums.
    Add,
}

/// IISAN options; defaults are the paper's (tap lists derived from each tower's depth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IisanConfig {
    /// Paths used.
    pub modality: Modality,
    /// Gated or additive mixing.
    pub fusion: Fusion,
    /// Hidden-state indices read from the text states; `None`: [`default_taps`] of the tower.
    pub text_taps: Option<Vec<usize>>,
    /// Hidden-state indices read from the image states; `None`: [`default_taps`] of the tower.
    pub image_taps: Option<Vec<usize>>,
    /// Drop the first tap of each list, and start each intra path from state 0 (the embedding
    /// output) instead of zeros, as the authors' code does.
    pub remove_first: bool,
    /// SAN bottleneck width r.
    pub bottleneck: usize,
    /// Gate temperature T.
    pub gate_temperature: f64,
}

impl Default for IisanConfig {
    fn default() -> Self {
        IisanConfig {
            modality: Modality::IntraInter,
            fusion: Fusion::Gate,
            text_taps: None,
            image_taps: None,
            remove_first: false,
            bottleneck: 64,
            gate_temperature: 0.1,
        }
    }
}

/// The tap list of a tower with `states` hidden states (L = states - 1 layers): state 0 and
/// every `ceil(L / 6)`-th state, and always the last one (the paths end at the tower's
/// output). 12 layers: `[0, 2, ..., 12]` (the paper's LayerDrop); at most 6 layers: every
/// state (MiniLM: `[0, ..., 6]`); 24 layers: `[0, 4, ..., 24]`; 28 layers (Qwen3-0.6B,
/// Qwen2.5-1.5B / 7B): `[0, 5, ..., 25, 28]`.
pub fn default_taps(states: usize) -> Vec<usize> {
    let layers = states.saturating_sub(1);
    let step = layers.div_ceil(6).max(1);
    let mut taps: Vec<usize> = (0..=layers).step_by(step).collect();
    if taps.last() != Some(&layers) {
        taps.push(layers);
    }
    taps
}

impl IisanConfig {
    /// These options with every tap list left out derived from its tower's number of hidden
    /// states (`None`: that tower is not read, its list stays as it is).
    pub fn with_depths(&self, text_states: Option<usize>, image_states: Option<usize>) -> Self {
        let fill = |taps: &Option<Vec<usize>>, states: Option<usize>| match (taps, states) {
            (None, Some(n)) => Some(default_taps(n)),
            _ => taps.clone(),
        };
        IisanConfig {
            text_taps: fill(&self.text_taps, text_states),
            image_taps: fill(&self.image_taps, image_states),
            ..self.clone()
        }
    }

    /// The taps each path reads: the lists with `remove_first` applied (the one place it is
    /// applied); a list still left out reads nothing (resolve it with [`Self::with_depths`]).
    pub fn tap_plan(&self) -> TapPlan {
        let cut = |v: &Option<Vec<usize>>| {
            let v = v.as_deref().unwrap_or_default();
            let skip = usize::from(self.remove_first);
            v.iter().skip(skip).copied().collect()
        };
        TapPlan {
            text: cut(&self.text_taps),
            image: cut(&self.image_taps),
            init: self.remove_first.then_some(0),
        }
    }

    /// Check the options (a tap list left out is fine: it is derived when the towers are known).
    pub fn validate(&self) -> Result<()> {
        let taps = self.tap_plan();
        let (ut, ui, _) = self.modality.uses();
        let empty = |list: &Option<Vec<usize>>, plan: &[usize]| list.is_some() && plan.is_empty();
        if (ut || self.modality.needs_text()) && empty(&self.text_taps, &taps.text)
            || (ui || self.modality.needs_image()) && empty(&self.image_taps, &taps.image)
        {
            return Err(Error::Config(
                "model.iisan tap lists must not be empty for the modalities used".into(),
            ));
        }
        if self.bottleneck == 0
            || !self.gate_temperature.is_finite()
            || self.gate_temperature <= 0.0
        {
            return Err(Error::Config(
                "model.iisan.bottleneck and gate_temperature must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// The hidden-state taps IISAN reads, `remove_first` applied. Each intra path reads its whole
/// list; the inter path aligns the last [`TapPlan::inter`] taps of both lists (K = the shorter
/// length), so the leading unaligned taps of the longer list feed only its intra path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPlan {
    /// Text hidden-state indices.
    pub text: Vec<usize>,
    /// Image hidden-state indices.
    pub image: Vec<usize>,
    /// The state each intra path starts from (`s_{-1}`); `None`: zeros. `remove_first` sets it
    /// to state 0 (the authors' code).
    pub init: Option<usize>,
}

impl TapPlan {
    /// The states gathered from a tower whose path reads `taps`: the start state [`Self::init`]
    /// first when there is one, then the taps (so tap `k` is at `k + self.lead()`).
    pub fn gathered(&self, taps: &[usize]) -> Vec<usize> {
        self.init.iter().chain(taps).copied().collect()
    }

    /// Where the taps start in [`Self::gathered`]'s list: 1 with a start state, else 0.
    pub fn lead(&self) -> usize {
        usize::from(self.init.is_some())
    }

    /// K: the taps (and SAN blocks) of the inter path.
    pub fn inter(&self) -> usize {
        self.text.len().min(self.image.len())
    }

    /// Where the inter path's K taps start in the text and the image list.
    pub fn inter_start(&self) -> (usize, usize) {
        let k = self.inter();
        (self.text.len() - k, self.image.len() - k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_plan_drops_the_first_tap_once_and_aligns_the_last_k() {
        // text [0..=6] (7 taps), image [0,2,..,12] minus the first with remove_first:
        // text [1..=6] (6), image [2,4,..,12] (6) -> K = 6, both start at 0.
        let c = IisanConfig {
            remove_first: true,
            ..Default::default()
        }
        .with_depths(Some(7), Some(13));
        let p = c.tap_plan();
        assert_eq!(p.text, [1, 2, 3, 4, 5, 6]);
        assert_eq!(p.image, [2, 4, 6, 8, 10, 12]);
        assert_eq!((p.inter(), p.inter_start()), (6, (0, 0)));
        // the intra paths start from state 0, gathered ahead of the taps
        assert_eq!((p.init, p.lead()), (Some(0), 1));
        assert_eq!(p.gathered(&p.text), [0, 1, 2, 3, 4, 5, 6]);
        // text 4 taps, image 7: K = 4, the image path's inter taps start at its 4th (7 - 4 = 3).
        let c = IisanConfig {
            text_taps: Some(vec![3, 4, 5, 6]),
            ..Default::default()
        }
        .with_depths(Some(7), Some(13));
        let p = c.tap_plan();
        assert_eq!((p.inter(), p.inter_start()), (4, (0, 3)));
        assert_eq!(
            (p.init, p.lead(), p.gathered(&[3, 4])),
            (None, 0, vec![3, 4])
        );
    }

    /// Hand-derived from the rule (state 0 and every ceil(L / 6)-th state): L = 12 -> step 2,
    /// 7 taps; L = 6 -> step 1, 7 taps; L = 3 -> every state; L = 24 -> step 4; L = 8 -> step 2,
    /// 5 taps. An explicit list is kept whatever the depth.
    #[test]
    fn default_taps_follow_the_towers_depth_and_explicit_lists_stay() {
        assert_eq!(default_taps(13), [0, 2, 4, 6, 8, 10, 12]);
        assert_eq!(default_taps(7), [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(default_taps(4), [0, 1, 2, 3]);
        assert_eq!(default_taps(25), [0, 4, 8, 12, 16, 20, 24]);
        assert_eq!(default_taps(9), [0, 2, 4, 6, 8]);
        // 28 layers: step ceil(28 / 6) = 5 reaches 25; the last state 28 is added
        assert_eq!(default_taps(29), [0, 5, 10, 15, 20, 25, 28]);
        let c = IisanConfig {
            text_taps: Some(vec![1, 3]),
            ..Default::default()
        };
        let r = c.with_depths(Some(13), Some(13));
        assert_eq!(r.text_taps, Some(vec![1, 3]));
        assert_eq!(r.image_taps, Some(vec![0, 2, 4, 6, 8, 10, 12]));
        assert_eq!(c.with_depths(None, None).image_taps, None);
    }
}
