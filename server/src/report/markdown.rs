//! The cycle report as Markdown (CommonMark with tables): to read as text, paste into a
//! document, or turn into a page. Text from people (names, titles, messages) is escaped so
//! it cannot become markup, raw HTML or a broken table.

use std::fmt::Write as _;

use super::{CycleReport, Member, date, local, role_name, utc};

impl CycleReport {
    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_markdown(&mut out);
        out
    }

    fn write_markdown(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "# {}", text(&self.title))?;
        writeln!(out)?;
        writeln!(
            out,
            "{}, {} to {} (`{}`). Report made {}.",
            text(&self.cycle.name),
            self.cycle.starts,
            self.cycle.ends,
            self.room,
            utc(self.generated_at)
        )?;

        writeln!(out)?;
        writeln!(out, "## Heads")?;
        writeln!(out)?;
        writeln!(out, "| Name | School | Region |")?;
        writeln!(out, "| --- | --- | --- |")?;
        for head in &self.heads {
            writeln!(
                out,
                "| {} | {} | {} |",
                text(&head.name),
                text(&head.school),
                text(&head.region)
            )?;
        }
        writeln!(out)?;
        writeln!(out, "Moderators: {}", names(&self.moderators))?;

        writeln!(out)?;
        writeln!(out, "## Coaching sessions")?;
        writeln!(out)?;
        if self.sessions.is_empty() {
            writeln!(out, "No sessions in this cycle.")?;
        } else {
            writeln!(
                out,
                "| Session | Start (UTC) | Start (booked zone) | Length | Status | Attended | Did not attend |"
            )?;
            writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |")?;
            for session in &self.sessions {
                let (attended, absent) = match &session.attendance {
                    Some(a) => (a.attended_text(text), names(&a.absent)),
                    None => (String::new(), String::new()),
                };
                writeln!(
                    out,
                    "| {} | {} | {} | {} min | {} | {} | {} |",
                    text(&session.title),
                    utc(session.start),
                    text(&local(session.start, &session.time_zone)),
                    session.duration_min,
                    session.state(),
                    attended,
                    absent
                )?;
            }
        }

        writeln!(out)?;
        writeln!(out, "## Messages")?;
        writeln!(out)?;
        writeln!(out, "| Member | Role | Messages |")?;
        writeln!(out, "| --- | --- | ---: |")?;
        for activity in &self.activity {
            writeln!(
                out,
                "| {} | {} | {} |",
                text(&activity.member.name),
                role_name(activity.member.role),
                activity.messages
            )?;
        }

        writeln!(out)?;
        writeln!(out, "## Key learning")?;
        writeln!(out)?;
        if let Some(count) = self.pins_withheld {
            writeln!(
                out,
                "{count} pinned message(s). {}",
                super::PINS_WITHHELD_NOTE
            )?;
        } else if self.pins.is_empty() {
            writeln!(out, "Nothing was pinned in this cycle.")?;
        }
        for pin in &self.pins {
            writeln!(
                out,
                "**{}**, {} (pinned by {}):",
                text(&pin.author.name),
                date(pin.written_at),
                text(&pin.pinned_by.name)
            )?;
            writeln!(out)?;
            for line in pin.body.lines() {
                writeln!(out, "> {}", text(line))?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

fn names(members: &[Member]) -> String {
    if members.is_empty() {
        return "none".into();
    }
    members
        .iter()
        .map(|m| text(&m.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Text on one line, with every character that could start markup escaped.
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '<' | '>' | '[' | ']' | '|' | '#' | '!' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sample;

    #[test]
    fn markdown_has_every_section_and_escapes_markup() {
        let md = sample::report().to_markdown();
        assert!(
            md.starts_with("# Trio 1: Assessment for learning\n"),
            "{md}"
        );
        assert!(
            md.contains("| Anna Jensen | Rosenvang Skole | Vejle, Denmark |"),
            "{md}"
        );
        assert!(md.contains("Moderators: Sara Lind"), "{md}");
        assert!(
            md.contains("| Feedback that \\<lands\\> | 2025-03-04 14:00 UTC | 2025-03-04 15:00 Europe/Rome | 60 min | held | Anna Jensen (joined 14:01 UTC, 58 min), Sara Lind (joined 13:59 UTC, 61 min) |"),
            "{md}"
        );
        assert!(
            md.contains("Marco \\<Rossi\\> \\& \"Co\", Rhian, Evans |"),
            "{md}"
        );
        assert!(md.contains("| cancelled |"), "{md}");
        assert!(md.contains("| Anna Jensen | head | 12 |"), "{md}");
        assert!(
            md.contains(
                "> Exit tickets \\<b\\>work\\</b\\>\n> when 'students' \\& teachers agree\n"
            ),
            "{md}"
        );
    }
}
