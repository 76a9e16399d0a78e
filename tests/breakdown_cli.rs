//! `iisan eval RUN --by popularity|history|cold` on a trained run: every user in exactly one
//! bucket, every item in one popularity tier, and the overall metrics equal to the
//! user-weighted mean of the buckets' (metrics are means over users), under both masks.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn buckets_partition_the_users_and_average_to_the_overall_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 80, 40);
    train_run(t, &run_sets(&data, "r", "id"));
    for (by, names) in [
        ("popularity", &["head", "torso", "tail"][..]),
        ("history", &["<=7", "8-10", "11+"][..]),
        ("cold", &["warm", "cold"][..]),
    ] {
        let o = iisan(t, &["eval", "runs/r", "--by", by, "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let all = &v["all"];
        let users = |g: &Value| g["users"].as_u64().unwrap() as f64;
        let total: f64 = names.iter().map(|n| users(&v[*n])).sum();
        assert_eq!(total, users(all), "{by}: users in exactly one bucket");
        if by != "history" {
            let items: u64 = names.iter().map(|n| v[*n]["items"].as_u64().unwrap()).sum();
            assert_eq!(items, 40, "{by}: every item in one bucket");
        }
        for mask in ["history", "none"] {
            for metric in ["HR@10", "NDCG@10", "MRR"] {
                let weighted: f64 = names
                    .iter()
                    .map(|n| users(&v[*n]) * v[*n][mask][metric].as_f64().unwrap())
                    .sum::<f64>()
                    / users(all);
                let overall = all[mask][metric].as_f64().unwrap();
                assert!((weighted - overall).abs() < 1e-12, "{by} {mask} {metric}");
            }
        }
    }
    let o = iisan(t, &["eval", "runs/r", "--by", "popularity"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table.contains("| head    |") && table.contains("| items |"),
        "{table}"
    );
}
