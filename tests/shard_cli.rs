//! Sharded encoding end to end (docs/SHARDING.md): three shards of a 100-item catalogue run as
//! three concurrent processes through the Slurm array script, merged by the merge script, equal
//! the single run's caches byte for byte; reruns change nothing; the merge's refusals.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{iisan, model_dir, one_line_exit_2, small_synth, stderr, stdout};

/// `--batch 2`: windows of 32 items, so the catalogue's 3 to 4 windows are cut into three
/// shards of whole windows, and the text batches of 2 are sorted within each window.
const BATCH: &str = "2";

/// The slices the three shards hold (`first..end`) of the dataset at `dir`: `Shard::plan`,
/// whose cut its unit test works through by hand.
fn slices(dir: &Path) -> Vec<String> {
    let data = iisan::data::Dataset::load(dir, &Default::default()).unwrap();
    (0..3)
        .map(|index| {
            let spec = iisan::cache::ShardSpec { index, count: 3 };
            let s = iisan::cache::Shard::plan(spec, data.num_items(), 32);
            format!("{}..{}", s.first, s.end())
        })
        .collect()
}

/// Run a `deploy/slurm` script with bash as Slurm would (settings in the environment).
fn slurm(script: &str, cwd: &Path, env: &[(&str, String)]) -> Command {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/slurm")
        .join(script);
    let mut c = Command::new("bash");
    c.arg(path)
        .current_dir(cwd)
        .env("IISAN", env!("CARGO_BIN_EXE_iisan"))
        .env("DATASET", "d")
        .env("BATCH", BATCH)
        .env("IMAGE_SIZE", "112")
        .env("TEXT_MODEL", model_dir("minilm"))
        .env("IMAGE_MODEL", model_dir("dinov2-small"));
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn ok(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}", stderr(o));
    stdout(o)
}

/// The three array tasks at once, each a separate process with one thread; each says which
/// slice of `slices` it encoded.
fn encode_shards(cwd: &Path, out: &str, slices: &[String]) {
    let children: Vec<_> = (0..3)
        .map(|i| {
            slurm(
                "encode-shards.sbatch",
                cwd,
                &[
                    ("OUT", out.into()),
                    ("SLURM_ARRAY_TASK_ID", i.to_string()),
                    ("SLURM_ARRAY_TASK_MIN", "0".into()),
                    ("SLURM_ARRAY_TASK_COUNT", "3".into()),
                    ("SLURM_CPUS_PER_TASK", "1".into()),
                ],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run the array script")
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        let s = ok(&o, &format!("shard {i}"));
        let items = &slices[i];
        assert!(
            s.contains(&format!("text (shard {i}/3, items {items})")),
            "{s}"
        );
    }
}

#[test]
fn three_shards_merged_equal_a_single_run_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = small_synth(dir, "d", 40, 100);
    let slices = slices(&data);
    println!("shards of {}: {slices:?}", data.display());
    let (text, image) = (model_dir("minilm"), model_dir("dinov2-small"));
    let single = iisan(
        dir,
        &[
            "encode",
            "--dataset",
            "d",
            "--out",
            "single",
            "--batch",
            BATCH,
            "--image-size",
            "112",
            "--quiet",
            "--text-model",
            text.to_str().unwrap(),
            "--image-model",
            image.to_str().unwrap(),
        ],
    );
    ok(&single, "single run");
    encode_shards(dir, "sharded", &slices);
    let m = slurm("merge.sbatch", dir, &[("OUT", "sharded".into())])
        .output()
        .unwrap();
    let s = ok(&m, "merge");
    assert!(s.contains("text  3 shards") && s.contains("written"), "{s}");
    for f in ["text.hsc", "image.hsc"] {
        let (a, b) = (dir.join("single").join(f), dir.join("sharded").join(f));
        let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        assert!(a == b, "{f}: merged shards differ from the single run");
        println!("{f}: {} bytes, identical to the single run", a.len());
    }
    // a rerun of a shard and of the merge: nothing to do
    let again = slurm(
        "encode-shards.sbatch",
        dir,
        &[
            ("OUT", "sharded".into()),
            ("SLURM_ARRAY_TASK_ID", "1".into()),
            ("SLURM_ARRAY_TASK_COUNT", "3".into()),
        ],
    )
    .output()
    .unwrap();
    let s = ok(&again, "shard rerun");
    let want = format!("text (shard 1/3, items {}) cache is up to date", slices[1]);
    assert!(s.contains(&want), "{s}");
    let s = ok(&iisan(dir, &["cache", "merge", "sharded"]), "merge rerun");
    assert!(s.contains("is up to date") && !s.contains("written"), "{s}");
    refusals(dir);
}

/// A missing shard, a shard encoded with other settings, a foreign file where the cache goes.
fn refusals(dir: &Path) {
    let sharded = dir.join("sharded");
    let shard1 = sharded.join("text.shard-1-of-3.hsc");
    std::fs::rename(&shard1, dir.join("aside.hsc")).unwrap();
    let o = iisan(dir, &["cache", "merge", "sharded"]);
    one_line_exit_2(&o, &["text.shard-1-of-3.hsc: missing", "--shard 1/3"]);
    // shard 1 again, with titles cut at 20 tokens
    let text = model_dir("minilm");
    let o = iisan(
        dir,
        &[
            "encode",
            "--dataset",
            "d",
            "--out",
            "sharded",
            "--batch",
            BATCH,
            "--quiet",
            "--max-tokens",
            "20",
            "--shard",
            "1/3",
            "--text-model",
            text.to_str().unwrap(),
        ],
    );
    ok(&o, "shard 1 with 20 tokens");
    let o = iisan(dir, &["cache", "merge", "sharded"]);
    one_line_exit_2(&o, &["text.shard-1-of-3.hsc", "was encoded differently"]);
    std::fs::rename(dir.join("aside.hsc"), &shard1).unwrap();
    // a file that is not a cache where the merged cache goes is not replaced
    let target = sharded.join("text.hsc");
    std::fs::write(&target, "my notes").unwrap();
    let o = iisan(dir, &["cache", "merge", "sharded"]);
    one_line_exit_2(&o, &["text.hsc", "is not an iisan cache: not replaced"]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "my notes");
}
