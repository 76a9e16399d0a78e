//! The lines of the Amazon review datasets (McAuley Lab), one JSON object per line, read with
//! serde into borrowed fields (no whole-line DOM; every other field is skipped unparsed into
//! values). Two editions:
//!
//! | | Amazon Reviews 2023 | Amazon 2018 |
//! |---|---|---|
//! | review: user | `user_id` | `reviewerID` |
//! | review: item | `parent_asin` (the product; `asin` is a variant) | `asin` |
//! | review: time | `timestamp`, milliseconds | `unixReviewTime`, seconds |
//! | meta: item | `parent_asin` | `asin` |
//! | meta: title | `title` | `title` |
//! | meta: image | the `images` entry with `variant == "MAIN"`, its `large` URL | the first `imageURLHighRes` URL |
//!
//! A review line's own `title` and `images` (the reviewer's) are not the item's and are
//! ignored. An image is named by its URL's last path segment (`.../I/41qfjSfqNyL.jpg` ->
//! `41qfjSfqNyL.jpg`), which is the name `wget` gives the downloaded file.

use std::borrow::Cow;

use serde::Deserialize;

/// Which edition's field names a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Edition {
    /// Amazon Reviews 2023 (`user_id`, `parent_asin`, `timestamp` in ms).
    Amazon2023,
    /// Amazon 2018 (`reviewerID`, `asin`, `unixReviewTime` in s).
    Amazon2018,
}

/// One review: who, which item, when (in the file's unit).
#[derive(Debug, Clone, PartialEq)]
pub struct Review<'a> {
    /// User id.
    pub user: Cow<'a, str>,
    /// Item id (the product: `parent_asin` in 2023).
    pub item: Cow<'a, str>,
    /// Time, as the file gives it.
    pub time: f64,
}

/// One item's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta<'a> {
    /// Item id.
    pub item: Cow<'a, str>,
    /// Title (empty when absent or null).
    pub title: Cow<'a, str>,
    /// File name of the main image, when the line names one.
    pub image: Option<String>,
}

#[derive(Deserialize)]
struct Review2023<'a> {
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    parent_asin: Cow<'a, str>,
    timestamp: f64,
}

#[derive(Deserialize)]
struct Review2018<'a> {
    #[serde(rename = "reviewerID", borrow)]
    reviewer_id: Cow<'a, str>,
    #[serde(borrow)]
    asin: Cow<'a, str>,
    #[serde(rename = "unixReviewTime")]
    unix_review_time: f64,
}

#[derive(Deserialize)]
struct Image2023<'a> {
    #[serde(default, borrow)]
    large: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    variant: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Meta2023<'a> {
    #[serde(borrow)]
    parent_asin: Cow<'a, str>,
    #[serde(default, borrow)]
    title: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    images: Option<Vec<Image2023<'a>>>,
}

#[derive(Deserialize)]
struct Meta2018<'a> {
    #[serde(borrow)]
    asin: Cow<'a, str>,
    #[serde(default, borrow)]
    title: Option<Cow<'a, str>>,
    #[serde(rename = "imageURLHighRes", default, borrow)]
    image_url_high_res: Option<Vec<Cow<'a, str>>>,
}

/// The file name an image URL downloads to: the last path segment, without query or fragment.
pub fn url_file_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let name = path.rsplit('/').next().unwrap_or("");
    (!name.is_empty() && !name.contains(':')).then(|| name.to_string())
}

/// serde_json's message without its " at line 1 column N" (every line is line 1 of its own
/// parse), with the column kept.
fn message(e: serde_json::Error) -> String {
    let s = e.to_string();
    match s.rsplit_once(" at line ") {
        Some((m, _)) => format!("{m} (column {})", e.column()),
        None => s,
    }
}

impl Edition {
    /// The review on `line`, or what is wrong with it.
    pub fn review<'a>(self, line: &'a [u8]) -> std::result::Result<Review<'a>, String> {
        match self {
            Edition::Amazon2023 => serde_json::from_slice::<Review2023>(line).map(|r| Review {
                user: r.user_id,
                item: r.parent_asin,
                time: r.timestamp,
            }),
            Edition::Amazon2018 => serde_json::from_slice::<Review2018>(line).map(|r| Review {
                user: r.reviewer_id,
                item: r.asin,
                time: r.unix_review_time,
            }),
        }
        .map_err(message)
    }

    /// The metadata on `line`, or what is wrong with it.
    pub fn meta<'a>(self, line: &'a [u8]) -> std::result::Result<Meta<'a>, String> {
        match self {
            Edition::Amazon2023 => serde_json::from_slice::<Meta2023>(line).map(|m| {
                let main = m.images.unwrap_or_default().into_iter().find(|i| {
                    i.variant.as_deref() == Some("MAIN")
                        && i.large.as_deref().is_some_and(|u| !u.is_empty())
                });
                Meta {
                    item: m.parent_asin,
                    title: m.title.unwrap_or_default(),
                    image: main.and_then(|i| url_file_name(&i.large?)),
                }
            }),
            Edition::Amazon2018 => serde_json::from_slice::<Meta2018>(line).map(|m| Meta {
                item: m.asin,
                title: m.title.unwrap_or_default(),
                image: m
                    .image_url_high_res
                    .unwrap_or_default()
                    .first()
                    .and_then(|u| url_file_name(u)),
            }),
        }
        .map_err(message)
    }

    /// The time unit's name, for the manifest.
    pub fn time_unit(self) -> &'static str {
        match self {
            Edition::Amazon2023 => "milliseconds",
            Edition::Amazon2018 => "seconds",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2023 review line as the dataset card shows it (the review's own title and images are
    /// not the item's); a 2018 line with its field names.
    #[test]
    fn review_lines_of_both_editions() {
        let l = br#"{"rating": 5.0, "title": "Great", "text": "Works \"well\"", "images": [],
            "asin": "B01", "parent_asin": "P01", "user_id": "AGK", "timestamp": 1588687728923,
            "helpful_vote": 0, "verified_purchase": true}"#;
        let r = Edition::Amazon2023.review(l).unwrap();
        assert_eq!(
            (&*r.user, &*r.item, r.time),
            ("AGK", "P01", 1588687728923.0)
        );
        let l = br#"{"overall": 5.0, "reviewerID": "A3C", "asin": "B00", "unixReviewTime": 1472688000, "style": {"Size:": "1"}}"#;
        let r = Edition::Amazon2018.review(l).unwrap();
        assert_eq!((&*r.user, &*r.item, r.time), ("A3C", "B00", 1472688000.0));
        let e = Edition::Amazon2023
            .review(br#"{"user_id": "u", "timestamp": 1}"#)
            .unwrap_err();
        assert_eq!(e, "missing field `parent_asin` (column 32)");
        let e = Edition::Amazon2023.review(b"{\"user_id\": ").unwrap_err();
        assert!(e.starts_with("EOF while parsing"), "{e}");
    }

    /// The MAIN entry is found after a non-MAIN one; a MAIN entry without `large` does not
    /// count; null images and a null title give none and empty.
    #[test]
    fn meta_lines_take_the_main_large_image_and_the_title() {
        let l = br#"{"main_category": "Beauty", "title": "Howard \"LC0008\"", "images": [
            {"thumb": "https://x/I/a._SS40_.jpg", "large": "https://x/I/a.jpg", "variant": "PT01", "hi_res": null},
            {"thumb": "https://x/I/b._SS40_.jpg", "large": "https://x/I/b.jpg?v=1", "variant": "MAIN", "hi_res": "https://x/I/c._SL1500_.jpg"}],
            "parent_asin": "P01", "details": {"Brand": "H"}}"#;
        let m = Edition::Amazon2023.meta(l).unwrap();
        assert_eq!(&*m.item, "P01");
        assert_eq!(&*m.title, "Howard \"LC0008\"");
        assert_eq!(m.image.as_deref(), Some("b.jpg"));
        let l = br#"{"parent_asin": "P02", "title": null, "images": null}"#;
        let m = Edition::Amazon2023.meta(l).unwrap();
        assert_eq!((&*m.title, m.image), ("", None));
        let l = br#"{"parent_asin": "P03", "images": [{"variant": "MAIN", "large": null}]}"#;
        assert_eq!(Edition::Amazon2023.meta(l).unwrap().image, None);
        let l = br#"{"asin": "B00", "title": "T", "imageURLHighRes": ["https://x/I/h1.jpg", "https://x/I/h2.jpg"]}"#;
        let m = Edition::Amazon2018.meta(l).unwrap();
        assert_eq!((&*m.item, &*m.title), ("B00", "T"));
        assert_eq!(m.image.as_deref(), Some("h1.jpg"));
    }

    #[test]
    fn url_file_names() {
        assert_eq!(
            url_file_name("https://m.media-amazon.com/images/I/41qfjSfqNyL.jpg").as_deref(),
            Some("41qfjSfqNyL.jpg")
        );
        assert_eq!(url_file_name("https://x/a.png#f").as_deref(), Some("a.png"));
        assert_eq!(url_file_name("https://x/"), None);
        assert_eq!(url_file_name("https:"), None);
    }
}
