//! The bound on one line of a source file (docs/SECURITY.md, "Bounds"): `BufRead::read_until`
//! holds a line whole whatever its length, so a small compressed file holding one line of
//! gigabytes would be expanded into memory; [`read_line_bounded`] refuses the line as soon as
//! it passes [`MAX_LINE`].

use std::io::{BufRead, Error, ErrorKind};

/// The longest line a source file may hold, bytes (after gunzip, without its line break): the
/// largest Amazon metadata lines are below 1 MiB.
pub const MAX_LINE: usize = 16 << 20;

/// `read_until(b'\n')` that appends at most `max` bytes of one line (and its line break) to
/// `buf`: a longer line is an `InvalidData` error saying so, raised before the rest of it is
/// read. Returns the bytes read (0 at the end).
pub fn read_line_bounded(
    r: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<usize> {
    let mut taken = 0;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(taken);
        }
        let (n, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if taken + n - usize::from(done) > max {
            let msg = format!("a line longer than {} MiB, the limit of a line", max >> 20);
            return Err(Error::new(ErrorKind::InvalidData, msg));
        }
        buf.extend_from_slice(&avail[..n]);
        r.consume(n);
        taken += n;
        if done {
            return Ok(taken);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a bound of 4 bytes and a 3-byte buffer (so lines span refills): "abcd\n" (4 bytes
    /// and its break) passes whole, "ef" at the end passes without a break, "abcde" fails after
    /// reading at most the bound, and the end reads 0.
    #[test]
    fn lines_up_to_the_bound_pass_and_a_longer_one_is_refused() {
        let text: &[u8] = b"abcd\nef";
        let mut r = std::io::BufReader::with_capacity(3, text);
        let mut buf = Vec::new();
        assert_eq!(read_line_bounded(&mut r, &mut buf, 4).unwrap(), 5);
        assert_eq!(read_line_bounded(&mut r, &mut buf, 4).unwrap(), 2);
        assert_eq!(buf, b"abcd\nef");
        assert_eq!(read_line_bounded(&mut r, &mut buf, 4).unwrap(), 0);
        let mut r = std::io::BufReader::with_capacity(3, &b"abcdefgh\n"[..]);
        let mut buf = Vec::new();
        let e = read_line_bounded(&mut r, &mut buf, 4).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert!(e.to_string().contains("limit of a line"));
        assert!(buf.len() <= 4, "held {} bytes", buf.len());
    }
}
