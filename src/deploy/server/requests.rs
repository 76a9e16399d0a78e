//! The request bodies of `POST /v1/recommend` and `POST /v1/items`, decoded from bytes a client
//! sent (docs/SERVING.md): every malformed body is a 400 naming what is wrong, never a panic
//! (fuzzed by `fuzz/fuzz_targets/requests.rs`).

use base64::Engine;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::deploy::new_items::NewItem;

/// `POST /v1/recommend` as it arrives: one history or a batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendBody {
    history: Option<Vec<String>>,
    histories: Option<Vec<Vec<String>>>,
    #[serde(default = "default_k")]
    k: usize,
    #[serde(default)]
    exclude_history: bool,
}

fn default_k() -> usize {
    10
}

/// A decoded `POST /v1/recommend`.
#[derive(Debug, PartialEq)]
pub struct RecommendQuery {
    /// The histories (one when `single`), each oldest first.
    pub histories: Vec<Vec<String>>,
    /// Whether the body held one `history` (answered unbatched).
    pub single: bool,
    /// Items per answer (checked against the catalogue by the route).
    pub k: usize,
    /// Leave the history's own items out of the answer.
    pub exclude_history: bool,
}

/// One item of `POST /v1/items`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    id: String,
    #[serde(default)]
    title: String,
    /// The image file's bytes, base64 (standard alphabet).
    image: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemsBody {
    items: Vec<ItemBody>,
}

fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// Decode a `POST /v1/recommend` body of at most `max_batch` histories.
pub fn decode_recommend(bytes: &[u8], max_batch: usize) -> Result<RecommendQuery, ApiError> {
    let b: RecommendBody = json(bytes)?;
    let (histories, single) = match (b.history, b.histories) {
        (Some(h), None) => (vec![h], true),
        (None, Some(hs)) => (hs, false),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of history, histories",
            ));
        }
    };
    if histories.is_empty() || histories.len() > max_batch {
        return Err(ApiError::bad_request(format!(
            "histories: between 1 and {max_batch} per request, got {}",
            histories.len()
        )));
    }
    Ok(RecommendQuery {
        histories,
        single,
        k: b.k,
        exclude_history: b.exclude_history,
    })
}

/// Decode a `POST /v1/items` body of at most `max_batch` items (images from base64).
pub fn decode_items(bytes: &[u8], max_batch: usize) -> Result<Vec<NewItem>, ApiError> {
    let b: ItemsBody = json(bytes)?;
    if b.items.is_empty() || b.items.len() > max_batch {
        return Err(ApiError::bad_request(format!(
            "items: between 1 and {max_batch} per request, got {}",
            b.items.len()
        )));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut items = Vec::with_capacity(b.items.len());
    for (i, it) in b.items.into_iter().enumerate() {
        let image = match &it.image {
            Some(t) => Some(b64.decode(t).map_err(|e| {
                ApiError::bad_request(format!("item {}: image is not base64: {e}", i + 1))
            })?),
            None => None,
        };
        items.push(NewItem {
            key: it.id,
            title: it.title,
            image,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One history and a batch decode; both, neither, too many, unknown fields, bad base64 and
    /// non-JSON are 400 with the reason.
    #[test]
    fn bodies_decode_or_are_400_with_the_reason() {
        let q = decode_recommend(br#"{"history": ["a", "b"], "k": 3}"#, 2).unwrap();
        assert_eq!((q.single, q.k, q.histories.len()), (true, 3, 1));
        let q = decode_recommend(br#"{"histories": [["a"], ["b"]]}"#, 2).unwrap();
        assert_eq!((q.single, q.k, q.histories.len()), (false, 10, 2));
        for (body, want) in [
            (
                &br#"{"history": ["a"], "histories": [["a"]]}"#[..],
                "exactly one",
            ),
            (br#"{}"#, "exactly one"),
            (
                br#"{"histories": [["a"], ["b"], ["c"]]}"#,
                "between 1 and 2",
            ),
            (br#"{"history": ["a"], "kk": 1}"#, "unknown field"),
            (b"\xff\x00", "invalid JSON"),
        ] {
            let e = decode_recommend(body, 2).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.message.contains(want), "{}", e.message);
        }
        let items = decode_items(br#"{"items": [{"id": "N", "image": "aGk="}]}"#, 2).unwrap();
        assert_eq!(items[0].image.as_deref(), Some(&b"hi"[..]));
        let e = decode_items(br#"{"items": [{"id": "N", "image": "!"}]}"#, 2).unwrap_err();
        assert!(
            e.message.contains("item 1: image is not base64"),
            "{}",
            e.message
        );
    }
}
