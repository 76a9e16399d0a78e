//! An import's input, line by line: gzip or plain (recognised by the first two bytes, not the
//! name), with progress reports of the bytes read and the lines per second, the file's
//! SHA-256 taken in the same pass, and the `--skip-bad-lines` policy ([`BadLines`]).
//!
//! [`map_lines`] is a pipeline of threads joined by bounded channels, so memory does not grow
//! with the file and parsing uses every core: a reader (file blocks of 1 MiB, hashed as they
//! pass), a splitter (gunzip, cut into chunks of whole lines), parse workers (one per core,
//! each chunk's lines through `parse`), and the calling thread, which takes the chunks back in
//! file order and hands each line's result to `each`. Written here because no maintained crate
//! does order-preserving parallel line parsing over a stream (rayon's `par_bridge` loses the
//! order; the lines have to stay in file order for the tie rule and the first-appearance ids).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::Source;
use super::line_bound::{MAX_LINE, read_line_bounded};
use crate::error::{Error, Result};
use crate::progress::{Reporter, Task, Unit};

/// Block size of file reads and of the decoder's buffer.
const BLOCK: usize = 1 << 20;
/// A chunk handed to a parse worker holds whole lines and at least this many bytes.
const CHUNK: usize = 256 << 10;

/// The reader thread: `path`'s blocks to `tx`, hashed and counted on the bar as they pass.
/// Returns the file as a [`Source`] once it is read to the end (or `None` when the receiver
/// stopped early).
fn read_blocks(
    path: &Path,
    mut file: std::fs::File,
    bar: &Task,
    tx: SyncSender<std::io::Result<Vec<u8>>>,
) -> Option<Source> {
    let (mut h, mut bytes) = (Sha256::new(), 0u64);
    loop {
        let mut buf = vec![0u8; BLOCK];
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                h.update(&buf);
                bytes += n as u64;
                bar.advance(n as u64);
                tx.send(Ok(buf)).ok()?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Err(e));
                return None;
            }
        }
    }
    Some(Source {
        path: path.to_path_buf(),
        sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        bytes,
    })
}

/// The blocks of [`read_blocks`] as a byte stream.
struct Blocks {
    rx: Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for Blocks {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(block) => (self.cur, self.pos) = (block?, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Whole lines for a worker: the chunk's number, its first line's number, the bytes.
struct Chunk {
    seq: u64,
    first_line: u64,
    bytes: Vec<u8>,
}

/// A parsed chunk: its number and its lines' `(number, result of parse)`.
type Parsed<T> = (u64, Vec<(u64, T)>);

/// The splitter thread: gunzip when the stream starts with gzip's magic bytes, cut into chunks.
/// Returns the number of lines; a read or gunzip error goes to `errors` with the number of the
/// chunk it cut short.
fn split(
    path: &Path,
    blocks: Blocks,
    chunks: SyncSender<Chunk>,
    errors: SyncSender<(u64, Error)>,
) -> u64 {
    let mut raw = BufReader::with_capacity(BLOCK, blocks);
    let gz = raw.fill_buf().map(|b| b.starts_with(&[0x1f, 0x8b]));
    let mut lines: Box<dyn BufRead> = match gz {
        Ok(true) => Box::new(BufReader::with_capacity(
            BLOCK,
            flate2::bufread::MultiGzDecoder::new(raw),
        )),
        _ => Box::new(raw),
    };
    let (mut seq, mut n) = (0u64, 0u64);
    let mut bytes = Vec::with_capacity(CHUNK + (64 << 10));
    let mut first_line = 1;
    loop {
        let got = read_line_bounded(&mut *lines, &mut bytes, MAX_LINE);
        let end = match got {
            Ok(0) => true,
            Ok(_) => {
                n += 1;
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let _ = errors.send((seq, Error::line(path, n as usize + 1, e.to_string())));
                return n;
            }
            Err(e) => {
                let e = Error::file(path, format!("after line {n}: {e}"));
                let _ = errors.send((seq, e));
                return n;
            }
        };
        if (end && !bytes.is_empty()) || bytes.len() >= CHUNK {
            let full = std::mem::replace(&mut bytes, Vec::with_capacity(CHUNK + (64 << 10)));
            if chunks
                .send(Chunk {
                    seq,
                    first_line,
                    bytes: full,
                })
                .is_err()
            {
                return n;
            }
            (seq, first_line) = (seq + 1, n + 1);
        }
        if end {
            return n;
        }
    }
}

/// The lines of `chunk` through `parse`, blank lines left out, line breaks removed.
fn parse_chunk<T>(chunk: &Chunk, parse: &(impl Fn(u64, &[u8]) -> T + Sync)) -> Vec<(u64, T)> {
    let mut out = Vec::new();
    let mut body = chunk.bytes.as_slice();
    if body.last() == Some(&b'\n') {
        body = &body[..body.len() - 1];
    }
    for (k, mut line) in body.split(|&b| b == b'\n').enumerate() {
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            let n = chunk.first_line + k as u64;
            out.push((n, parse(n, line)));
        }
    }
    out
}

/// What [`map_lines`] read.
#[derive(Debug, Clone)]
pub struct LinesRead {
    /// Lines, blank ones included (the last line number).
    pub lines: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// The file, with the SHA-256 of its bytes (compressed bytes for a gzip file).
    pub source: Source,
}

/// Parse every non-blank line of `path` (1-based numbers, line breaks removed) with `parse` on
/// worker threads, and hand the results to `each` in file order on this thread; the first error
/// `each` returns stops the read, and so does a stop asked for through `progress` (between
/// chunks: [`crate::error::Error::Interrupted`]). `progress` is told the bytes read (a task
/// named `label`) and the lines per second.
pub fn map_lines<T: Send>(
    path: &Path,
    label: &str,
    progress: &Reporter,
    parse: impl Fn(u64, &[u8]) -> T + Sync,
    mut each: impl FnMut(u64, T) -> Result<()>,
) -> Result<LinesRead> {
    let t0 = Instant::now();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let pb = progress.task(label, Unit::Bytes, len, 0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let r = std::thread::scope(|s| {
        let (block_tx, block_rx) = sync_channel(4);
        let reader = {
            let pb = &pb;
            s.spawn(move || read_blocks(path, file, pb, block_tx))
        };
        let (chunk_tx, chunk_rx) = sync_channel::<Chunk>(2 * workers);
        let (out_tx, out_rx) = sync_channel::<Parsed<T>>(2 * workers);
        let (err_tx, err_rx) = sync_channel::<(u64, Error)>(1);
        let blocks = Blocks {
            rx: block_rx,
            cur: Vec::new(),
            pos: 0,
        };
        let splitter = s.spawn(move || split(path, blocks, chunk_tx, err_tx));
        let chunk_rx = Arc::new(Mutex::new(chunk_rx));
        for _ in 0..workers {
            let (rx, tx, parse) = (chunk_rx.clone(), out_tx.clone(), &parse);
            s.spawn(move || {
                loop {
                    // the lock is held for the wait only, not the parse
                    let next = rx.lock().expect("lock").recv();
                    let Ok(chunk) = next else { return };
                    if tx.send((chunk.seq, parse_chunk(&chunk, parse))).is_err() {
                        return;
                    }
                }
            });
        }
        // only the workers may hold the chunk receiver and the result sender: when `each`
        // fails, the workers' sends fail, they stop, and the splitter's send fails in turn
        drop((chunk_rx, out_tx));
        let r = consume(out_rx, (&pb, progress, path), t0, &mut each);
        let lines = splitter.join().expect("splitter");
        // a stream cut short ends the read once every chunk before the cut was handled
        if let Ok((seq, e)) = err_rx.try_recv()
            && r.as_ref().is_ok_and(|&next| next >= seq)
        {
            return Err(e);
        }
        r?;
        let source = reader
            .join()
            .expect("reader")
            .ok_or_else(|| Error::file(path, "the file could not be read to its end"))?;
        Ok(LinesRead {
            lines,
            seconds: t0.elapsed().as_secs_f64(),
            source,
        })
    });
    pb.finish();
    r
}

/// Take parsed chunks back in order and hand their lines to `each`; returns the number of
/// chunks handled.
fn consume<T>(
    rx: Receiver<Parsed<T>>,
    (pb, progress, path): (&Task, &Reporter, &Path),
    t0: Instant,
    each: &mut impl FnMut(u64, T) -> Result<()>,
) -> Result<u64> {
    let (mut next, mut pending) = (0u64, BTreeMap::new());
    for (seq, chunk) in rx {
        progress.check(|| format!("reading {} stopped; nothing was written", path.display()))?;
        pending.insert(seq, chunk);
        while let Some(chunk) = pending.remove(&next) {
            next += 1;
            let mut last = 0;
            for (n, t) in chunk {
                each(n, t)?;
                last = n;
            }
            let rate = last as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            pb.message(&format!("{last} lines, {:.0}k lines/s", rate / 1e3));
        }
    }
    Ok(next)
}

/// [`map_lines`] with the line's bytes handed to `each` as they are (for readers whose every
/// line depends on the one before, like a header).
pub fn for_each_line(
    path: &Path,
    label: &str,
    progress: &Reporter,
    mut each: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<LinesRead> {
    map_lines(path, label, progress, |_, l| l.to_vec(), |n, l| each(n, &l))
}

/// The `--skip-bad-lines` policy: a bad line is an error, or with `skip` a count.
#[derive(Debug, Clone, Copy, Default)]
pub struct BadLines {
    /// Leave bad lines out (and count them) instead of stopping at the first.
    pub skip: bool,
    /// Bad lines left out so far.
    pub count: usize,
}

impl BadLines {
    /// A policy that skips or not.
    pub fn new(skip: bool) -> BadLines {
        BadLines { skip, count: 0 }
    }

    /// Pass `r` through, or with `skip` turn an error into a count and `None`.
    pub fn handle<T>(&mut self, r: Result<T>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(_) if self.skip => {
                self.count += 1;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// `line` as UTF-8, or an error at `path:n`.
pub fn utf8<'a>(path: &Path, n: u64, line: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(line).map_err(|e| Error::line(path, n as usize, format!("not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The same three lines, plain and gzipped, with CRLF and a blank line: both read as lines
    /// 1, 2 and 4 (3 is blank), and an error from the callback stops the read.
    #[test]
    fn plain_and_gzip_read_the_same_lines_with_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"a 1\r\nb 2\n  \nc 3";
        let plain = dir.path().join("x.txt");
        std::fs::write(&plain, text).unwrap();
        let gz = dir.path().join("x.txt.anything");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        for p in [&plain, &gz] {
            let mut got = Vec::new();
            let r = for_each_line(p, "x", &Reporter::silent(), |n, l| {
                got.push((n, String::from_utf8(l.to_vec()).unwrap()));
                Ok(())
            })
            .unwrap();
            assert_eq!(
                got,
                [(1, "a 1".to_string()), (2, "b 2".into()), (4, "c 3".into())]
            );
            assert_eq!(r.lines, 4);
        }
        let e = for_each_line(&plain, "x", &Reporter::silent(), |n, _| {
            if n == 2 {
                Err(Error::line(&plain, 2, "bad"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(e.to_string().contains("x.txt:2: bad"), "{e}");
    }

    /// A file of many chunks: an error from `each` on an early line, and a gzip stream cut
    /// short, each end the read with that error (every thread of the pipeline stops) instead
    /// of hanging on a full channel; a whole read sees every line once, in order.
    #[test]
    fn errors_stop_a_long_read_and_a_whole_read_keeps_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("long.txt");
        let text: String = (1..=200_000).map(|i| format!("line {i:>20}\n")).collect();
        assert!(text.len() > 16 * CHUNK);
        std::fs::write(&plain, &text).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = plain.clone();
        std::thread::spawn(move || {
            let r = map_lines(
                &p,
                "x",
                &Reporter::silent(),
                |n, _| n,
                |n, _| {
                    if n == 10 {
                        Err(Error::line(&p, 10, "stop"))
                    } else {
                        Ok(())
                    }
                },
            );
            tx.send(r.map(|_| ())).unwrap();
        });
        let r = rx.recv_timeout(std::time::Duration::from_secs(20));
        let e = r.expect("the read hung after an error").unwrap_err();
        assert!(e.to_string().ends_with("long.txt:10: stop"), "{e}");
        let mut next = 1;
        let read = map_lines(
            &plain,
            "x",
            &Reporter::silent(),
            |n, l| (n, l.len()),
            |n, (m, len)| {
                assert_eq!((n, m, len), (next, next, 25));
                next += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!((read.lines, next), (200_000, 200_001));
        let gz = dir.path().join("cut.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        let bytes = enc.finish().unwrap();
        std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
        let e = for_each_line(&gz, "x", &Reporter::silent(), |_, _| Ok(())).unwrap_err();
        assert!(e.to_string().contains("cut.gz: after line "), "{e}");
    }

    /// Counts the bytes it is told about; asks to stop once more than `stop_after` are read.
    struct StopAfter {
        read: std::sync::atomic::AtomicU64,
        stop_after: u64,
    }

    impl crate::progress::Progress for StopAfter {
        fn advance(&self, n: u64) {
            self.read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
        fn cancelled(&self) -> bool {
            self.read.load(std::sync::atomic::Ordering::Relaxed) > self.stop_after
        }
    }

    /// 200,000 lines of 25 bytes (5 MB, 5 blocks of 1 MiB): a reporter that asks to stop after
    /// the first block ends the read with Interrupted before the last line; one that never
    /// asks is told every byte of the file.
    #[test]
    fn a_stop_asked_for_ends_the_read_and_every_byte_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (1..=200_000).map(|i| format!("{i:0>24}\n")).collect();
        let path = dir.path().join("many.txt");
        std::fs::write(&path, &text).unwrap();
        let stop = std::sync::Arc::new(StopAfter {
            read: 0.into(),
            stop_after: 1 << 20,
        });
        let r = Reporter::shared(stop.clone());
        let mut last = 0;
        let e = for_each_line(&path, "x", &r, |n, _| {
            last = n;
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(e, Error::Interrupted(_)), "{e}");
        assert!(last < 200_000, "read to the end: {last}");
        let all = std::sync::Arc::new(StopAfter {
            read: 0.into(),
            stop_after: u64::MAX,
        });
        let read = for_each_line(&path, "x", &Reporter::shared(all.clone()), |_, _| Ok(()));
        assert_eq!(read.unwrap().lines, 200_000);
        let told = all.read.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(told, text.len() as u64);
    }

    #[test]
    fn bad_lines_are_errors_or_counts() {
        let e = || Err::<(), _>(Error::Config("x".into()));
        assert!(BadLines::new(false).handle(e()).is_err());
        let mut b = BadLines::new(true);
        assert_eq!(b.handle(e()).unwrap(), None);
        assert_eq!(b.handle(Ok(3)).unwrap(), Some(3));
        assert_eq!(b.count, 1);
    }
}
