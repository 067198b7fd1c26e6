//! iCalendar content lines (RFC 5545 section 3.1): what the feed writes every property
//! through, so no value can break out of its line.
//!
//! - TEXT values ([`Lines::text`]) escape `\`, `;`, `,` and line breaks (`\n`); a bare CR
//!   counts as a line break, and other control characters are dropped.
//! - Other values ([`Lines::raw`]: dates, numbers, URIs) and parameter values lose their
//!   control characters; parameter values also lose `"` and are quoted when they hold
//!   `:`, `;` or `,`.
//! - Every line is folded at 75 octets, never inside a UTF-8 character, and ends in CRLF.

use std::fmt::Write as _;

/// The longest line, in octets, without its CRLF.
const LINE_OCTETS: usize = 75;

/// An iCalendar text being written, line by line.
#[derive(Debug, Default)]
pub struct Lines {
    out: String,
}

/// Whether `c` is a control character a value may not hold (HTAB is allowed).
fn is_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// `value` as an RFC 5545 TEXT value.
pub fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {
                // CRLF is one line break; a bare CR is one too.
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            c if is_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// `value` as a parameter value: no control characters, no `"`, quoted if it holds `:`,
/// `;` or `,`.
pub fn param_value(value: &str) -> String {
    let clean: String = value
        .chars()
        .filter(|&c| !is_control(c) && c != '"')
        .collect();
    if clean.contains([':', ';', ',']) {
        format!("\"{clean}\"")
    } else {
        clean
    }
}

/// `line` folded: at most 75 octets per line, continuation lines starting with a space,
/// never splitting a UTF-8 character; each line ends in CRLF.
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 64 * 3 + 2);
    let mut room = LINE_OCTETS;
    let mut used = 0;
    for c in line.chars() {
        let width = c.len_utf8();
        if used + width > room {
            out.push_str("\r\n ");
            // The leading space takes one octet of the continuation line.
            room = LINE_OCTETS - 1;
            used = 0;
        }
        out.push(c);
        used += width;
    }
    out.push_str("\r\n");
    out
}

impl Lines {
    /// An empty text.
    pub fn new() -> Self {
        Self::default()
    }

    /// A property whose value is written as it is (minus control characters): a date, a
    /// number, a URI or a keyword. `params` are `(name, value)` pairs.
    pub fn raw(&mut self, name: &str, params: &[(&str, &str)], value: &str) -> &mut Self {
        let mut line = String::from(name);
        for (key, value) in params {
            let _ = write!(line, ";{key}={}", param_value(value));
        }
        line.push(':');
        line.extend(value.chars().filter(|&c| !is_control(c)));
        self.out.push_str(&fold(&line));
        self
    }

    /// A property with a TEXT value.
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.raw(name, &[], &escape_text(value))
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_breaks_cannot_start_lines() {
        assert_eq!(
            escape_text("a\\b;c,d\ne\r\nf\rg\u{0}h\ti"),
            r"a\\b\;c\,d\ne\nf\ngh".to_owned() + "\ti"
        );
        let mut lines = Lines::new();
        lines.text("NAME", "Triad: Eve\r\nEND:VCALENDAR\nBEGIN:VEVENT");
        let text = lines.finish();
        assert_eq!(text.matches("\r\n").count(), 1, "{text:?}");
        assert!(!text.contains('\r') || text.ends_with("\r\n"));
    }

    #[test]
    fn params_are_cleaned_and_quoted_when_needed() {
        assert_eq!(param_value("Europe/Rome"), "Europe/Rome");
        assert_eq!(param_value("a\"b:c\nd"), "\"ab:cd\"");
        assert_eq!(param_value("x;y"), "\"x;y\"");
    }

    #[test]
    fn lines_fold_at_75_octets_without_splitting_characters() {
        let value = "é".repeat(100);
        let folded = fold(&format!("SUMMARY:{value}"));
        for line in folded.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
        }
        let unfolded = folded.replace("\r\n ", "");
        assert_eq!(unfolded, format!("SUMMARY:{value}\r\n"));
        assert_eq!(fold("SHORT:x"), "SHORT:x\r\n");
        let exact = format!("X:{}", "a".repeat(73));
        assert_eq!(fold(&exact), format!("{exact}\r\n"));
    }
}
