//! The preprocessing flags shared by `data stats`, `data export` and `encode` (they must match
//! between `encode` and `train`).

use clap::Args;

use iisan::data::{DataOptions, MissingTitle};

/// The preprocessing flags.
#[derive(Args)]
pub(crate) struct PrepArgs {
    /// Users with fewer interactions are dropped.
    #[arg(long, default_value_t = 5)]
    pub(crate) min_seq_len: usize,
    /// User-encoder positions; each user keeps its last max_seq_len + 3 interactions.
    #[arg(long, default_value_t = 10)]
    pub(crate) max_seq_len: usize,
    /// Keep items without a title (with an empty text) instead of failing.
    #[arg(long)]
    pub(crate) keep_missing_titles: bool,
}

impl PrepArgs {
    pub(crate) fn options(&self) -> DataOptions {
        let missing_title = if self.keep_missing_titles {
            MissingTitle::Empty
        } else {
            MissingTitle::Error
        };
        DataOptions {
            min_seq_len: self.min_seq_len,
            max_seq_len: self.max_seq_len,
            missing_title,
        }
    }
}
