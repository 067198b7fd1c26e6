//! The cycle report as one self-contained HTML document (inline style, no scripts, nothing
//! fetched), to open in a browser, print or attach. Every piece of text is escaped (`&`, `<`,
//! `>`, `"`, `'`), so names, titles and messages show as written and never become markup;
//! and isolated (`<bdi>`, or `dir="auto"` on an element that holds only such text), so a
//! right-to-left override in a name or a message cannot reorder the text around it.

use std::fmt::Write as _;

use super::{CycleReport, Member, date, local, role_name, utc};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
padding:0 1rem;color:#1d2125;line-height:1.45}\
table{border-collapse:collapse;width:100%;margin:0.5rem 0 1.5rem}\
th,td{border:1px solid #c9ced4;padding:0.35rem 0.6rem;text-align:left;vertical-align:top}\
th{background:#eef1f4}td.n{text-align:right}\
.muted{color:#5c6670}\
blockquote{margin:0.25rem 0 1.25rem;padding:0.5rem 1rem;border-left:4px solid #7a9cc6;\
background:#f5f8fb;white-space:pre-wrap}\
bdi,[dir=auto]{unicode-bidi:isolate}";

impl CycleReport {
    /// The report as a complete HTML document.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_html(&mut out);
        out
    }

    fn write_html(&self, out: &mut String) -> std::fmt::Result {
        // Plain text, not markup: isolates (FSI … PDI) keep an override in either part
        // inside it.
        let title = format!(
            "\u{2068}{}\u{2069}: \u{2068}{}\u{2069}",
            self.title, self.cycle.name
        );
        writeln!(out, "<!DOCTYPE html>")?;
        writeln!(out, "<html lang=\"en\">")?;
        writeln!(out, "<head>")?;
        writeln!(out, "<meta charset=\"utf-8\">")?;
        writeln!(
            out,
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        )?;
        writeln!(out, "<title>{}</title>", escape(&title))?;
        writeln!(out, "<style>{STYLE}</style>")?;
        writeln!(out, "</head>")?;
        writeln!(out, "<body>")?;
        writeln!(out, "<h1 dir=\"auto\">{}</h1>", escape(&self.title))?;
        writeln!(
            out,
            "<p>{}, {} to {} (<code>{}</code>). <span class=\"muted\">Report made {}.</span></p>",
            user(&self.cycle.name),
            self.cycle.starts,
            self.cycle.ends,
            escape(self.room.as_str()),
            utc(self.generated_at)
        )?;

        writeln!(out, "<h2>Heads</h2>")?;
        writeln!(
            out,
            "<table>\n<thead><tr><th>Name</th><th>School</th><th>Region</th></tr></thead>\n<tbody>"
        )?;
        for head in &self.heads {
            writeln!(
                out,
                "<tr><td dir=\"auto\">{}</td><td dir=\"auto\">{}</td><td dir=\"auto\">{}</td></tr>",
                escape(&head.name),
                escape(&head.school),
                escape(&head.region)
            )?;
        }
        writeln!(out, "</tbody>\n</table>")?;
        writeln!(out, "<p>Moderators: {}</p>", names(&self.moderators))?;

        writeln!(out, "<h2>Coaching sessions</h2>")?;
        if self.sessions.is_empty() {
            writeln!(out, "<p>No sessions in this cycle.</p>")?;
        } else {
            writeln!(
                out,
                "<table>\n<thead><tr><th>Session</th><th>Start (UTC)</th><th>Start (booked zone)</th>\
                 <th>Length</th><th>Status</th><th>Attended</th><th>Did not attend</th></tr></thead>\n<tbody>"
            )?;
            for session in &self.sessions {
                let (attended, absent) = match &session.attendance {
                    Some(a) => (a.attended_text(user), names(&a.absent)),
                    None => (String::new(), String::new()),
                };
                writeln!(
                    out,
                    "<tr><td dir=\"auto\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{} min</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&session.title),
                    utc(session.start),
                    escape(&local(session.start, &session.time_zone)),
                    session.duration_min,
                    session.state(),
                    attended,
                    absent
                )?;
            }
            writeln!(out, "</tbody>\n</table>")?;
        }

        writeln!(out, "<h2>Messages</h2>")?;
        writeln!(
            out,
            "<table>\n<thead><tr><th>Member</th><th>Role</th><th>Messages</th></tr></thead>\n<tbody>"
        )?;
        for activity in &self.activity {
            writeln!(
                out,
                "<tr><td dir=\"auto\">{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                escape(&activity.member.name),
                role_name(activity.member.role),
                activity.messages
            )?;
        }
        writeln!(out, "</tbody>\n</table>")?;

        writeln!(out, "<h2>Key learning</h2>")?;
        if let Some(count) = self.pins_withheld {
            writeln!(
                out,
                "<p>{count} pinned message(s). {}</p>",
                super::PINS_WITHHELD_NOTE
            )?;
        } else if self.pins.is_empty() {
            writeln!(out, "<p>Nothing was pinned in this cycle.</p>")?;
        }
        for pin in &self.pins {
            writeln!(
                out,
                "<p><strong>{}</strong>, {} <span class=\"muted\">(pinned by {})</span></p>",
                user(&pin.author.name),
                date(pin.written_at),
                user(&pin.pinned_by.name)
            )?;
            writeln!(
                out,
                "<blockquote dir=\"auto\">{}</blockquote>",
                escape(&pin.body)
            )?;
        }
        writeln!(out, "</body>")?;
        writeln!(out, "</html>")?;
        Ok(())
    }
}

fn names(members: &[Member]) -> String {
    if members.is_empty() {
        return "none".into();
    }
    members
        .iter()
        .map(|m| user(&m.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Text someone typed, escaped and isolated, to sit inside a sentence.
fn user(value: &str) -> String {
    format!("<bdi>{}</bdi>", escape(value))
}

/// Text made safe for HTML content and quoted attribute values.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
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

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::{escape, user};

    #[test]
    fn text_people_typed_is_isolated() {
        assert_eq!(
            user("invoice\u{202e}gnp.exe"),
            "<bdi>invoice\u{202e}gnp.exe</bdi>"
        );
        let mut report = sample::report();
        report.pins[0].author.name = "Eve \u{202e}reversed".into();
        report.pins[0].body = "\u{202e}backwards".into();
        let html = report.to_html();
        assert!(
            html.contains("<strong><bdi>Eve \u{202e}reversed</bdi></strong>, "),
            "{html}"
        );
        assert!(
            html.contains("<blockquote dir=\"auto\">\u{202e}backwards</blockquote>"),
            "{html}"
        );
        assert!(html.contains("bdi,[dir=auto]{unicode-bidi:isolate}"));
        // Every bidi control a name could hold is inside an isolate.
        for line in html.lines().filter(|l| l.contains('\u{202e}')) {
            assert!(
                line.contains("<bdi>") || line.contains("dir=\"auto\""),
                "not isolated: {line}"
            );
        }
    }

    #[test]
    fn the_title_isolates_what_people_typed() {
        let mut report = sample::report();
        report.title = "Trio \u{202e}one".into();
        let html = report.to_html();
        let title = html
            .lines()
            .find(|l| l.starts_with("<title>"))
            .expect("a title");
        assert!(
            title.starts_with("<title>\u{2068}Trio \u{202e}one\u{2069}: \u{2068}"),
            "{title}"
        );
        assert!(title.ends_with("\u{2069}</title>"), "{title}");
    }

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">Tom & Jerry's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
    }

    #[test]
    fn html_is_a_whole_document_with_every_text_escaped() {
        let html = sample::report().to_html();
        assert!(
            html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
            "{html}"
        );
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.trim_end().ends_with("</html>"));
        assert!(
            html.contains(
                "<title>\u{2068}Trio 1: Assessment for learning\u{2069}: \u{2068}Cycle 1: Vejle\u{2069}</title>"
            ),
            "{html}"
        );
        assert!(
            html.contains("Marco &lt;Rossi&gt; &amp; &quot;Co&quot;"),
            "{html}"
        );
        assert!(
            html.contains("<td dir=\"auto\">Feedback that &lt;lands&gt;</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td>2025-03-04 15:00 Europe/Rome</td>"),
            "{html}"
        );
        assert!(
            html.contains(
                "<bdi>Anna Jensen</bdi> (joined 14:01 UTC, 58 min), <bdi>Sara Lind</bdi> (joined 13:59 UTC, 61 min)"
            ),
            "{html}"
        );
        assert!(
            html.contains(
                "<blockquote dir=\"auto\">Exit tickets &lt;b&gt;work&lt;/b&gt;\nwhen &#39;students&#39; &amp; teachers agree</blockquote>"
            ),
            "{html}"
        );
        assert!(
            !html.contains("<b>"),
            "no markup from people's text gets through"
        );
        assert!(!html.contains("<script"), "no scripts");
    }
}
