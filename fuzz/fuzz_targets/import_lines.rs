//! The import's bounded line reader (`data::import::line_bound`) on arbitrary bytes, with a
//! 7-byte buffer so lines span refills: it returns every line of at most the bound whole and
//! refuses a longer one, never a panic; what it returns is exactly the input's prefix.
#![no_main]

use iisan::data::import::line_bound::read_line_bounded;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = std::io::BufReader::with_capacity(7, data);
    let mut buf = Vec::new();
    loop {
        let start = buf.len();
        match read_line_bounded(&mut r, &mut buf, 16) {
            Ok(0) => {
                assert_eq!(buf, data, "the whole input, line by line");
                break;
            }
            Err(_) => break,
            Ok(n) => {
                assert_eq!(buf.len(), start + n);
                let line = &buf[start..];
                let content = line.strip_suffix(b"\n").unwrap_or(line);
                assert!(content.len() <= 16 && !content.contains(&b'\n'));
            }
        }
        assert!(data.starts_with(&buf));
    }
});
