//! A running `iisan serve` on an ephemeral loopback port, for the server's tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `iisan serve`; killed if the test fails before stopping it.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// Start `iisan serve RUN --addr 127.0.0.1:0 EXTRA...` in `cwd`; returns once it listens.
    pub fn start(cwd: &Path, run: &str, extra: &[&str]) -> Server {
        Server::start_with(cwd, run, extra, &[])
    }

    /// [`Server::start`] with environment variables `env` set.
    pub fn start_with(cwd: &Path, run: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_iisan"))
            .envs(env.iter().copied())
            .args(["serve", run, "--addr", "127.0.0.1:0"])
            .args(extra)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start iisan serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Server {
            child,
            base: addr.to_string(),
        }
    }

    /// Send `sig` (`-TERM`, `-HUP`) to the server.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, then the exit status and stderr.
    pub fn stop(mut self) -> (bool, String) {
        self.signal("-TERM");
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
