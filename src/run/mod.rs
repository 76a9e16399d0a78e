//! The run directory: a self-describing record of one training run, and everything that reads
//! or writes it (training, evaluation, serving, new items, reports all go through here).
//!
//! ```text
//! runs/<name>/
//!   config.toml          the resolved configuration
//!   dataset.json         name, fingerprint, statistics, synthetic or not
//!   towers.json          the frozen towers used: absolute folder, content hash, inputs
//!   metrics.jsonl        one JSON object per epoch
//!   best.safetensors     parameters of the best validation epoch
//!   items.safetensors    the item embedding matrix `items` [N + 1, d] with those parameters
//!   item_ids.txt         the external item id of each row, one per line from row 1
//!   items.seg-*, item_ids.seg-*, items.ann.json, items-ann-*.ivf
//!                        items added since, the ANN index (`crate::catalogue`)
//!   summary.json         test metrics at the best epoch (both masks), efficiency, revision
//! ```
//!
//! [`dir`]: the directory being written (`runs/.<name>.partial/`, locked, renamed when done);
//! [`summary`]: its records; [`checkpoint`]: the exact-resume checkpoint; [`finished`]: a
//! finished run opened for evaluation or serving (its item side is [`crate::catalogue`]).

pub mod checkpoint;
pub mod depends;
pub mod dir;
pub mod finished;
pub mod summary;

pub use dir::{Interrupted, RunDir};
pub use summary::{DatasetInfo, EpochRecord, Summary};
