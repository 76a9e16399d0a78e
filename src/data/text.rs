//! Title tokenisation for the text tower (docs/MODEL.md section 2): lower-cased WordPiece from the
//! model folder's `tokenizer.json`, `[CLS] ... [SEP]`, at most `max_tokens` (30) tokens, batches
//! padded with id 0 to their longest member, with an attention mask.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{Error, Result};

/// Bytes of a title read before tokenising: far more than any kept tokens need (tokens are
/// cut at the configured maximum, at most a few hundred bytes of text), and a bound on the
/// memory one item can take.
pub const MAX_TITLE_BYTES: usize = 8192;

/// A tokenised batch, row-major `[batch, len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Token ids (padding 0).
    pub ids: Vec<u32>,
    /// 1 for tokens, 0 for padding.
    pub mask: Vec<f32>,
    /// Rows.
    pub batch: usize,
    /// Columns (longest row).
    pub len: usize,
}

impl TokenBatch {
    /// Right-pad token rows with id 0 to the longest row, with the matching attention mask.
    pub fn pad(rows: &[&[u32]]) -> TokenBatch {
        let len = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        Self::pad_to(rows, len, 0)
    }

    /// Right-pad token rows with id `pad` to `len` (at least the longest row), with the
    /// matching attention mask.
    pub fn pad_to(rows: &[&[u32]], len: usize, pad: u32) -> TokenBatch {
        let len = rows.iter().map(|r| r.len()).fold(len, usize::max);
        let mut ids = Vec::with_capacity(rows.len() * len);
        let mut mask = Vec::with_capacity(rows.len() * len);
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(pad, len - r.len()));
            mask.extend(std::iter::repeat_n(1.0, r.len()));
            mask.extend(std::iter::repeat_n(0.0, len - r.len()));
        }
        TokenBatch {
            ids,
            mask,
            batch: rows.len(),
            len,
        }
    }
}

/// Whether the titles of the text folder `dir` are lower-cased: BERT-family folders (or a
/// folder whose `config.json` names no other `model_type`).
fn lower_cases(dir: &Path) -> bool {
    let t = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| {
            v.get("model_type")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        });
    t.is_none_or(|t| t == "bert")
}

/// The tokenizer of a text tower.
pub struct TextPrep {
    tok: Tokenizer,
    max_tokens: usize,
    lower: bool,
}

impl TextPrep {
    /// Load `dir/tokenizer.json`, truncating to `max_tokens` (special tokens included), no
    /// padding. Titles are lower-cased for BERT-family folders (the paper's preprocessing) and
    /// kept as written for the others (decoders' tokenizers are cased).
    pub fn from_model_dir(dir: &Path, max_tokens: usize) -> Result<TextPrep> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::file(
                dir,
                "not a text model folder: tokenizer.json is missing",
            ));
        }
        let mut tok = Tokenizer::from_file(&path)
            .map_err(|e| Error::file(&path, format!("cannot load tokenizer: {e}")))?;
        tok.with_padding(None);
        tok.with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(|e| Error::file(&path, format!("cannot set truncation: {e}")))?;
        Ok(TextPrep {
            tok,
            max_tokens,
            lower: lower_cases(dir),
        })
    }

    /// Whether titles are lower-cased before tokenising.
    pub fn lower_cases(&self) -> bool {
        self.lower
    }

    /// Maximum tokens per title.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Token ids of one title (lower-cased first for BERT-family towers).
    pub fn encode(&self, title: &str) -> Result<Vec<u32>> {
        // only the first tokens are kept: never lower-case and tokenise more than
        // MAX_TITLE_BYTES (a 10 MB title took 1 GB), cut at a character boundary
        let mut end = title.len().min(MAX_TITLE_BYTES);
        while !title.is_char_boundary(end) {
            end -= 1;
        }
        let enc = self
            .tok
            .encode(
                if self.lower {
                    title[..end].to_lowercase()
                } else {
                    title[..end].to_string()
                },
                true,
            )
            .map_err(|e| Error::Internal(format!("tokenizer failed on {title:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Tokenise `titles` into one right-padded batch.
    pub fn batch(&self, titles: &[&str]) -> Result<TokenBatch> {
        let rows: Vec<Vec<u32>> = titles
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<_>>()?;
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        Ok(TokenBatch::pad(&refs))
    }
}
