//! What the routes answer, as typed structs (docs/SERVING.md shows them as JSON). Fields are
//! declared in the order the answers have always listed them (alphabetical).

use serde::Serialize;

use crate::model::{Scored, ServedModel};
use crate::provenance::TowerRecord;

/// One recommended item.
#[derive(Debug, Serialize)]
pub struct ScoredItem {
    /// External id.
    pub id: String,
    /// Dot product of the user state and the item embedding.
    pub score: f32,
}

/// The answer to one history: `{"items": [...]}`, best first.
#[derive(Debug, Serialize)]
pub struct Recommendations {
    /// The items.
    pub items: Vec<ScoredItem>,
}

impl Recommendations {
    /// The ranked `items` with their ids from `model`.
    pub fn of(model: &ServedModel, items: &[Scored]) -> Recommendations {
        Recommendations {
            items: items
                .iter()
                .map(|s| ScoredItem {
                    id: model.key(s.item).to_string(),
                    score: s.score,
                })
                .collect(),
        }
    }
}

/// The answer to a batch: `{"results": [...]}`, one per history, in order.
#[derive(Debug, Serialize)]
pub struct BatchRecommendations {
    /// One answer per history.
    pub results: Vec<Recommendations>,
}

/// `POST /v1/items`.
#[derive(Debug, Serialize)]
pub struct Added {
    /// Items added.
    pub added: usize,
    /// The model generation now served.
    pub generation: u64,
    /// Items in the catalogue now.
    pub items: usize,
}

/// `POST /v1/reload`.
#[derive(Debug, Serialize)]
pub struct Reloaded {
    /// The model generation now served.
    pub generation: u64,
    /// Items in the catalogue now.
    pub items: usize,
    /// Always true.
    pub reloaded: bool,
}

/// `GET /health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// `GET /info`.
#[derive(Debug, Serialize)]
pub struct Info {
    /// Embedding width.
    pub dim: usize,
    /// The model generation served.
    pub generation: u64,
    /// Items in the catalogue.
    pub items: usize,
    /// How items are ranked: `exact`, or `ann` (its index's rows and settings).
    pub ranking: Ranking,
    /// Positions the user encoder reads.
    pub max_len: usize,
    /// The run's method.
    pub method: String,
    /// The run directory's name (not its path: clients learn nothing of the file system).
    pub run: String,
    /// The towers the run recorded, without their folders.
    pub towers: Vec<PublicTower>,
    /// The tool's version.
    pub version: &'static str,
}

/// How `GET /info` says items are ranked.
#[derive(Debug, Serialize)]
pub struct Ranking {
    /// `exact` or `ann`.
    pub mode: &'static str,
    /// Items in the ANN index (the rest, added since, are scanned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indexed: Option<usize>,
    /// Candidates re-scored exactly per query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<usize>,
    /// Lists of the index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lists: Option<usize>,
    /// Lists scanned per query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<usize>,
}

impl Ranking {
    /// How `cat` ranks.
    pub fn of(cat: &crate::catalogue::Catalogue) -> Ranking {
        let ann = cat.ann();
        Ranking {
            mode: if ann.is_some() { "ann" } else { "exact" },
            indexed: ann.map(|a| a.items()),
            candidates: ann.map(|a| a.params().candidates),
            lists: ann.map(|a| a.params().lists),
            probes: ann.map(|a| a.probes()),
        }
    }
}

/// A tower as `GET /info` shows it: what it is, not where it lies.
#[derive(Debug, Serialize)]
pub struct PublicTower {
    /// `text` or `image`.
    pub modality: String,
    /// The content hash of its folder.
    pub sha256: String,
    /// Tokens per title (text towers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Image side in pixels (image towers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    /// How a decoder text tower's token states are pooled (none: [CLS]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooling: Option<String>,
}

impl From<&TowerRecord> for PublicTower {
    fn from(t: &TowerRecord) -> PublicTower {
        PublicTower {
            modality: t.modality.clone(),
            sha256: t.sha256.clone(),
            max_tokens: t.max_tokens,
            image_size: t.image_size,
            pooling: t.pooling.clone(),
        }
    }
}
