//! Records the git revision the binary was built from (run directories cite it).
use std::path::Path;
use std::process::Command;

/// `git args`: its output when it succeeds. GIT_OPTIONAL_LOCKS=0 keeps `git status` from
/// writing a refreshed `.git/index`, which would make this script (and so the whole crate)
/// run again on the next build.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=IISAN_GIT_REV={rev}{suffix}");
    for p in [".git/HEAD", ".git/index", "src"] {
        if Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
