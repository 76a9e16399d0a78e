//! `iisan recommend RUN`: [`iisan::Run::recommend`] for a history (or a file of histories, one
//! per line, answered as JSON Lines).

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use iisan::api::{Run, Scored};
use iisan::error::{Error, Result};

/// `iisan recommend` arguments.
#[derive(Args)]
pub(crate) struct RecommendArgs {
    /// The run directory (config.toml, best.safetensors, items.safetensors, item_ids.txt).
    run: PathBuf,
    /// One history: item ids, oldest first, separated by spaces.
    #[arg(
        long,
        required_unless_present = "histories",
        conflicts_with = "histories"
    )]
    history: Option<String>,
    /// A file with one history per line; prints one JSON object per line, in order.
    #[arg(long)]
    histories: Option<PathBuf>,
    /// Items to recommend.
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// Leave out the items of the history.
    #[arg(long)]
    exclude_history: bool,
    /// Print JSON instead of a table (always for --histories).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    ranking: super::Ranking,
}

fn as_json(run: &Run, items: &[Scored]) -> serde_json::Value {
    let list: Vec<_> = items
        .iter()
        .map(|s| json!({"id": run.item_id(s.item), "score": s.score}))
        .collect();
    json!({ "items": list })
}

/// `iisan recommend`.
pub(crate) fn recommend(a: RecommendArgs) -> Result<()> {
    if a.k == 0 {
        return Err(Error::Input("-k must be at least 1".into()));
    }
    let run = Run::open_with(&a.run, a.ranking.mode())?;
    if let Some(h) = &a.history {
        let keys: Vec<&str> = h.split_whitespace().collect();
        if keys.is_empty() {
            return Err(Error::Input("--history is empty".into()));
        }
        let rows = run.rows(&keys)?;
        let top = run.recommend_rows(&[rows], a.k, a.exclude_history)?;
        if a.json {
            println!("{}", as_json(&run, &top[0]));
        } else {
            println!("rank  score     item");
            for (r, s) in top[0].iter().enumerate() {
                let id = run.item_id(s.item).unwrap_or_default();
                println!("{:>4}  {:>8.4}  {id}", r + 1, s.score);
            }
        }
        return Ok(());
    }
    let path = a.histories.expect("clap: --history or --histories");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut histories = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let keys: Vec<&str> = line.split_whitespace().collect();
        if keys.is_empty() {
            return Err(Error::line(&path, i + 1, "empty history"));
        }
        let rows = run
            .rows(&keys)
            .map_err(|e| Error::line(&path, i + 1, e.to_string()))?;
        histories.push(rows);
    }
    for top in run.recommend_rows(&histories, a.k, a.exclude_history)? {
        println!("{}", as_json(&run, &top));
    }
    Ok(())
}
