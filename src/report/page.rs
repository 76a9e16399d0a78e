//! The HTML of the report: escaping, tables, sections and the self-contained document around
//! them (styles inline, charts inline SVG, no scripts, no links out), so the one file reads the
//! same offline, attached to a mail, or years later.

use std::fmt::Write;

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One table cell: escaped text, optionally emphasised (the best value of its column).
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// The text (escaped when written).
    pub text: String,
    /// Written bold.
    pub strong: bool,
    /// Right-aligned (numbers).
    pub number: bool,
}

impl Cell {
    /// A text cell.
    pub fn text(t: impl Into<String>) -> Cell {
        Cell {
            text: t.into(),
            ..Cell::default()
        }
    }

    /// A number cell.
    pub fn number(t: impl Into<String>) -> Cell {
        Cell {
            text: t.into(),
            number: true,
            ..Cell::default()
        }
    }
}

/// An HTML table: a header row and rows of cells; rows may carry a class (`differs`).
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column headings.
    pub head: Vec<String>,
    /// Rows: a class (empty for none) and the cells.
    pub rows: Vec<(&'static str, Vec<Cell>)>,
}

impl Table {
    /// A table with these headings.
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row.
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(("", cells));
    }

    /// Mark the largest number of each column in `cols` bold (ties: all of them), where the
    /// column holds more than one number.
    pub fn bold_max(&mut self, cols: impl IntoIterator<Item = usize>) {
        for c in cols {
            let vals: Vec<Option<f64>> = self
                .rows
                .iter()
                .map(|(_, r)| r.get(c).and_then(|x| x.text.parse::<f64>().ok()))
                .collect();
            let max = vals
                .iter()
                .flatten()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            if vals.iter().flatten().count() < 2 {
                continue;
            }
            for ((_, r), v) in self.rows.iter_mut().zip(&vals) {
                if *v == Some(max) {
                    r[c].strong = true;
                }
            }
        }
    }

    /// The table's HTML.
    pub fn html(&self) -> String {
        let mut s = String::from("<table>\n<thead><tr>");
        for h in &self.head {
            let _ = write!(s, "<th>{}</th>", escape(h));
        }
        s.push_str("</tr></thead>\n<tbody>\n");
        for (class, row) in &self.rows {
            if class.is_empty() {
                s.push_str("<tr>");
            } else {
                let _ = write!(s, "<tr class=\"{class}\">");
            }
            for c in row {
                let text = escape(&c.text);
                let text = if c.strong {
                    format!("<strong>{text}</strong>")
                } else {
                    text
                };
                let class = if c.number { " class=\"num\"" } else { "" };
                let _ = write!(s, "<td{class}>{text}</td>");
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</tbody>\n</table>\n");
        s
    }
}

/// A section: its anchor id, heading and body HTML.
pub struct Section {
    /// The anchor (`settings`, `metrics`, ...).
    pub id: &'static str,
    /// The heading.
    pub title: String,
    /// The body, already HTML.
    pub body: String,
}

/// The styles: system fonts, readable tables, figures that wrap on narrow screens.
const STYLE: &str = "body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:24px auto;max-width:1240px;\
color:#222;padding:0 16px;line-height:1.45}h1{font-size:26px}h2{font-size:21px;border-bottom:1px solid #ccc;\
padding-bottom:4px;margin-top:36px}h3{font-size:17px}table{border-collapse:collapse;margin:8px 0 16px;\
font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}td.num{text-align:right;\
font-variant-numeric:tabular-nums}thead th{background:#f0f0f0}tr.differs td{background:#fff6d6}\
.charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0 0 16px}figcaption{font-size:14px;color:#444}\
.note{color:#555;font-size:14px}nav a{margin-right:14px}svg{max-width:100%;height:auto}";

/// The whole document: `title`, a line under it, a table of contents and the sections.
pub fn document(title: &str, subtitle: &str, sections: &[Section]) -> String {
    let mut s =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str("<meta name=\"generator\" content=\"iisan report\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = write!(
        s,
        "<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    );
    let _ = write!(
        s,
        "<h1>{}</h1>\n<p class=\"note\">{}</p>\n<nav>",
        escape(title),
        escape(subtitle)
    );
    for sec in sections {
        let _ = write!(s, "<a href=\"#{}\">{}</a>", sec.id, escape(&sec.title));
    }
    s.push_str("</nav>\n");
    for sec in sections {
        let _ = write!(
            s,
            "<section id=\"{}\">\n<h2>{}</h2>\n{}</section>\n",
            sec.id,
            escape(&sec.title),
            sec.body
        );
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// The bytes at the start of a page within which [`document`] writes its generator mark.
pub const MARK_WITHIN: usize = 400;

/// Whether `head` (the start of a file, at least its first [`MARK_WITHIN`] bytes where it has
/// them) is a page [`document`] wrote: the only kind of file a report may replace.
pub fn is_report(head: &[u8]) -> bool {
    let head = &head[..head.len().min(MARK_WITHIN)];
    let mark: &[u8] = b"<meta name=\"generator\" content=\"iisan report\">";
    head.starts_with(b"<!DOCTYPE html>") && head.windows(mark.len()).any(|w| w == mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_marks_the_best_of_a_column() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let mut t = Table::new(&["run", "HR@10"]);
        t.row(vec![Cell::text("a<b"), Cell::number("0.0500")]);
        t.row(vec![Cell::text("c"), Cell::number("0.0700")]);
        t.row(vec![Cell::text("d"), Cell::number("—")]);
        t.bold_max([1]);
        let h = t.html();
        assert!(
            h.contains("<td>a&lt;b</td><td class=\"num\">0.0500</td>"),
            "{h}"
        );
        assert!(
            h.contains("<strong>0.0700</strong>") && !h.contains("<strong>0.0500"),
            "{h}"
        );
        let page = document(
            "r",
            "s",
            &[Section {
                id: "m",
                title: "M".into(),
                body: h,
            }],
        );
        assert!(is_report(page.as_bytes()));
        // the page's head alone is enough: the mark lies within MARK_WITHIN bytes
        assert!(is_report(&page.as_bytes()[..MARK_WITHIN]));
        assert!(!is_report(b"{\"method\": \"iisan\"}"));
        assert!(!is_report(
            b"<!DOCTYPE html><html><body>someone else's page</body></html>"
        ));
    }
}
