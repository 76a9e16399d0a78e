//! What an id from a data file, a command line or a request may hold (docs/SECURITY.md,
//! "Names from data"). An item id names its image file (`images/<id>.<ext>`) and is written
//! into TSV files, terminals and logs, so it is checked where it enters (import, the dataset
//! reader, `items add`, `POST /v1/items`): no path separator and not `.` or `..` (it cannot
//! leave the images folder), no white space (the TSV format separates ids by it), no control
//! character (NUL, ESC, line breaks cannot reach a terminal or a file), at most
//! [`MAX_ID_BYTES`] bytes (a file name's limit on common file systems is 255). A user id is
//! never a file name: it may hold spaces, but no tab, line break or other control character.

/// The longest id, in bytes (with the longest image extension, `.jpeg`, a file name stays
/// within the 255 bytes common file systems allow).
pub const MAX_ID_BYTES: usize = 200;

/// Why `id` cannot be an item id, or `None` when it can.
pub fn item_id_problem(id: &str) -> Option<&'static str> {
    if let Some(p) = common_problem(id) {
        return Some(p);
    }
    if id.contains(char::is_whitespace) {
        return Some("holds white space");
    }
    if id.contains(['/', '\\']) {
        return Some("holds a path separator (/ or \\)");
    }
    if id == "." || id == ".." {
        return Some("is . or .., which name folders");
    }
    None
}

/// Why `id` cannot be a user id, or `None` when it can.
pub fn user_id_problem(id: &str) -> Option<&'static str> {
    common_problem(id)
}

fn common_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        return Some("is empty");
    }
    if id.len() > MAX_ID_BYTES {
        return Some("is longer than 200 bytes");
    }
    if id.contains(char::is_control) {
        return Some("holds a control character (a tab, line break, NUL, ESC, ...)");
    }
    None
}

/// `id` as it may be shown in a one-line message: control characters escaped, at most 60
/// characters.
pub fn shown(id: &str) -> String {
    let mut s: String = id.chars().take(60).flat_map(char::escape_debug).collect();
    if id.chars().count() > 60 {
        s.push('…');
    }
    format!("\"{s}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rule once, by hand: separators, dot names, control characters (NUL, ESC, newline,
    /// tab), white space, the length bound (200 bytes passes, 201 fails), and ordinary ids.
    #[test]
    fn item_ids_that_could_leave_a_folder_or_reach_a_terminal_are_refused() {
        for bad in [
            "",
            "a/b",
            "..",
            ".",
            "..\\x",
            "a\0b",
            "a\u{1b}[2Jb",
            "a\nb",
            "a\tb",
            "a b",
        ] {
            assert!(item_id_problem(bad).is_some(), "{bad:?} passed");
        }
        assert!(item_id_problem(&"x".repeat(201)).is_some());
        for good in [
            "B00X4WHP5E",
            "S0001",
            "x".repeat(200).as_str(),
            "a.b",
            "...",
            "é",
        ] {
            assert_eq!(item_id_problem(good), None, "{good:?} refused");
        }
        // user ids are never file names: spaces and slashes pass, control characters do not
        assert_eq!(user_id_problem("jane doe/1"), None);
        assert!(user_id_problem("a\u{1b}b").is_some());
        assert_eq!(shown("a\u{1b}b\0"), "\"a\\u{1b}b\\0\"");
    }
}
