//! A replica following its run directory (`iisan serve --follow`): one process writes the
//! catalogue (items added, a compaction, an index build), any number of servers read the same
//! directory, each checking its commit points every few seconds and swapping in what changed,
//! without a restart. Items appended cost a replica the segment's size to pick up; a new base
//! or index is opened in full (docs/SERVING.md, "Replicas").

use std::sync::Arc;
use std::time::Duration;

use super::state::AppState;

/// Check `state`'s run directory every `every` and serve what changed; errors (a writer in
/// the middle of a rename, a file being replaced) are printed once and retried.
pub fn follow(state: Arc<AppState>, every: Duration) {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(every).await;
            match state.follow().await {
                Ok(Some(items)) => {
                    failing = false;
                    eprintln!(
                        "followed {}: {items} items (generation {})",
                        state.run.display(),
                        state.generation()
                    );
                }
                Ok(None) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    eprintln!("follow: cannot read the run, serving the previous catalogue: {e}");
                }
                Err(_) => {}
            }
        }
    });
}
